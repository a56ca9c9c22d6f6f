"""The Python client (``ponder_client``) against a real API behind a proxy that loses
answers, refuses requests and cuts streams (tests/fault_proxy.py): a submit whose answer
is lost is retried into the same job, ``Retry-After`` is waited for, what must not be
repeated is not, and event streams and batch results resume where they broke."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ponder.localproc import free_port
from ponder_client import (
    APIConnectionError,
    AsyncPonder,
    NotFoundError,
    Ponder,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from ponder_client.types import TERMINAL_JOB_STATUSES
from tests.fault_proxy import Fault, fault_proxy
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.chaos

PROBLEM = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}
STRATEGY = {"name": "best_of_n", "params": {"n": 4}}


@pytest.fixture
def api_only(pg_url: str, queue_name: str, tmp_path: Path) -> Iterator[Stack]:
    """The API with no worker: jobs stay queued, which is all a retry needs."""
    with running_stack(pg_url, queue_name, tmp_path, workers=0) as stack:
        yield stack


@pytest.fixture
def slow_stack(pg_url: str, queue_name: str, tmp_path: Path) -> Iterator[Stack]:
    """API and worker, the model taking 100 ms a call: a job's events come over time."""
    with running_stack(pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "100")) as stack:
        yield stack


def _count(pg_url: str, table: str) -> int:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_a_503_after_the_server_made_the_job_then_success_makes_exactly_one_job(
    api_only: Stack, pg_url: str
) -> None:
    key = api_only.new_key("retry")
    delays: list[float] = []
    with fault_proxy(api_only.api_url) as proxy:
        # the nasty case: the server stores the job, the proxy loses its answer
        proxy.add(Fault("POST", "/v1/jobs", "fail_after_forwarding", status=503))
        with Ponder(proxy.url, key, sleep=delays.append) as client:
            job = client.jobs.create(problem=PROBLEM, strategy=STRATEGY)
        posts = proxy.requests("POST", "/v1/jobs")

    assert [p.upstream_status for p in posts] == [202, 202]
    assert posts[0].fault == "fail_after_forwarding" and posts[1].fault is None
    keys = {p.headers["idempotency-key"] for p in posts}
    assert len(keys) == 1, "the retry must send the first attempt's Idempotency-Key"
    assert posts[1].upstream_headers.get("idempotent-replayed") == "true"
    assert len(delays) == 1 and 0 < delays[0] <= 0.5  # the first backoff, with jitter
    assert _count(pg_url, "jobs") == 1
    with Ponder(api_only.api_url, key) as direct:
        assert [j.id for j in direct.jobs.list()] == [job.id]


def test_the_async_client_retries_a_lost_submit_into_the_same_job(
    api_only: Stack, pg_url: str
) -> None:
    key = api_only.new_key("retry-async")
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async def submit(url: str) -> str:
        async with AsyncPonder(url, key, sleep=sleep) as client:
            job = await client.jobs.create(problem=PROBLEM, strategy=STRATEGY)
            return job.id

    with fault_proxy(api_only.api_url) as proxy:
        proxy.add(Fault("POST", "/v1/jobs", "fail_after_forwarding", status=502))
        proxy.add(Fault("POST", "/v1/jobs", "fail_after_forwarding", status=504))
        job_id = asyncio.run(submit(proxy.url))
        posts = proxy.requests("POST", "/v1/jobs")

    assert [p.upstream_status for p in posts] == [202, 202, 202]
    assert len({p.headers["idempotency-key"] for p in posts}) == 1
    assert len(delays) == 2
    assert _count(pg_url, "jobs") == 1
    with Ponder(api_only.api_url, key) as direct:
        assert direct.jobs.get(job_id).status == "queued"


