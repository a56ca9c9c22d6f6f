"""Batches through their life on real Postgres + Redis: the feeder (in-flight limits,
fairness between tenants, priority, the reaper leaving held items alone), running items
with the worker's own code, completion with exactly one ``batch.completed`` outbox row,
cancel, ``from_jobs`` re-runs and their before/after figures, and the batch budget cap.

Items are run in-process with :func:`worker.runner.run_slice` followed by what the Celery
task does after a slice (:func:`ponder.batches.feeder.on_item_finished`), so each step
is deterministic; tests/e2e/test_batch_stack.py runs the same with real workers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from ponder.batches.feeder import feed, on_item_finished, tick
from ponder.batches.store import complete_if_done
from ponder.config import Settings
from ponder.jobstore import jobs_to_requeue
from ponder.tables import Batch, Job, WebhookDelivery, utcnow
from tests.api_helpers import api_client, auth_headers, queued_job_ids
from worker.runner import WorkerServices, run_slice

pytestmark = pytest.mark.integration

DEFAULTS = {
    "strategy": {"name": "best_of_n", "params": {"n": 2, "max_tokens": 256}},
    "model": "sim",
    "budget": {"max_tokens": 4000},
}


def game24(numbers: list[int], custom_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"problem": {"task": "game24", "input": {"numbers": numbers}}}
    if custom_id:
        body["custom_id"] = custom_id
    return {**body, **fields}


PUZZLES = [[1, 2, 3, 4], [4, 9, 10, 13], [2, 2, 2, 12], [4, 6, 6, 6], [1, 1, 4, 6], [3, 3, 8, 8]]


@pytest.fixture
def settings(pg_settings: Settings) -> Settings:
    return pg_settings.model_copy(
        update={"batch_max_in_flight": 2, "batch_tenant_max_in_flight": 3}
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with api_client(settings) as c:
        yield c


@pytest.fixture
def svc(settings: Settings) -> Iterator[WorkerServices]:
    services = WorkerServices(settings)
    yield services
    services.close()


class Published:
    """A Publish that records (the broker's job in these tests is done by ``drain``)."""

    def __init__(self) -> None:
        self.ids: list[tuple[str, int]] = []

    def __call__(self, job_id: str, priority: int) -> bool:
        self.ids.append((job_id, priority))
        return True


def fed_unfinished(svc: WorkerServices, batch_id: str) -> list[str]:
    with svc.sessions() as s:
        return list(
            s.execute(
                select(Job.id)
                .where(Job.batch_id == batch_id, ~Job.held, Job.status == "queued")
                .order_by(Job.item_index)
            ).scalars()
        )


def drain(svc: WorkerServices, batch_id: str, settings: Settings) -> int:
    """Run every fed item as a worker would (a slice, then the after-finish hook) until
    the batch has nothing fed left. Returns how many items ran."""
    ran = 0
    publish = Published()
    while ids := fed_unfinished(svc, batch_id):
        for job_id in ids:
            outcome = run_slice(svc, job_id, "test-worker")
            assert outcome.kind == "finished", outcome
            on_item_finished(svc.sessions, publish, settings, job_id)
            ran += 1
    return ran


def count(svc: WorkerServices, *where: Any) -> int:
    with svc.sessions() as s:
        return int(s.execute(select(func.count()).select_from(Job).where(*where)).scalar_one())


def deliveries(svc: WorkerServices, event_type: str) -> list[WebhookDelivery]:
    with svc.sessions() as s:
        return list(
            s.execute(
                select(WebhookDelivery).where(WebhookDelivery.event_type == event_type)
            ).scalars()
        )


def create(api: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = api.post("/v1/batches", headers=headers, json=body)
    assert resp.status_code == 202, resp.text
    data: dict[str, Any] = resp.json()
    return data


# ---------------------------------------------------------------- feeding


def test_other_tenants_single_job_is_queued_at_once_not_behind_a_big_batch(
    api: TestClient, settings: Settings
) -> None:
    big = auth_headers(api, "bigco")
    create(api, big, {"items": [game24(p) for p in PUZZLES * 8], "defaults": DEFAULTS})
    assert len(queued_job_ids(settings)) == 2  # 48 items accepted, only K on the broker
    small = auth_headers(api, "smallco")
    job = api.post("/v1/jobs", headers=small, json={**game24([1, 2, 3, 4]), **DEFAULTS})
    assert job.status_code == 202
    queue = queued_job_ids(settings)
    assert job.json()["id"] in queue
    assert len(queue) == 3  # a worker reaches it after at most K batch items


def test_tenant_limit_is_shared_round_robin_between_its_batches(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    a = create(api, headers, {"items": [game24(p) for p in PUZZLES], "defaults": DEFAULTS})
    b = create(api, headers, {"items": [game24(p) for p in PUZZLES], "defaults": DEFAULTS})
    # K=2 per batch, 3 per tenant: a got 2 at creation, b only the 1 left
    fed_a = count(svc, Job.batch_id == a["id"], ~Job.held)
    fed_b = count(svc, Job.batch_id == b["id"], ~Job.held)
    assert (fed_a, fed_b) == (2, 1)
    # a place frees up: it goes to the batch with the fewest items in flight, ties to
    # the one fed longest ago — so the tenant's places alternate between its batches
    in_flight = []
    for _ in range(3):
        done = fed_unfinished(svc, a["id"])[0]
        assert run_slice(svc, done, "w").kind == "finished"
        on_item_finished(svc.sessions, Published(), settings, done)
        in_flight.append((len(fed_unfinished(svc, a["id"])), len(fed_unfinished(svc, b["id"]))))
    # 1st: (1, 1), a tie; a was fed longest ago -> a. 2nd: (1, 1) again, b now fed
    # longest ago -> b. 3rd: (0, 2) -> a, the one with fewer in flight.
    assert in_flight == [(2, 1), (1, 2), (1, 2)]


def test_feeder_takes_higher_priority_items_first_and_publishes_their_priority(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    items = [game24(p, f"p{i}", priority=i % 3 * 4) for i, p in enumerate(PUZZLES)]
    # priorities by index: 0, 4, 8, 0, 4, 8 -> fed order: 2, 5, 1, 4, 0, 3
    batch = create(api, headers, {"items": items, "defaults": DEFAULTS})
    with svc.sessions() as s:
        fed = dict(
            s.execute(
                select(Job.custom_id, Job.priority).where(Job.batch_id == batch["id"], ~Job.held)
            ).all()
        )
    assert fed == {"p2": 8, "p5": 8}


def test_reaper_leaves_held_items_alone_but_recovers_a_fed_item_whose_message_was_lost(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(api, headers, {"items": [game24(p) for p in PUZZLES], "defaults": DEFAULTS})
    fed = set(fed_unfinished(svc, batch["id"]))
    assert len(fed) == 2
    later = utcnow() + timedelta(hours=1)  # every message counts as lost by then
    requeued = jobs_to_requeue(svc.sessions, stale_before=later, now=later)
    # the 4 held ones are the feeder's, not the reaper's
    assert {job_id for job_id, _ in requeued} == fed


def test_feeding_is_serialized_so_concurrent_feeders_never_overfill(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    wide = settings.model_copy(update={"batch_max_in_flight": 5, "batch_tenant_max_in_flight": 5})
    batch = create(api, headers, {"items": [game24(p) for p in PUZZLES * 5], "defaults": DEFAULTS})
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            feed(svc.sessions, Published(), wide)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert count(svc, Job.batch_id == batch["id"], ~Job.held) == 5


# ---------------------------------------------------------------- running to the end


def test_batch_runs_to_completion_with_one_batch_completed_row(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(
        api,
        headers,
        {
            "items": [game24(p, f"c{i}") for i, p in enumerate(PUZZLES)],
            "defaults": DEFAULTS,
            "webhook_url": "https://hooks.ponder.test/batch",
        },
    )
    assert drain(svc, batch["id"], settings) == len(PUZZLES)
    got = api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert got["status"] == "completed" and got["finished_at"] is not None
    assert got["counts"]["completed"] == len(PUZZLES)
    assert got["usage"]["tokens"] > 0
    assert got["accuracy"]["scored"] == len(PUZZLES)
    assert 0 <= got["accuracy"]["verified"] <= len(PUZZLES)
    assert got["latency"]["p50_seconds"] is not None
    assert got["latency"]["p95_seconds"] >= got["latency"]["p50_seconds"]
    [group] = got["by_strategy"]
    assert (group["strategy"], group["model"], group["finished"]) == ("best_of_n", "sim", 6)
    lines = api.get(f"/v1/batches/{batch['id']}/results", headers=headers).text.splitlines()
    assert len(lines) == len(PUZZLES)
    # the worker hook, the reaper tick and anyone else completing again change nothing
    tick(svc.sessions, Published(), settings)
    assert complete_if_done(svc.sessions, batch["id"]) is None
    [row] = deliveries(svc, "batch.completed")
    assert row.url == "https://hooks.ponder.test/batch"
    data = row.payload["data"]
    assert data["id"] == batch["id"] and data["status"] == "completed"
    assert data["counts"]["completed"] == len(PUZZLES)
    assert data["usage"]["tokens"] == got["usage"]["tokens"]


def test_concurrent_completion_writes_the_outbox_row_exactly_once(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(
        api,
        headers,
        {
            "items": [game24(p) for p in PUZZLES[:2]],
            "defaults": DEFAULTS,
            "webhook_url": "https://hooks.ponder.test/b",
        },
    )
    # both items end behind the feeder's back, so nobody has completed the batch yet
    with svc.sessions() as s, s.begin():
        s.execute(
            update(Job)
            .where(Job.batch_id == batch["id"])
            .values(status="completed", held=False, finished_at=utcnow())
        )
    barrier = threading.Barrier(8)
    outcomes: list[object] = []

    def one() -> None:
        barrier.wait()
        outcomes.append(complete_if_done(svc.sessions, batch["id"]))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for o in outcomes if o is not None) == 1
    assert len(deliveries(svc, "batch.completed")) == 1


def test_reaper_tick_completes_a_batch_whose_last_item_was_cancelled_directly(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(api, headers, {"items": [game24([1, 2, 3, 4])], "defaults": DEFAULTS})
    [job_id] = fed_unfinished(svc, batch["id"])
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=headers).json()["status"] == "cancelled"
    assert tick(svc.sessions, Published(), settings)["batches_completed"] == 1
    got = api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert got["status"] == "completed" and got["counts"]["cancelled"] == 1


# ---------------------------------------------------------------- cancel


def test_cancel_ends_waiting_items_at_once_and_flags_running_ones(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(
        api,
        headers,
        {
            "items": [game24(p) for p in PUZZLES],
            "defaults": {**DEFAULTS, "webhook_url": "https://hooks.ponder.test/job"},
            "webhook_url": "https://hooks.ponder.test/batch",
        },
    )
    running = fed_unfinished(svc, batch["id"])[0]
    with svc.sessions() as s, s.begin():  # a worker holds this one right now
        s.execute(
            update(Job)
            .where(Job.id == running)
            .values(status="running", lease_owner="w", lease_expires_at=utcnow())
        )
    resp = api.post(f"/v1/batches/{batch['id']}/cancel", headers=headers)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["status"] == "cancelled" and got["cancelled_at"] is not None
    assert got["counts"]["cancelled"] == len(PUZZLES) - 1 and got["counts"]["running"] == 1
    assert got["finished_at"] is None  # the running item has not stopped yet
    with svc.sessions() as s:
        assert s.get(Job, running).cancel_requested is True  # type: ignore[union-attr]
    assert len(deliveries(svc, "job.cancelled")) == len(PUZZLES) - 1
    assert deliveries(svc, "batch.completed") == []
    # cancelling again is harmless; nothing new is fed to a cancelled batch
    assert api.post(f"/v1/batches/{batch['id']}/cancel", headers=headers).status_code == 200
    assert feed(svc.sessions, Published(), settings).fed == 0
    # the running item stops (its worker sees the flag): the batch finishes, once
    with svc.sessions() as s, s.begin():
        s.execute(
            update(Job)
            .where(Job.id == running)
            .values(status="cancelled", lease_owner=None, finished_at=utcnow())
        )
    on_item_finished(svc.sessions, Published(), settings, running)
    done = api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert done["status"] == "cancelled" and done["finished_at"] is not None
    [row] = deliveries(svc, "batch.completed")
    assert row.payload["data"]["status"] == "cancelled"
    assert row.payload["data"]["counts"]["cancelled"] == len(PUZZLES)


def test_cancelling_a_completed_batch_is_a_409(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(api, headers, {"items": [game24([1, 2, 3, 4])], "defaults": DEFAULTS})
    drain(svc, batch["id"], settings)
    resp = api.post(f"/v1/batches/{batch['id']}/cancel", headers=headers)
    assert resp.status_code == 409
    assert "already completed" in resp.json()["detail"]


# ---------------------------------------------------------------- from_jobs


def test_from_jobs_reruns_past_problems_and_compares_before_and_after(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    originals = []
    for numbers in PUZZLES[:4]:
        body = {
            **game24(numbers),
            "strategy": {"name": "best_of_n", "params": {"n": 1, "max_tokens": 64}},
            "budget": {"max_tokens": 300},
            "metadata": {"run": "cheap"},
        }
        job = api.post("/v1/jobs", headers=headers, json=body).json()
        assert run_slice(svc, job["id"], "w").kind == "finished"
        originals.append(api.get(f"/v1/jobs/{job['id']}", headers=headers).json())
    # a job outside the filter is not re-run
    other = api.post("/v1/jobs", headers=headers, json={**game24([1, 2, 3, 4]), **DEFAULTS}).json()
    run_slice(svc, other["id"], "w")

    batch = create(
        api,
        headers,
        {
            "from_jobs": {"metadata": {"run": "cheap"}, "status": ["completed"]},
            "defaults": {
                "strategy": {"name": "best_of_n", "params": {"n": 4, "max_tokens": 512}},
                "budget": {"max_tokens": 8000},
                "metadata": {"run": "rich"},
            },
        },
    )
    assert batch["accepted"] == 4 and batch["source"] == "from_jobs"
    assert batch["from_jobs"]["metadata"] == {"run": "cheap"}
    drain(svc, batch["id"], settings)
    lines = [
        line
        for line in api.get(f"/v1/batches/{batch['id']}/results", headers=headers).iter_lines()
        if line
    ]
    results = [json.loads(line) for line in lines]
    assert [r["original_job_id"] for r in results] == [o["id"] for o in originals]
    rerun = api.get(f"/v1/jobs/{results[0]['job_id']}", headers=headers).json()
    assert rerun["strategy"]["params"]["n"] == 4 and rerun["budget"]["max_tokens"] == 8000
    assert rerun["metadata"] == {"run": "rich"}  # the change wins over the original's

    got = api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    comparison = got["comparison"]
    assert comparison["items"] == 4
    assert comparison["solved_before"] == sum(
        1 for o in originals if o["result"] and o["result"]["verified"]
    )
    assert comparison["solved_after"] == sum(
        1 for r in results if r["result"] and r["result"]["verified"]
    )
    assert comparison["tokens_before"] == sum(o["usage"]["tokens"] for o in originals)
    assert comparison["tokens_after"] == sum(r["usage"]["tokens"] for r in results)
    assert comparison["improved"] - comparison["regressed"] == (
        comparison["solved_after"] - comparison["solved_before"]
    )
    # filters: batch_id of the re-run, a time window, a limit
    again = create(
        api,
        headers,
        {"from_jobs": {"batch_id": batch["id"], "limit": 2}, "defaults": {"model": "sim"}},
    )
    assert again["accepted"] == 2
    empty = api.post(
        "/v1/batches",
        headers=headers,
        json={"from_jobs": {"created_after": "2999-01-01T00:00:00Z"}},
    )
    assert empty.status_code == 422 and "matched no jobs" in empty.json()["detail"]


# ---------------------------------------------------------------- budget cap


def test_batch_budget_cap_is_never_exceeded_and_stops_starting_items(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    cap = 1500
    batch = create(
        api,
        headers,
        {
            "items": [game24(p) for p in PUZZLES * 3],
            "defaults": {**DEFAULTS, "budget": {"max_tokens": 1000}},
            "budget": {"max_tokens": cap},
            "webhook_url": "https://hooks.ponder.test/cap",
        },
    )
    with svc.sessions() as s:
        fed_budgets = list(
            s.execute(select(Job.budget).where(Job.batch_id == batch["id"], ~Job.held)).scalars()
        )
    # an item starts only if its whole budget fits in what is left: one at a time here
    assert [b["max_tokens"] for b in fed_budgets] == [1000]
    drain(svc, batch["id"], settings)
    got = api.get(f"/v1/batches/{batch['id']}", headers=headers).json()
    assert got["usage"]["tokens"] <= cap
    assert got["status"] == "completed" and got["finished_at"] is not None
    with svc.sessions() as s:
        stopped = list(
            s.execute(
                select(Job.stop_reason, Job.started_at).where(
                    Job.batch_id == batch["id"], Job.status == "cancelled"
                )
            ).all()
        )
    assert stopped, "18 items cannot all run within the cap"
    # items left when the cap ran out never started
    assert all(reason == "budget_exhausted" and started is None for reason, started in stopped)
    assert got["counts"]["cancelled"] == len(stopped)
    assert len(deliveries(svc, "batch.completed")) == 1


def test_batch_token_cap_gives_items_without_a_budget_an_equal_share(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    strategy = {"strategy": {"name": "best_of_n", "params": {"n": 2}}}
    batch = create(
        api,
        headers,
        {
            "items": [
                {**game24(PUZZLES[0]), **strategy},  # no budget at all
                {**game24(PUZZLES[1]), **strategy, "budget": {"max_calls": 5}},  # no tokens
                {**game24(PUZZLES[2]), **strategy, "budget": {"max_tokens": 700}},  # its own
            ],
            "budget": {"max_tokens": 50_000},
        },
    )
    # the feeder puts batch_max_in_flight (2) items out at once, in item order
    with svc.sessions() as s:
        fed = list(
            s.execute(
                select(Job.budget)
                .where(Job.batch_id == batch["id"], ~Job.held)
                .order_by(Job.item_index)
            ).scalars()
        )
    share = 50_000 // settings.batch_max_in_flight
    # an item that sets no token limit gets cap / K, whether it gave a budget or not;
    # the server's default job budget does not count as setting one
    assert [b["max_tokens"] for b in fed] == [share, share]
    assert fed[1]["max_calls"] == 5
    drain(svc, batch["id"], settings)
    with svc.sessions() as s:
        last = s.execute(
            select(Job.budget).where(Job.batch_id == batch["id"], Job.item_index == 2)
        ).scalar_one()
    assert last["max_tokens"] == 700


def test_batch_cost_cap_gives_items_without_one_an_equal_share(
    api: TestClient, settings: Settings, svc: WorkerServices
) -> None:
    headers = auth_headers(api, "acme")
    batch = create(
        api,
        headers,
        {
            "items": [game24(p) for p in PUZZLES],
            "defaults": DEFAULTS,
            "budget": {"max_cost_usd": 0.5},
        },
    )
    with svc.sessions() as s:
        fed = list(
            s.execute(select(Job.budget).where(Job.batch_id == batch["id"], ~Job.held)).scalars()
        )
        stored = s.get(Batch, batch["id"])
        assert stored is not None and stored.budget == {"max_cost_usd": 0.5}
    assert len(fed) == 2
    # items that set no cost cap get an equal share of the batch's (cap / K, K = 2)
    assert [b["max_cost_usd"] for b in fed] == [0.25, 0.25]
    assert all(b["max_tokens"] == 4000 for b in fed)  # their own caps are kept
