"""Per-tenant limits (ponder.quotas) on every path that makes work, through the real API
on real Postgres: jobs, batches (inline and JSON Lines), schedule templates and runs,
the batch feeder, and the worker's model calls (daily spend). Another tenant is never
affected; the admin route and the command line manage the limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from ponder.batches.feeder import feed
from ponder.cli import app as cli_app
from ponder.config import Settings
from ponder.quotas import SPEND_USD, set_limits, tenant_by_name, used_today
from ponder.tables import Job, ScheduleRun, TenantCounter
from tests.api_helpers import api_client, assert_problem, auth_headers, job_body
from tests.jobs_helpers import run_until_done
from tests.schedule_helpers import TEMPLATE, tenant_with_dataset
from worker.runner import WorkerServices

pytestmark = pytest.mark.integration

MODELS = """\
models:
  - name: pricey
    provider: sim
    model: sim-1
    price_in_per_mtok: 1000
    price_out_per_mtok: 1000
"""


@pytest.fixture
def settings(pg_settings: Settings, tmp_path: Path) -> Settings:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    # limits are read on every request, so a change applies at once
    return pg_settings.model_copy(
        update={"tenant_limits_cache_seconds": 0.0, "models_file": str(models)}
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as c:
        yield c


def sessions_of(client: TestClient) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = client.app.state.sessions  # type: ignore[attr-defined]
    return factory


def limit(client: TestClient, tenant: str, **changes: float | int | None) -> None:
    """Set tenant ``tenant``'s own limits, as `ponder tenants limits set` does."""
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    with sessions_of(client)() as s:
        found = tenant_by_name(s, tenant)
        assert found is not None
        set_limits(s, found.id, changes, settings)
        s.commit()


def submit(client: TestClient, headers: dict[str, str], **changes: Any) -> Any:
    return client.post("/v1/jobs", json=job_body(**changes), headers=headers)


