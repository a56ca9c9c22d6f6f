"""auto: about one sample on easy problems, longer samples only where one ran out of room,
a settled vote without a verifier; the strategy contract."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ponder.config import Settings
from ponder.datasets import as_problem, load_dataset
from ponder.llm.base import Completion
from ponder.sim.model import SimProvider
from strategies.auto import AutoParams, _Ladder, ran_out_of_room, room_used
from strategies.offline import OfflineResult, run_offline
from strategies.registry import get_strategy
from tests.strategy_harness import (
    GAME24_EASY,
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
)

AUTO = {"name": "auto", "params": {}}
HARD = {"task": "game24", "input": {"numbers": [2, 3, 5, 12]}}
# short samples that rarely solve it, so the run makes many calls
SLOW = {"probe_max_tokens": 128, "growth": 1.5, "max_sample_tokens": 256, "search": False}
NONE = {"type": "none"}


def _run(
    problem: dict[str, Any],
    *,
    seed: int,
    params: dict[str, Any] | None = None,
    budget: int = 30_000,
    verifier: dict[str, Any] | None = None,
) -> OfflineResult:
    return asyncio.run(
        run_offline(
            problem,
            "auto",
            params or {},
            {"max_tokens": budget},
            provider=SimProvider(),
            seed=seed,
            verifier=verifier,
        )
    )


def _events(r: OfflineResult, kind: str) -> list[dict[str, Any]]:
    return [data for k, data in r.events if k == kind]


def _no_expected(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "expected"}


# --- the strategy contract ----------------------------------------------------------------


def test_solves_a_hard_puzzle_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(sqlite_settings, GAME24_HARD, AUTO, {"max_tokens": 40_000})


def test_tight_budget(sqlite_settings: Settings) -> None:
    check_tight_budget(sqlite_settings, HARD, AUTO, {"max_tokens": 700})


def test_tight_budget_without_a_verifier(sqlite_settings: Settings) -> None:
    problem = _no_expected(as_problem(load_dataset("arithmetic-d8")[0]))
    check_tight_budget(sqlite_settings, problem, AUTO, {"max_tokens": 1200}, verifier=NONE)


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(
        sqlite_settings, HARD, {"name": "auto", "params": SLOW}, {"max_tokens": 30_000}, crash_at=3
    )


def test_resume_mid_vote(sqlite_settings: Settings) -> None:
    # game24 without a verifier: different right answers split the vote for a while
    check_resume(
        sqlite_settings,
        {"task": "game24", "input": {"numbers": [4, 6, 6, 6]}},
        {"name": "auto", "params": {"scatter_samples": 12}},
        {"max_tokens": 30_000},
        crash_at=3,
        verifier=NONE,
    )


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(
        sqlite_settings,
        HARD,
        {"name": "auto", "params": SLOW},
        {"max_tokens": 30_000},
        after_calls=2,
    )


def test_params_are_documented() -> None:
    schema = get_strategy("auto").params_schema()
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name


# --- the room signal and the cap ladder -----------------------------------------------------


def test_room_used_and_ran_out_of_room() -> None:
    short = Completion(text="x" * 40, finish_reason="stop")  # 10 tokens at 4 bytes a token
    assert room_used(short, 100) == pytest.approx(0.1)
    assert room_used(Completion(text="x" * 40, finish_reason="length"), 100) == 1.0
    assert not ran_out_of_room(short, "42", 100, 0.8)
    assert ran_out_of_room(short, None, 100, 0.8)  # no final answer
    assert ran_out_of_room(Completion(text="x" * 360), "42", 100, 0.8)  # 90 of 100 used


def test_the_ladder_grows_only_after_a_sample_that_ran_out_of_room() -> None:
    ladder = _Ladder(100, 4.0, 1000, 0.8)
    slipped = Completion(text="x" * 40)
    assert not ladder.read(slipped, "41", 100)
    assert ladder.cap == 100  # finished with room to spare: same cap again
    assert ladder.read(Completion(text="x" * 400, finish_reason="length"), None, 100)
    assert ladder.cap == 400
    # a second sample of the same request at the old cap does not climb again
    assert ladder.read(Completion(text="x" * 400, finish_reason="length"), None, 100)
    assert ladder.cap == 400
    assert ladder.read(Completion(text="x" * 1600, finish_reason="length"), None, 400)
    assert ladder.cap == 1000  # never past the top
    ladder.read(Completion(text="x" * 4000, finish_reason="length"), None, 1000)
    assert ladder.cap == 1000


# --- with a verifier ------------------------------------------------------------------------


def test_easy_problems_cost_about_one_short_sample() -> None:
    runs = [_run(GAME24_EASY, seed=seed) for seed in range(8)]
    assert all(r.verified for r in runs)
    assert sum(r.calls == 1 for r in runs) >= 6  # a short sample sometimes slips
    for r in runs:
        assert _events(r, "candidate")[0]["max_tokens"] == AutoParams().probe_max_tokens


def test_a_hard_problem_climbs_to_a_long_sample_after_one_short_one() -> None:
    r = _run(HARD, seed=3)
    assert r.verified
    caps = [c["max_tokens"] for c in _events(r, "candidate")]
    params = AutoParams()
    assert caps[0] == params.probe_max_tokens
    assert max(caps) == min(int(params.probe_max_tokens * params.growth), params.max_sample_tokens)
    difficulty = _events(r, "difficulty")[0]
    assert difficulty["ran_out_of_room"] is True
    assert difficulty["next_max_tokens"] == max(caps)
    assert 2 <= r.calls <= 4


def test_hard_problems_cost_more_than_easy_ones() -> None:
    easy = [_run(GAME24_EASY, seed=s) for s in range(6)]
    hard = [_run(HARD, seed=s) for s in range(6)]
    assert all(r.verified for r in easy + hard)
    mean_easy = sum(r.tokens for r in easy) / len(easy)
    mean_hard = sum(r.tokens for r in hard) / len(hard)
    assert mean_easy < 250  # one short sample
    assert mean_hard > 2 * mean_easy


def test_unsolved_after_max_samples_escalates_to_refine_then_search() -> None:
    r = _run(
        GAME24_HARD,
        seed=1,
        params={"probe_max_tokens": 64, "max_sample_tokens": 64, "max_samples": 2},
        budget=60_000,
    )
    phases = [e["phase"] for e in _events(r, "phase")]
    assert phases[0] == "sample"
    assert len(_events(r, "candidate")) >= 2
    assert phases[1:] == ["refine", "tree_of_thoughts"]


# --- without a verifier ---------------------------------------------------------------------


def test_without_a_verifier_two_agreeing_samples_settle_an_easy_problem() -> None:
    problem = as_problem(load_dataset("arithmetic-d2")[0])
    r = _run(_no_expected(problem), seed=5, budget=20_000, verifier=NONE)
    assert [e["phase"] for e in _events(r, "phase")] == ["vote"]
    [result] = _events(r, "vote_result")
    assert result["stopped"] == "settled"
    assert result["samples"] == 2 and r.calls == 2
    assert r.result is not None and not r.result["verified"]
    assert float(r.result["answer"]) == float(problem["expected"])


def test_without_a_verifier_a_hard_problem_votes_on_and_the_majority_is_right() -> None:
    problems = [as_problem(p) for p in load_dataset("arithmetic-d8")[:6]]
    results = [_run(_no_expected(p), seed=11, verifier=NONE) for p in problems]
    right = sum(
        r.result is not None and float(r.result["answer"]) == float(p["expected"])
        for p, r in zip(problems, results, strict=True)
    )
    assert right >= 5
    assert max(r.calls for r in results) > 2  # some needed a third vote or more


def test_a_vote_that_keeps_scattering_stops() -> None:
    # an easy puzzle has many right expressions: the samples seldom repeat one another
    r = _run({"task": "game24", "input": {"numbers": [4, 6, 6, 6]}}, seed=2, verifier=NONE)
    [result] = _events(r, "vote_result")
    assert result["stopped"] == "scattered"
    assert r.calls == AutoParams().scatter_samples
    assert r.result is not None  # the leader stands


def test_a_small_budget_without_a_verifier_buys_one_long_sample_first() -> None:
    problem = _no_expected(as_problem(load_dataset("arithmetic-d4")[0]))
    r = _run(problem, seed=4, budget=1200, verifier=NONE)
    first = _events(r, "candidate")[0]
    assert AutoParams().vote_max_tokens // 2 > first["max_tokens"] > 256
    assert _events(r, "vote")[0]["samples"] == 1
    assert r.tokens <= 1200
