"""best_of_n against the strategy contract (see tests/strategy_harness.py), in each
selection mode."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.tables import JobEvent
from ponder.verifiers.game24 import check_expression
from strategies._select import normalize_answer
from strategies.best_of_n import BestOfNParams
from tests.strategy_harness import (
    GAME24_EASY,
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
    run_job,
)

ONE_PER_CALL_PARAMS: dict[str, Any] = {
    "n": 8,
    "batch_size": 1,
    "max_tokens": 256,
    "stop_when_verified": False,
}
ONE_PER_CALL = {"name": "best_of_n", "params": ONE_PER_CALL_PARAMS}


def test_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    check_solves(
        sqlite_settings,
        GAME24_HARD,
        {"name": "best_of_n", "params": {"n": 32, "max_tokens": 1024}},
        {"max_tokens": 100_000},
    )


def test_tight_budget(sqlite_settings: Settings) -> None:
    check_tight_budget(
        sqlite_settings,
        GAME24_HARD,
        {"name": "best_of_n", "params": {"n": 64, "batch_size": 2, "max_tokens": 128}},
        {"max_tokens": 900},
    )


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(sqlite_settings, GAME24_EASY, ONE_PER_CALL, {"max_tokens": 50_000}, crash_at=4)


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(sqlite_settings, GAME24_HARD, ONE_PER_CALL, {"max_tokens": 50_000})


# --- selection modes --------------------------------------------------------------------

NO_VERIFIER = {"type": "none"}
AGREEING = {"task": "game24", "input": {"numbers": [1, 1, 1, 8]}}


def bon(**params: Any) -> dict[str, Any]:
    return {"name": "best_of_n", "params": params}


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


@pytest.mark.parametrize("selection", ["reward", "weighted"])
def test_selection_modes_solve(sqlite_settings: Settings, selection: str) -> None:
    check_solves(
        sqlite_settings,
        GAME24_HARD,
        bon(n=32, max_tokens=1024, selection=selection),
        {"max_tokens": 100_000},
    )


@pytest.mark.parametrize("selection", ["reward", "weighted"])
def test_selection_modes_tight_budget(sqlite_settings: Settings, selection: str) -> None:
    check_tight_budget(
        sqlite_settings,
        GAME24_HARD,
        bon(n=64, batch_size=2, max_tokens=128, selection=selection),
        {"max_tokens": 900},
    )


@pytest.mark.parametrize("selection", ["reward", "weighted"])
def test_selection_modes_resume(sqlite_settings: Settings, selection: str) -> None:
    params = {**ONE_PER_CALL_PARAMS, "selection": selection}
    check_resume(sqlite_settings, GAME24_EASY, bon(**params), {"max_tokens": 50_000}, crash_at=4)


def test_weighted_cancel(sqlite_settings: Settings) -> None:
    params = {**ONE_PER_CALL_PARAMS, "selection": "weighted"}
    check_cancel(sqlite_settings, GAME24_HARD, bon(**params), {"max_tokens": 50_000})


def test_reward_selects_the_highest_score(sqlite_settings: Settings) -> None:
    # nothing passes at this allowance: the closest miss (highest partial credit) wins
    job, _ = run_job(
        sqlite_settings,
        GAME24_HARD,
        bon(n=12, batch_size=4, max_tokens=128, selection="reward"),
        {"max_tokens": 50_000},
    )
    candidates = [c for c in events(sqlite_settings, job.id, "candidate") if c["answer"]]
    assert job.result is not None and not job.result["verified"]
    top = max(c["score"] for c in candidates)
    first_top = next(c for c in candidates if c["score"] == top)
    assert (job.result["answer"], job.result["score"]) == (first_top["answer"], top)


def test_weighted_picks_the_heaviest_answer_group(sqlite_settings: Settings) -> None:
    job, _ = run_job(
        sqlite_settings,
        GAME24_HARD,
        bon(n=16, batch_size=4, max_tokens=256, selection="weighted"),
        {"max_tokens": 50_000},
    )
    assert job.result is not None and not job.result["verified"]
    candidates = [c for c in events(sqlite_settings, job.id, "candidate") if c["answer"]]
    weights: dict[str, float] = {}
    for c in candidates:
        key = normalize_answer(c["answer"])
        assert key is not None
        weights[key] = weights.get(key, 0.0) + c["score"]
    heaviest = max(weights.values())
    assert weights[normalize_answer(job.result["answer"]) or ""] == pytest.approx(heaviest)
    total = sum(weights.values())
    assert job.result["score"] == pytest.approx(heaviest / total, abs=1e-4)  # its share
    votes = events(sqlite_settings, job.id, "vote")
    assert len(votes) == 4 and votes[-1]["leader"] == job.result["answer"]


def test_weighted_without_a_verifier_is_a_majority_vote(sqlite_settings: Settings) -> None:
    job, _ = run_job(
        sqlite_settings,
        AGREEING,
        bon(n=9, batch_size=3, max_tokens=256, selection="weighted"),
        {"max_tokens": 50_000},
        verifier=NO_VERIFIER,
    )
    assert job.status == "completed" and job.stop_reason == "search_exhausted"
    assert job.result is not None
    assert check_expression([1, 1, 1, 8], job.result["answer"]).passed
    counts = events(sqlite_settings, job.id, "vote")[-1]["counts"]
    assert counts[job.result["answer"]] == max(counts.values())


def test_default_selection_is_unchanged() -> None:
    assert BestOfNParams().selection == "verifier"
    with pytest.raises(ValidationError):
        BestOfNParams(selection="vibes")
