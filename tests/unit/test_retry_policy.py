"""RetryPolicy and Retry-After parsing: pure functions, no waiting."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from ponder.llm.retry import RetryPolicy
from ponder.retry_after import parse_retry_after


def test_defaults_live_in_one_place() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_s, policy.cap_s) == (4, 0.5, 30.0)


def test_backoff_ceiling_doubles_then_caps() -> None:
    policy = RetryPolicy()
    just_below_one = 0.999999
    ceilings = [policy.delay(attempt, rand=lambda: just_below_one) for attempt in range(10)]
    assert ceilings[:4] == pytest.approx([0.5, 1.0, 2.0, 4.0], rel=1e-5)
    assert all(a <= b for a, b in itertools.pairwise(ceilings))
    assert max(ceilings) == pytest.approx(30.0, rel=1e-5)
    assert policy.delay(10_000, rand=lambda: just_below_one) <= 30.0  # no overflow


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [policy.delay(attempt, rand=rng.random) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # actually jittered, not a constant
    assert policy.delay(3, rand=lambda: 0.0) == 0.0


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    policy = RetryPolicy()
    assert policy.delay(0, 7.0, rand=lambda: 0.5) == 7.0
    assert policy.delay(5, 0.0) == 0.0
    assert policy.delay(0, 3600.0) == 60.0
    assert RetryPolicy(max_retry_after_s=5.0).delay(0, 30.0) == 5.0


def test_retryable_statuses() -> None:
    policy = RetryPolicy()
    assert all(policy.should_retry_status(s) for s in (408, 409, 429, 500, 502, 503, 504))
    assert not any(policy.should_retry_status(s) for s in (400, 401, 403, 404, 413, 422))


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after({"Retry-After": "12"}) == 12.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"Retry-After": "-3"}) == 0.0


def test_retry_after_as_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after({"Retry-After": header}, now=now) == pytest.approx(42.0)
    past = format_datetime(now - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0


def test_retry_after_ms_is_preferred() -> None:
    headers = {"retry-after-ms": "250", "Retry-After": "9"}
    assert parse_retry_after(headers) == pytest.approx(0.25)


def test_missing_or_garbage_retry_after_is_ignored() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"retry-after-ms": "x", "Retry-After": "2"}) == 2.0
