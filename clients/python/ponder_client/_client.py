"""The clients: :class:`Ponder` (blocking) and :class:`AsyncPonder` (asyncio)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import TypeVar

import httpx

from ._base_client import (
    DEFAULT_TIMEOUT,
    BaseClient,
    Call,
    RequestOptions,
    connection_error,
    not_repeated,
)
from ._errors import status_error
from ._retry import RetryPolicy
from .resources import (
    APIKeys,
    AsyncAPIKeys,
    AsyncBatches,
    AsyncDatasets,
    AsyncDeliveries,
    AsyncJobs,
    AsyncModels,
    AsyncSchedules,
    AsyncStrategies,
    AsyncSystem,
    AsyncWebhookSecrets,
    Batches,
    Datasets,
    Deliveries,
    Jobs,
    Models,
    Schedules,
    Strategies,
    System,
    WebhookSecrets,
)

T = TypeVar("T")

__all__ = ["AsyncPonder", "Ponder"]


class Ponder(BaseClient):
    """A client of Ponder's API.

    ``base_url`` defaults to ``PONDER_API_URL`` (else ``http://127.0.0.1:8000``) and
    ``api_key`` to ``PONDER_API_KEY``. Requests time out after ``timeout`` (seconds or an
    ``httpx.Timeout``; every method also takes its own ``timeout``) and are retried up to
    ``max_retries`` times (see :class:`RetryPolicy` for the finer settings). ``sleep`` is
    what waits between retries. Pass an ``http_client`` to use your own ``httpx.Client``
    (proxies, certificates); the client then leaves closing it to you.

    Use it as a context manager, or call :meth:`close`, to release its connections."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client()
        self._sleep = sleep
        self.jobs = Jobs(self)
        self.batches = Batches(self)
        self.datasets = Datasets(self)
        self.schedules = Schedules(self)
        self.webhook_secrets = WebhookSecrets(self)
        self.deliveries = Deliveries(self)
        self.strategies = Strategies(self)
        self.models = Models(self)
        self.system = System(self)
        self.keys = APIKeys(self)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Ponder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, options: RequestOptions, *, stream: bool = False) -> httpx.Response:
        """Send with retries. Returns a successful answer (open, if ``stream``), or one
        whose status ``options.ok_on_retry`` accepts; raises for the rest."""
        policy = self._policy(options)
        idempotent = options.is_idempotent()
        attempt = 0
        while True:
            request = self._http.build_request(**self._request_args(options))
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = policy.after_error(attempt, exc, idempotent=idempotent)
                if delay is None:
                    failed = connection_error(exc, request)
                    if policy.after_error(attempt, exc, idempotent=True) is not None:
                        failed.add_note(not_repeated(options))
                    raise failed from exc
                self._log_retry(options, delay, type(exc).__name__)
            else:
                status = response.status_code
                if status < 400 or (attempt > 0 and status in options.ok_on_retry):
                    return response
                delay = policy.after_status(
                    attempt, status, response.headers, idempotent=idempotent
                )
                if delay is None:
                    try:
                        response.read()
                    finally:
                        response.close()
                    error = status_error(response)
                    retryable = policy.after_status(
                        attempt, status, response.headers, idempotent=True
                    )
                    if retryable is not None:
                        error.add_note(not_repeated(options))
                    raise error
                response.close()
                self._log_retry(options, delay, f"HTTP {status}")
            self._sleep(delay)
            attempt += 1

    def _call(self, call: Call[T]) -> T:
        return call.parse(self._send(call.options))

    @contextmanager
    def _stream(self, options: RequestOptions) -> Iterator[httpx.Response]:
        """An open, successful answer to read as it arrives; a connection that breaks
        while it is read raises :class:`APIConnectionError`."""
        response = self._send(options, stream=True)
        try:
            yield response
        except httpx.TransportError as exc:
            raise connection_error(exc, response.request) from exc
        finally:
            response.close()


class AsyncPonder(BaseClient):
    """A client of Ponder's API for asyncio: :class:`Ponder` with every method a
    coroutine (``await client.jobs.get(id)``), streams and results as async iterators
    (``async for event in client.jobs.stream(id)``). ``sleep`` is awaited between
    retries. Use it as an async context manager, or ``await client.close()``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient()
        self._sleep = sleep
        self.jobs = AsyncJobs(self)
        self.batches = AsyncBatches(self)
        self.datasets = AsyncDatasets(self)
        self.schedules = AsyncSchedules(self)
        self.webhook_secrets = AsyncWebhookSecrets(self)
        self.deliveries = AsyncDeliveries(self)
        self.strategies = AsyncStrategies(self)
        self.models = AsyncModels(self)
        self.system = AsyncSystem(self)
        self.keys = AsyncAPIKeys(self)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPonder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, options: RequestOptions, *, stream: bool = False) -> httpx.Response:
        """As :meth:`Ponder._send`."""
        policy = self._policy(options)
        idempotent = options.is_idempotent()
        attempt = 0
        while True:
            request = self._http.build_request(**self._request_args(options))
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = policy.after_error(attempt, exc, idempotent=idempotent)
                if delay is None:
                    failed = connection_error(exc, request)
                    if policy.after_error(attempt, exc, idempotent=True) is not None:
                        failed.add_note(not_repeated(options))
                    raise failed from exc
                self._log_retry(options, delay, type(exc).__name__)
            else:
                status = response.status_code
                if status < 400 or (attempt > 0 and status in options.ok_on_retry):
                    return response
                delay = policy.after_status(
                    attempt, status, response.headers, idempotent=idempotent
                )
                if delay is None:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                    error = status_error(response)
                    retryable = policy.after_status(
                        attempt, status, response.headers, idempotent=True
                    )
                    if retryable is not None:
                        error.add_note(not_repeated(options))
                    raise error
                await response.aclose()
                self._log_retry(options, delay, f"HTTP {status}")
            await self._sleep(delay)
            attempt += 1

    async def _call(self, call: Call[T]) -> T:
        return call.parse(await self._send(call.options))

    @asynccontextmanager
    async def _stream(self, options: RequestOptions) -> AsyncIterator[httpx.Response]:
        """As :meth:`Ponder._stream`."""
        response = await self._send(options, stream=True)
        try:
            yield response
        except httpx.TransportError as exc:
            raise connection_error(exc, response.request) from exc
        finally:
            await response.aclose()