def _http_date(seconds_from_now: int) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def test_retry_after_is_waited_for_in_seconds_and_as_a_date(api_only: Stack, pg_url: str) -> None:
    key = api_only.new_key("patient")
    delays: list[float] = []
    with fault_proxy(api_only.api_url) as proxy:
        proxy.add(Fault("POST", "/v1/jobs", "refuse", status=429, headers={"Retry-After": "7"}))
        proxy.add(
            Fault("POST", "/v1/jobs", "refuse", status=503, headers={"Retry-After": _http_date(30)})
        )
        with Ponder(proxy.url, key, sleep=delays.append, max_retries=3) as client:
            job = client.jobs.create(problem=PROBLEM, strategy=STRATEGY)
        posts = proxy.requests("POST", "/v1/jobs")

    assert delays[0] == 7.0  # exactly what the server asked
    assert 28.0 < delays[1] <= 30.0  # the date, one-second resolution
    assert len(delays) == 2
    assert [p.fault for p in posts] == ["refuse", "refuse", None]
    assert _count(pg_url, "jobs") == 1
    assert job.status == "queued"


def test_a_retry_after_longer_than_the_client_waits_is_raised_at_once(api_only: Stack) -> None:
    key = api_only.new_key("impatient")
    delays: list[float] = []
    with fault_proxy(api_only.api_url) as proxy:
        proxy.add(
            Fault("GET", "/v1/jobs", "refuse", status=429, headers={"Retry-After": "3600"}, times=5)
        )
        with (
            Ponder(proxy.url, key, sleep=delays.append) as client,
            pytest.raises(RateLimitError) as raised,
        ):
            client.jobs.list()
        assert len(proxy.requests("GET", "/v1/jobs")) == 1
    assert delays == []
    assert raised.value.retry_after == 3600.0
    assert raised.value.status_code == 429


def test_other_client_errors_are_not_retried_and_carry_the_servers_detail(
    api_only: Stack,
) -> None:
    key = api_only.new_key("wrong")
    delays: list[float] = []
    with (
        fault_proxy(api_only.api_url) as proxy,
        Ponder(proxy.url, key, sleep=delays.append) as client,
    ):
        with pytest.raises(UnprocessableEntityError) as invalid:
            client.jobs.create(problem=PROBLEM, strategy={"name": "beam"})
        with pytest.raises(NotFoundError) as missing:
            client.jobs.get("00000000-0000-0000-0000-000000000000")
        assert len(proxy.requests("POST", "/v1/jobs")) == 1
        assert len(proxy.requests("GET", "/v1/jobs/.+")) == 1
    assert delays == []
    assert "unknown strategy 'beam'" in invalid.value.detail
    assert [e.loc for e in invalid.value.errors] == [["body", "strategy", "name"]]
    assert str(invalid.value).startswith("HTTP 422: ")
    assert "00000000-0000-0000-0000-000000000000" in missing.value.detail


def test_a_create_the_server_does_not_deduplicate_is_not_repeated_after_a_lost_answer(
    api_only: Stack, pg_url: str
) -> None:
    key = api_only.new_key("batches")
    items = [{"custom_id": "a", "problem": PROBLEM}]
    defaults = {"strategy": STRATEGY}
    delays: list[float] = []
    with fault_proxy(api_only.api_url) as proxy:
        proxy.add(Fault("POST", "/v1/batches", "fail_after_forwarding", status=503))
        with Ponder(proxy.url, key, sleep=delays.append) as client:
            with pytest.raises(ServiceUnavailableError) as lost:
                client.batches.create(items=items, defaults=defaults)
            assert "was not sent again" in " ".join(lost.value.__notes__)
            # the server did make it: the client said so rather than make a second
            assert len(proxy.requests("POST", "/v1/batches")) == 1
            assert _count(pg_url, "batches") == 1
            # a 429 refuses before anything is made: that is retried
            proxy.add(Fault("POST", "/v1/batches", "refuse", status=429))
            created = client.batches.create(items=items, defaults=defaults)
        assert len(proxy.requests("POST", "/v1/batches")) == 3
    assert created.accepted == 1
    assert _count(pg_url, "batches") == 2
    assert len(delays) == 1


