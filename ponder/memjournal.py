"""A Journal kept in memory: runs a strategy with no database (benchmarks, experiments).

It satisfies :class:`ponder.runtime.Journal` but nothing survives the process, so jobs
run this way are not durable; the service always uses the database journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ponder.budget import Spend
from ponder.runtime import StepRecord


@dataclass
class MemoryJournal:
    steps: dict[int, StepRecord] = field(default_factory=dict)
    strategy_events: int = 0
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    progress: dict[str, Any] = field(default_factory=dict)

    async def begin_paid_step(self, key: int, kind: str, digest: str, reserved: Spend) -> None:
        pass

    async def complete_paid_step(
        self, key: int, kind: str, digest: str, result: dict[str, Any], charged: Spend
    ) -> None:
        self.steps[key] = StepRecord(key, kind, digest, result)

    async def abandon_step(self, key: int, forfeited: Spend | None) -> None:
        pass

    def record_free_step(self, key: int, kind: str, digest: str, result: dict[str, Any]) -> None:
        self.steps[key] = StepRecord(key, kind, digest, result)

    def add_event(self, kind: str, data: dict[str, Any], *, strategy: bool) -> None:
        self.events.append((kind, data))

    def set_best(self, best: dict[str, Any]) -> None:
        self.best = best

    def set_progress(self, progress: dict[str, Any]) -> None:
        self.progress = progress

    async def flush(self) -> None:
        pass

    @property
    def cancel_requested(self) -> bool:
        return False

    @property
    def lease_lost(self) -> bool:
        return False