def batch(
    client: TestClient, headers: dict[str, str], n: int, **fields: Any
) -> Any:  # the response
    items = [{"problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}}] * n
    body = {"items": items, "defaults": {"strategy": {"name": "best_of_n"}}, **fields}
    return client.post("/v1/batches", json=body, headers=headers)


def assert_429(response: Any, limit_name: str, *phrases: str) -> dict[str, Any]:
    doc = assert_problem(response, 429, limit_name, *phrases)
    assert doc["limit"] == limit_name
    assert int(response.headers["Retry-After"]) >= 1
    assert doc["retry_after_seconds"] == int(response.headers["Retry-After"])
    assert "ponder tenants limits set" in doc["detail"]  # how to get more
    return doc


# ---------------------------------------------------------------- jobs


def test_a_tenant_over_its_rate_gets_429_within_the_burst_and_others_do_not(
    client: TestClient,
) -> None:
    acme, globex = auth_headers(client, "acme"), auth_headers(client, "globex")
    limit(client, "acme", jobs_per_minute=6, jobs_burst=3)
    statuses = [submit(client, acme, seed=i).status_code for i in range(3)]
    assert statuses == [202, 202, 202]
    refused = submit(client, acme, seed=99)
    doc = assert_429(refused, "jobs_per_minute", "6 jobs a minute", "bursts of at most 3")
    assert 1 <= doc["retry_after_seconds"] <= 10  # one token back at 6 a minute
    assert doc["limit_value"] == 6
    # refused again at once (this time without asking the database)
    assert_429(submit(client, acme, seed=100), "jobs_per_minute")
    # another tenant (server defaults: 600 a minute) is not affected
    assert all(submit(client, globex, seed=i).status_code == 202 for i in range(5))
    with sessions_of(client)() as s:
        tenant = tenant_by_name(s, "acme")
        assert tenant is not None
        stored = s.scalars(select(Job.id).where(Job.tenant_id == tenant.id)).all()
    assert len(stored) == 3


def test_a_known_flood_is_refused_before_its_body_is_read(settings: Settings) -> None:
    """With its limits in memory (the default cache), a process that saw a tenant's
    bucket empty refuses it before validating the body or touching the database; a
    request with an Idempotency-Key still gets its replay."""
    with api_client(settings.model_copy(update={"tenant_limits_cache_seconds": 60})) as client:
        acme = auth_headers(client, "acme")
        limit(client, "acme", jobs_per_minute=1, jobs_burst=1)
        first = client.post("/v1/jobs", json=job_body(), headers={**acme, "Idempotency-Key": "a"})
        assert first.status_code == 202
        assert_429(submit(client, acme, seed=1), "jobs_per_minute")
        nonsense = client.post("/v1/jobs", json={"nonsense": 1}, headers=acme)
        assert_429(nonsense, "jobs_per_minute")
        replay = client.post("/v1/jobs", json=job_body(), headers={**acme, "Idempotency-Key": "a"})
        assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]
        assert replay.headers["Idempotent-Replayed"] == "true"


def test_the_bucket_holds_across_api_processes(settings: Settings) -> None:
    """Two API instances (each with its own memory, as two processes have) share one
    bucket per tenant: together they accept exactly the burst."""
    with api_client(settings) as one, api_client(settings) as two:
        headers = auth_headers(one, "acme")
        limit(one, "acme", jobs_per_minute=1, jobs_burst=10)
        results: list[int] = []
        lock = threading.Lock()

        def flood(client: TestClient, seeds: range) -> None:
            for seed in seeds:
                code = submit(client, headers, seed=seed).status_code
                with lock:
                    results.append(code)

        threads = [
            threading.Thread(target=flood, args=(client, range(i * 10, i * 10 + 10)))
            for i, client in enumerate([one, two, one, two])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(set(results)) == [202, 429]
    assert results.count(202) == 10


def test_a_rate_limited_job_that_is_not_stored_gives_its_token_back(
    client: TestClient,
) -> None:
    acme = auth_headers(client, "acme")
    limit(client, "acme", jobs_per_minute=1, jobs_burst=1)
    # refused at validation: no token is taken
    assert_problem(submit(client, acme, strategy={"name": "nope"}), 422, "unknown strategy")
    assert submit(client, acme).status_code == 202
    assert_429(submit(client, acme, seed=2), "jobs_per_minute")


def test_priority_above_the_tenants_maximum_is_a_422(client: TestClient) -> None:
    acme, globex = auth_headers(client, "acme"), auth_headers(client, "globex")
    limit(client, "acme", max_priority=3)
    assert submit(client, acme, priority=3).status_code == 202
    doc = assert_problem(
        submit(client, acme, priority=4), 422, "body.priority", "at most 3", "max_priority"
    )
    assert doc["errors"][0]["loc"] == ["body", "priority"]
    assert submit(client, globex, priority=9).status_code == 202  # the server allows 9


def test_budget_above_the_tenants_ceiling_is_a_422(client: TestClient) -> None:
    acme = auth_headers(client, "acme")
    limit(client, "acme", max_job_tokens=20_000, max_job_cost_usd=2.0)
    assert submit(client, acme, budget={"max_tokens": 20_000}).status_code == 202
    assert_problem(
        submit(client, acme, budget={"max_tokens": 20_001}),
        422,
        "body.budget.max_tokens",
        "at most 20000 for this tenant",
    )
    assert_problem(
        submit(client, acme, budget={"max_cost_usd": 3}), 422, "body.budget.max_cost_usd"
    )
    # above the server's ceiling it says so
    assert_problem(
        submit(client, acme, budget={"max_calls": 10**9}), 422, "at most 100000 on this server"
    )
    # a job without a budget gets defaults within the tenant's ceilings
    job = submit(client, acme, seed=5).json()
    assert job["budget"]["max_tokens"] <= 20_000


def test_jobs_queued_and_running_are_capped(client: TestClient) -> None:
    acme, globex = auth_headers(client, "acme"), auth_headers(client, "globex")
    limit(client, "acme", max_active_jobs=2)
    assert [submit(client, acme, seed=i).status_code for i in range(2)] == [202, 202]
    doc = assert_429(submit(client, acme, seed=3), "max_active_jobs", "2 jobs queued or running")
    assert doc["limit_value"] == 2
    assert submit(client, globex).status_code == 202
    # a batch counts its items too
    assert_429(batch(client, acme, 1), "max_active_jobs")
    # once one is cancelled there is room again (after a fresh count)
    first = client.get("/v1/jobs", headers=acme).json()["data"][0]["id"]
    assert client.post(f"/v1/jobs/{first}/cancel", headers=acme).status_code == 200
    assert submit(client, acme, seed=4).status_code == 202


def test_a_tenant_out_of_spend_cannot_submit(client: TestClient) -> None:
    acme = auth_headers(client, "acme")
    limit(client, "acme", spend_per_day_usd=1.0)
    with sessions_of(client)() as s:
        tenant = tenant_by_name(s, "acme")
        assert tenant is not None
        from ponder.quotas import add_today

        assert add_today(s.connection(), tenant.id, SPEND_USD, 1.0, limit=1.0, now=_now()) == 1.0
        s.commit()
    assert_429(submit(client, acme), "spend_per_day_usd", "00:00 UTC")
    assert_429(batch(client, acme, 1), "spend_per_day_usd")


def _now() -> float:
    import time

    return time.time()


# ---------------------------------------------------------------- batches


def test_batch_items_per_day(client: TestClient) -> None:
    acme, globex = auth_headers(client, "acme"), auth_headers(client, "globex")
    limit(client, "acme", batch_items_per_day=5)
    assert batch(client, acme, 3).status_code == 202
    doc = assert_429(batch(client, acme, 3), "batch_items_per_day", "3 used today", "00:00 UTC")
    assert doc["limit_value"] == 5
    assert batch(client, acme, 2).status_code == 202  # exactly what is left
    # more items than a whole day allows can never pass: a 422
    limit(client, "acme", batch_items_per_day=4)
    assert_problem(batch(client, acme, 5), 422, "batch_items_per_day", "5 items")
    assert batch(client, globex, 6).status_code == 202
    # a JSON Lines upload counts the same way
    lines = "\n".join(json.dumps(job_body(seed=i)) for i in range(2))
    upload = client.post(
        "/v1/batches",
        content=lines,
        headers={**acme, "Content-Type": "application/x-ndjson"},
    )
    assert_429(upload, "batch_items_per_day")


def test_batch_items_over_the_tenants_priority_or_ceilings_are_refused(
    client: TestClient,
) -> None:
    acme = auth_headers(client, "acme")
    limit(client, "acme", max_priority=2, max_job_tokens=10_000)
    items = [
        {"custom_id": "ok", "problem": job_body()["problem"], "priority": 2},
        {"custom_id": "urgent", "problem": job_body()["problem"], "priority": 5},
        {"custom_id": "big", "problem": job_body()["problem"], "budget": {"max_tokens": 20_000}},
    ]
    response = client.post(
        "/v1/batches",
        json={"items": items, "defaults": {"strategy": {"name": "best_of_n"}}},
        headers=acme,
    )
    assert response.status_code == 202, response.text
    doc = response.json()
    assert doc["accepted"] == 1
    errors = {e["custom_id"]: e["detail"] for e in doc["item_errors"]}
    assert "priority" in errors["urgent"] and "at most 2" in errors["urgent"]
    assert "budget.max_tokens" in errors["big"] and "10000" in errors["big"]
    # defaults the tenant may not use refuse every item
    strict = client.post(
        "/v1/batches",
        json={
            "items": [{"problem": job_body()["problem"]}],
            "defaults": {"strategy": {"name": "best_of_n"}, "priority": 9},
        },
        headers=acme,
    )
    assert_problem(strict, 422, "no valid item", "priority")


def test_a_batch_cap_is_bounded_and_an_items_share_is_held_to_the_ceiling(
    client: TestClient,
) -> None:
    """The issue's walk-around: a batch capped at $8 000 000 gave an item without a cost
    limit cap / 8 = $1 000 000, far above what a job may ask for."""
    acme = auth_headers(client, "acme")
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    response = batch(client, acme, 2, budget={"max_cost_usd": 8_000_000})
    assert response.status_code == 202, response.text
    with sessions_of(client)() as s:
        budgets = s.scalars(
            select(Job.budget).where(Job.batch_id == response.json()["id"], ~Job.held)
        ).all()
    assert budgets and all(b["max_cost_usd"] <= settings.limit_max_cost_usd for b in budgets)
    # and the tenant's own ceiling when it is lower
    limit(client, "acme", max_job_cost_usd=5)
    response = batch(client, acme, 2, budget={"max_cost_usd": 8_000})
    with sessions_of(client)() as s:
        budgets = s.scalars(
            select(Job.budget).where(Job.batch_id == response.json()["id"], ~Job.held)
        ).all()
    assert budgets and all(b["max_cost_usd"] == 5 for b in budgets)
    # a cap no batch could ever spend is refused
    huge = settings.limit_max_cost_usd * settings.batch_max_items * 10
    assert_problem(
        batch(client, acme, 1, budget={"max_cost_usd": huge}), 422, "budget.max_cost_usd"
    )


@pytest.fixture
def strict_client(settings: Settings) -> Iterator[TestClient]:
    """An API that refuses private webhook targets, as deployed."""
    with api_client(settings.model_copy(update={"webhook_allow_private": False})) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://10.0.0.5/x",
        "http://localhost/",
    ],
)
def test_private_webhook_urls_are_refused_up_front_everywhere(
    strict_client: TestClient, url: str
) -> None:
    client = strict_client
    acme = auth_headers(client, "acme")
    tenant_with_dataset(sessions_of(client), "acme")
    assert_problem(submit(client, acme, webhook_url=url), 422, "webhooks may not be sent there")
    # a batch's own webhook_url
    response = batch(client, acme, 1, webhook_url=url)
    doc = assert_problem(response, 422, "webhook_url", "webhooks may not be sent there")
    assert doc["errors"][0]["loc"] == ["body", "webhook_url"]
    # its defaults' (each item's) webhook_url
    response = client.post(
        "/v1/batches",
        json={
            "items": [{"problem": job_body()["problem"]}],
            "defaults": {"strategy": {"name": "best_of_n"}, "webhook_url": url},
        },
        headers=acme,
    )
    assert_problem(response, 422, "webhooks may not be sent there")
    # a JSON Lines header
    lines = [json.dumps({"batch": {"webhook_url": url}}), json.dumps(job_body())]
    upload = client.post(
        "/v1/batches",
        content="\n".join(lines),
        headers={**acme, "Content-Type": "application/x-ndjson"},
    )
    assert_problem(upload, 422, "line 1 (the batch header)", "webhooks may not be sent there")
    # a schedule template
    schedule = {"name": "s", "cron": "0 3 * * *", "template": {**TEMPLATE, "webhook_url": url}}
    response = client.post("/v1/schedules", json=schedule, headers=acme)
    doc = assert_problem(response, 422, "webhooks may not be sent there")
    assert doc["errors"][0]["loc"] == ["body", "template", "webhook_url"]


