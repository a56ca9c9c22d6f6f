"""The retry loop every HTTP client of a model server shares (chat providers, reward
models): timeouts, dropped connections and retryable statuses (408/409/429/5xx) are
retried under a :class:`~ponder.llm.openai_compat.RetryPolicy`, honouring
``Retry-After``; what is left for the caller is a 2xx or a client error to interpret."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ponder.llm.base import ProviderUnavailable, RateLimited
from ponder.retry_after import parse_retry_after

if TYPE_CHECKING:
    from ponder.llm.openai_compat import RetryPolicy

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
    """What the retry loop sends requests with: an ``httpx.AsyncClient`` or a
    :class:`ClientPool`."""

    async def post(
        self, url: str, *, json: Any, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response: ...

    async def aclose(self) -> None: ...


# connections per client of a ClientPool
CONNECTIONS_PER_CLIENT = 32


class ClientPool:
    """Up to ``max_connections`` pooled connections to one server, as several httpx
    clients of at most :data:`CONNECTIONS_PER_CLIENT` connections each.

    httpcore looks at every connection of a pool on every request (to find an idle one
    and drop expired ones), so a single pool of hundreds of connections costs CPU in
    proportion to its size on each request: with 400 requests in flight that was most of
    a worker's CPU. Each request goes to the client with the fewest requests in flight,
    so no client is asked for more connections than it has while the pool as a whole
    has room."""

    def __init__(
        self,
        max_connections: int,
        *,
        timeout: httpx.Timeout,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        n = max(1, -(-max_connections // CONNECTIONS_PER_CLIENT))
        self.size = -(-max_connections // n)
        limits = httpx.Limits(max_connections=self.size, max_keepalive_connections=self.size)
        self._clients = [
            httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport) for _ in range(n)
        ]
        self._busy = [0] * n

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def in_flight(self) -> list[int]:
        """Requests in flight on each client."""
        return list(self._busy)

    @property
    def is_closed(self) -> bool:
        return all(c.is_closed for c in self._clients)

    async def post(
        self, url: str, *, json: Any, headers: dict[str, str], timeout: httpx.Timeout
    ) -> httpx.Response:
        i = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[i] += 1
        try:
            return await self._clients[i].post(url, json=json, headers=headers, timeout=timeout)
        finally:
            self._busy[i] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


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
    sleep: Callable[[float], Awaitable[None]],
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
