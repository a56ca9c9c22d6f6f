"""The API's gauge of a tenant's queue: counts in the database only when the queue may
be near its limit (or the last count is stale), and says full once it is."""

from __future__ import annotations

from typing import Any

import pytest

import ponder.fairness as fairness


def test_the_gauge_counts_rarely_and_says_full_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waiting = {"n": 0}
    counted: list[int] = []

    def count(_conn: Any, _tenant: str, limit: int) -> int:
        counted.append(waiting["n"])
        return min(waiting["n"], limit)

    monkeypatch.setattr(fairness, "waiting_count", count)
    gauge = fairness.QueueGauge(ttl=60)
    admitted = 0
    while not gauge.is_full(None, "t", 100):  # type: ignore[arg-type]
        admitted += 1
        waiting["n"] += 1  # each admitted job waits in the queue
        assert admitted <= 100
    assert admitted == 100
    # below half the limit it went on without asking the database each time
    assert len(counted) < admitted
    # another tenant is counted on its own
    assert gauge.is_full(None, "other", 100) is True  # type: ignore[arg-type]
