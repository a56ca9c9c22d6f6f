"""How a slice of a job ends: the one table from what happened while the strategy ran
to what the worker does next and which status and stop reason the job gets.

The worker runs the strategy and carries out the :class:`Ending` this module picks; it
decides nothing about statuses itself. The API's strings (``completed``, ``failed``,
``cancelled``; ``verified``, ``budget_exhausted``, ``deadline``, ``search_exhausted``,
``cancelled``, ``error``, ``daily_spend_limit``) are the values of
:class:`ponder.tables.JobStatus` and :class:`ponder.tables.StopReason`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ponder.budget import BudgetExhausted, SpendLimitReached
from ponder.llm.base import ProviderError, ProviderUnavailable
from ponder.runtime import Cancelled, LeaseLost, NonDeterminism, SliceExpired, WorkerStopping
from ponder.tables import JobStatus, StopReason

# the longest wait before a slice whose model server was unreachable is tried again
MAX_RETRY_SECONDS = 60.0


class Next(StrEnum):
    """What the worker does after the strategy stopped."""

    FINISH = "finish"  # write the final status, result and outbox rows
    HANDOFF = "handoff"  # the slice's time is up: journal, publish the next slice now
    SHUTDOWN = "shutdown"  # the worker is stopping: the same, within its grace period
    RETRY = "retry"  # the model server is unreachable: hand back, try again later
    LOST = "lost"  # another worker owns the job: write nothing


@dataclass(frozen=True)
class Ending:
    then: Next
    status: JobStatus | None = None
    stop_reason: StopReason | None = None
    error: str | None = None
    # a failure nobody planned for (a bug in a strategy): log it with its traceback
    unexpected: bool = False


def ending_for(error: BaseException | None, *, verified: bool = False) -> Ending:
    """The ending of a strategy that returned (``error`` None; ``verified`` when its best
    answer passed the verifier) or raised ``error``."""
    if error is None:
        reason = StopReason.VERIFIED if verified else StopReason.SEARCH_EXHAUSTED
        return Ending(Next.FINISH, JobStatus.COMPLETED, reason)
    if isinstance(error, LeaseLost):
        return Ending(Next.LOST)
    if isinstance(error, WorkerStopping):
        return Ending(Next.SHUTDOWN)
    if isinstance(error, SliceExpired):
        return Ending(Next.HANDOFF)
    if isinstance(error, SpendLimitReached):
        # the tenant's daily spend is used up: the best answer so far, and why it stopped
        return Ending(Next.FINISH, JobStatus.COMPLETED, error.stop_reason, str(error))
    if isinstance(error, BudgetExhausted):
        # out of tokens, calls, cost or time: the best answer so far is the result
        return Ending(Next.FINISH, JobStatus.COMPLETED, error.stop_reason)
    if isinstance(error, Cancelled):
        return Ending(Next.FINISH, JobStatus.CANCELLED, StopReason.CANCELLED)
    if isinstance(error, ProviderUnavailable):
        return Ending(Next.RETRY, error=str(error))
    if isinstance(error, ProviderError | NonDeterminism):
        return Ending(Next.FINISH, JobStatus.FAILED, StopReason.ERROR, str(error))
    return Ending(
        Next.FINISH,
        JobStatus.FAILED,
        StopReason.ERROR,
        f"the strategy failed: {type(error).__name__}: {error}",
        unexpected=True,
    )


def could_not_start(error: Exception) -> Ending:
    """A job whose strategy, problem, model or verifier cannot even be built."""
    return Ending(
        Next.FINISH, JobStatus.FAILED, StopReason.ERROR, f"the job could not start: {error}"
    )


def gave_up(recoveries: int, max_attempts: int) -> Ending | None:
    """The ending of a job interrupted more often than ``max_attempts`` allows, or None
    while it may still run."""
    if recoveries <= max_attempts:
        return None
    return Ending(
        Next.FINISH,
        JobStatus.FAILED,
        StopReason.ERROR,
        f"the job was interrupted {recoveries} times (its worker was lost or its model "
        f"server unreachable); gave up after max_attempts={max_attempts}",
    )


def retry_countdown(recoveries: int) -> float:
    """Seconds before retrying a job whose model server was unreachable, doubling with
    each interruption so far."""
    return min(MAX_RETRY_SECONDS, 5.0 * float(2**recoveries))