def test_a_repeated_cancel_or_delete_whose_first_attempt_worked_succeeds(
    api_only: Stack,
) -> None:
    key = api_only.new_key("repeats")
    delays: list[float] = []
    with (
        fault_proxy(api_only.api_url) as proxy,
        Ponder(proxy.url, key, sleep=delays.append) as client,
    ):
        job = client.jobs.create(problem=PROBLEM, strategy=STRATEGY)  # stays queued
        proxy.add(Fault("POST", "/v1/jobs/[^/]+/cancel", "fail_after_forwarding"))
        assert client.jobs.cancel(job.id).status == "cancelled"
        cancels = proxy.requests("POST", "/v1/jobs/[^/]+/cancel")
        # the first attempt cancelled it; the retry was told it had already finished
        assert [c.upstream_status for c in cancels] == [200, 409]

        dataset = client.datasets.create(name="once", problems=[PROBLEM])
        proxy.add(Fault("DELETE", "/v1/datasets/[^/]+", "fail_after_forwarding"))
        client.datasets.delete(dataset.id)
        deletes = proxy.requests("DELETE", "/v1/datasets/[^/]+")
        assert [d.upstream_status for d in deletes] == [204, 404]
        with pytest.raises(NotFoundError):
            client.datasets.get(dataset.id)
        # without a retry, a 404 is a 404
        with pytest.raises(NotFoundError):
            client.datasets.delete(dataset.id)
    assert len(delays) == 2


def test_a_connection_never_made_is_retried_then_raised() -> None:
    delays: list[float] = []
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = Ponder(closed, "pk_unused", sleep=delays.append, max_retries=3)
    with client, pytest.raises(APIConnectionError) as raised:
        client.batches.create(dataset="game24", defaults={"strategy": STRATEGY})
    assert len(delays) == 3  # even a create: the request never left
    assert delays == sorted(delays)  # backing off
    assert "connection failed" in str(raised.value)


def _slow_job(client: Ponder) -> str:
    job = client.jobs.create(
        problem={"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
        strategy={
            "name": "best_of_n",
            "params": {"n": 8, "batch_size": 1, "max_tokens": 128, "stop_when_verified": False},
        },
        model="sim-http",
        budget={"max_tokens": 20000, "max_calls": 8},
    )
    return job.id


def test_an_event_stream_cut_midway_resumes_after_its_last_event(slow_stack: Stack) -> None:
    key = slow_stack.new_key("stream")
    lost: list[int | None] = []
    back: list[bool] = []
    with fault_proxy(slow_stack.api_url) as proxy:
        proxy.add(Fault("GET", "/v1/jobs/[^/]+/events", "cut_after", count=3))
        with Ponder(proxy.url, key) as client:
            job_id = _slow_job(client)
            events = list(
                client.jobs.stream(
                    job_id,
                    on_disconnect=lambda error, last: lost.append(last),
                    on_reconnect=lambda: back.append(True),
                )
            )
            trace = client.jobs.trace(job_id)
        streams = proxy.requests("GET", "/v1/jobs/[^/]+/events")

    assert lost == [3] and back == [True]
    assert len(streams) == 2
    assert "last-event-id" not in streams[0].headers
    assert streams[1].headers["last-event-id"] == "3"
    # every event once, in order, as the job's trace has them
    assert [e.seq for e in events] == [e.seq for e in trace.events]
    assert [e.kind for e in events] == [e.kind for e in trace.events]
    assert events[-1].kind in TERMINAL_JOB_STATUSES
    assert trace.status == events[-1].kind


def test_batch_results_cut_midway_resume_after_the_last_item(slow_stack: Stack) -> None:
    key = slow_stack.new_key("results")
    items: list[dict[str, Any]] = [
        {"custom_id": f"item-{n}", "problem": PROBLEM, "seed": n} for n in range(6)
    ]
    with fault_proxy(slow_stack.api_url) as proxy:
        proxy.add(Fault("GET", "/v1/batches/[^/]+/results", "cut_after", count=2))
        with Ponder(proxy.url, key) as client:
            batch = client.batches.create(items=items, defaults={"strategy": STRATEGY})
            client.batches.wait(batch.id, timeout=120)
            results = list(client.batches.results(batch.id))
        fetches = proxy.requests("GET", "/v1/batches/[^/]+/results")

    assert len(fetches) == 2
    assert [r.index for r in results] == list(range(6))
    assert [r.custom_id for r in results] == [f"item-{n}" for n in range(6)]
    assert all(r.status in TERMINAL_JOB_STATUSES for r in results)