# ---------------------------------------------------------------- schedules


def test_schedule_templates_are_held_to_the_tenants_limits(client: TestClient) -> None:
    acme = auth_headers(client, "acme")
    tenant_with_dataset(sessions_of(client), "acme")
    limit(client, "acme", max_priority=1, max_job_tokens=5000)

    def create(template: dict[str, Any]) -> Any:
        body = {"name": f"s{len(json.dumps(template))}", "cron": "0 3 * * *", "template": template}
        return client.post("/v1/schedules", json=body, headers=acme)

    defaults = TEMPLATE["defaults"]
    over_priority = {**TEMPLATE, "defaults": {**defaults, "priority": 5}}
    assert_problem(create(over_priority), 422, "template", "priority")
    over_budget = {**TEMPLATE, "defaults": {**defaults, "budget": {"max_tokens": 9000}}}
    assert_problem(create(over_budget), 422, "template", "max_tokens", "5000")
    # the dataset has 2 items: more than the tenant may run in a day, ever
    limit(client, "acme", batch_items_per_day=1)
    assert_problem(create(TEMPLATE), 422, "batch_items_per_day")
    # nothing was counted by these checks
    limit(client, "acme", batch_items_per_day=2)
    assert create(TEMPLATE).status_code == 201
    assert batch(client, acme, 2).status_code == 202


