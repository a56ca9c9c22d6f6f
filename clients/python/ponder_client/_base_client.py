"""What the sync and the async client share: configuration, building requests, deciding
on retries, turning answers into models or errors. Only the sending differs."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from ._errors import APIConnectionError, APIError, APITimeoutError, PonderError
from ._retry import RetryPolicy
from ._version import __version__

log = logging.getLogger("ponder_client")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# long enough for the API's longest long-poll (jobs.get(wait=...) adds its wait)
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class APIResponseValidationError(APIError):
    """The API answered successfully, but not with the shape this client expects (a
    server much newer or older than the client)."""

    def __init__(self, response: httpx.Response, error: Exception) -> None:
        super().__init__(
            f"the answer to {response.request.method} {response.request.url.path} does not "
            f"have the expected shape: {error}",
            request=response.request,
        )
        self.response = response


@dataclass
class RequestOptions:
    """One logical request: what to send and how it may be retried."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | httpx.Timeout | None = None
    # whether sending it twice does no harm (None: by its method). A create the server
    # deduplicates by its Idempotency-Key is idempotent.
    idempotent: bool | None = None
    # sent on every attempt: the same key for the retries of one call
    idempotency_key: str | None = None
    # overrides the client's max_retries for this request
    max_retries: int | None = None
    # statuses that mean success when they answer a retry (e.g. a 404 for a retried
    # DELETE whose first attempt did delete)
    ok_on_retry: frozenset[int] = field(default_factory=frozenset)

    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in IDEMPOTENT_METHODS


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and how to read its answer."""

    options: RequestOptions
    parse: Callable[[httpx.Response], T]


def new_idempotency_key() -> str:
    return f"ponder-client-{uuid.uuid4()}"


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    """Reads an answer as ``cls``."""

    def parse(response: httpx.Response) -> M:
        try:
            return cls.model_validate_json(response.content)
        except ValidationError as exc:
            raise APIResponseValidationError(response, exc) from None

    return parse


def model_list(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    """Reads an answer as a JSON array of ``cls``."""
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> list[M]:
        try:
            items: list[M] = adapter.validate_json(response.content)
        except ValidationError as exc:
            raise APIResponseValidationError(response, exc) from None
        return items

    return parse


def no_content(response: httpx.Response) -> None:
    return None


def as_timeout(value: float | httpx.Timeout | None, default: httpx.Timeout) -> httpx.Timeout:
    if value is None:
        return default
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(value)


def connection_error(error: httpx.TransportError, request: httpx.Request) -> APIConnectionError:
    where = f"{request.method} {request.url}"
    if isinstance(error, httpx.TimeoutException):
        return APITimeoutError(f"{where}: no answer in time ({error!r})", request=request)
    reason = str(error) or type(error).__name__
    return APIConnectionError(f"{where}: connection failed ({reason})", request=request)


def not_repeated(options: RequestOptions) -> str:
    """Why a request that failed in a way worth retrying was not retried."""
    return (
        f"{options.method} {options.path} was not sent again: the server may have acted on "
        "it before the failure, and doing it twice is not harmless. Check (e.g. list what "
        "it creates) before sending it again."
    )


class BaseClient:
    """Configuration and request building shared by :class:`ponder_client.Ponder` and
    :class:`ponder_client.AsyncPonder`."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int | None,
        retry: RetryPolicy | None,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        url = base_url or os.environ.get("PONDER_API_URL") or DEFAULT_BASE_URL
        key = api_key if api_key is not None else os.environ.get("PONDER_API_KEY")
        if not key:
            raise PonderError(
                "no API key: pass api_key=... or set PONDER_API_KEY (an operator creates "
                "one with `ponder keys create --tenant NAME`)"
            )
        self.base_url = url.rstrip("/")
        self.api_key = key
        self.timeout = as_timeout(timeout, DEFAULT_TIMEOUT)
        policy = retry or RetryPolicy(max_retries=DEFAULT_MAX_RETRIES)
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        self.retry = policy
        self._default_headers = dict(default_headers or {})

    @property
    def user_agent(self) -> str:
        return f"ponder-client/{__version__} python/{platform.python_version()}"

    def _policy(self, options: RequestOptions) -> RetryPolicy:
        if options.max_retries is None:
            return self.retry
        return dataclasses.replace(self.retry, max_retries=options.max_retries)

    def _request_args(self, options: RequestOptions) -> dict[str, Any]:
        headers = {
            "Accept": "application/json",
            "User-Agent": self.user_agent,
            **self._default_headers,
            **(options.headers or {}),
            "Authorization": f"Bearer {self.api_key}",
        }
        if options.idempotency_key is not None:
            headers["Idempotency-Key"] = options.idempotency_key
        args: dict[str, Any] = {
            "method": options.method,
            "url": self.base_url + options.path,
            "params": options.params,
            "headers": headers,
            "timeout": as_timeout(options.timeout, self.timeout),
        }
        if options.content is not None:
            args["content"] = options.content
        elif options.json is not None:
            args["json"] = options.json
        return args

    def _log_retry(self, options: RequestOptions, delay: float, why: str) -> None:
        log.info("retrying %s %s in %.2f s (%s)", options.method, options.path, delay, why)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
