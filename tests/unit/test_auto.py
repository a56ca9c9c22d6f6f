"""auto: cheap on easy problems, escalates on hard ones; the strategy contract."""

from __future__ import annotations

import asyncio

from ponder.config import Settings
from ponder.sim.model import SimProvider
from strategies.offline import run_offline
from tests.strategy_harness import (
    GAME24_EASY,
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
)

AUTO = {"name": "auto", "params": {}}


def test_solves_a_hard_puzzle_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(sqlite_settings, GAME24_HARD, AUTO, {"max_tokens": 40_000})


def test_tight_budget(sqlite_settings: Settings) -> None:
    check_tight_budget(
        sqlite_settings,
        {"task": "game24", "input": {"numbers": [2, 3, 5, 12]}},
        AUTO,
        {"max_tokens": 700},
    )


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(
        sqlite_settings,
        {"task": "game24", "input": {"numbers": [2, 3, 5, 12]}},
        {"name": "auto", "params": {"search": False}},
        {"max_tokens": 30_000},
        crash_at=3,
    )


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(
        sqlite_settings,
        {"task": "game24", "input": {"numbers": [2, 3, 5, 12]}},
        AUTO,
        {"max_tokens": 30_000},
        after_calls=2,
    )


def _tokens(problem: dict[str, object], seed: int) -> tuple[bool, int]:
    r = asyncio.run(
        run_offline(problem, "auto", {}, {"max_tokens": 30_000}, provider=SimProvider(), seed=seed)
    )
    return r.verified, r.tokens


def test_easy_problems_cost_little_and_hard_ones_get_more() -> None:
    easy = [_tokens(GAME24_EASY, s) for s in range(6)]
    hard = [_tokens({"task": "game24", "input": {"numbers": [2, 3, 5, 12]}}, s) for s in range(6)]
    assert all(ok for ok, _ in easy)
    mean_easy = sum(t for _, t in easy) / len(easy)
    mean_hard = sum(t for _, t in hard) / len(hard)
    assert mean_easy < 400  # about one short sample
    assert mean_hard > 3 * mean_easy


def test_without_a_verifier_auto_votes() -> None:
    from ponder.datasets import as_problem, load_dataset

    problem = as_problem(load_dataset("arithmetic-d2")[0])
    r = asyncio.run(
        run_offline(
            problem,
            "auto",
            {},
            {"max_tokens": 20_000},
            provider=SimProvider(),
            seed=5,
            verifier={"type": "none"},
        )
    )
    phases = [data["phase"] for kind, data in r.events if kind == "phase"]
    assert phases == ["probe", "self_consistency"]
    assert r.calls > 1
    assert r.result is not None
    assert float(r.result["answer"]) == float(problem["expected"])
