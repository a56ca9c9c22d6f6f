"""The retry loop every HTTP client of a model server shares (chat providers, reward
models): timeouts, dropped connections and retryable statuses (408/409/429/5xx) are
retried under a :class:`~ponder.llm.retry.RetryPolicy`, honouring
``Retry-After``; what is left for the caller is a 2xx or a client error to interpret."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ponder.llm.base import ProviderUnavailable, RateLimited
from ponder.llm.retry import RetryPolicy, Sleep
from ponder.retry_after import parse_retry_after

log = logging.getLogger(__name__)

# the longest server error message quoted in an error we raise
MAX_ERROR_CHARS = 500


def scrub_secret(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (an API key) removed, in case a server or library echoes
    it."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    return text


def server_message(response: httpx.Response, secret: str | None) -> str:
    """What a server said in an error response (OpenAI/Anthropic ``error.message``, a
    top-level ``message``/``detail``, else the raw text), without ``secret``, cut short."""
    message: Any = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        if message is None:
            message = payload.get("message") or payload.get("detail")
    if message is None:
        message = response.text.strip() or response.reason_phrase or "(empty response)"
    text = scrub_secret(str(message), secret)
    return text[:MAX_ERROR_CHARS] + "…" if len(text) > MAX_ERROR_CHARS else text


class Poster(Protocol):
    """What the retry loop sends requests with: an :class:`AiohttpPoster` or an
    ``httpx.AsyncClient``."""

    async def post(
        self, url: str, *, json: Any, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response: ...

    async def aclose(self) -> None: ...


class AiohttpPoster:
    """The connection pool model requests go out on: aiohttp, at most
    ``max_connections`` connections, answers handed back as ``httpx.Response`` (so the
    retry loop and the providers read them one way, and tests can use httpx's mock
    transport instead).

    Why not an ``httpx.AsyncClient``: a worker process sends hundreds of requests at
    once, and httpx spent about as much CPU per request as everything else a job does
    (its pool looks at every connection on each request); aiohttp's client costs a
    fraction of that. Connection failures come back as ``httpx.TransportError``
    subclasses and timeouts as ``httpx.TimeoutException`` subclasses, as httpx raises
    them."""

    def __init__(self, max_connections: int, *, timeout: httpx.Timeout) -> None:
        self._limit = max_connections
        self._timeout = timeout
        self._session: Any = None
        self._closed = False

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit),
                # never sent, never kept: a model server has no business setting cookies
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "ponder"},
            )
        return self._session

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def post(
        self, url: str, *, json: Any, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response:
        import aiohttp

        request = httpx.Request("POST", url)
        limits = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout.connect, sock_read=timeout.read
        )
        try:
            async with self._client().post(
                url, json=json, headers=headers, timeout=limits, allow_redirects=False
            ) as resp:
                body = await resp.read()
                return httpx.Response(
                    resp.status,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers
                    ],
                    content=body,
                    request=request,
                )
        except aiohttp.ServerTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from None
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from None
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.RemoteProtocolError(
                f"{type(exc).__name__}: {exc}", request=request
            ) from None

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


@dataclass(frozen=True)
class Endpoint:
    """Who is being called, for messages a user reads (never with credentials)."""

    who: str  # e.g. "model 'gpt'" or "reward model 'prm'"
    shown_url: str
    timeout_s: float
    scrub: Callable[[str], str]  # removes secrets from text
    server_message: Callable[[httpx.Response], str]


_WHAT = {429: "is rate limiting requests", 529: "is overloaded"}


async def post_with_retries(
    client: Poster,
    url: str,
    *,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout: httpx.Timeout,
    policy: RetryPolicy,
    sleep: Sleep,
    slot: Callable[[], AbstractAsyncContextManager[Any]],
    endpoint: Endpoint,
) -> httpx.Response:
    """POST ``body`` until a response that should not be retried; raise
    :class:`ProviderUnavailable` (:class:`RateLimited` for 429) once retries run out.
    ``slot`` is held around each request only, never during backoff."""
    attempts = policy.max_retries + 1

    async def backoff(attempt: int, retry_after: float | None, why: str) -> None:
        wait = policy.delay(attempt, retry_after)
        log.warning(
            "%s: %s; retry %d/%d in %.2f s",
            endpoint.who,
            why,
            attempt + 1,
            policy.max_retries,
            wait,
        )
        await sleep(wait)

    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            async with slot():
                response = await client.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            if last:
                raise ProviderUnavailable(
                    f"{endpoint.who} at {endpoint.shown_url} did not answer within "
                    f"{endpoint.timeout_s:g} s ({type(exc).__name__}), {attempts} attempt(s)"
                ) from None
            await backoff(attempt, None, f"timed out ({type(exc).__name__})")
            continue
        except httpx.TransportError as exc:
            if last:
                detail = endpoint.scrub(str(exc)) or "no detail"
                raise ProviderUnavailable(
                    f"{endpoint.who}: could not reach {endpoint.shown_url} "
                    f"({type(exc).__name__}: {detail}), {attempts} attempt(s)"
                ) from None
            await backoff(attempt, None, f"connection failed ({type(exc).__name__})")
            continue

        status = response.status_code
        if status < 300 or not policy.should_retry_status(status):
            return response
        if last:
            error_type = RateLimited if status == 429 else ProviderUnavailable
            raise error_type(
                f"{endpoint.who} at {endpoint.shown_url} {_WHAT.get(status, 'keeps failing')}: "
                f"HTTP {status} after {attempts} attempt(s); server said: "
                f"{endpoint.server_message(response)}",
                status_code=status,
            )
        await backoff(attempt, parse_retry_after(response.headers), f"HTTP {status}")
    raise AssertionError("unreachable")  # pragma: no cover
