"""``GET /v1/system`` on real Postgres and Redis: workers (heartbeats and leases), the
queue by priority, models' concurrency in use, webhook health — and one tenant never
sees another's job or delivery ids."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ponder.config import Settings
from ponder.db import make_engine
from ponder.jobstore import claim
from ponder.llm.limits import RedisLimiter
from ponder.localproc import free_port
from ponder.tables import Job, Tenant, WebhookDelivery, Worker, utcnow
from ponder.workers import FORGET_AFTER, WorkerInfo, beat, forget_gone, worker_of
from tests.api_helpers import api_client, auth_headers, job_body
from tests.conftest import REDIS_URL
from worker.celery_tasks import create_worker_app

pytestmark = pytest.mark.integration


def tenant_id(client: TestClient, name: str) -> str:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        found = s.scalars(select(Tenant.id).where(Tenant.name == name)).one()
        return str(found)


def submit(client: TestClient, headers: dict[str, str], **changes: Any) -> str:
    answer = client.post("/v1/jobs", json=job_body(**changes), headers=headers)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def system(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    answer = client.get("/v1/system", headers=headers)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def heartbeat(settings: Settings, info: WorkerInfo, *, ago: float = 0.0) -> None:
    engine = make_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            beat(conn, info, utcnow() - timedelta(seconds=ago))
    finally:
        engine.dispose()


def a_worker(host: str, pid: int, queue: str = "q") -> WorkerInfo:
    return WorkerInfo(
        id=f"{host}:{pid}", hostname=host, pid=pid, queue=queue, max_jobs=64, started_at=utcnow()
    )


def take_lease(settings: Settings, job_id: str, owner: str) -> None:
    """A worker's claim, as a slice makes it (the real statement)."""
    engine = make_engine(settings.database_url)
    try:
        assert claim(engine, job_id, owner, settings.lease_seconds) is not None
    finally:
        engine.dispose()


def test_an_empty_deployment_says_so(client: TestClient, headers: dict[str, str]) -> None:
    doc = system(client, headers)
    assert doc["workers"] == []
    queue = doc["queue"]
    assert [p["priority"] for p in queue["by_priority"]] == list(range(9, -1, -1))
    assert queue["waiting"] == queue["held"] == queue["running"] == 0
    assert queue["oldest_since"] is None and queue["your_oldest_job_id"] is None
    models = {m["name"]: m for m in doc["models"]}
    # the built-in simulator runs inside each worker: its calls take no shared slot
    assert models["sim"]["calls_in_flight"] is None
    assert "inside each worker process" in models["sim"]["note"]
    assert models["sim"]["max_concurrency"] >= 1
    hooks = doc["webhooks"]
    assert hooks["pending"] == 0 and hooks["oldest_pending"] is None
    assert hooks["last_day"] == {"pending": 0, "delivered": 0, "failed": 0, "disabled": 0}


def test_workers_their_slices_and_the_queue_each_tenant_seeing_only_its_own_jobs(
    client: TestClient, pg_settings: Settings
) -> None:
    alice, bob = auth_headers(client, "alice"), auth_headers(client, "bob")
    a_running = submit(client, alice, priority=7)
    a_waiting = submit(client, alice, priority=7)
    b_running = submit(client, bob, priority=2)
    b_waiting = submit(client, bob, priority=2)
    busy, idle, dead = a_worker("busy", 11), a_worker("idle", 12), a_worker("dead", 13)
    heartbeat(pg_settings, busy)
    heartbeat(pg_settings, idle)
    heartbeat(pg_settings, dead, ago=pg_settings.lease_seconds * 2)
    take_lease(pg_settings, a_running, f"{busy.id}:aaaa1111")
    take_lease(pg_settings, b_running, f"{busy.id}:bbbb2222")
    # a worker known only by its lease (no heartbeat row)
    lone = submit(client, bob, priority=2)
    take_lease(pg_settings, lone, "lonely:99:cccc3333")

    seen_by_alice, seen_by_bob = system(client, alice), system(client, bob)

    workers = {w["id"]: w for w in seen_by_alice["workers"]}
    assert set(workers) == {"busy:11", "idle:12", "dead:13", "lonely:99"}
    assert [w["alive"] for w in seen_by_alice["workers"]][-1] is False  # the dead one last
    assert workers["dead:13"]["alive"] is False
    assert workers["busy:11"]["alive"] and workers["idle:12"]["alive"]
    assert workers["busy:11"]["slices"] == 2 and workers["busy:11"]["your_slices"] == 1
    assert [j["job_id"] for j in workers["busy:11"]["your_jobs"]] == [a_running]
    mine = workers["busy:11"]["your_jobs"][0]
    assert mine["strategy"] == "best_of_n" and mine["priority"] == 7 and mine["attempt"] == 1
    assert workers["idle:12"]["slices"] == 0 and workers["idle:12"]["max_jobs"] == 64
    assert workers["lonely:99"]["last_seen_at"] is None and workers["lonely:99"]["pid"] == 99
    assert workers["lonely:99"]["your_jobs"] == [] and workers["lonely:99"]["slices"] == 1

    queue = seen_by_alice["queue"]
    depth = {p["priority"]: p for p in queue["by_priority"]}
    assert (depth[7]["waiting"], depth[7]["yours"]) == (1, 1)
    assert (depth[2]["waiting"], depth[2]["yours"]) == (1, 0)
    assert queue["waiting"] == 2 and queue["running"] == 3 and queue["your_running"] == 1
    assert queue["your_oldest_job_id"] == a_waiting
    assert seen_by_bob["queue"]["your_oldest_job_id"] == b_waiting
    assert {p["priority"]: p["yours"] for p in seen_by_bob["queue"]["by_priority"]}[2] == 1

    # bob sees the same machinery, and none of alice's job ids anywhere
    bob_workers = {w["id"]: w for w in seen_by_bob["workers"]}
    assert bob_workers["busy:11"]["slices"] == 2
    assert [j["job_id"] for j in bob_workers["busy:11"]["your_jobs"]] == [b_running]
    bob_text = json.dumps(seen_by_bob)
    for job_id in (a_running, a_waiting):
        assert job_id not in bob_text
    alice_text = json.dumps(seen_by_alice)
    for job_id in (b_running, b_waiting, lone):
        assert job_id not in alice_text