def test_a_schedule_run_over_a_limit_is_skipped_saying_which(client: TestClient) -> None:
    acme = auth_headers(client, "acme")
    tenant_with_dataset(sessions_of(client), "acme")
    limit(client, "acme", batch_items_per_day=3)
    body = {"name": "nightly", "cron": "0 3 * * *", "template": TEMPLATE}
    created = client.post("/v1/schedules", json=body, headers=acme)
    assert created.status_code == 201, created.text
    base = f"/v1/schedules/{created.json()['id']}"
    first = client.post(f"{base}/trigger", headers=acme).json()
    assert first["status"] == "started"  # 2 of 3 items today
    assert client.post(f"/v1/batches/{first['batch_id']}/cancel", headers=acme).status_code == 200
    second = client.post(f"{base}/trigger", headers=acme).json()
    assert second["status"] == "skipped"
    assert "batch_items_per_day" in second["detail"]
    with sessions_of(client)() as s:
        run = s.get(ScheduleRun, second["id"])
        assert run is not None and run.batch_id is None


def test_schedules_and_datasets_are_capped_per_tenant(client: TestClient) -> None:
    acme, globex = auth_headers(client, "acme"), auth_headers(client, "globex")
    tenant_with_dataset(sessions_of(client), "acme")  # one dataset already
    limit(client, "acme", max_schedules=1, max_datasets=1)
    body = {"name": "one", "cron": "0 3 * * *", "template": TEMPLATE}
    assert client.post("/v1/schedules", json=body, headers=acme).status_code == 201
    refused = client.post("/v1/schedules", json={**body, "name": "two"}, headers=acme)
    doc = assert_problem(refused, 429, "max_schedules", "delete one", "ponder tenants limits set")
    assert doc["limit"] == "max_schedules" and "Retry-After" not in refused.headers
    upload = "\n".join(json.dumps(p) for p in [job_body()["problem"]])
    refused = client.post(
        "/v1/datasets?name=more",
        content=upload,
        headers={**acme, "Content-Type": "application/x-ndjson"},
    )
    assert_problem(refused, 429, "max_datasets")
    ok = client.post(
        "/v1/datasets?name=more",
        content=upload,
        headers={**globex, "Content-Type": "application/x-ndjson"},
    )
    assert ok.status_code == 201, ok.text


