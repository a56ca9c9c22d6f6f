"""When to retry a request, and how long to wait first.

A request is retried after a ``429``, a ``500``, ``502``, ``503`` or ``504`` answer, or a
failed connection, up to ``max_retries`` times. The wait is the server's ``Retry-After``
when it sends one (seconds or an HTTP date), else an exponential backoff with jitter.
A request that may already have had its effect (the answer was lost, or the server
failed midway) is retried only when doing it twice does no harm: reads, updates,
deletes, and creates the server deduplicates by their ``Idempotency-Key``. A ``429``
and a connection that was never made are retried for any request: the server did
nothing with it."""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries. ``max_retries`` is the number of retries after the first
    attempt; the backoff starts at ``initial_delay`` seconds and doubles up to
    ``max_delay``, less up to ``jitter`` of it at random. A ``Retry-After`` longer than
    ``max_retry_after`` seconds is not waited for: the error is raised at once (its
    ``retry_after`` says how long the server asked for)."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def backoff(self, attempt: int) -> float:
        """The wait before retry number ``attempt + 1`` when the server named none."""
        delay = min(self.initial_delay * 2.0**attempt, self.max_delay)
        return delay * (1.0 - self.jitter * random.random())

    def after_status(
        self, attempt: int, status: int, headers: Mapping[str, str], *, idempotent: bool
    ) -> float | None:
        """Seconds to wait before retrying a request answered ``status`` on its attempt
        number ``attempt`` (0 for the first), or None not to retry it."""
        if attempt >= self.max_retries or status not in RETRY_STATUSES:
            return None
        # a 429 refuses the request before anything is done; a 5xx may come after
        if status != 429 and not idempotent:
            return None
        asked = parse_retry_after(headers)
        if asked is None:
            return self.backoff(attempt)
        if asked > self.max_retry_after:
            return None
        return asked

    def after_error(self, attempt: int, error: Exception, *, idempotent: bool) -> float | None:
        """Seconds to wait before retrying a request whose connection failed with
        ``error``, or None not to retry it."""
        if attempt >= self.max_retries:
            return None
        if not (idempotent or never_sent(error)):
            return None
        return self.backoff(attempt)


def never_sent(error: Exception) -> bool:
    """Whether a transport error happened before any of the request left this machine."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait ``Retry-After`` asks for, in seconds (0 or more): a number of seconds or
    an HTTP date. None when the header is missing or unreadable."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is always in GMT
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)
