"""A real Celery worker over real Redis runs jobs stored in real Postgres."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

from ponder.config import Settings
from ponder.tables import JobEvent, JobStep
from tests.jobs_helpers import create_job, load_job
from worker.celery_app import Dispatcher
from worker.celery_tasks import create_worker_app
from worker.reaper import reap_once

pytestmark = pytest.mark.integration


def wait_terminal(settings: Settings, job_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if load_job(settings, job_id).status in ("completed", "failed", "cancelled"):
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {load_job(settings, job_id).status}")


@pytest.fixture
def celery_worker_app(pg_settings: Settings) -> Iterator[Celery]:
    app = create_worker_app(pg_settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield app
    app.ponder_services.close()  # type: ignore[attr-defined]


def test_worker_runs_a_job_and_journals_every_step(
    pg_settings: Settings, celery_worker_app: Celery
) -> None:
    job_id = create_job(
        pg_settings,
        numbers=(1, 2, 3, 4),
        strategy={"name": "best_of_n", "params": {"n": 8, "batch_size": 2, "max_tokens": 512}},
    )
    assert Dispatcher(celery_worker_app, pg_settings.queue).enqueue(job_id)
    wait_terminal(pg_settings, job_id)
    job = load_job(pg_settings, job_id)
    assert job.status == "completed"
    assert job.result is not None
    assert job.lease_owner is None
    assert job.usage_tokens > 0

    from ponder.db import make_engine, make_sessionmaker

    engine = make_engine(pg_settings.database_url)
    with make_sessionmaker(engine)() as s:
        steps = s.execute(select(JobStep).where(JobStep.job_id == job_id)).scalars().all()
        events = (
            s.execute(select(JobEvent.kind).where(JobEvent.job_id == job_id).order_by(JobEvent.seq))
            .scalars()
            .all()
        )
    engine.dispose()
    samples = [st for st in steps if st.kind == "sample"]
    assert samples and all(st.status == "done" for st in steps)
    assert sum(st.tokens for st in samples) == job.usage_tokens
    assert events[0] == "started" and events[-1] == "completed"


def test_reaper_enqueues_a_job_whose_message_was_lost(
    pg_settings: Settings, celery_worker_app: Celery
) -> None:
    job_id = create_job(pg_settings)  # never enqueued: as if the broker lost the message
    svc = celery_worker_app.ponder_services.get()  # type: ignore[attr-defined]
    report = reap_once(svc, Dispatcher(celery_worker_app, pg_settings.queue))
    assert report["requeued"] == 1
    wait_terminal(pg_settings, job_id)
    assert load_job(pg_settings, job_id).status == "completed"
    # nothing left to reap once it is done
    assert reap_once(svc, Dispatcher(celery_worker_app, pg_settings.queue))["requeued"] == 0


class _Recording(Dispatcher):
    def __init__(self, app: Celery, queue: str) -> None:
        super().__init__(app, queue)
        self.sent: list[tuple[str, int]] = []

    def enqueue(self, job_id: str, *, priority: int = 0, countdown: float | None = None) -> bool:
        self.sent.append((job_id, priority))
        return True


def test_the_reaper_requeues_a_job_at_its_priority(pg_settings: Settings) -> None:
    from sqlalchemy import update

    from ponder.db import make_engine, make_sessionmaker
    from ponder.tables import Job
    from worker.runner import WorkerServices

    urgent, normal = create_job(pg_settings), create_job(pg_settings)
    engine = make_engine(pg_settings.database_url)
    with make_sessionmaker(engine)() as s, s.begin():
        s.execute(update(Job).where(Job.id == urgent).values(priority=7))
    engine.dispose()
    app = create_worker_app(pg_settings)
    svc = WorkerServices(pg_settings)
    try:
        dispatcher = _Recording(app, pg_settings.queue)
        reap_once(svc, dispatcher)
    finally:
        svc.close()
    assert dispatcher.sent == [(urgent, 7), (normal, 0)]