# ---------------------------------------------------------------- spend per day (worker)


def test_daily_spend_stops_a_running_jobs_new_calls(client: TestClient, settings: Settings) -> None:
    acme, globex = auth_headers(client, "acme"), auth_headers(client, "globex")
    limit(client, "acme", spend_per_day_usd=2.0)
    expensive = {
        "strategy": {
            "name": "best_of_n",
            "params": {"n": 32, "batch_size": 2, "max_tokens": 256, "stop_when_verified": False},
        },
        "model": "pricey",
        "budget": {"max_calls": 64, "max_tokens": 1_000_000},
    }
    first = submit(client, acme, **expensive).json()
    second = submit(client, acme, seed=7, **expensive).json()
    other = submit(client, globex, **expensive).json()
    svc = WorkerServices(settings)
    try:
        run_until_done(svc, first["id"])
        run_until_done(svc, second["id"])
        run_until_done(svc, other["id"])
    finally:
        svc.close()
    with sessions_of(client)() as s:
        one, two, three = (s.get(Job, j["id"]) for j in (first, second, other))
        tenant = tenant_by_name(s, "acme")
        assert tenant is not None and one and two and three
        spent_today = used_today(s, tenant.id, SPEND_USD, now=_now())
        counters = s.scalars(select(TenantCounter).where(TenantCounter.tenant_id == tenant.id))
        assert {c.name for c in counters} >= {SPEND_USD}
    # the first job spent what the day allowed, then stopped (completed, best so far)
    assert one.status == "completed" and one.stop_reason == "daily_spend_limit"
    assert one.error is not None and "spend_per_day_usd" in one.error
    assert 0 < one.usage_cost_usd <= 2.0
    assert one.usage_calls < 32
    # the second could not make one more call
    assert two.status == "completed" and two.stop_reason == "daily_spend_limit"
    assert two.usage_calls == 0
    # every reservation was settled at what the calls cost
    assert spent_today == pytest.approx(one.usage_cost_usd + two.usage_cost_usd, abs=1e-6)
    assert spent_today <= 2.0
    # another tenant (no spend limit) ran its job out
    assert three.stop_reason in ("verified", "search_exhausted") and three.usage_calls == 32
    assert three.usage_cost_usd > 2.0
    # what is left of the day (less than these calls' worst case) still lets a cheaper
    # job in: submissions are refused once the whole day is spent (see above)
    assert submit(client, acme, seed=8).status_code == 202


