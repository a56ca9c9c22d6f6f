"""Reasoning effort → a job's budget. A request that gives ``reasoning_effort`` (Chat
Completions) or ``reasoning.effort`` (Responses) and no ``ponder.budget`` gets the
budget of that effort; the strategy (``auto`` by default) then spends at most that.
``medium`` is the budget a job gets when it names none."""

from __future__ import annotations

from typing import Any

# effort → budget (tokens over every call, model calls, seconds of wall time)
EFFORT_BUDGETS: dict[str, dict[str, Any]] = {
    "minimal": {"max_tokens": 4_000, "max_calls": 8, "max_seconds": 60.0},
    "low": {"max_tokens": 12_000, "max_calls": 32, "max_seconds": 120.0},
    "medium": {"max_tokens": 50_000, "max_calls": 128, "max_seconds": 600.0},
    "high": {"max_tokens": 200_000, "max_calls": 512, "max_seconds": 1_800.0},
    "xhigh": {"max_tokens": 1_000_000, "max_calls": 2_048, "max_seconds": 3_600.0},
}


def effort_budget(effort: str) -> dict[str, Any] | None:
    """The budget of ``effort``, or None if it is not one of :data:`EFFORT_BUDGETS`."""
    budget = EFFORT_BUDGETS.get(effort)
    return None if budget is None else dict(budget)


def known_efforts() -> str:
    return ", ".join(f"`{name}`" for name in EFFORT_BUDGETS)
