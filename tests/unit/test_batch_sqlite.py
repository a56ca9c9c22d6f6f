"""Batches in the embedded mode (SQLite + filesystem broker, no services): the same code
as on Postgres — create over the API, feed, run an item, complete once, cancel, re-run
past jobs (metadata containment without JSONB), schedule helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from api.main import create_app
from ponder.auth import create_api_key
from ponder.batches.feeder import feed, on_item_finished
from ponder.batches.service import active_batches_for_schedule, create_batch
from ponder.batches.spec import BatchTemplate
from ponder.batches.store import cancel_batch
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.llm.profiles import load_models_file
from ponder.submission import job_validator
from ponder.tables import Job, Tenant, WebhookDelivery, utcnow
from strategies.registry import CATALOG
from worker.celery_app import dispatcher_for

DEFAULTS = {"strategy": {"name": "best_of_n", "params": {"n": 2}}}


@pytest.fixture
def settings(sqlite_settings: Settings) -> Settings:
    return sqlite_settings.model_copy(update={"batch_max_in_flight": 2})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, dispatcher=dispatcher_for(settings))) as c:
        yield c


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    key = create_api_key(client.app.state.sessions, "acme")  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def broker_messages(settings: Settings) -> list[str]:
    folder = Path(settings.broker_url.removeprefix("filesystem://")) / "queue"
    return [p.read_text() for p in folder.iterdir()] if folder.exists() else []


def test_batch_lifecycle_on_sqlite(
    client: TestClient, headers: dict[str, str], settings: Settings
) -> None:
    items = [
        {"custom_id": f"c{i}", "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}}}
        for i in range(3)
    ]
    resp = client.post(
        "/v1/batches",
        headers=headers,
        json={"items": items, "defaults": DEFAULTS, "webhook_url": "https://h.ponder.test/b"},
    )
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert batch["accepted"] == 3
    assert len(broker_messages(settings)) == 2  # K items published, one held

    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    published: list[str] = []

    def publish(job_id: str, priority: int) -> bool:
        published.append(job_id)
        return True

    with sessions() as s:
        fed = list(
            s.execute(
                select(Job.id)
                .where(Job.batch_id == batch["id"], ~Job.held)
                .order_by(Job.item_index)
            ).scalars()
        )
    # items end (as a worker would end them); each end feeds the next
    for job_id in fed:
        with sessions() as s, s.begin():
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="completed", finished_at=utcnow(), started_at=utcnow())
            )
        on_item_finished(sessions, publish, settings, job_id)
    assert len(published) == 1
    with sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == published[0]).values(status="failed"))
    on_item_finished(sessions, publish, settings, published[0])
    got = client.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert got["status"] == "completed" and got["counts"]["failed"] == 1
    with sessions() as s:
        rows = list(
            s.execute(
                select(WebhookDelivery).where(WebhookDelivery.event_type == "batch.completed")
            ).scalars()
        )
    assert len(rows) == 1
    lines = client.get(f"/v1/batches/{batch['id']}/results", headers=headers).text.splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == ["c0", "c1", "c2"]


def test_cancel_and_from_jobs_on_sqlite(client: TestClient, headers: dict[str, str]) -> None:
    for run in ("a", "a", "b"):
        body = {
            "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
            **DEFAULTS,
            "metadata": {"run": run, "tags": ["x", "y"]},
        }
        job = client.post("/v1/jobs", headers=headers, json=body).json()
        client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    resp = client.post(
        "/v1/batches",
        headers=headers,
        json={"from_jobs": {"metadata": {"run": "a", "tags": ["y"]}}, "defaults": {"model": "sim"}},
    )
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert batch["accepted"] == 2
    cancelled = client.post(f"/v1/batches/{batch['id']}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 2
    assert cancelled["finished_at"] is not None
    assert client.post(f"/v1/batches/{batch['id']}/cancel", headers=headers).status_code == 200


def test_schedule_contract_on_sqlite(settings: Settings) -> None:
    """What the schedules side relies on: create_batch in the caller's transaction, one
    batch per (schedule, fire time), and the count of a schedule's unfinished batches."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    validator = job_validator(settings, load_models_file(settings.models_file), CATALOG)
    template = BatchTemplate.model_validate({"dataset": "arithmetic-d1", "defaults": DEFAULTS})
    fire = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    try:
        with sessions() as s, s.begin():
            tenant = Tenant(name="sched")
            s.add(tenant)
            s.flush()
            tenant_id = tenant.id
            created = create_batch(
                s,
                tenant_id=tenant_id,
                spec=template,
                validator=validator,
                settings=settings,
                schedule_id="s-1",
                fire_time=fire,
            )
            assert created.accepted == 50 and created.errors == []
        with sessions() as s:
            assert active_batches_for_schedule(s, "s-1") == 1
            assert active_batches_for_schedule(s, "s-2") == 0
        with sessions() as s, pytest.raises(IntegrityError), s.begin():
            create_batch(
                s,
                tenant_id=tenant_id,
                spec=template,
                validator=validator,
                settings=settings,
                schedule_id="s-1",
                fire_time=fire,
            )
        assert feed(sessions, lambda job_id, priority: True, settings).fed == 2
        cancel_batch(sessions, created.batch_id)
        with sessions() as s:
            assert active_batches_for_schedule(s, "s-1") == 0
    finally:
        engine.dispose()
