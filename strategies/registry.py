"""Strategies by name, each with a params model whose JSON Schema ``GET /v1/strategies``
shows. A strategy is ``async def fn(problem, ctx, **params) -> None``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ponder.once import Once
from ponder.problem import Problem
from ponder.runtime import Context

StrategyFn = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class StrategySpec:
    name: str
    fn: StrategyFn
    params: type[BaseModel]
    description: str
    requires_steps: bool = False  # needs a task with step prompts (see StepTask)

    def params_schema(self) -> dict[str, Any]:
        return self.params.model_json_schema()

    async def run(self, problem: Problem, ctx: Context, params: dict[str, Any]) -> None:
        parsed = self.params.model_validate(params)
        await self.fn(problem, ctx, **parsed.model_dump())


_REGISTRY: dict[str, StrategySpec] = {}


def register(
    name: str, params: type[BaseModel], description: str, *, requires_steps: bool = False
) -> Callable[[StrategyFn], StrategyFn]:
    def deco(fn: StrategyFn) -> StrategyFn:
        _REGISTRY[name] = StrategySpec(name, fn, params, description, requires_steps)
        return fn

    return deco


def _import_all() -> None:
    """Import every module of the ``strategies`` package (each registers itself; a test
    may have imported one directly first)."""
    import importlib
    import pkgutil

    import strategies

    for info in pkgutil.iter_modules(strategies.__path__):
        if info.name not in ("registry",) and not info.name.startswith("_"):
            importlib.import_module(f"strategies.{info.name}")


_load = Once(_import_all)


def get_strategy(name: str) -> StrategySpec:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown strategy {name!r}; available strategies: {known}") from None


def all_strategies() -> list[StrategySpec]:
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


class _Catalog:
    """The registry as the core's :class:`ponder.catalog.StrategyCatalog`."""

    def get(self, name: str) -> StrategySpec:
        return get_strategy(name)

    def all(self) -> list[StrategySpec]:
        return all_strategies()


# what the API and the worker hand to the core's job checks
CATALOG = _Catalog()
