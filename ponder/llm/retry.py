"""When a failed call to a model server is tried again, and after how long: the
:class:`RetryPolicy` every HTTP client of a model server (chat providers, reward models)
retries under (see :func:`ponder.llm.http.post_with_retries`)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# How a client waits between attempts (``asyncio.sleep``; tests pass a fake).
Sleep = Callable[[float], Awaitable[None]]

# Client errors worth another try (besides every 5xx): timeout, conflict, rate limit.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a failed call again.

    ``delay(attempt)`` is full-jitter exponential backoff: uniform in
    ``[0, min(cap_s, base_s * 2**attempt)]``; a server's ``Retry-After`` wins when given,
    capped at ``max_retry_after_s`` so a misbehaving server cannot park a worker.
    """

    max_retries: int = 4
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 60.0

    def should_retry_status(self, status_code: int) -> bool:
        return status_code in RETRYABLE_STATUSES or status_code >= 500

    def delay(
        self,
        attempt: int,
        retry_after: float | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).
        ``rand`` returns a float in [0, 1); pass a fixed one to make this deterministic."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after_s)
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(max(attempt, 0), 60))
        return ceiling * rand()


__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "Sleep"]
