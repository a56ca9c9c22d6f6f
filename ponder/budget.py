"""Per-job compute budgets as hard caps.

Before a call the :class:`Ledger` *reserves* its worst case (prompt estimate + max
tokens, and their price); after the call it *settles* to the usage the provider reported.
A reservation that cannot fit raises :class:`BudgetExhausted`. Reservations still open when
a worker dies are counted as spent by the next worker, so no crash lets a job overspend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ponder.errors import ErrorCode, PonderError
from ponder.tables import StopReason


class BudgetLimits(BaseModel):
    """The caps a job runs under. A missing cap means "no cap on this dimension"."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(
        default=None,
        gt=0,
        strict=True,
        description="Prompt + completion tokens across all model calls.",
    )
    max_calls: int | None = Field(
        default=None,
        gt=0,
        strict=True,
        description="Model generations (each of `n` samples counts as one).",
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        description="Spend in US dollars at the model profile's prices.",
    )
    max_seconds: float | None = Field(
        default=None,
        gt=0,
        strict=True,
        description="Wall-clock seconds of running time (the deadline).",
    )


@dataclass(frozen=True)
class Spend:
    tokens: int = 0
    calls: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.tokens + other.tokens, self.calls + other.calls, self.cost_usd + other.cost_usd
        )

    def __sub__(self, other: Spend) -> Spend:
        return Spend(
            self.tokens - other.tokens, self.calls - other.calls, self.cost_usd - other.cost_usd
        )


class BudgetExhausted(PonderError):
    """A call could not be reserved within the job's budget."""

    code = ErrorCode.BUDGET_EXHAUSTED
    stop_reason = StopReason.BUDGET_EXHAUSTED

    def __init__(self, dimension: str, message: str) -> None:
        super().__init__(message)
        self.dimension = dimension


class DeadlineExceeded(BudgetExhausted):
    """The job's ``max_seconds`` ran out."""

    stop_reason = StopReason.DEADLINE

    def __init__(self, message: str = "the job's max_seconds ran out") -> None:
        super().__init__("seconds", message)


class SpendLimitReached(BudgetExhausted):
    """A call could not be reserved within the tenant's daily spend limit
    (``spend_per_day_usd``, see :mod:`ponder.quotas`): no new model call until the next
    UTC day; the job stops with its best answer so far."""

    code = ErrorCode.QUOTA_EXCEEDED
    stop_reason = StopReason.DAILY_SPEND_LIMIT

    def __init__(self, message: str) -> None:
        super().__init__("tenant_cost_usd", message)


@dataclass(frozen=True)
class Reservation:
    id: int
    spend: Spend


# a cost that differs from the cap by less than this is "equal" (float rounding)
_COST_EPS = 1e-12


class Ledger:
    """Tracks spend against :class:`BudgetLimits`. Thread-safe; ``spent`` includes
    everything settled or lost so far, ``reserved`` the calls in flight."""

    def __init__(self, limits: BudgetLimits, spent: Spend | None = None) -> None:
        self.limits = limits
        self._spent = spent or Spend()
        self._open: dict[int, Spend] = {}
        self._next_id = 0
        self._lock = threading.Lock()

    @property
    def spent(self) -> Spend:
        with self._lock:
            return self._spent

    @property
    def reserved(self) -> Spend:
        with self._lock:
            return self._reserved_locked()

    def _reserved_locked(self) -> Spend:
        total = Spend()
        for s in self._open.values():
            total = total + s
        return total

    def headroom(self) -> tuple[int | None, int | None, float | None]:
        """What is left on each dimension (tokens, calls, cost), None where uncapped."""
        with self._lock:
            used = self._spent + self._reserved_locked()
        lim = self.limits
        return (
            None if lim.max_tokens is None else lim.max_tokens - used.tokens,
            None if lim.max_calls is None else lim.max_calls - used.calls,
            None if lim.max_cost_usd is None else lim.max_cost_usd - used.cost_usd,
        )

    def affordable(self, per_call: Spend, wanted: int) -> int:
        """How many of ``wanted`` identical calls fit in what is left (0..wanted)."""
        tokens, calls, cost = self.headroom()
        fit = wanted
        if tokens is not None:
            fit = min(fit, tokens // per_call.tokens if per_call.tokens > 0 else wanted)
        if calls is not None:
            fit = min(fit, calls // per_call.calls if per_call.calls > 0 else wanted)
        if cost is not None and per_call.cost_usd > 0:
            fit = min(fit, int((cost + _COST_EPS) // per_call.cost_usd))
        return max(0, fit)

    def reserve(self, spend: Spend) -> Reservation:
        """Reserve ``spend`` or raise :class:`BudgetExhausted` naming the dimension."""
        with self._lock:
            used = self._spent + self._reserved_locked()
            lim = self.limits
            if lim.max_tokens is not None and used.tokens + spend.tokens > lim.max_tokens:
                raise BudgetExhausted(
                    "tokens",
                    f"needs {spend.tokens} more tokens but only "
                    f"{lim.max_tokens - used.tokens} of max_tokens={lim.max_tokens} remain",
                )
            if lim.max_calls is not None and used.calls + spend.calls > lim.max_calls:
                raise BudgetExhausted(
                    "calls", f"max_calls={lim.max_calls} reached ({used.calls} used or in flight)"
                )
            if (
                lim.max_cost_usd is not None
                and used.cost_usd + spend.cost_usd > lim.max_cost_usd + _COST_EPS
            ):
                raise BudgetExhausted(
                    "cost_usd",
                    f"needs ${spend.cost_usd:.6f} more but only "
                    f"${lim.max_cost_usd - used.cost_usd:.6f} of max_cost_usd remain",
                )
            self._next_id += 1
            self._open[self._next_id] = spend
            return Reservation(self._next_id, spend)

    def settle(self, reservation: Reservation, actual: Spend) -> Spend:
        """Close a reservation at the usage the provider actually reported. The reservation
        was an upper bound (prompt bytes + max_tokens), so ``actual`` fits inside it."""
        with self._lock:
            self._open.pop(reservation.id)
            self._spent = self._spent + actual
        return actual

    def release(self, reservation: Reservation) -> None:
        """Close a reservation for a call that was never billed (it failed before running)."""
        with self._lock:
            self._open.pop(reservation.id)

    def forfeit(self, reservation: Reservation) -> None:
        """Close a reservation whose real usage is unknown: count all of it as spent."""
        with self._lock:
            self._open.pop(reservation.id)
            self._spent = self._spent + reservation.spend
