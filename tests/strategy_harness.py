"""Checks every strategy must pass (issue: strategy library), run on a real SQLite journal
with the simulated model: (a) solves at a generous budget, (b) stops within a tight budget
with a best-so-far, (c) resumes after a crash to the same result without repaying a
journaled call, (d) honours cancel mid-run.

Use from a strategy's test module, e.g.::

    def test_resume(sqlite_settings):
        check_resume(sqlite_settings, PROBLEM, {"name": "refine", "params": {...}}, BUDGET)
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from ponder.config import Settings
from ponder.llm.base import SampleRequest, SampleResult
from ponder.llm.profiles import ModelProfile
from ponder.sim.model import SimProvider
from ponder.tables import Job
from tests.jobs_helpers import (
    CountingProvider,
    Crash,
    create_job,
    expire_lease,
    load_job,
    run_until_done,
)
from worker.runner import WorkerServices, run_slice

GAME24_EASY = {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}}
GAME24_HARD = {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}}


def services(
    settings: Settings, providers: list[CountingProvider], crash_at: int | None = None
) -> WorkerServices:
    def factory(profile: ModelProfile) -> CountingProvider:
        p = CountingProvider(SimProvider(profile.name), crash_at=crash_at)
        providers.append(p)
        return p

    return WorkerServices(settings, provider_factory=factory)


def run_job(
    settings: Settings,
    problem: dict[str, Any],
    strategy: dict[str, Any],
    budget: dict[str, Any],
    *,
    seed: int = 1234,
    verifier: dict[str, Any] | None = None,
) -> tuple[Job, int]:
    """Run a job to its end; returns the finished row and the model calls made."""
    job_id = create_job(
        settings, problem=problem, strategy=strategy, budget=budget, seed=seed, verifier=verifier
    )
    providers: list[CountingProvider] = []
    svc = services(settings, providers)
    try:
        run_until_done(svc, job_id)
    finally:
        svc.close()
    return load_job(settings, job_id), sum(p.calls for p in providers)


def assert_within_budget(job: Job, budget: dict[str, Any]) -> None:
    if "max_tokens" in budget:
        assert job.usage_tokens <= budget["max_tokens"], (job.usage_tokens, budget)
    if "max_calls" in budget:
        assert job.usage_calls <= budget["max_calls"], (job.usage_calls, budget)
    if "max_cost_usd" in budget:
        assert job.usage_cost_usd <= budget["max_cost_usd"] + 1e-9
    if "max_seconds" in budget:
        assert job.usage_seconds <= budget["max_seconds"] + 1.0


def check_solves(
    settings: Settings,
    problem: dict[str, Any],
    strategy: dict[str, Any],
    budget: dict[str, Any],
    *,
    verifier: dict[str, Any] | None = None,
    seed: int = 1234,
) -> Job:
    """(a) a generous budget solves the problem."""
    job, _ = run_job(settings, problem, strategy, budget, seed=seed, verifier=verifier)
    assert job.status == "completed", job.error
    assert job.result is not None and job.result["verified"] is True, job.result
    assert job.stop_reason == "verified"
    assert_within_budget(job, budget)
    return job


def check_tight_budget(
    settings: Settings,
    problem: dict[str, Any],
    strategy: dict[str, Any],
    budget: dict[str, Any],
    *,
    verifier: dict[str, Any] | None = None,
    seed: int = 1234,
) -> Job:
    """(b) a tight budget stops with budget_exhausted, a best-so-far, no dimension over."""
    job, _ = run_job(settings, problem, strategy, budget, seed=seed, verifier=verifier)
    assert job.status == "completed", job.error
    assert job.stop_reason == "budget_exhausted", (job.stop_reason, job.result)
    assert job.result is not None, "an anytime best-so-far is returned"
    assert_within_budget(job, budget)
    return job


def check_resume(
    settings: Settings,
    problem: dict[str, Any],
    strategy: dict[str, Any],
    budget: dict[str, Any],
    *,
    crash_at: int = 3,
    verifier: dict[str, Any] | None = None,
    seed: int = 4321,
) -> Job:
    """(c) a crash at model call ``crash_at``, then a fresh worker over the same journal:
    the same result as an uninterrupted run, and no journaled call made again."""
    reference, ref_calls = run_job(
        settings, problem, strategy, budget, seed=seed, verifier=verifier
    )
    assert ref_calls >= crash_at, f"the run makes only {ref_calls} calls; crash earlier"

    job_id = create_job(
        settings, problem=problem, strategy=strategy, budget=budget, seed=seed, verifier=verifier
    )
    crashed: list[CountingProvider] = []
    dying = services(settings, crashed, crash_at=crash_at)
    with pytest.raises(Crash):
        run_slice(dying, job_id, owner="doomed")
    expire_lease(settings, job_id)
    fresh: list[CountingProvider] = []
    svc = services(settings, fresh)
    run_until_done(svc, job_id)
    done = load_job(settings, job_id)
    for s in (dying, svc):
        s.close()
    assert done.status == reference.status
    assert done.result == reference.result
    assert done.stop_reason == reference.stop_reason or reference.stop_reason == "budget_exhausted"
    seeds_before = {r.seed for r in crashed[0].requests[: crash_at - 1]}
    seeds_after = {r.seed for r in fresh[0].requests}
    assert not seeds_before & seeds_after, "a journaled call was paid twice"
    assert fresh[0].calls == ref_calls - (crash_at - 1)
    assert_within_budget(done, budget)
    return done


class _CancelAfter(CountingProvider):
    def __init__(self, inner: SimProvider, after: int, settings: Settings, job_id: str) -> None:
        super().__init__(inner)
        self.after = after
        self.settings = settings
        self.job_id = job_id

    async def sample(self, request: SampleRequest) -> SampleResult:
        result = await super().sample(request)
        if self.calls == self.after:
            from ponder.db import make_engine, make_sessionmaker

            engine = make_engine(self.settings.database_url)
            with make_sessionmaker(engine)() as s, s.begin():
                s.execute(update(Job).where(Job.id == self.job_id).values(cancel_requested=True))
            engine.dispose()
        return result


def check_cancel(
    settings: Settings,
    problem: dict[str, Any],
    strategy: dict[str, Any],
    budget: dict[str, Any],
    *,
    after_calls: int = 2,
    verifier: dict[str, Any] | None = None,
    seed: int = 99,
) -> Job:
    """(d) a cancel requested after ``after_calls`` model calls stops the job before the
    next call; the best-so-far is kept."""
    job_id = create_job(
        settings, problem=problem, strategy=strategy, budget=budget, seed=seed, verifier=verifier
    )
    providers: list[CountingProvider] = []

    def factory(profile: ModelProfile) -> CountingProvider:
        p = _CancelAfter(SimProvider(profile.name), after_calls, settings, job_id)
        providers.append(p)
        return p

    svc = WorkerServices(settings, provider_factory=factory)
    run_until_done(svc, job_id)
    svc.close()
    job = load_job(settings, job_id)
    assert job.status == "cancelled", (job.status, job.stop_reason)
    assert job.stop_reason == "cancelled"
    # calls already issued concurrently may finish; no call starts after the cancel is seen
    assert providers[0].calls <= after_calls + 8
    return job
