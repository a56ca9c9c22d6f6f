"""Many jobs in one worker process: a real Celery worker (thread pool as admission, one
shared event loop) over real Redis and Postgres runs a hundred slow jobs at once, each
correct and within budget; the process's one heartbeat fences a stolen lease while the
job's siblings go on; a deliberately slow verifier does not hold up other jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import func, insert, select, update

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.jobstore import claim
from ponder.llm.base import Completion, SampleRequest, SampleResult, Usage
from ponder.sim.model import SimProvider
from ponder.tables import Job, JobEvent, JobStep, Tenant, utcnow
from tests.jobs_helpers import CountingProvider, create_job, load_job
from worker.celery_app import Dispatcher
from worker.celery_tasks import create_worker_app
from worker.runner import WorkerServices, run_slice_async

pytestmark = pytest.mark.integration

CALLS = 4
SEQUENTIAL = {
    "name": "best_of_n",
    "params": {"n": CALLS, "batch_size": 1, "max_tokens": 64, "stop_when_verified": False},
}
BUDGET = {"max_tokens": 5_000, "max_calls": CALLS}


def slow_sim_settings(pg_settings: Settings, tmp_path: Path, latency_ms: int) -> Settings:
    models = tmp_path / "models.yaml"
    models.write_text(
        f"models:\n  - name: slow\n    provider: sim\n    model: slow\n    ttft_ms: {latency_ms}\n"
    )
    return pg_settings.model_copy(update={"models_file": str(models)})


def bulk_jobs(settings: Settings, n: int, *, model: str) -> list[str]:
    """``n`` queued jobs of one tenant, inserted in one transaction."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s, s.begin():
            tenant = Tenant(name=f"many-{time.monotonic_ns()}")
            s.add(tenant)
            s.flush()
            jobs = [
                Job(
                    tenant_id=tenant.id,
                    problem={"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
                    strategy=SEQUENTIAL,
                    model=model,
                    budget=BUDGET,
                    seed=i,
                    progress={},
                    meta={},
                )
                for i in range(n)
            ]
            s.add_all(jobs)
            s.flush()
            return [j.id for j in jobs]
    finally:
        engine.dispose()


def wait_all_terminal(settings: Settings, ids: list[str], timeout: float) -> list[Job]:
    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + timeout
    try:
        with make_sessionmaker(engine)() as s:
            while True:
                jobs = list(s.execute(select(Job).where(Job.id.in_(ids))).scalars())
                if all(j.status in ("completed", "failed", "cancelled") for j in jobs):
                    for j in jobs:
                        s.expunge(j)
                    return jobs
                if time.monotonic() > deadline:
                    left = sum(1 for j in jobs if j.status not in ("completed", "failed"))
                    raise AssertionError(f"{left} of {len(ids)} jobs unfinished")
                s.expire_all()
                time.sleep(0.1)
    finally:
        engine.dispose()


def peak_running(jobs: list[Job]) -> int:
    """Most jobs running at the same moment, from their own timestamps."""
    edges: list[tuple[datetime, int]] = []
    for j in jobs:
        assert j.started_at is not None and j.finished_at is not None
        edges += [(j.started_at, 1), (j.finished_at, -1)]
    running = peak = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    return peak


@pytest.fixture
def many_jobs_app(pg_settings: Settings, tmp_path: Path) -> Iterator[tuple[Celery, Settings]]:
    # 500 ms a call, 2 s a job: far longer than handing out the 100 jobs takes on a
    # loaded machine, so most of them run at once (the assertion below)
    settings = slow_sim_settings(pg_settings, tmp_path, latency_ms=500)
    app = create_worker_app(settings)
    with start_worker(
        app, pool="threads", concurrency=128, perform_ping_check=False, shutdown_timeout=30
    ):
        yield app, settings
    app.ponder_services.close()  # type: ignore[attr-defined]


def test_one_process_runs_a_hundred_jobs_at_once(
    many_jobs_app: tuple[Celery, Settings],
) -> None:
    app, settings = many_jobs_app
    ids = bulk_jobs(settings, 100, model="slow")
    dispatcher = Dispatcher(app, settings.queue)
    for job_id in ids:
        assert dispatcher.enqueue(job_id)
    jobs = wait_all_terminal(settings, ids, timeout=120)
    assert {j.status for j in jobs} == {"completed"}
    for j in jobs:
        # four sequential billed calls each, every one journaled, none beyond the budget
        assert j.usage_calls == CALLS
        assert j.usage_tokens <= BUDGET["max_tokens"]
        assert j.lost_calls == 0
        assert j.result is not None
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as s:
        done = s.execute(
            select(func.count())
            .select_from(JobStep)
            .where(JobStep.job_id.in_(ids), JobStep.kind == "sample", JobStep.status == "done")
        ).scalar_one()
    engine.dispose()
    assert done == 100 * CALLS
    # one process held most of them at once (they each wait 4 x 500 ms on the model)
    assert peak_running(jobs) >= 50
    stats = app.ponder_services.get().committer.stats  # type: ignore[attr-defined]
    # concurrent jobs' writes shared transactions
    assert stats.groups < stats.writes


class _Slow(CountingProvider):
    def __init__(self, inner: SimProvider, seconds: float) -> None:
        super().__init__(inner)
        self.seconds = seconds

    async def sample(self, request: SampleRequest) -> SampleResult:
        await asyncio.sleep(self.seconds)
        return await super().sample(request)


def test_shared_heartbeat_fences_a_stolen_lease_while_siblings_go_on(
    pg_settings: Settings,
) -> None:
    settings = pg_settings.model_copy(update={"lease_seconds": 0.9})
    strategy = {
        "name": "best_of_n",
        "params": {"n": 6, "batch_size": 1, "max_tokens": 64, "stop_when_verified": False},
    }
    ids = [create_job(settings, strategy=strategy, seed=i) for i in range(3)]
    svc = WorkerServices(
        settings, provider_factory=lambda p: _Slow(SimProvider(p.name), seconds=0.25)
    )
    victim = ids[0]

    async def steal_after_first_call() -> None:
        while True:  # wait until the victim has journaled one call
            await asyncio.sleep(0.05)
            if load_job(settings, victim).usage_calls >= 1:
                break
        # the victim's lease lapses (as if its worker had stalled) and a thief claims it
        engine = make_engine(settings.database_url)
        with engine.begin() as conn:
            conn.execute(update(Job).where(Job.id == victim).values(lease_expires_at=utcnow()))
        assert claim(engine, victim, "thief", lease_seconds=600) is not None
        engine.dispose()

    async def run_all() -> list[Any]:
        thief = asyncio.ensure_future(steal_after_first_call())
        outcomes = await asyncio.gather(
            *(run_slice_async(svc, job_id, f"w-{i}") for i, job_id in enumerate(ids))
        )
        await thief
        return outcomes

    outcomes = svc.jobloop.call(run_all())
    assert outcomes[0].kind == "lost"
    assert [o.kind for o in outcomes[1:]] == ["finished", "finished"]
    stolen = load_job(settings, victim)
    assert stolen.lease_owner == "thief" and stolen.status == "running"
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as s:
        # nothing of the zombie's after the theft: its attempt's steps are all from before
        zombie_steps = s.execute(
            select(func.count())
            .select_from(JobStep)
            .where(JobStep.job_id == victim, JobStep.attempt == stolen.attempt - 1)
        ).scalar_one()
        finished_events = s.execute(
            select(func.count())
            .select_from(JobEvent)
            .where(JobEvent.job_id == victim, JobEvent.kind == "completed")
        ).scalar_one()
    engine.dispose()
    assert zombie_steps <= 2  # the one journaled call (+ its verdict) before the theft
    assert finished_events == 0
    for job_id in ids[1:]:
        assert load_job(settings, job_id).usage_calls == 6
    assert svc.jobloop.leases.ticks >= 1
    svc.close()


def test_a_slow_verifier_does_not_hold_up_other_jobs(pg_settings: Settings) -> None:
    """One job's verifier runs untrusted tests that take seconds (in a sandboxed child
    process); meanwhile another job's model calls keep completing on the same loop."""
    settings = pg_settings.model_copy(update={"sandbox_allow_unisolated": True})
    slow_prompt = "Write f() returning 1."
    slow = create_job(
        settings,
        problem={"prompt": slow_prompt},
        verifier={
            "type": "python_tests",
            "tests": "import time\n\ndef test_slow():\n    time.sleep(6)\n    assert f() == 1\n",
            "timeout_s": 30,
        },
        strategy={"name": "best_of_n", "params": {"n": 1, "max_tokens": 64}},
    )
    busy = create_job(
        settings,
        strategy={
            "name": "best_of_n",
            "params": {"n": 12, "batch_size": 1, "max_tokens": 64, "stop_when_verified": False},
        },
        budget={"max_tokens": 50_000, "max_calls": 12},
    )
    calls: list[str] = []  # whose call, in the order they completed

    class Quick:
        """Answers every call with the same code after 100 ms (the model boundary)."""

        name = "quick"

        async def sample(self, request: SampleRequest) -> SampleResult:
            await asyncio.sleep(0.1)
            prompt = "\n".join(m["content"] for m in request.messages)
            calls.append("slow" if slow_prompt in prompt else "busy")
            code = Completion("```python\ndef f():\n    return 1\n```")
            return SampleResult([code] * request.n, Usage(prompt_tokens=20, completion_tokens=20))

        async def aclose(self) -> None:
            pass

    svc = WorkerServices(settings, provider_factory=lambda p: Quick())

    async def run_both() -> tuple[Any, Any, bool]:
        slow_task = asyncio.ensure_future(run_slice_async(svc, slow, "w-slow"))
        busy_outcome = await run_slice_async(svc, busy, "w-busy")
        # the busy job's twelve calls are done; the slow job's tests still run (6 s)
        slow_pending = not slow_task.done()
        return await slow_task, busy_outcome, slow_pending

    slow_outcome, busy_outcome, slow_pending = svc.jobloop.call(run_both())
    assert slow_outcome.kind == "finished" and busy_outcome.kind == "finished"
    assert load_job(settings, busy).usage_calls == 12
    slow_job = load_job(settings, slow)
    assert slow_job.status == "completed" and slow_job.stop_reason == "verified"
    assert slow_job.result is not None and slow_job.result["verified"] is True
    # both started together: the slow job's one call came among the first, then its
    # verifier ran; most of the busy job's calls completed after it, and all of them
    # before the verifier's six seconds were over
    assert calls.count("busy") == 12 and calls.count("slow") == 1, calls
    assert calls[calls.index("slow") :].count("busy") >= 6, calls
    assert slow_pending, "the busy job waited for the other job's verifier"
    svc.close()


def test_a_write_is_released_only_once_committed(pg_settings: Settings) -> None:
    """The group committer hands a write's result back after COMMIT, not before: another
    connection sees the row at the moment the caller is released."""
    job_id = create_job(pg_settings)
    svc = WorkerServices(pg_settings)
    other = make_engine(pg_settings.database_url)
    seen_at_release: list[int] = []

    def count_events() -> int:
        with other.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id)
                ).scalar_one()
            )

    async def writes() -> None:
        async def one(i: int) -> None:
            def write(conn: Any) -> None:
                conn.execute(
                    insert(JobEvent).values(
                        job_id=job_id, seq=i, kind="probe", data={}, created_at=utcnow()
                    )
                )

            await svc.committer.run(write, key=job_id)
            seen_at_release.append(await asyncio.to_thread(count_events))

        await asyncio.gather(*(one(i) for i in range(1, 21)))

    svc.jobloop.call(writes())
    assert len(seen_at_release) == 20
    assert min(seen_at_release) >= 1  # never released before its row was visible
    assert svc.committer.stats.groups < 20
    other.dispose()
    svc.close()


