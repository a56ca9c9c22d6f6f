"""Helpers to create and run jobs directly against a database (no API, no broker)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.llm.base import Provider, SampleRequest, SampleResult
from ponder.tables import Job, Tenant, utcnow
from worker.runner import SliceOutcome, WorkerServices, run_slice


def create_job(
    settings: Settings,
    *,
    numbers: tuple[int, ...] = (4, 9, 10, 13),
    problem: dict[str, Any] | None = None,
    verifier: dict[str, Any] | None = None,
    model: str = "sim",
    strategy: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
    seed: int = 1234,
    webhook_url: str | None = None,
) -> str:
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        tenant = Tenant(name=f"t{random.randrange(1 << 30)}")
        s.add(tenant)
        s.flush()
        job = Job(
            tenant_id=tenant.id,
            problem=problem or {"task": "game24", "input": {"numbers": list(numbers)}},
            strategy=strategy or {"name": "best_of_n", "params": {"n": 8}},
            verifier=verifier,
            model=model,
            budget=budget or {"max_tokens": 50_000, "max_calls": 64},
            seed=seed,
            webhook_url=webhook_url,
            progress={},
            meta={},
        )
        s.add(job)
        s.flush()
        job_id = job.id
    engine.dispose()
    return job_id


def load_job(settings: Settings, job_id: str) -> Job:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            job = s.get(Job, job_id)
            assert job is not None
            s.expunge(job)
            return job
    finally:
        engine.dispose()


def expire_lease(settings: Settings, job_id: str) -> None:
    """What a dead worker leaves behind once its lease runs out."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s, s.begin():
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        engine.dispose()


def run_until_done(svc: WorkerServices, job_id: str, max_slices: int = 50) -> SliceOutcome:
    outcome = SliceOutcome("skipped")
    for i in range(max_slices):
        outcome = run_slice(svc, job_id, owner=f"test-{i}")
        if not outcome.requeue:
            return outcome
    raise AssertionError(f"job {job_id} did not finish in {max_slices} slices")


class Crash(BaseException):
    """Stands in for the process dying mid-call (not an Exception: nothing catches it)."""


class CountingProvider:
    """Wraps a provider: counts calls and can die (raise Crash) on call number ``crash_at``."""

    def __init__(self, inner: Provider, crash_at: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0
        self.requests: list[SampleRequest] = []
        self.crash_at = crash_at

    async def sample(self, request: SampleRequest) -> SampleResult:
        self.calls += 1
        self.requests.append(request)
        if self.crash_at is not None and self.calls == self.crash_at:
            raise Crash(f"crash injected at call {self.calls}")
        return await self.inner.sample(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
