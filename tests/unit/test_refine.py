"""refine against the strategy contract (see tests/strategy_harness.py), plus critique
sources, keeping the best version, and improving on the first attempt."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.tables import JobEvent
from strategies.refine import CRITIQUE_PROMPT, RefineParams
from tests.jobs_helpers import CountingProvider, create_job, load_job, run_until_done
from tests.strategy_harness import (
    GAME24_HARD,
    check_cancel,
    check_resume,
    check_solves,
    check_tight_budget,
    run_job,
    services,
)

NO_VERIFIER = {"type": "none"}
MEDIUM = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}


def refine(**params: Any) -> dict[str, Any]:
    return {"name": "refine", "params": params}


def rounds_of(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.kind == "round")
                .order_by(JobEvent.seq)
            )
            return [dict(r.data) for r in rows]
    finally:
        engine.dispose()


def test_solves_at_a_generous_budget(sqlite_settings: Settings) -> None:
    job = check_solves(
        sqlite_settings,
        GAME24_HARD,
        refine(rounds=8, n_initial=2, max_tokens=1024),
        {"max_tokens": 100_000},
    )
    assert rounds_of(sqlite_settings, job.id)[-1]["passed"] is True


def test_tight_budget(sqlite_settings: Settings) -> None:
    check_tight_budget(
        sqlite_settings, GAME24_HARD, refine(rounds=20, max_tokens=128), {"max_tokens": 900}
    )


def test_tight_budget_with_model_critiques(sqlite_settings: Settings) -> None:
    check_tight_budget(
        sqlite_settings,
        GAME24_HARD,
        refine(rounds=20, max_tokens=128, critique_max_tokens=64),
        {"max_calls": 6, "max_tokens": 50_000},
        verifier=NO_VERIFIER,
    )


def test_resume(sqlite_settings: Settings) -> None:
    check_resume(
        sqlite_settings,
        GAME24_HARD,
        refine(rounds=5, max_tokens=128),
        {"max_tokens": 50_000},
        crash_at=3,
    )


def test_resume_with_model_critiques(sqlite_settings: Settings) -> None:
    check_resume(
        sqlite_settings,
        GAME24_HARD,
        refine(rounds=3, max_tokens=128, critique_max_tokens=64),
        {"max_tokens": 50_000},
        crash_at=4,
        verifier=NO_VERIFIER,
    )


def test_cancel(sqlite_settings: Settings) -> None:
    check_cancel(
        sqlite_settings, GAME24_HARD, refine(rounds=8, max_tokens=128), {"max_tokens": 50_000}
    )


def test_improves_over_the_first_attempt(sqlite_settings: Settings) -> None:
    improved = []
    for seed in range(1, 6):
        job, _ = run_job(
            sqlite_settings,
            MEDIUM,
            refine(rounds=4, max_tokens=256),
            {"max_tokens": 50_000},
            seed=seed,
        )
        rounds = rounds_of(sqlite_settings, job.id)
        first, last = rounds[0], rounds[-1]
        assert first["round"] == 0 and first["critique"] is None
        assert all(r["critique_source"] == "verifier" for r in rounds[1:])
        if not first["passed"] and job.result is not None and job.result["verified"]:
            assert job.stop_reason == "verified" and last["passed"] and last["improved"]
            assert last["critique"].startswith("The final answer")
            improved.append(seed)
    assert improved, "refinement never turned a failed first attempt into a solution"


def test_keeps_the_best_version_seen(sqlite_settings: Settings) -> None:
    for seed in (1, 2, 3):
        job, calls = run_job(
            sqlite_settings,
            GAME24_HARD,
            refine(rounds=6, max_tokens=256),
            {"max_tokens": 50_000},
            seed=seed,
        )
        rounds = rounds_of(sqlite_settings, job.id)
        assert job.result is not None
        assert job.result["score"] == max(r["score"] for r in rounds)
        if not job.result["verified"]:
            assert calls == 1 + 6 and len(rounds) == 7  # every round ran
        # a round improves only on the best so far
        best = rounds[0]["score"]
        for r in rounds[1:]:
            assert r["improved"] == (r["score"] > best)
            best = max(best, r["score"])


def test_model_critiques_without_a_verifier(sqlite_settings: Settings) -> None:
    job_id = create_job(
        sqlite_settings,
        problem=MEDIUM,
        strategy=refine(rounds=3, max_tokens=128, critique_max_tokens=64),
        budget={"max_tokens": 50_000},
        verifier=NO_VERIFIER,
    )
    providers: list[CountingProvider] = []
    svc = services(sqlite_settings, providers)
    try:
        run_until_done(svc, job_id)
    finally:
        svc.close()
    job = load_job(sqlite_settings, job_id)
    assert job.status == "completed" and job.stop_reason == "search_exhausted"
    requests = providers[0].requests
    assert len(requests) == 1 + 2 * 3  # a critique and a revision per round
    rounds = rounds_of(sqlite_settings, job_id)
    assert [r["round"] for r in rounds] == [0, 1, 2, 3]
    assert all(r["critique_source"] == "model" and r["critique"] for r in rounds[1:])
    problem_messages = requests[0].messages
    critique_request, revision_request = requests[1], requests[2]
    assert critique_request.max_tokens == 64
    assert critique_request.messages[: len(problem_messages)] == problem_messages
    assert critique_request.messages[-2]["role"] == "assistant"  # the previous attempt
    assert critique_request.messages[-1]["content"] == CRITIQUE_PROMPT
    # the revision: original problem + previous attempt + the critique
    assert revision_request.messages[:-1] == critique_request.messages[:-1]
    assert rounds[1]["critique"][:200] in revision_request.messages[-1]["content"]
    assert "Answer:" in revision_request.messages[-1]["content"]
    # nothing can rank a revision above the first attempt without a verifier
    assert job.result is not None and job.result["answer"] == rounds[0]["answer"]


def test_params() -> None:
    defaults = RefineParams()
    assert (defaults.rounds, defaults.n_initial, defaults.critique_max_tokens) == (3, 1, 256)
    RefineParams(rounds=0)  # rounds=0 is best-of-n_initial
