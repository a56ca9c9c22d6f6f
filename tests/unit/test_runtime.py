"""Durable execution on a real (SQLite) journal: replay, resume after a crash, budgets,
cancellation, fencing. The model is the simulator, wrapped to count calls or to die."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from ponder.config import Settings
from ponder.jobstore import SqlJournal, claim
from ponder.llm.profiles import ModelProfile
from ponder.runtime import LeaseLost
from ponder.sim.model import SimProvider
from ponder.tables import Job, JobEvent, JobStep
from tests.jobs_helpers import (
    CountingProvider,
    Crash,
    create_job,
    expire_lease,
    load_job,
    run_until_done,
)
from worker.runner import WorkerServices, run_slice


def _services(
    settings: Settings, counter: list[CountingProvider], crash_at: int | None = None
) -> WorkerServices:
    def factory(profile: ModelProfile) -> CountingProvider:
        p = CountingProvider(SimProvider(profile.name), crash_at=crash_at)
        counter.append(p)
        return p

    return WorkerServices(settings, provider_factory=factory)


# sampling one candidate per request makes one journal step per model call
ONE_AT_A_TIME = {
    "name": "best_of_n",
    "params": {"n": 6, "batch_size": 1, "max_tokens": 96, "stop_when_verified": False},
}


def test_job_runs_to_a_verified_answer(sqlite_settings: Settings) -> None:
    job_id = create_job(
        sqlite_settings,
        numbers=(1, 2, 3, 4),
        strategy={"name": "best_of_n", "params": {"n": 16, "max_tokens": 1024}},
    )
    providers: list[CountingProvider] = []
    svc = _services(sqlite_settings, providers)
    run_until_done(svc, job_id)
    job = load_job(sqlite_settings, job_id)
    assert job.status == "completed"
    assert job.stop_reason == "verified"
    assert job.result is not None and job.result["verified"] is True
    assert job.usage_tokens > 0 and job.usage_calls >= 1
    svc.close()


def test_replay_makes_no_new_calls_and_gives_the_same_result(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME)
    providers: list[CountingProvider] = []
    svc = _services(sqlite_settings, providers)
    run_until_done(svc, job_id)
    first = load_job(sqlite_settings, job_id)
    assert providers[0].calls == 6

    # Run the same strategy again over the finished job's journal.
    svc2 = _services(sqlite_settings, providers)
    with svc2.sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(status="running", lease_owner=None))
    run_until_done(svc2, job_id)
    again = load_job(sqlite_settings, job_id)
    assert providers[1].calls == 0, "a replay must not call the model"
    assert again.result == first.result
    assert again.usage_tokens == first.usage_tokens
    assert again.usage_calls == first.usage_calls
    with svc2.sessions() as s:
        kinds = s.execute(select(JobEvent.kind).where(JobEvent.job_id == job_id)).scalars().all()
    assert kinds.count("candidate") == 6, "replayed events are not written twice"
    svc.close()
    svc2.close()


@pytest.mark.parametrize("crash_at", [1, 3, 6])
def test_resume_after_crash_matches_uninterrupted_run(
    sqlite_settings: Settings, crash_at: int
) -> None:
    # the reference: an uninterrupted run with the same seed
    ref_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME, seed=77)
    ref_providers: list[CountingProvider] = []
    ref_svc = _services(sqlite_settings, ref_providers)
    run_until_done(ref_svc, ref_id)
    reference = load_job(sqlite_settings, ref_id)

    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME, seed=77)
    providers: list[CountingProvider] = []
    crashing = _services(sqlite_settings, providers, crash_at=crash_at)
    with pytest.raises(Crash):
        run_slice(crashing, job_id, owner="doomed")
    mid = load_job(sqlite_settings, job_id)
    assert mid.status == "running" and mid.lease_owner == "doomed"
    expire_lease(sqlite_settings, job_id)

    fresh_providers: list[CountingProvider] = []
    fresh = _services(sqlite_settings, fresh_providers)
    run_until_done(fresh, job_id)
    done = load_job(sqlite_settings, job_id)
    assert done.status == "completed"
    assert done.result == reference.result
    # the resumed run re-made only the call that was in flight at the crash
    assert fresh_providers[0].calls == 6 - (crash_at - 1)
    journaled_before = crash_at - 1
    made_again = [r.seed for r in fresh_providers[0].requests]
    made_before = [r.seed for r in providers[0].requests[:journaled_before]]
    assert not set(made_again) & set(made_before), "a journaled call was paid twice"
    assert done.lost_calls == 1
    assert done.recoveries == 1
    # the lost call's reservation is counted as spent, on top of the reference usage
    assert done.usage_tokens > reference.usage_tokens
    assert done.usage_tokens <= done.budget["max_tokens"]
    for svc in (ref_svc, crashing, fresh):
        svc.close()


def test_tight_budget_stops_with_best_so_far_and_never_overspends(
    sqlite_settings: Settings,
) -> None:
    job_id = create_job(
        sqlite_settings,
        numbers=(3, 3, 8, 8),
        strategy={"name": "best_of_n", "params": {"n": 64, "batch_size": 4, "max_tokens": 128}},
        budget={"max_tokens": 1500, "max_calls": 40},
    )
    providers: list[CountingProvider] = []
    svc = _services(sqlite_settings, providers)
    run_until_done(svc, job_id)
    job = load_job(sqlite_settings, job_id)
    assert job.status == "completed"
    assert job.stop_reason in ("budget_exhausted", "verified")
    assert job.usage_tokens <= 1500
    assert job.usage_calls <= 40
    if job.stop_reason == "budget_exhausted":
        assert job.result is not None, "an anytime result is returned"
    svc.close()


def test_calls_cap(sqlite_settings: Settings) -> None:
    job_id = create_job(
        sqlite_settings,
        numbers=(3, 3, 8, 8),
        strategy={
            "name": "best_of_n",
            "params": {"n": 64, "batch_size": 8, "max_tokens": 64, "stop_when_verified": False},
        },
        budget={"max_calls": 20},
    )
    svc = _services(sqlite_settings, [])
    run_until_done(svc, job_id)
    job = load_job(sqlite_settings, job_id)
    assert job.stop_reason == "budget_exhausted"
    assert job.usage_calls == 20  # 8 + 8 + 4: the last request shrinks to what fits
    svc.close()


def test_cancel_is_honoured_between_calls(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME)
    providers: list[CountingProvider] = []

    class CancelAfterTwo(CountingProvider):
        async def sample(self, request):  # type: ignore[no-untyped-def]
            result = await super().sample(request)
            if self.calls == 2:
                with svc.sessions() as s, s.begin():
                    s.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
            return result

    def factory(profile: ModelProfile) -> CountingProvider:
        p = CancelAfterTwo(SimProvider(profile.name))
        providers.append(p)
        return p

    svc = WorkerServices(sqlite_settings, provider_factory=factory)
    run_until_done(svc, job_id)
    job = load_job(sqlite_settings, job_id)
    assert job.status == "cancelled"
    assert job.stop_reason == "cancelled"
    assert providers[0].calls == 2
    assert job.result is not None  # the best of the two candidates
    svc.close()


def test_zombie_worker_cannot_write(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings)
    engine_svc = _services(sqlite_settings, [])
    first = claim(engine_svc.engine, job_id, "zombie", lease_seconds=30)
    assert first is not None
    journal = SqlJournal(engine_svc.committer, first)
    expire_lease(sqlite_settings, job_id)
    second = claim(engine_svc.engine, job_id, "new-owner", lease_seconds=30)
    assert second is not None and second.attempt == first.attempt + 1
    journal.add_event("x", {}, strategy=False)
    with pytest.raises(LeaseLost):
        engine_svc.jobloop.call(journal.flush())
    with engine_svc.sessions() as s:
        assert s.execute(select(func.count()).select_from(JobEvent)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(JobStep)).scalar_one() == 0
    engine_svc.close()


def test_slices_hand_off_and_finish(sqlite_settings: Settings) -> None:
    settings = sqlite_settings.model_copy(update={"slice_seconds": 1e-9})
    job_id = create_job(settings, strategy=ONE_AT_A_TIME)
    svc = _services(settings, [])
    outcome = run_slice(svc, job_id, owner="a")
    assert outcome.kind == "handoff"
    run_until_done(svc, job_id)
    job = load_job(settings, job_id)
    assert job.status == "completed"
    assert job.slices >= 6  # one model call per slice
    svc.close()


def test_a_job_that_cannot_start_fails_with_the_reason(sqlite_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    models = tmp_path / "models.yaml"
    # a reward model is not a chat model: a job naming one cannot start
    models.write_text("models:\n  - name: prm\n    provider: sim-reward\n    model: prm-1\n")
    settings = sqlite_settings.model_copy(update={"models_file": str(models)})
    job_id = create_job(settings)
    with _services(settings, []).sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(model="prm"))
    svc = WorkerServices(settings)
    outcome = run_slice(svc, job_id, owner="w")
    assert outcome.kind == "finished"
    job = load_job(settings, job_id)
    assert job.status == "failed"
    assert job.error is not None and "reward model" in job.error
    svc.close()


def test_heartbeat_keeps_the_lease_through_a_blocking_call(sqlite_settings: Settings) -> None:
    """A model call that blocks the event loop for longer than the lease must not let
    another worker take the job: the lease is renewed from a thread."""
    import time

    # renewed every 0.5 s (a third of the lease): only a 1 s stall of the renewing
    # thread would let the lease lapse (at 0.6 s, 0.4 s was enough, and load did it)
    settings = sqlite_settings.model_copy(update={"lease_seconds": 1.5})
    job_id = create_job(settings, strategy={"name": "best_of_n", "params": {"n": 1}})
    stolen: list[object] = []

    class Blocking(CountingProvider):
        async def sample(self, request):  # type: ignore[no-untyped-def]
            for _ in range(4):
                time.sleep(1.2)  # blocks the loop: 4.8 s in all, > 3 lease lengths
                stolen.append(claim(svc.engine, job_id, "thief", lease_seconds=1.5))
            return await super().sample(request)

    svc = WorkerServices(settings, provider_factory=lambda p: Blocking(SimProvider(p.name)))
    run_until_done(svc, job_id)
    assert stolen == [None, None, None, None]
    job = load_job(settings, job_id)
    assert job.status == "completed"
    assert job.recoveries == 0
    svc.close()


def test_a_slice_beyond_its_tenants_share_is_parked_not_run(sqlite_settings: Settings) -> None:
    """With one place per tenant in the process, a second job of the same tenant that
    arrives while the first runs is parked: held again, shown as queued, nothing spent;
    another tenant's job runs meanwhile."""
    import asyncio

    from worker.runner import run_slice_async

    settings = sqlite_settings.model_copy(update={"worker_max_jobs": 2, "worker_tenant_reserve": 1})
    first = create_job(settings, strategy=ONE_AT_A_TIME)
    second = create_job(settings, strategy=ONE_AT_A_TIME)
    other = create_job(settings, strategy=ONE_AT_A_TIME)
    svc = _services(settings, [])
    with svc.sessions() as s, s.begin():
        tenant = s.get(Job, first).tenant_id  # type: ignore[union-attr]
        s.execute(update(Job).where(Job.id == second).values(tenant_id=tenant))

    async def go() -> list[str]:
        running = asyncio.ensure_future(run_slice_async(svc, first, "a"))
        while svc.jobloop.tenants.running(tenant) == 0:
            await asyncio.sleep(0.001)
        parked = await run_slice_async(svc, second, "b")
        elsewhere = await run_slice_async(svc, other, "c")
        return [(await running).kind, parked.kind, elsewhere.kind]

    assert svc.jobloop.call(go()) == ["finished", "parked", "finished"]
    job = load_job(settings, second)
    assert job.held and job.status == "queued" and job.started_at is None
    assert job.lease_owner is None and job.usage_calls == 0

    # a batch item is never parked: the batch feeder shares batches out already
    item = create_job(settings, strategy=ONE_AT_A_TIME)
    with svc.sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == item).values(tenant_id=tenant, batch_id="b-1"))

    async def with_item() -> str:
        assert svc.jobloop.tenants.take(tenant)  # the tenant's one place is taken
        try:
            return (await run_slice_async(svc, item, "e")).kind
        finally:
            svc.jobloop.tenants.give_back(tenant)

    assert svc.jobloop.call(with_item()) == "finished"
    svc.close()
