"""beam_search against the strategy contract (see tests/strategy_harness.py), plus its
search behaviour: beams, scorers, lookahead."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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
SELF_EVAL = {"name": "beam_search", "params": {"scorer": "self_eval"}}
HEURISTIC = {"name": "beam_search", "params": {"scorer": "heuristic", "lookahead": True}}


WIDE = {"beam_width": 5, "k": 8, "propose_max_tokens": 320}


def test_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    strategy = {"name": "beam_search", "params": {"scorer": "self_eval", **WIDE}}
    check_solves(sqlite_settings, MEDIUM, strategy, {"max_tokens": 40_000})


def test_heuristic_lookahead_solves(sqlite_settings: Settings) -> None:
    check_solves(sqlite_settings, GAME24_EASY, HEURISTIC, {"max_tokens": 40_000})


def test_tight_budget(sqlite_settings: Settings) -> None:
    job = check_tight_budget(sqlite_settings, MEDIUM, SELF_EVAL, {"max_tokens": 2_500})
    assert job.result is not None and job.result["verified"] is False


def test_resume(sqlite_settings: Settings) -> None:
    # Call 1 expands the root; calls 2-5 are the first wave of self-evaluations.
    check_resume(sqlite_settings, MEDIUM, SELF_EVAL, {"max_tokens": 40_000}, crash_at=5)


def test_resume_one_call_at_a_time(sqlite_settings: Settings) -> None:
    strategy = {"name": "beam_search", "params": {"scorer": "self_eval", "parallel": 1}}
    check_resume(sqlite_settings, MEDIUM, strategy, {"max_tokens": 40_000}, crash_at=3)


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_EASY, SELF_EVAL, {"max_tokens": 40_000})


def run_direct(
    numbers: list[int], params: dict[str, Any], max_tokens: int = 40_000, seed: int = 3
) -> tuple[MemoryJournal, Context, Ledger]:
    problem = Problem(task="game24", input={"numbers": numbers})
    task = get_task("game24")
    journal = MemoryJournal()
    ledger = Ledger(BudgetLimits(max_tokens=max_tokens))
    ctx = Context(
        problem=problem,
        task=task,
        provider=SimProvider(),
        price=lambda usage: 0.0,
        verifier=task.default_verifier(),
        ledger=ledger,
        journal=journal,
        seed=seed,
        clock=time.monotonic,
    )
    asyncio.run(get_strategy("beam_search").run(problem, ctx, params))
    return journal, ctx, ledger


def test_beams_keep_width_and_nodes_have_parents() -> None:
    journal, ctx, _ = run_direct([4, 9, 10, 13], {"beam_width": 2, "k": 3})
    nodes = [d for k, d in journal.events if k == "node"]
    assert len(nodes) > 1, "no node below the root: the checks below would hold vacuously"
    ids = {n["id"] for n in nodes}
    assert all(n["parent"] in ids for n in nodes[1:])
    assert all("score" in n for n in nodes)
    levels = [d for k, d in journal.events if k == "level"]
    assert levels and all(len(lv["kept"]) <= 2 for lv in levels)
    # each beam contributes at most k children per level
    per_parent: dict[str, int] = {}
    for n in nodes[1:]:
        per_parent[n["parent"]] = per_parent.get(n["parent"], 0) + 1
    assert max(per_parent.values()) <= 3 + 3  # k, plus up to k lookahead/terminal ends
    assert ctx.best is not None


def test_heuristic_scorer_makes_only_propose_calls() -> None:
    _, ctx, ledger = run_direct([1, 2, 3, 4], {"scorer": "heuristic"})
    assert ctx.best is not None and ctx.best.verdict.passed
    # one propose call per beam per level, at most 3 beams x 3 levels
    assert ledger.spent.calls <= 1 + 3 + 3


def test_unsolvable_puzzle_ends_without_a_verified_answer() -> None:
    _, ctx, _ = run_direct([1, 1, 1, 2], {"scorer": "heuristic"})
    assert ctx.best is not None and not ctx.best.verdict.passed
