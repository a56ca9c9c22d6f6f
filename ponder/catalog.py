"""What the core knows of strategies. The strategies themselves live in the
``strategies`` package, a layer above this one: code here that must check a strategy's
name or parameters (job submission, batches, schedules) is handed a
:class:`StrategyCatalog` (``strategies.registry.CATALOG``) by the API or worker that
calls it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel


class StrategyInfo(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def params(self) -> type[BaseModel]:
        """The model the strategy's ``params`` are validated with."""
        ...

    @property
    def requires_steps(self) -> bool:
        """Whether it searches over reasoning steps (needs a task with step prompts)."""
        ...


class StrategyCatalog(Protocol):
    def get(self, name: str) -> StrategyInfo:
        """The strategy called ``name``; KeyError if there is none."""
        ...

    def all(self) -> Sequence[StrategyInfo]:
        """Every strategy, by name."""
        ...
