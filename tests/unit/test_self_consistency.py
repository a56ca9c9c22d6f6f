"""self_consistency against the strategy contract (see tests/strategy_harness.py), plus
voting without a verifier and adaptive stopping."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.tables import JobEvent
from ponder.verifiers.game24 import check_expression
from strategies.registry import get_strategy
from strategies.self_consistency import SelfConsistencyParams
from tests.strategy_harness import (
    GAME24_EASY,
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
    run_job,
)

NO_VERIFIER = {"type": "none"}
# Samples agree on one expression: 8 * ((1 + 1) + 1).
AGREEING = {"task": "game24", "input": {"numbers": [1, 1, 1, 8]}}
# Samples scatter over near misses: no answer ever leads clearly.
SCATTERED = {"task": "game24", "input": {"numbers": [2, 3, 5, 12]}}


def sc(**params: Any) -> dict[str, Any]:
    return {"name": "self_consistency", "params": params}


def events(settings: Settings, job_id: str, kind: str) -> list[dict[str, Any]]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.kind == kind)
                .order_by(JobEvent.seq)
            )
            return [dict(r.data) for r in rows]
    finally:
        engine.dispose()


def test_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(
        sqlite_settings,
        GAME24_HARD,
        sc(n=32, batch_size=8, max_tokens=1024),
        {"max_tokens": 100_000},
    )


def test_adaptive_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(
        sqlite_settings,
        GAME24_EASY,
        sc(n=32, batch_size=4, max_tokens=512, adaptive=True),
        {"max_tokens": 100_000},
    )


def test_tight_budget(sqlite_settings: Settings) -> None:
    job = check_tight_budget(
        sqlite_settings, GAME24_HARD, sc(n=64, batch_size=2, max_tokens=128), {"max_tokens": 900}
    )
    assert job.result is not None and job.result["verified"] is False


def test_tight_call_budget_without_verifier(sqlite_settings: Settings) -> None:
    job = check_tight_budget(
        sqlite_settings,
        AGREEING,
        sc(n=64, batch_size=4, max_tokens=256),
        {"max_calls": 10},
        verifier=NO_VERIFIER,
    )
    assert job.usage_calls == 10
    # the vote over the samples drawn so far is the best-so-far, scored by its share
    result = job.result
    assert result is not None and check_expression([1, 1, 1, 8], result["answer"]).passed
    assert result["score"] > 0.5


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(
        sqlite_settings,
        GAME24_EASY,
        sc(n=8, batch_size=1, max_tokens=256, stop_when_verified=False),
        {"max_tokens": 50_000},
        crash_at=4,
    )


def test_resume_adaptive_without_verifier(sqlite_settings: Settings) -> None:
    check_resume(
        sqlite_settings,
        SCATTERED,
        sc(n=12, batch_size=1, max_tokens=128, adaptive=True),
        {"max_tokens": 50_000},
        crash_at=5,
        verifier=NO_VERIFIER,
    )


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(
        sqlite_settings,
        GAME24_HARD,
        sc(n=16, batch_size=1, max_tokens=256, stop_when_verified=False),
        {"max_tokens": 50_000},
    )


def test_vote_picks_a_correct_answer_without_a_verifier(sqlite_settings: Settings) -> None:
    job, _ = run_job(
        sqlite_settings,
        AGREEING,
        sc(n=9, batch_size=3, max_tokens=256),
        {"max_tokens": 50_000},
        verifier=NO_VERIFIER,
    )
    assert job.status == "completed", job.error
    assert job.stop_reason == "search_exhausted"  # nothing can be verified
    result = job.result
    assert result is not None and result["verified"] is False
    assert check_expression([1, 1, 1, 8], result["answer"]).passed
    votes = events(sqlite_settings, job.id, "vote")
    assert [v["samples"] for v in votes] == [3, 6, 9]
    final = votes[-1]["counts"]
    assert final[result["answer"]] == max(final.values()) > 9 / 2
    assert result["score"] == final[result["answer"]] / 9  # the vote share
    (decision,) = events(sqlite_settings, job.id, "vote_result")
    assert decision["answer"] == result["answer"] and decision["stopped"] == "n_reached"


def test_adaptive_stops_early_on_easy_problems(sqlite_settings: Settings) -> None:
    """Agreement settles the vote after a few samples; scattered answers use the budget."""
    n = 32
    params = sc(n=n, batch_size=2, max_tokens=256, adaptive=True, confidence=0.95)
    used: dict[str, list[int]] = {"easy": [], "hard": []}
    for seed in (1, 2, 3):
        for label, problem in (("easy", AGREEING), ("hard", SCATTERED)):
            job, _ = run_job(
                sqlite_settings,
                problem,
                params,
                {"max_tokens": 200_000},
                seed=seed,
                verifier=NO_VERIFIER,
            )
            assert job.status == "completed" and job.result is not None
            used[label].append(job.usage_calls)
            if label == "easy":
                assert check_expression([1, 1, 1, 8], job.result["answer"]).passed
                (decision,) = events(sqlite_settings, job.id, "vote_result")
                assert decision["stopped"] == "confident"
                assert decision["confidence"] >= 0.95
    easy, hard = sum(used["easy"]), sum(used["hard"])
    assert max(used["easy"]) < n
    assert 3 * easy <= hard, used


def test_non_adaptive_draws_all_samples(sqlite_settings: Settings) -> None:
    job, _ = run_job(
        sqlite_settings,
        AGREEING,
        sc(n=12, batch_size=4, max_tokens=256),
        {"max_tokens": 50_000},
        verifier=NO_VERIFIER,
    )
    assert job.usage_calls == 12


def test_params() -> None:
    defaults = SelfConsistencyParams()
    assert (defaults.adaptive, defaults.confidence, defaults.min_samples) == (False, 0.95, 3)
    assert get_strategy("self_consistency").params is SelfConsistencyParams
    for bad in ({"confidence": 0.5}, {"confidence": 1.0}, {"n": 0}, {"min_samples": 0}):
        with pytest.raises(ValidationError):
            SelfConsistencyParams.model_validate(bad)
