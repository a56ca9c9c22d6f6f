"""tree_of_thoughts against the strategy contract (see tests/strategy_harness.py), plus
its search behaviour: node/level events, DFS backtracking, unsupported problems."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ponder.budget import BudgetLimits, Ledger
from ponder.config import Settings
from ponder.families import get_task
from ponder.memjournal import MemoryJournal
from ponder.problem import Problem
from ponder.runtime import Context
from ponder.sim.model import SimProvider
from strategies.registry import get_strategy
from tests.strategy_harness import (
    GAME24_EASY,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
)

MEDIUM = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
BFS = {"name": "tree_of_thoughts", "params": {"mode": "bfs"}}
DFS = {"name": "tree_of_thoughts", "params": {"mode": "dfs", "parallel": 1}}


def test_bfs_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    job = check_solves(sqlite_settings, MEDIUM, BFS, {"max_tokens": 60_000})
    assert job.result is not None and "13" in job.result["answer"]


def test_dfs_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    strategy = {"name": "tree_of_thoughts", "params": {"mode": "dfs", "propose_max_tokens": 320}}
    check_solves(sqlite_settings, MEDIUM, strategy, {"max_tokens": 60_000})


def test_tight_budget(sqlite_settings: Settings) -> None:
    job = check_tight_budget(sqlite_settings, MEDIUM, BFS, {"max_tokens": 3_000})
    assert job.result is not None and job.result["verified"] is False


def test_resume(sqlite_settings: Settings) -> None:
    # Call 1 expands the root; calls 2-5 are the first wave of values: crash at its end.
    check_resume(sqlite_settings, MEDIUM, BFS, {"max_tokens": 60_000}, crash_at=5)


def test_resume_dfs(sqlite_settings: Settings) -> None:
    check_resume(sqlite_settings, MEDIUM, DFS, {"max_tokens": 60_000}, crash_at=4)


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_EASY, BFS, {"max_tokens": 60_000})


def run_direct(
    numbers: list[int], params: dict[str, Any], max_tokens: int = 60_000, seed: int = 7
) -> tuple[MemoryJournal, Context]:
    problem = Problem(task="game24", input={"numbers": numbers})
    task = get_task("game24")
    journal = MemoryJournal()
    ctx = Context(
        problem=problem,
        task=task,
        provider=SimProvider(),
        price=lambda usage: 0.0,
        verifier=task.default_verifier(),
        ledger=Ledger(BudgetLimits(max_tokens=max_tokens)),
        journal=journal,
        seed=seed,
        clock=time.monotonic,
    )
    asyncio.run(get_strategy("tree_of_thoughts").run(problem, ctx, params))
    return journal, ctx


def test_node_events_form_a_tree_and_levels_keep_breadth() -> None:
    journal, ctx = run_direct([4, 9, 10, 13], {"mode": "bfs", "breadth": 4})
    assert ctx.best is not None and ctx.best.verdict.passed
    nodes = [d for k, d in journal.events if k == "node"]
    ids = {n["id"] for n in nodes}
    assert nodes[0]["parent"] is None and nodes[0]["depth"] == 0
    for n in nodes[1:]:
        assert n["parent"] in ids
        assert set(n) >= {"id", "parent", "depth", "state", "value"}
        assert 0.0 <= n["value"] <= 1.0
    levels = [d for k, d in journal.events if k == "level"]
    assert levels and all(len(lv["kept"]) <= 4 for lv in levels)
    # the winning path ends at depth 3 with a verified node
    assert any(n.get("verified") and n["depth"] == 3 for n in nodes)


def test_dfs_prunes_below_the_threshold() -> None:
    journal, _ = run_direct([1, 1, 1, 2], {"mode": "dfs", "value_threshold": 0.5})
    # 1 1 1 2 is unsolvable: the search ends (search exhausted) having pruned states
    assert any(k == "prune" for k, _ in journal.events)


def test_free_form_problem_is_refused() -> None:
    problem = Problem(prompt="what is 2 + 2?")
    ctx = Context(
        problem=problem,
        task=None,
        provider=SimProvider(),
        price=lambda usage: 0.0,
        verifier=get_task("game24").default_verifier(),
        ledger=Ledger(BudgetLimits(max_tokens=1000)),
        journal=MemoryJournal(),
        seed=1,
        clock=time.monotonic,
    )
    with pytest.raises(ValueError, match="step prompts"):
        asyncio.run(get_strategy("tree_of_thoughts").run(problem, ctx, {}))
