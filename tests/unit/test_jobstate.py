"""The job state machine: what each way a strategy stops makes of the job."""

from __future__ import annotations

import pytest

from ponder.budget import BudgetExhausted, DeadlineExceeded
from ponder.jobstate import (
    MAX_RETRY_SECONDS,
    Next,
    could_not_start,
    ending_for,
    gave_up,
    retry_countdown,
)
from ponder.llm.base import BadRequest, ProviderError, ProviderUnavailable
from ponder.runtime import Cancelled, LeaseLost, NonDeterminism, SliceExpired, WorkerStopping


def test_a_strategy_that_returns_completes_verified_or_not() -> None:
    assert ending_for(None, verified=True).stop_reason == "verified"
    plain = ending_for(None)
    assert (plain.then, plain.status, plain.stop_reason, plain.error) == (
        Next.FINISH,
        "completed",
        "search_exhausted",
        None,
    )


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (BudgetExhausted("tokens", "out of tokens"), "completed", "budget_exhausted"),
        (DeadlineExceeded(), "completed", "deadline"),
        (Cancelled(), "cancelled", "cancelled"),
        (ProviderError("HTTP 500"), "failed", "error"),
        (BadRequest("bad prompt"), "failed", "error"),
        (NonDeterminism("call 3 differs"), "failed", "error"),
    ],
)
def test_planned_stops_finish_the_job(error: Exception, status: str, reason: str) -> None:
    ending = ending_for(error)
    assert (ending.then, ending.status, ending.stop_reason) == (Next.FINISH, status, reason)
    assert not ending.unexpected
    if status == "failed":
        assert ending.error == str(error)
    else:
        assert ending.error is None


def test_a_bug_in_a_strategy_fails_the_job_and_says_so() -> None:
    ending = ending_for(KeyError("beam"))
    assert ending.status == "failed" and ending.stop_reason == "error" and ending.unexpected
    assert ending.error == "the strategy failed: KeyError: 'beam'"


@pytest.mark.parametrize(
    ("error", "then"),
    [
        (LeaseLost("taken"), Next.LOST),
        (WorkerStopping("stop"), Next.SHUTDOWN),  # before SliceExpired, its base
        (SliceExpired("time"), Next.HANDOFF),
        (ProviderUnavailable("connection refused"), Next.RETRY),
    ],
)
def test_interruptions_do_not_finish_the_job(error: Exception, then: Next) -> None:
    ending = ending_for(error)
    assert ending.then is then and ending.status is None and ending.stop_reason is None


def test_giving_up_and_not_starting() -> None:
    assert gave_up(3, max_attempts=3) is None
    ending = gave_up(4, max_attempts=3)
    assert ending is not None and ending.status == "failed"
    assert ending.error is not None and "interrupted 4 times" in ending.error
    assert "max_attempts=3" in ending.error
    bad = could_not_start(ValueError("unknown verifier"))
    assert bad.error == "the job could not start: unknown verifier"


def test_retries_back_off_up_to_a_minute() -> None:
    assert [retry_countdown(n) for n in range(5)] == [5.0, 10.0, 20.0, 40.0, MAX_RETRY_SECONDS]
    assert retry_countdown(50) == MAX_RETRY_SECONDS
