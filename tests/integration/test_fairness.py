"""Fair shares between tenants (ponder.fairness), through the real API and a real Celery
worker: a tenant's flood keeps a short queue (the rest waits held), takes at most its
share of a worker process, and another tenant's single job starts while the flood is
still far from done; every held job runs in the end, highest priority first, and a held
job can be cancelled at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.fairness import release_held, release_idle
from ponder.tables import Job
from tests.api_helpers import api_client, auth_headers
from tests.integration.test_many_jobs import peak_running, wait_all_terminal
from worker.celery_tasks import create_worker_app

pytestmark = pytest.mark.integration

QUEUE_CAP = 2
MAX_JOBS = 4
RESERVE = 1  # so one tenant runs at most 3 slices of the process


@pytest.fixture
def settings(pg_settings: Settings, tmp_path: Path) -> Settings:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n  - name: slow\n    provider: sim\n    model: slow\n    ttft_ms: 300\n"
    )
    return pg_settings.model_copy(
        update={
            "models_file": str(models),
            "tenant_max_queued": QUEUE_CAP,
            "worker_max_jobs": MAX_JOBS,
            "worker_tenant_reserve": RESERVE,
        }
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as c:
        yield c


def job_body(seed: int, priority: int = 0) -> dict[str, Any]:
    return {
        "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
        "strategy": {
            "name": "best_of_n",
            "params": {"n": 3, "batch_size": 1, "max_tokens": 64, "stop_when_verified": False},
        },
        "model": "slow",
        "budget": {"max_tokens": 5_000, "max_calls": 3},
        "seed": seed,
        "priority": priority,
    }


def submit(api: TestClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    r = api.post("/v1/jobs", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def held_ids(settings: Settings, ids: list[str]) -> set[str]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return set(s.execute(select(Job.id).where(Job.id.in_(ids), Job.held)).scalars())
    finally:
        engine.dispose()


def test_a_flood_keeps_a_short_queue_and_its_share_and_another_tenant_gets_in(
    settings: Settings, api: TestClient
) -> None:
    flood_headers = auth_headers(api, "flood")
    other_headers = auth_headers(api, "other")
    flood = [submit(api, flood_headers, job_body(i)) for i in range(16)]
    # beyond the tenant's queue the jobs wait held in Postgres, not in the broker
    assert len(held_ids(settings, flood)) == 16 - QUEUE_CAP
    listed = api.get(f"/v1/jobs/{flood[-1]}", headers=flood_headers).json()
    assert listed["status"] == "queued"

    app = create_worker_app(settings)
    with start_worker(
        app, pool="threads", concurrency=MAX_JOBS, perform_ping_check=False, shutdown_timeout=30
    ):
        deadline = time.monotonic() + 30
        while not any(j.started_at for j in _jobs(settings, flood)):
            assert time.monotonic() < deadline, "the flood never started"
            time.sleep(0.05)
        other = submit(api, other_headers, job_body(99))
        jobs = wait_all_terminal(settings, [*flood, other], timeout=120)
    app.ponder_services.close()  # type: ignore[attr-defined]

    by_id = {j.id: j for j in jobs}
    assert {j.status for j in jobs} == {"completed"}  # every held job ran in the end
    flood_jobs = [by_id[i] for i in flood]
    # the flood never held more than its share of the process
    assert peak_running(flood_jobs) <= MAX_JOBS - RESERVE
    # the other tenant's job started while most of the flood had not even started
    other_start = by_id[other].started_at
    assert other_start is not None
    not_started_yet = sum(1 for j in flood_jobs if j.started_at and j.started_at > other_start)
    assert not_started_yet >= 6, not_started_yet


def _jobs(settings: Settings, ids: list[str]) -> list[Job]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = list(s.execute(select(Job).where(Job.id.in_(ids))).scalars())
            for r in rows:
                s.expunge(r)
            return rows
    finally:
        engine.dispose()


def test_held_jobs_go_out_highest_priority_first_and_the_reaper_frees_idle_ones(
    settings: Settings, api: TestClient
) -> None:
    headers = auth_headers(api, "prio")
    first = [submit(api, headers, job_body(i)) for i in range(QUEUE_CAP)]
    low = submit(api, headers, job_body(10, priority=1))
    high = submit(api, headers, job_body(11, priority=8))
    assert held_ids(settings, [*first, low, high]) == {low, high}
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    # the tenant still has jobs waiting in the queue: the reaper leaves its held ones
    assert release_idle(sessions, per_tenant=8) == []
    with engine.begin() as conn:
        tenant = conn.execute(select(Job.tenant_id).where(Job.id == high)).scalar_one()
        assert release_held(conn, tenant, 1) == [(high, 8)]
    # once none of its jobs waits in the queue, the reaper publishes the held ones
    with engine.begin() as conn:
        conn.execute(
            Job.__table__.update()  # type: ignore[attr-defined]
            .where(Job.id.in_([*first, high]))
            .values(status="completed")
        )
    assert release_idle(sessions, per_tenant=8) == [(low, 1)]
    with sessions() as s:
        assert (
            s.execute(select(func.count()).where(Job.held, Job.tenant_id == tenant)).scalar_one()
            == 0
        )
    engine.dispose()


def test_a_held_job_is_cancelled_at_once(settings: Settings, api: TestClient) -> None:
    headers = auth_headers(api, "cancel")
    for i in range(QUEUE_CAP):
        submit(api, headers, job_body(i))
    held = submit(api, headers, job_body(50))
    assert held_ids(settings, [held]) == {held}
    r = api.post(f"/v1/jobs/{held}/cancel", headers=headers)
    assert r.status_code == 200, r.text  # the cancelled job, as every cancel answers
    job = api.get(f"/v1/jobs/{held}", headers=headers).json()
    assert job["status"] == "cancelled" and job["stop_reason"] == "cancelled"
