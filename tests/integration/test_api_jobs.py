"""The job API against real Postgres and Redis: submit, read, long-poll, list, cancel,
idempotency, tenancy. No worker runs, so submitted jobs stay queued."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from ponder.config import Settings
from ponder.tables import Job, WebhookDelivery
from tests.api_helpers import (
    api_client,
    assert_problem,
    auth_headers,
    job_body,
    queue_key,
    queued_job_ids,
)
from tests.bounds import finishes_within

pytestmark = pytest.mark.integration


def submit(client: TestClient, headers: dict[str, str], **changes: object) -> dict[str, object]:
    response = client.post("/v1/jobs", json=job_body(**changes), headers=headers)
    assert response.status_code == 202, response.text
    job: dict[str, object] = response.json()
    return job


def db_job(client: TestClient, job_id: str) -> Job:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        job = s.get(Job, job_id)
        assert job is not None
        return job


# ------------------------------------------------------------------ submit


def test_submit_queues_the_job_and_publishes_it_to_redis(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    import redis

    response = client.post("/v1/jobs", json=job_body(), headers=headers)

    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["stop_reason"] is None and job["result"] is None and job["error"] is None
    assert job["model"] == "sim"
    assert job["strategy"]["name"] == "best_of_n"
    assert job["strategy"]["params"]["n"] == 4
    assert job["strategy"]["params"]["batch_size"] == 8  # defaults filled in
    assert job["budget"] == {
        "max_tokens": 50000,
        "max_calls": 128,
        "max_cost_usd": None,
        "max_seconds": 600.0,
    }
    assert job["usage"] == {"tokens": 0, "calls": 0, "cost_usd": 0.0, "seconds": 0.0}
    assert job["priority"] == 0 and job["metadata"] == {} and job["batch_id"] is None
    assert job["created_at"] and job["updated_at"] and job["started_at"] is None

    r = redis.Redis.from_url(pg_settings.broker_url)
    assert r.llen(queue_key(pg_settings, 0)) == 1
    r.close()
    assert queued_job_ids(pg_settings) == [job["id"]]

    row = db_job(client, job["id"])
    assert row.status == "queued" and row.enqueued_at is not None
    assert row.problem == {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
    assert 0 <= row.seed < 2**31


def test_submit_stores_every_field_given(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    job = submit(
        client,
        headers,
        verifier={"type": "game24"},
        budget={"max_tokens": 20000, "max_calls": 64, "max_cost_usd": 0.5, "max_seconds": 120},
        webhook_url="https://hooks.ponder.test/hooks/ponder",
        priority=9,
        metadata={"experiment": "a", "nested": {"k": [1, 2]}},
        seed=42,
    )
    assert job["budget"] == {
        "max_tokens": 20000,
        "max_calls": 64,
        "max_cost_usd": 0.5,
        "max_seconds": 120.0,
    }
    assert job["webhook_url"] == "https://hooks.ponder.test/hooks/ponder"
    assert job["priority"] == 9
    assert job["metadata"] == {"experiment": "a", "nested": {"k": [1, 2]}}
    row = db_job(client, str(job["id"]))
    assert row.seed == 42 and row.verifier == {"type": "game24"}
    # the most urgent priority goes to the list the worker reads first
    import redis

    r = redis.Redis.from_url(pg_settings.broker_url)
    assert r.llen(queue_key(pg_settings, 9)) == 1
    r.close()


def test_submit_free_form_prompt(client: TestClient, headers: dict[str, str]) -> None:
    job = submit(
        client,
        headers,
        problem={"prompt": "What is 6 * 7? End with 'Answer: <number>'.", "expected": "42"},
    )
    assert job["status"] == "queued"


def test_submit_with_a_model_from_the_models_file(pg_settings: Settings, tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        "  - name: sim-http\n"
        "    provider: openai\n"
        "    base_url: http://user:secret@127.0.0.1:9100/v1\n"
        "    model: sim-1\n"
        "    api_key_env: SIM_KEY\n",
        encoding="utf-8",
    )
    settings = pg_settings.model_copy(update={"models_file": str(models)})
    with api_client(settings) as client:
        headers = auth_headers(client)
        listed = client.get("/v1/models", headers=headers).json()
        assert [m["name"] for m in listed] == ["sim", "sim-prm", "sim-http"]
        assert "secret" not in str(listed) and "SIM_KEY" not in str(listed)
        # no internals: neither the host nor the upstream model id
        assert "127.0.0.1" not in str(listed) and "sim-1" not in str(listed)
        assert set(listed[2]) == {
            "name",
            "kind",
            "provider",
            "capabilities",
            "price_in_per_mtok",
            "price_out_per_mtok",
        }
        job = submit(client, headers, model="sim-http")
        assert job["model"] == "sim-http"


def test_submit_still_accepts_when_the_broker_is_down(pg_settings: Settings) -> None:
    settings = pg_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with api_client(settings) as client:
        headers = auth_headers(client)
        # publishing gives up after its short retries (under a second); a publish that
        # retried for ever would hang here
        with finishes_within(30, "a submit with the broker down"):
            job = submit(client, headers)
        # the row is committed and queued: the reaper publishes it once Redis is back
        row = db_job(client, str(job["id"]))
        assert row.status == "queued"


# ------------------------------------------------------------------ read


def test_get_own_job(client: TestClient, headers: dict[str, str]) -> None:
    job = submit(client, headers)
    response = client.get(f"/v1/jobs/{job['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == job


def test_another_tenants_job_is_not_found(client: TestClient, headers: dict[str, str]) -> None:
    job = submit(client, headers)
    intruder = auth_headers(client, "globex")

    assert_problem(client.get(f"/v1/jobs/{job['id']}", headers=intruder), 404, "no job")
    assert_problem(client.post(f"/v1/jobs/{job['id']}/cancel", headers=intruder), 404)
    assert client.get("/v1/jobs", headers=intruder).json() == {"data": [], "next_cursor": None}
    # the owner's job was not touched
    assert db_job(client, str(job["id"])).status == "queued"


def test_a_second_key_of_the_same_tenant_sees_its_jobs(
    client: TestClient, headers: dict[str, str]
) -> None:
    job = submit(client, headers)
    other_key = auth_headers(client, "acme")
    assert client.get(f"/v1/jobs/{job['id']}", headers=other_key).status_code == 200


@pytest.mark.parametrize(
    "job_id", ["0b0e5d8e-7f8a-4a57-9a3e-1f5c2b9d6a10", "not-a-uuid", "x" * 300]
)
def test_unknown_job_is_404(client: TestClient, headers: dict[str, str], job_id: str) -> None:
    assert_problem(client.get(f"/v1/jobs/{job_id}", headers=headers), 404, "no job")
    assert_problem(client.post(f"/v1/jobs/{job_id}/cancel", headers=headers), 404, "no job")


def test_wait_returns_after_the_timeout_when_the_job_stays_queued(
    client: TestClient, headers: dict[str, str]
) -> None:
    job = submit(client, headers)
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job['id']}", params={"wait": 1}, headers=headers)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] == "queued"
    # it waited the second asked for (a lower bound: load only lengthens it) ...
    assert elapsed >= 0.9
    # ... and not the server's longest wait (60 s): 30 s is far from both
    assert elapsed < 30


def test_wait_returns_as_soon_as_the_job_finishes(
    client: TestClient, headers: dict[str, str]
) -> None:
    job = submit(client, headers)
    job_id = str(job["id"])
    notifier = client.app.state.job_notifier  # type: ignore[attr-defined]
    answers: list[Any] = []

    def long_poll() -> None:
        answers.append(client.get(f"/v1/jobs/{job_id}", params={"wait": 60}, headers=headers))

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    # cancel once the request is waiting for the job (subscribed to its notification)
    deadline = time.monotonic() + 30
    while job_id not in notifier._waiters:
        assert poller.is_alive() and time.monotonic() < deadline, "the long poll never waited"
        time.sleep(0.01)
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 200
    # woken by the cancel (at once, or at its 2 s re-check), well before its 60 s wait
    # ends: 30 s is far from both
    poller.join(30)
    assert not poller.is_alive(), "the long poll was not woken when the job finished"
    [response] = answers
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_wait_zero_answers_at_once(client: TestClient, headers: dict[str, str]) -> None:
    job = submit(client, headers)
    response = client.get(f"/v1/jobs/{job['id']}?wait=0", headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "queued"


# ------------------------------------------------------------------ list


def test_list_pages_newest_first_across_three_pages(
    client: TestClient, headers: dict[str, str]
) -> None:
    ids = [submit(client, headers, metadata={"i": i})["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get("/v1/jobs", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen.extend(job["id"] for job in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["data"]) == 2
    assert pages == 3
    assert seen == list(reversed(ids))


def test_list_default_page_and_exact_fit(client: TestClient, headers: dict[str, str]) -> None:
    ids = [submit(client, headers)["id"] for _ in range(2)]
    page = client.get("/v1/jobs", headers=headers).json()
    assert [j["id"] for j in page["data"]] == list(reversed(ids))
    assert page["next_cursor"] is None
    # a page exactly as long as what is left has no next page
    page = client.get("/v1/jobs", params={"limit": 2}, headers=headers).json()
    assert len(page["data"]) == 2 and page["next_cursor"] is None


def test_list_filters_by_status_and_batch(client: TestClient, headers: dict[str, str]) -> None:
    first, second, third = (submit(client, headers)["id"] for _ in range(3))
    assert client.post(f"/v1/jobs/{second}/cancel", headers=headers).status_code == 200
    batch_id = "3f1c8a52-0d7e-4b8e-9a55-2c1d7e6f4b21"
    with client.app.state.sessions() as s, s.begin():  # type: ignore[attr-defined]
        s.execute(update(Job).where(Job.id == third).values(batch_id=batch_id))

    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}, headers=headers).json()
    assert [j["id"] for j in cancelled["data"]] == [second]
    queued = client.get("/v1/jobs", params={"status": "queued"}, headers=headers).json()
    assert [j["id"] for j in queued["data"]] == [third, first]
    in_batch = client.get("/v1/jobs", params={"batch_id": batch_id}, headers=headers).json()
    assert [j["id"] for j in in_batch["data"]] == [third]
    assert in_batch["data"][0]["batch_id"] == batch_id
    both = client.get(
        "/v1/jobs", params={"batch_id": batch_id, "status": "cancelled"}, headers=headers
    ).json()
    assert both["data"] == []


def test_list_filters_by_strategy_and_model(client: TestClient, headers: dict[str, str]) -> None:
    best = submit(client, headers)["id"]
    voted = submit(client, headers, strategy={"name": "self_consistency", "params": {"n": 3}})["id"]

    def listed(**params: str) -> list[str]:
        response = client.get("/v1/jobs", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()["data"]]

    assert listed(strategy="best_of_n") == [best]
    assert listed(strategy="self_consistency") == [voted]
    assert listed(strategy="mcts") == []
    assert listed(model="sim") == [voted, best]
    assert listed(model="sim-http") == []
    assert listed(strategy="best_of_n", status="queued", model="sim") == [best]
    assert listed(strategy="best\x00of_n") == []  # no name holds a NUL: nothing matches
    assert client.get("/v1/jobs", params={"strategy": ""}, headers=headers).status_code == 422


def test_list_paginates_within_a_filter(client: TestClient, headers: dict[str, str]) -> None:
    ids = [submit(client, headers)["id"] for _ in range(3)]
    assert client.post(f"/v1/jobs/{ids[1]}/cancel", headers=headers).status_code == 200
    first = client.get("/v1/jobs", params={"status": "queued", "limit": 1}, headers=headers)
    page1 = first.json()
    assert [j["id"] for j in page1["data"]] == [ids[2]]
    page2 = client.get(
        "/v1/jobs",
        params={"status": "queued", "limit": 1, "cursor": page1["next_cursor"]},
        headers=headers,
    ).json()
    assert [j["id"] for j in page2["data"]] == [ids[0]]
    assert page2["next_cursor"] is None


# ------------------------------------------------------------------ idempotency


def test_same_key_same_body_returns_the_same_job(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    keyed = {**headers, "Idempotency-Key": "order-1"}
    first = client.post("/v1/jobs", json=job_body(), headers=keyed)
    assert first.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    # same content, different key order and formatting
    body = job_body()
    reordered = {"strategy": body["strategy"], "problem": body["problem"]}
    again = client.post("/v1/jobs", json=reordered, headers=keyed)
    assert again.status_code == 202  # a replay answers as the first request did
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # one job, one message
    assert queued_job_ids(pg_settings) == [first.json()["id"]]
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert len(s.execute(select(Job.id)).all()) == 1


def test_same_key_different_body_is_a_conflict(client: TestClient, headers: dict[str, str]) -> None:
    keyed = {**headers, "Idempotency-Key": "order-2"}
    assert client.post("/v1/jobs", json=job_body(), headers=keyed).status_code == 202
    different = job_body(strategy={"name": "best_of_n", "params": {"n": 5}})
    assert_problem(
        client.post("/v1/jobs", json=different, headers=keyed),
        409,
        "Idempotency-Key",
        "different request body",
    )


def test_idempotency_keys_are_per_tenant(client: TestClient, headers: dict[str, str]) -> None:
    other = auth_headers(client, "globex")
    a = client.post("/v1/jobs", json=job_body(), headers={**headers, "Idempotency-Key": "k"})
    b = client.post("/v1/jobs", json=job_body(), headers={**other, "Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


def test_concurrent_requests_with_one_key_make_one_job(
    client: TestClient, headers: dict[str, str]
) -> None:
    keyed = {**headers, "Idempotency-Key": "race"}
    barrier = threading.Barrier(6)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        response = client.post("/v1/jobs", json=job_body(), headers=keyed)
        with lock:
            results.append((response.status_code, response.json().get("id", response.text)))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the winner and the five replays alike
    assert [status for status, _ in results] == [202] * 6, results
    assert len({job_id for _, job_id in results}) == 1
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert len(s.execute(select(Job.id)).all()) == 1


# ------------------------------------------------------------------ cancel


def test_cancel_a_queued_job_writes_its_webhook_event(
    client: TestClient, headers: dict[str, str]
) -> None:
    job = submit(client, headers, webhook_url="https://hooks.ponder.test/hooks/ponder")
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["stop_reason"] == "cancelled"
    assert cancelled["finished_at"] is not None
    assert client.get(f"/v1/jobs/{job['id']}", headers=headers).json()["status"] == "cancelled"

    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        deliveries = s.execute(select(WebhookDelivery)).scalars().all()
    assert len(deliveries) == 1
    assert deliveries[0].job_id == job["id"]
    assert deliveries[0].event_type == "job.cancelled"
    assert deliveries[0].url == "https://hooks.ponder.test/hooks/ponder"
    assert deliveries[0].payload["data"]["status"] == "cancelled"


def test_cancel_without_webhook_writes_no_delivery(
    client: TestClient, headers: dict[str, str]
) -> None:
    job = submit(client, headers)
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 200
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        assert s.execute(select(WebhookDelivery)).first() is None


def test_cancel_twice_is_a_conflict_naming_the_status(
    client: TestClient, headers: dict[str, str]
) -> None:
    job = submit(client, headers)
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 200
    doc = assert_problem(
        client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers),
        409,
        "already finished",
        "cancelled",
    )
    assert doc["job_status"] == "cancelled"


def test_cancel_a_running_job_flags_it(client: TestClient, headers: dict[str, str]) -> None:
    job = submit(client, headers)
    with client.app.state.sessions() as s, s.begin():  # type: ignore[attr-defined]
        s.execute(update(Job).where(Job.id == job["id"]).values(status="running", lease_owner="w1"))
    response = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested"] is True


def test_cancel_a_completed_job_is_a_conflict(client: TestClient, headers: dict[str, str]) -> None:
    job = submit(client, headers)
    with client.app.state.sessions() as s, s.begin():  # type: ignore[attr-defined]
        s.execute(
            update(Job)
            .where(Job.id == job["id"])
            .values(
                status="completed",
                stop_reason="verified",
                result={"answer": "(10-4)*(13-9)", "score": 1.0, "verified": True},
            )
        )
    assert_problem(client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers), 409, "'completed'")
    shown = client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
    assert shown["result"] == {"answer": "(10-4)*(13-9)", "score": 1.0, "verified": True}
    assert shown["stop_reason"] == "verified"


# ------------------------------------------------------------------ catalog


def test_strategies_list_params_as_json_schema(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/strategies", headers=headers)
    assert response.status_code == 200
    by_name = {s["name"]: s for s in response.json()}
    best_of_n = by_name["best_of_n"]
    assert best_of_n["description"]
    assert best_of_n["params_schema"]["properties"]["n"]["minimum"] == 1


def test_models_list_always_has_sim(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/models", headers=headers)
    assert response.status_code == 200
    assert response.json()[0]["name"] == "sim"


@pytest.mark.parametrize("path", ["/v1/strategies", "/v1/models", "/v1/jobs"])
def test_catalog_and_listing_need_a_key(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert_problem(response, 401, "Authorization: Bearer")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_openapi_documents_problem_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Ponder"
    post = spec["paths"]["/v1/jobs"]["post"]
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert "401" in post["responses"]
    assert "ProblemDetail" in spec["components"]["schemas"]
    create = spec["components"]["schemas"]["JobCreate"]
    assert all(field.get("description") for field in create["properties"].values()), (
        "every JobCreate field is described"
    )