def test_a_job_between_slices_or_whose_worker_died_counts_as_waiting(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    job_id = submit(client, headers, priority=4)
    take_lease(pg_settings, job_id, "gone:5:dddd4444")
    assert system(client, headers)["queue"]["running"] == 1
    engine = make_engine(pg_settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    engine.dispose()
    doc = system(client, headers)
    assert doc["queue"]["running"] == 0
    assert {p["priority"]: p["waiting"] for p in doc["queue"]["by_priority"]}[4] == 1
    assert doc["workers"] == []  # no heartbeat, no live lease: nothing to show


def test_held_jobs_are_counted_apart_from_those_in_the_queue(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(update={"batch_max_in_flight": 2})
    with api_client(settings) as client:
        headers = auth_headers(client)
        answer = client.post(
            "/v1/batches",
            json={"items": [job_body() for _ in range(5)], "defaults": {"priority": 3}},
            headers=headers,
        )
        assert answer.status_code == 202, answer.text
        depth = {p["priority"]: p for p in system(client, headers)["queue"]["by_priority"]}
    # the feeder sends a batch's first two items and holds the rest
    assert (depth[3]["waiting"], depth[3]["held"], depth[3]["yours"]) == (2, 3, 5)


def test_models_show_calls_in_flight_from_the_workers_shared_slots(
    pg_settings: Settings, tmp_path: Path
) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  - name: remote\n"
        "    provider: openai\n"
        f"    base_url: http://127.0.0.1:{free_port()}/v1\n"
        "    model: m\n"
        "    max_concurrency: 3\n"
    )
    settings = pg_settings.model_copy(update={"models_file": str(models)})
    prefix = f"ponder:test-sem:{settings.queue}:"

    def read_remote() -> dict[str, Any]:
        with api_client(settings) as client:
            client.app.state.ponder.slots.prefix = prefix  # type: ignore[attr-defined]
            doc = system(client, auth_headers(client))
        found: dict[str, Any] = {m["name"]: m for m in doc["models"]}["remote"]
        return found

    async def with_two_calls_in_flight() -> dict[str, Any]:
        # the profile's slots, held as two calls in flight hold them (the workers' limiter)
        limiter = RedisLimiter.from_url(REDIS_URL, prefix=prefix)
        try:
            for n in range(2):
                assert await limiter.try_acquire(limiter.key("remote"), f"holder-{n}", 3)
            return await asyncio.to_thread(read_remote)
        finally:
            await limiter.release(limiter.key("remote"), "holder-0")
            await limiter.release(limiter.key("remote"), "holder-1")
            await limiter.aclose()

    remote = asyncio.run(with_two_calls_in_flight())
    assert remote["max_concurrency"] == 3
    assert remote["shared_limit"] is True
    assert remote["calls_in_flight"] == 2
    assert remote["note"] is None


def test_models_say_why_calls_are_not_counted_when_redis_is_away(
    pg_settings: Settings, tmp_path: Path
) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n  - name: remote\n    provider: openai\n"
        f"    base_url: http://127.0.0.1:{free_port()}/v1\n    model: m\n"
    )
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = pg_settings.model_copy(update={"models_file": str(models), "broker_url": closed})
    with api_client(settings) as client:
        doc = system(client, auth_headers(client))
    remote = {m["name"]: m for m in doc["models"]}["remote"]
    assert remote["calls_in_flight"] is None
    assert "could not be counted" in remote["note"]


def test_webhook_health_counts_only_the_tenants_own_deliveries(
    client: TestClient, pg_settings: Settings
) -> None:
    alice, bob = auth_headers(client, "alice"), auth_headers(client, "bob")
    a_job, b_job = submit(client, alice), submit(client, bob)
    a_id, b_id = tenant_id(client, "alice"), tenant_id(client, "bob")
    now = utcnow()

    def delivery(tenant: str, job: str, status: str, *, age: timedelta, retries: int = 0) -> str:
        row = WebhookDelivery(
            tenant_id=tenant,
            job_id=job,
            event_type="job.completed",
            webhook_id=f"msg_{tenant[:8]}_{status}_{age.total_seconds():.0f}_{retries}",
            url="http://127.0.0.1:9/hook",
            payload={},
            status=status,
            retries=retries,
            attempts=retries,
            last_status_code=500 if retries else None,
            last_error="HTTP 500" if retries else None,
            created_at=now - age,
        )
        with client.app.state.sessions() as s, s.begin():  # type: ignore[attr-defined]
            s.add(row)
        return row.id

    minute, hours = timedelta(minutes=1), timedelta(hours=3)
    delivery(a_id, a_job, "delivered", age=minute)
    delivery(a_id, a_job, "delivered", age=hours)
    failed = delivery(a_id, a_job, "failed", age=hours)
    retrying = delivery(a_id, a_job, "pending", age=minute, retries=2)
    old_pending = delivery(a_id, a_job, "pending", age=timedelta(days=3))
    b_failed = delivery(b_id, b_job, "failed", age=minute)

    hooks = system(client, alice)["webhooks"]
    assert hooks["last_hour"] == {"pending": 1, "delivered": 1, "failed": 0, "disabled": 0}
    assert hooks["last_day"] == {"pending": 1, "delivered": 2, "failed": 1, "disabled": 0}
    assert hooks["pending"] == 2 and hooks["retrying"] == 1
    assert hooks["oldest_pending"]["id"] == old_pending
    assert [f["id"] for f in hooks["recent_failures"]] == [retrying, failed]
    assert hooks["recent_failures"][0]["last_error"] == "HTTP 500"

    bob_doc = system(client, bob)
    assert bob_doc["webhooks"]["last_day"]["failed"] == 1
    assert [f["id"] for f in bob_doc["webhooks"]["recent_failures"]] == [b_failed]
    bob_text = json.dumps(bob_doc)
    for private in (failed, retrying, old_pending, a_job):
        assert private not in bob_text


def test_a_real_worker_shows_while_idle_and_leaves_when_it_stops(
    pg_settings: Settings,
) -> None:
    engine = make_engine(pg_settings.database_url)
    try:
        with api_client(pg_settings) as client:
            headers = auth_headers(client)
            app = create_worker_app(pg_settings)
            with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
                # what `ponder worker` does once Celery is ready (the test worker sends no
                # worker_ready): start the event loop, whose first heartbeat is written
                # before start() returns, before any job
                app.ponder_services.get().jobloop.start()  # type: ignore[attr-defined]
                workers = system(client, headers)["workers"]
                assert len(workers) == 1, workers
                worker = workers[0]
                assert worker["alive"] and worker["slices"] == 0
                assert worker["queue"] == pg_settings.queue
                assert worker["max_jobs"] == pg_settings.worker_max_jobs
                assert worker_of(f"{worker['id']}:0123abcd") == worker["id"]
            app.ponder_services.close()  # type: ignore[attr-defined]
            # a clean stop removes its row
            assert system(client, headers)["workers"] == []
        with engine.begin() as conn:
            assert conn.execute(select(Worker.id)).all() == []
    finally:
        engine.dispose()


def test_the_reaper_forgets_workers_silent_for_an_hour(pg_settings: Settings) -> None:
    heartbeat(pg_settings, a_worker("old", 1), ago=FORGET_AFTER.total_seconds() + 60)
    heartbeat(pg_settings, a_worker("recent", 2), ago=60)
    engine = make_engine(pg_settings.database_url)
    try:
        with engine.begin() as conn:
            assert forget_gone(conn) == 1
            assert conn.execute(select(Worker.id)).scalars().all() == ["recent:2"]
    finally:
        engine.dispose()