def test_a_handed_off_job_keeps_its_priority(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each slice ends after one call here; every next slice is published at the
    priority the job was submitted with (not at the default)."""
    settings = pg_settings.model_copy(update={"slice_seconds": 1e-9})
    job_id = create_job(settings, strategy=SEQUENTIAL, budget=BUDGET)
    published: list[tuple[str, int]] = []
    enqueue = Dispatcher.enqueue

    def recording(self: Dispatcher, job: str, *, priority: int = 0, **kw: Any) -> bool:
        published.append((job, priority))
        return enqueue(self, job, priority=priority, **kw)

    monkeypatch.setattr(Dispatcher, "enqueue", recording)
    app = create_worker_app(settings)
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=30
    ):
        assert Dispatcher(app, settings.queue).enqueue(job_id, priority=7)
        (job,) = wait_all_terminal(settings, [job_id], timeout=60)
    app.ponder_services.close()  # type: ignore[attr-defined]
    assert job.status == "completed" and job.slices >= CALLS
    assert len(published) >= CALLS  # the first publish and a hand-off per slice
    assert {p for _, p in published} == {7}


def test_one_statement_renews_every_lease_each_under_its_fence(pg_settings: Settings) -> None:
    from ponder.jobstore import LeaseRenewal, renew_leases

    ids = [create_job(pg_settings, seed=i) for i in range(3)]
    engine = make_engine(pg_settings.database_url)
    claims = [claim(engine, job_id, f"w{i}", lease_seconds=30) for i, job_id in enumerate(ids)]
    assert all(c is not None for c in claims)
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == ids[1]).values(cancel_requested=True))
        # the third job was taken over: its old fence no longer matches
        conn.execute(update(Job).where(Job.id == ids[2]).values(attempt=Job.attempt + 1))
    renewals = [
        LeaseRenewal(c.job.id, c.attempt, c.owner, seconds_used=12.5)
        for c in claims
        if c is not None
    ]
    with engine.begin() as conn:
        renewed = renew_leases(conn, renewals, lease_seconds=600)
    assert renewed == {ids[0]: False, ids[1]: True}
    first = load_job(pg_settings, ids[0])
    assert first.usage_seconds == 12.5
    assert first.lease_expires_at is not None
    assert (first.lease_expires_at - utcnow()).total_seconds() > 500
    assert load_job(pg_settings, ids[2]).usage_seconds == 0
    engine.dispose()


def test_claims_of_a_group_take_one_statement_and_each_gets_its_own_answer(
    pg_settings: Settings,
) -> None:
    """A group's claims: two slices racing for one job (one wins), a job leased by a live
    worker (no claim), a job a dead worker left mid-call (claimed, its pending call
    counted as spent and lost, its journaled call kept for replay)."""
    from ponder.jobstore import ClaimRequest, claim_jobs

    fresh, busy, orphan = (create_job(pg_settings, seed=i) for i in range(3))
    engine = make_engine(pg_settings.database_url)
    assert claim(engine, busy, "alive", lease_seconds=600) is not None
    dead = claim(engine, orphan, "dead", lease_seconds=600)
    assert dead is not None
    with engine.begin() as conn:
        for key, status in ((1, "done"), (2, "pending")):
            conn.execute(
                insert(JobStep).values(
                    job_id=orphan,
                    key=key,
                    kind="sample",
                    status=status,
                    digest="d",
                    attempt=dead.attempt,
                    reserved_tokens=100,
                    reserved_calls=1,
                    reserved_cost_usd=0.0,
                    result={"completions": []} if status == "done" else None,
                    created_at=utcnow(),
                )
            )
        conn.execute(update(Job).where(Job.id == orphan).values(lease_expires_at=utcnow()))
    requests = [
        ClaimRequest(fresh, "a", 30),
        ClaimRequest(fresh, "b", 30),
        ClaimRequest(busy, "c", 30),
        ClaimRequest(orphan, "d", 30),
    ]
    with engine.begin() as conn:
        answers = claim_jobs(conn, requests)
    assert all(ok for ok, _ in answers)
    first, second, taken, resumed = (c for _, c in answers)
    assert (first is None) != (second is None)  # exactly one of the racing slices won
    assert taken is None
    assert resumed is not None and resumed.attempt == dead.attempt + 1
    assert set(resumed.steps) == {1} and resumed.lost_calls == 1
    assert resumed.job.usage_calls == 1 and resumed.job.usage_tokens == 100
    assert resumed.job.recoveries == 1
    engine.dispose()
