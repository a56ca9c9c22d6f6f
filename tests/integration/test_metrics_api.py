"""The API's ``GET /metrics`` against real Postgres: no key needed, left out of the API
document, parsed by prometheus_client's parser; what the API counts (jobs and batch
items accepted, queued jobs cancelled, schedule runs a trigger starts) and the state it
reads from the database (queue depth by priority, jobs in flight, batch items); turned
off, or served on a port of its own; a database that stalls leaves the scrape answering
with ``ponder_metrics_database_up 0``."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update

from ponder.config import Settings
from ponder.db import make_engine
from ponder.localproc import free_port
from ponder.tables import Job, utcnow
from tests.api_helpers import api_client, assert_problem, auth_headers, job_body
from tests.metrics_helpers import Scrape, check_labels_bounded, delta
from tests.schedule_helpers import TEMPLATE, tenant_with_dataset

pytestmark = pytest.mark.integration


def scrape(client: TestClient) -> Scrape:
    answer = client.get("/metrics")  # no Authorization header
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    scraped = Scrape.parse(answer.text)
    check_labels_bounded(scraped)
    return scraped


def test_metrics_need_no_key_and_stay_out_of_the_api_document(client: TestClient) -> None:
    scraped = scrape(client)
    assert scraped.total("ponder_metrics_database_up") == 1
    assert scraped.families["ponder_jobs_submitted"] == "counter"
    assert scraped.families["ponder_jobs_queued"] == "gauge"
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    # OpenMetrics for a scraper that asks for it
    answer = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


def test_what_the_api_accepts_and_cancels_is_counted(client: TestClient) -> None:
    headers = auth_headers(client)
    before = scrape(client)
    ids = []
    for priority in (0, 3, 3):
        answer = client.post("/v1/jobs", json=job_body(priority=priority), headers=headers)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    # the same Idempotency-Key and body again: the job it made, not a new one
    for _ in range(2):
        answer = client.post(
            "/v1/jobs", json=job_body(), headers={**headers, "Idempotency-Key": "once"}
        )
        assert answer.status_code == 202, answer.text
    cancelled = client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    items = [{"problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}}] * 3
    defaults = {"strategy": {"name": "best_of_n", "params": {"n": 1}}}
    batch = client.post("/v1/batches", json={"items": items, "defaults": defaults}, headers=headers)
    assert batch.status_code in (200, 201, 202), batch.text
    after = scrape(client)

    moved = delta(before, after)
    assert moved("ponder_jobs_submitted_total", kind="job") == 4
    assert moved("ponder_jobs_submitted_total", kind="batch_item") == 3
    assert moved("ponder_jobs_finished_total", status="cancelled", stop_reason="cancelled") == 1
    # the state: nothing ran (no worker), so everything still waits
    assert after.total("ponder_jobs_queued", priority="3", held="false") == 2
    assert after.total("ponder_jobs_queued", priority="0") == 4  # the key's job + 3 items
    assert after.total("ponder_batch_items") == 3
    assert after.total("ponder_jobs_running") == 0
    assert after.total("ponder_queue_oldest_job_age_seconds", held="false") > 0


def test_jobs_in_flight_and_the_oldest_queued_job(
    client: TestClient, pg_settings: Settings
) -> None:
    headers = auth_headers(client)
    ids = [client.post("/v1/jobs", json=job_body(), headers=headers).json()["id"] for _ in range(4)]
    engine = make_engine(pg_settings.database_url)
    with engine.begin() as conn:
        # one running on a worker, one between slices, one submitted an hour ago
        conn.execute(update(Job).where(Job.id == ids[0]).values(status="running", lease_owner="w"))
        conn.execute(update(Job).where(Job.id == ids[1]).values(status="running"))
        an_hour_ago = utcnow() - timedelta(hours=1)
        conn.execute(update(Job).where(Job.id == ids[2]).values(created_at=an_hour_ago))
    engine.dispose()
    scraped = scrape(client)
    assert scraped.total("ponder_jobs_running", leased="true") == 1
    assert scraped.total("ponder_jobs_running", leased="false") == 1
    assert scraped.total("ponder_jobs_queued") == 2
    assert scraped.total("ponder_queue_oldest_job_age_seconds", held="false") >= 3600


def test_a_schedule_trigger_counts_its_run_and_its_items(client: TestClient) -> None:
    headers = auth_headers(client, "acme")
    tenant_with_dataset(client.app.state.sessions, "acme")  # type: ignore[attr-defined]
    schedule = client.post(
        "/v1/schedules",
        json={
            "name": "nightly",
            "cron": "30 2 * * *",
            "timezone": "UTC",
            "template": copy.deepcopy(TEMPLATE),
        },
        headers=headers,
    )
    assert schedule.status_code == 201, schedule.text
    before = scrape(client)
    run = client.post(f"/v1/schedules/{schedule.json()['id']}/trigger", headers=headers)
    assert run.status_code in (200, 201, 202), run.text
    moved = delta(before, scrape(client))
    assert moved("ponder_schedule_fires_total", kind="manual", outcome="started") == 1
    assert moved("ponder_schedule_fires_total") == 1
    assert moved("ponder_jobs_submitted_total", kind="batch_item") == 2  # the dataset's two


def test_metrics_turned_off(pg_settings: Settings) -> None:
    with api_client(pg_settings.model_copy(update={"metrics_enabled": False})) as client:
        answer = client.get("/metrics")
        assert_problem(answer, 404)
        assert "PONDER_METRICS_ENABLED" in answer.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_metrics_on_a_port_of_their_own(pg_settings: Settings) -> None:
    port = free_port()
    settings = pg_settings.model_copy(
        update={"api_metrics_port": port, "api_metrics_host": "127.0.0.1"}
    )
    url = f"http://127.0.0.1:{port}/metrics"
    with api_client(settings) as client:
        answer = client.get("/metrics")
        assert_problem(answer, 404)
        assert "PONDER_API_METRICS_PORT" in answer.json()["detail"]
        submitted = client.post("/v1/jobs", json=job_body(), headers=auth_headers(client))
        assert submitted.status_code == 202
        served = httpx.get(url, timeout=10)
        assert served.status_code == 200
        scraped = Scrape.parse(served.text)
        assert scraped.total("ponder_metrics_database_up") == 1
        assert scraped.total("ponder_jobs_queued") == 1
    # the listener stops with the app
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)


def test_a_stalled_database_leaves_the_scrape_answering(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(update={"metrics_read_timeout_seconds": 0.5})
    with api_client(settings) as client:
        engine = make_engine(pg_settings.database_url)
        locked = threading.Event()
        release = threading.Event()

        def hold_the_jobs_table() -> None:
            with engine.begin() as conn:
                conn.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
                locked.set()
                release.wait(30)

        holder = threading.Thread(target=hold_the_jobs_table)
        holder.start()
        try:
            assert locked.wait(10)
            answer = client.get("/metrics")
        finally:
            release.set()
            holder.join()
            engine.dispose()
        assert answer.status_code == 200
        scraped = Scrape.parse(answer.text)
        assert scraped.total("ponder_metrics_database_up") == 0
        assert not scraped.has("ponder_jobs_queued")
        assert scraped.has("ponder_metrics_database_read_seconds")
        # the lock is gone: the next scrape reads the state again
        assert scrape(client).total("ponder_metrics_database_up") == 1
