"""The Python client (``ponder_client``) against the real service (API, worker, simulated
model as processes): every resource, the sync and the async client, typed answers that
match the server's exactly (no field the model lacks), typed errors with the server's
``detail``, and webhooks checked with ``ponder_client.webhooks.verify``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ponder.localproc import free_port
from ponder_client import (
    AsyncPonder,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Ponder,
    UnprocessableEntityError,
    WaitTimeoutError,
    WebhookVerificationError,
    webhooks,
)
from ponder_client.types import (
    TERMINAL_JOB_STATUSES,
    Delivery,
    Job,
    JobEvent,
    PonderModel,
    Problem,
    StrategyChoice,
)
from tests.stack import Stack
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.e2e

GAME24 = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
BEST_OF_8 = {"name": "best_of_n", "params": {"n": 8}}
# a job that runs until it is cancelled
ENDLESS: dict[str, Any] = {
    "problem": {"task": "game24", "input": {"numbers": [1, 1, 1, 1]}},
    "strategy": {"name": "best_of_n", "params": {"n": 4096, "stop_when_verified": False}},
    "budget": {"max_tokens": 5_000_000, "max_calls": 10_000},
}


def exact(value: Any) -> None:
    """Fail if a model (or one inside it) got a field it does not declare: the client's
    models and the server's answers must agree field for field."""
    if isinstance(value, PonderModel):
        assert not value.model_extra, f"{type(value).__name__} got unknown {value.model_extra}"
        for name in type(value).model_fields:
            exact(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            exact(item)


def _settled(read: Callable[[], Delivery], timeout: float = 30.0) -> Delivery:
    """The delivery once its last attempt is recorded (not pending)."""
    deadline = time.monotonic() + timeout
    while (delivery := read()).status == "pending":
        assert time.monotonic() < deadline, f"the delivery stayed pending: {delivery}"
        time.sleep(0.05)
    return delivery


def test_jobs_keys_and_errors_through_the_client(stack: Stack) -> None:
    key = stack.new_key("client-jobs")
    with Ponder(stack.api_url, key) as client:
        strategies = client.strategies.list()
        assert "best_of_n" in {s.name for s in strategies}
        assert "sim" in {m.name for m in client.models.list()}
        exact(strategies)
        # the stack's worker processes, seen by their heartbeats once they are ready
        deadline = time.monotonic() + 60
        status = client.system.get()
        while not [w for w in status.workers if w.alive]:
            assert time.monotonic() < deadline, "no worker process showed up"
            time.sleep(0.2)
            status = client.system.get()
        assert {m.name for m in status.models} >= {"sim", "sim-http"}
        exact(status)

        job = client.jobs.create(
            problem=Problem(task="game24", input={"numbers": [4, 9, 10, 13]}),
            strategy=StrategyChoice(name="best_of_n", params={"n": 8}),
            budget={"max_tokens": 20000},
            metadata={"run": "client"},
            seed=3,
        )
        assert job.status == "queued" and job.metadata == {"run": "client"}
        exact(job)

        events = list(client.jobs.stream(job.id))
        assert all(isinstance(e, JobEvent) for e in events)
        assert [e.seq for e in events] == sorted({e.seq for e in events})
        assert events[0].kind == "started" and events[-1].kind in TERMINAL_JOB_STATUSES
        exact(events)

        done = client.jobs.wait(job.id, timeout=60)
        assert done.status == "completed" and done.result is not None
        assert done.usage.tokens > 0 and done.strategy.params["n"] == 8
        assert client.jobs.get(job.id, wait=5) == done
        trace = client.jobs.trace(job.id)
        assert [e.seq for e in trace.events] == [e.seq for e in events]
        exact(trace)

        # the caller's own Idempotency-Key: the same body gives the same job back
        first = client.jobs.create(problem=GAME24, strategy=BEST_OF_8, idempotency_key="k-1")
        again = client.jobs.create(problem=GAME24, strategy=BEST_OF_8, idempotency_key="k-1")
        assert again.id == first.id
        with pytest.raises(ConflictError) as reused:
            client.jobs.create(problem=GAME24, strategy={"name": "refine"}, idempotency_key="k-1")
        assert "Idempotency-Key" in reused.value.detail

        # a page at a time, and through every page
        page = client.jobs.list(limit=1)
        assert len(page.data) == 1 and page.has_next_page()
        assert [j.id for j in page] == [first.id, job.id]  # newest first
        completed = list(client.jobs.list(status="completed"))
        assert job.id in [j.id for j in completed]
        assert {j.status for j in completed} == {"completed"}

        endless = client.jobs.create(**ENDLESS)
        with pytest.raises(WaitTimeoutError) as waited:
            client.jobs.wait(endless.id, timeout=0.5)
        assert isinstance(waited.value.last, Job) and waited.value.last.status in (
            "queued",
            "running",
        )
        cancelled = client.jobs.cancel(endless.id)
        assert cancelled.status == "cancelled" or cancelled.cancel_requested
        assert client.jobs.wait(endless.id, timeout=60).status == "cancelled"
        # cancelling it again returns it, as a retried cancel would
        assert client.jobs.cancel(endless.id).status == "cancelled"
        with pytest.raises(ConflictError) as finished:
            client.jobs.cancel(job.id)
        assert finished.value.body is not None
        assert finished.value.body["job_status"] == "completed"

        with pytest.raises(NotFoundError) as missing:
            client.jobs.get("no-such-job")
        assert "no-such-job" in missing.value.detail
        with pytest.raises(UnprocessableEntityError) as invalid:
            client.jobs.create(problem={"task": "game24"}, strategy=BEST_OF_8)
        assert invalid.value.errors and invalid.value.errors[0].loc[:2] == ["body", "problem"]

        # keys and scopes
        reader = client.keys.create(scopes=["read"], name="reader")
        assert reader.key.startswith("pk_") and reader.scopes == ["read"]
        assert reader.id in [k.id for k in client.keys.list()]
        with Ponder(stack.api_url, reader.key) as read_only:
            assert read_only.jobs.get(job.id).id == job.id
            with pytest.raises(PermissionDeniedError) as denied:
                read_only.jobs.create(problem=GAME24, strategy=BEST_OF_8)
            assert denied.value.missing_scope == "submit"
        client.keys.revoke(reader.id)
        assert client.keys.get(reader.id).revoked_at is not None

    with Ponder(stack.api_url, "pk_wrong") as stranger, pytest.raises(AuthenticationError):
        stranger.jobs.list()


def test_batches_datasets_and_schedules_through_the_client(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_key("client-batches")
    defaults = {"strategy": BEST_OF_8, "model": "sim"}
    with Ponder(stack.api_url, key) as client:
        created = client.batches.create(
            items=[
                {"custom_id": "a", "problem": GAME24},
                {
                    "custom_id": "b",
                    "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
                },
                {"custom_id": "bad", "problem": {"task": "game24"}},
            ],
            defaults=defaults,
            budget={"max_tokens": 100_000},
            metadata={"run": "inline"},
        )
        assert (created.accepted, created.rejected) == (2, 1)
        assert created.item_errors[0].custom_id == "bad" and created.item_errors[0].detail
        exact(created)
        batch = client.batches.wait(created.id, timeout=120)
        assert batch.counts.total == 2 and batch.finished_at is not None
        exact(batch)
        results = list(client.batches.results(created.id))
        assert [(r.custom_id, r.index) for r in results] == [("a", 0), ("b", 1)]
        assert all(r.status in TERMINAL_JOB_STATUSES for r in results)
        exact(results)

        # a JSON Lines file, as a path, bytes or an open file; settings become its header
        lines = tmp_path / "items.jsonl"
        lines.write_text(
            "\n".join(json.dumps({"custom_id": f"u{n}", "problem": GAME24}) for n in range(2))
        )
        uploaded = client.batches.create(file=lines, defaults=defaults, metadata={"run": "up"})
        assert (uploaded.source, uploaded.accepted, uploaded.metadata) == (
            "upload",
            2,
            {"run": "up"},
        )
        header = json.dumps({"batch": {"defaults": defaults}}).encode() + b"\n"
        assert client.batches.create(file=header + lines.read_bytes()).accepted == 2
        with lines.open("rb") as handle:
            assert client.batches.create(file=handle, defaults=defaults).accepted == 2

        # datasets
        dataset = client.datasets.create(
            name="mini",
            problems=[
                {"id": "p1", **GAME24},
                {"id": "p2", "task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
            ],
            description="two puzzles",
        )
        assert (dataset.size, dataset.builtin) == (2, False)
        first = client.datasets.get("mini", limit=1)
        assert [i.id for i in first.items] == ["p1"] and first.next_offset == 1
        assert [i.id for i in client.datasets.get(dataset.id, offset=1).items] == ["p2"]
        names = [d.name for d in client.datasets.list()]
        assert names[0] == "mini" and "game24" in names
        with pytest.raises(ConflictError):
            client.datasets.create(name="mini", problems=[GAME24])
        from_dataset = client.batches.create(dataset="mini", defaults=defaults)
        assert (from_dataset.source, from_dataset.accepted) == ("dataset", 2)

        # re-run the first batch's jobs with a bigger budget
        rerun = client.batches.create(
            from_jobs={"batch_id": created.id}, defaults={"budget": {"max_tokens": 30_000}}
        )
        assert (rerun.source, rerun.accepted) == ("from_jobs", 2)
        compared = client.batches.wait(rerun.id, timeout=120)
        assert compared.comparison is not None and compared.comparison.items == 2
        assert all(r.original_job_id for r in client.batches.results(rerun.id))

        listed = [b.id for b in client.batches.list(limit=2)]
        assert created.id in listed and rerun.id in listed and len(listed) == 6
        endless = client.batches.create(items=[ENDLESS])
        assert client.batches.cancel(endless.id).status == "cancelled"

        # schedules
        schedule = client.schedules.create(
            name="nightly",
            cron="30 2 * * *",
            timezone="Europe/Paris",
            template={"dataset": "mini", "defaults": defaults},
        )
        assert len(schedule.next_fire_times) == 5 and schedule.enabled
        exact(schedule)
        paused = client.schedules.update(schedule.id, enabled=False, end_time=None)
        assert not paused.enabled and paused.next_fire_times == []
        run = client.schedules.trigger(schedule.id)
        assert run.kind == "manual"
        day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0)
        backfill = client.schedules.backfill(
            schedule.id, start=day, end=(day + timedelta(days=2) - timedelta(seconds=1)).isoformat()
        )
        assert (backfill.created, backfill.existing) == (2, 0)
        assert [r.kind for r in backfill.runs] == ["backfill", "backfill"]
        repeated = client.schedules.backfill(schedule.id, start=day, end=day + timedelta(days=1))
        assert repeated.created == 0 and repeated.existing == 1
        assert len(list(client.schedules.runs(schedule.id, limit=1))) == 3
        assert [s.id for s in client.schedules.list(enabled=False)] == [schedule.id]
        client.schedules.delete(schedule.id)
        with pytest.raises(NotFoundError):
            client.schedules.get(schedule.id)

        client.datasets.delete(dataset.id)
        with pytest.raises(NotFoundError):
            client.datasets.delete(dataset.id)


def test_the_async_client(stack: Stack) -> None:
    key = stack.new_key("client-async")

    async def scenario() -> None:
        async with AsyncPonder(stack.api_url, key) as client:
            jobs = await asyncio.gather(
                *(
                    client.jobs.create(problem=GAME24, strategy=BEST_OF_8, seed=seed)
                    for seed in range(3)
                )
            )
            events = [event async for event in client.jobs.stream(jobs[0].id)]
            assert events[-1].kind in TERMINAL_JOB_STATUSES
            finished = await asyncio.gather(*(client.jobs.wait(j.id, timeout=60) for j in jobs))
            assert {j.status for j in finished} == {"completed"}
            page = await client.jobs.list(limit=2)
            listed = [j async for j in page]  # both pages
            assert len(page.data) == 2 and {j.id for j in listed} == {j.id for j in jobs}
            assert [j.created_at for j in listed] == sorted(
                (j.created_at for j in listed), reverse=True
            )
            assert (await client.jobs.trace(jobs[0].id)).job_id == jobs[0].id

            batch = await client.batches.create(
                items=[{"problem": GAME24}], defaults={"strategy": BEST_OF_8}
            )
            await client.batches.wait(batch.id, timeout=120)
            results = [r async for r in client.batches.results(batch.id)]
            assert [r.index for r in results] == [0]
            datasets = [d.name async for d in await client.datasets.list()]
            assert "game24-easy" in datasets
            assert (await client.datasets.get("game24-easy", limit=2)).items[1].id

    asyncio.run(scenario())


def test_webhooks_verified_with_the_client(stack: Stack) -> None:
    key = stack.new_key("client-hooks")
    receiver = Receiver(parse_plan("200"))
    url = receiver.start()
    try:
        with Ponder(stack.api_url, key) as client:
            secrets = [s.secret for s in client.webhook_secrets.list()]
            job = client.jobs.create(
                problem=GAME24, strategy=BEST_OF_8, webhook_url=f"{url}/hooks/ponder"
            )
            (delivered,) = receiver.wait_for(1, timeout=60)
            event = webhooks.verify(delivered["body"], delivered["headers"], secrets)
            assert (event.type, event.data["id"]) == ("job.completed", job.id)
            exact(event)

            with pytest.raises(WebhookVerificationError):
                webhooks.verify(delivered["body"] + " ", delivered["headers"], secrets)
            with pytest.raises(WebhookVerificationError):  # a replay an hour later
                later = int(delivered["headers"]["webhook-timestamp"]) + 3600
                webhooks.verify(delivered["body"], delivered["headers"], secrets, now=later)
            stranger = client.webhook_secrets.list()[0].secret[:-8] + "AAAAAAA="
            with pytest.raises(WebhookVerificationError):
                webhooks.verify(delivered["body"], delivered["headers"], stranger)

            # the worker records the attempt once the receiver has answered
            delivery = _settled(lambda: client.jobs.deliveries(job.id)[0])
            assert delivery.status == "delivered"
            assert delivery.webhook_id == delivered["headers"]["webhook-id"]
            exact(delivery)

            # after a rotation both secrets sign: either one verifies alone
            rotated = client.webhook_secrets.rotate(grace_seconds=3600)
            assert len(rotated) == 2
            again = client.deliveries.redeliver(delivery.id)
            assert again.webhook_id == delivery.webhook_id
            second = receiver.wait_for(2, timeout=60)[1]
            assert len(second["headers"]["webhook-signature"].split()) == 2
            for secret in (rotated[0].secret, rotated[1].secret):
                assert webhooks.verify(second["body"], second["headers"], [secret]).data
            assert _settled(lambda: client.deliveries.get(delivery.id)).attempts == 2
    finally:
        receiver.stop()


def test_the_cli_client_commands_go_through_the_client(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_key("client-cli")
    stack.env.update(PONDER_API_URL=stack.api_url, PONDER_API_KEY=key)
    defaults = {"strategy": BEST_OF_8}
    as_json = tmp_path / "batch.json"
    as_json.write_text(
        json.dumps({"items": [{"custom_id": "a", "problem": GAME24}], "defaults": defaults})
    )
    submitted = stack.cli("batches", "submit", str(as_json))
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)
    assert "1 item(s) accepted, 0 refused" in submitted.stderr

    as_lines = tmp_path / "items.jsonl"
    header = {"batch": {"defaults": defaults}}
    as_lines.write_text("\n".join(json.dumps(x) for x in (header, {"problem": GAME24})))
    uploaded = stack.cli("batches", "submit", str(as_lines))
    assert uploaded.returncode == 0, uploaded.stderr
    assert json.loads(uploaded.stdout)["source"] == "upload"

    with Ponder(stack.api_url, key) as client:
        client.batches.wait(batch["id"], timeout=120)
    shown = stack.cli("batches", "show", batch["id"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["counts"]["total"] == 1
    results = stack.cli("batches", "results", batch["id"])
    assert results.returncode == 0, results.stderr
    (line,) = results.stdout.splitlines()
    assert json.loads(line)["custom_id"] == "a"
    endless = tmp_path / "endless.json"
    endless.write_text(json.dumps({"items": [ENDLESS]}))
    running = json.loads(stack.cli("batches", "submit", str(endless)).stdout)
    cancelled = stack.cli("batches", "cancel", running["id"])
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"

    # the server's word on what is wrong, exit 1; a file that is no JSON object, exit 2
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"items": [{"problem": GAME24}], "defaults": defaults, "x": 1}))
    refused = stack.cli("batches", "submit", str(unknown))
    assert refused.returncode == 1 and "error: HTTP 422: " in refused.stderr
    assert "x" in refused.stderr
    job_body = tmp_path / "job.json"
    job_body.write_text(json.dumps({"problem": GAME24, "strategy": BEST_OF_8, "colour": "red"}))
    refused = stack.cli("submit", str(job_body))
    assert refused.returncode == 1 and "colour" in refused.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert stack.cli("submit", str(broken)).returncode == 2
    assert stack.cli("batches", "submit", str(broken)).returncode == 2
    missing = stack.cli("show", "no-such-job")
    assert missing.returncode == 1 and "error: HTTP 404: " in missing.stderr
    nowhere = stack.cli("jobs", "--api-url", f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == 1 and "cannot reach the API" in nowhere.stderr
    stack.env.pop("PONDER_API_KEY")
    assert stack.cli("jobs").returncode == 2