def test_the_feeder_starts_no_batch_item_of_a_tenant_out_of_spend(
    client: TestClient, settings: Settings
) -> None:
    acme = auth_headers(client, "acme")
    response = batch(client, acme, 3)
    assert response.status_code == 202
    limit(client, "acme", spend_per_day_usd=0.5)
    with sessions_of(client)() as s:
        tenant = tenant_by_name(s, "acme")
        assert tenant is not None
        from ponder.quotas import add_today

        add_today(s.connection(), tenant.id, SPEND_USD, 0.5, limit=0.5, now=_now())
        s.commit()
        s.execute(  # the items the batch creation fed go back to waiting
            update(Job).where(Job.batch_id == response.json()["id"]).values(held=True)
        )
        s.commit()
    assert feed(sessions_of(client), lambda _id, _p: True, settings).fed == 0
    limit(client, "acme", spend_per_day_usd=None)
    assert feed(sessions_of(client), lambda _id, _p: True, settings).fed == 3


# ---------------------------------------------------------------- management


def test_the_admin_route_needs_an_admin_key(settings: Settings) -> None:
    with api_client(settings.model_copy(update={"admin_tenants": ["ops"]})) as client:
        ops, acme = auth_headers(client, "ops"), auth_headers(client, "acme")
        path = "/v1/admin/tenants/acme/limits"
        assert_problem(client.get(path, headers=acme), 403, "admin")
        assert_problem(client.patch(path, json={"max_priority": 1}, headers=acme), 403)
        shown = client.get(path, headers=ops).json()
        assert shown["limits"]["max_priority"] == {"value": 9, "source": "server"}
        assert shown["usage"]["active_jobs"] == 0
        changed = client.patch(
            path, json={"max_priority": 1, "jobs_per_minute": 30}, headers=ops
        ).json()
        assert changed["limits"]["max_priority"] == {"value": 1, "source": "tenant"}
        assert changed["limits"]["jobs_per_minute"] == {"value": 30, "source": "tenant"}
        assert_problem(submit(client, acme, priority=2), 422, "at most 1")
        back = client.patch(path, json={"max_priority": None}, headers=ops).json()
        assert back["limits"]["max_priority"]["source"] == "server"
        assert back["limits"]["jobs_per_minute"]["value"] == 30  # left as it was
        assert_problem(
            client.patch(path, json={"max_job_tokens": 10**12}, headers=ops),
            422,
            "body.max_job_tokens",
            "at most the server's",
        )
        assert_problem(client.patch(path, json={"colour": 1}, headers=ops), 422)
        assert_problem(client.get("/v1/admin/tenants/nobody/limits", headers=ops), 404)


def test_the_command_line_shows_and_sets_limits(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth_headers(client, "acme")
    monkeypatch.setenv("PONDER_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    result = runner.invoke(
        cli_app,
        ["tenants", "limits", "set", "acme", "--jobs-per-minute", "60", "--max-priority", "4"],
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["limits"]["jobs_per_minute"] == {"value": 60.0, "source": "tenant"}
    assert shown["limits"]["max_priority"] == {"value": 4, "source": "tenant"}
    result = runner.invoke(
        cli_app, ["tenants", "limits", "set", "acme", "--max-priority", "default"]
    )
    assert json.loads(result.stdout)["limits"]["max_priority"]["source"] == "server"
    result = runner.invoke(cli_app, ["tenants", "limits", "show", "acme"])
    assert result.exit_code == 0 and json.loads(result.stdout)["tenant"] == "acme"
    bad = runner.invoke(cli_app, ["tenants", "limits", "set", "acme", "--max-priority", "12"])
    assert bad.exit_code == 2 and "between 0 and 9" in bad.output
    bad = runner.invoke(cli_app, ["tenants", "limits", "set", "acme", "--jobs-burst", "1.5"])
    assert bad.exit_code == 2 and "whole number" in bad.output
    missing = runner.invoke(cli_app, ["tenants", "limits", "show", "nobody"])
    assert missing.exit_code == 2 and "no tenant named" in missing.output
