"""Traces and JSON logs of the real processes: `ponder api` and `ponder worker` send their
spans over OTLP (the default exporter once an endpoint is set) to a receiver in this
test, and one job is one trace across both processes; with `PONDER_LOG_FORMAT=json`
every line a worker writes is a JSON object, and the lines about a job name it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.otlp_receiver import Receiver, Span, running_receiver
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

JOB = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {
        "name": "best_of_n",
        "params": {"n": 4, "batch_size": 2, "max_tokens": 256, "stop_when_verified": False},
    },
    "model": "sim-http",
    "budget": {"max_tokens": 30_000, "max_calls": 16},
}
SPAN_KIND_CLIENT = 3
SPAN_KIND_CONSUMER = 5


def _tracing_env(receiver: Receiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the default 5 s
        "OTEL_TRACES_EXPORTER": "",
        "OTEL_SERVICE_NAME": "",
        "OTEL_SDK_DISABLED": "",
    }


def _run_one_job(stack: Stack) -> dict[str, Any]:
    key = stack.new_key("traced")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        resp = client.post("/v1/jobs", json=JOB)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return job
    raise AssertionError(f"job {job_id} did not finish")


def _slice_done(job_id: str) -> Any:
    def found(spans: list[Span]) -> bool:
        return any(
            s.name == "ponder.slice"
            and s.attributes.get("ponder.job.id") == job_id
            and s.attributes.get("ponder.slice.outcome") == "finished"
            for s in spans
        ) and any(s.name == "ponder.submit" for s in spans)

    return found


def test_one_job_is_one_trace_across_the_api_and_the_worker(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    with (
        running_receiver() as receiver,
        running_stack(pg_url, queue_name, tmp_path, env_overrides=_tracing_env(receiver)) as stack,
    ):
        job = _run_one_job(stack)
        assert job["status"] == "completed", job
        # a slice's span ends after everything in it, so once it is here all are
        received = receiver.wait_for(_slice_done(job["id"]))

    (submit,) = [
        s
        for s in received
        if s.name == "ponder.submit" and s.attributes.get("ponder.job.id") == job["id"]
    ]
    assert submit.service == "ponder-api"
    assert submit.attributes["ponder.strategy"] == "best_of_n"
    assert submit.attributes["ponder.model"] == "sim-http"
    trace = [s for s in received if s.trace_id == submit.trace_id]
    by_id = {s.span_id: s for s in trace}
    assert {s.service for s in trace} == {"ponder-api", "ponder-worker"}

    # the root is the API's: the submission, or the HTTP request around it
    roots = [s for s in trace if s.parent_id is None]
    assert len(roots) == 1 and roots[0].service == "ponder-api"
    up = submit
    while up.parent_id is not None:
        up = by_id[up.parent_id]
        assert up.service == "ponder-api"

    worker = [s for s in trace if s.service == "ponder-worker"]
    (slice_,) = [s for s in worker if s.name == "ponder.slice"]
    assert slice_.parent_id == submit.span_id
    assert slice_.kind == SPAN_KIND_CONSUMER
    assert slice_.attributes["ponder.job.id"] == job["id"]
    assert slice_.attributes["ponder.slice"] == 1
    assert slice_.attributes["ponder.attempt"] == 1
    assert slice_.attributes["ponder.budget.max_tokens"] == 30_000

    chats = [s for s in worker if s.name.startswith("chat ")]
    assert chats
    for chat in chats:
        assert chat.name == "chat sim-1"  # the profile's upstream model id
        assert chat.parent_id == slice_.span_id
        assert chat.kind == SPAN_KIND_CLIENT
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == "sim-1"
        assert chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.response.model"]
        assert chat.attributes["ponder.replayed"] is False
    tokens = sum(
        c.attributes["gen_ai.usage.input_tokens"] + c.attributes["gen_ai.usage.output_tokens"]
        for c in chats
    )
    assert tokens == job["usage"]["tokens"]
    assert sum(c.attributes["ponder.cost_usd"] for c in chats) == pytest.approx(
        job["usage"]["cost_usd"]
    )

    verifies = [s for s in worker if s.name == "ponder.verify"]
    assert len(verifies) == 4 and all(v.parent_id == slice_.span_id for v in verifies)

    writes = [s for s in worker if s.name == "ponder.journal.write"]
    ops = [w.attributes["ponder.journal.op"] for w in writes]
    assert ops.count("reserve") == ops.count("result") == len(chats)
    assert ops.count("finalize") == 1
    chat_ids = {c.span_id for c in chats}
    for w in writes:
        assert w.attributes["ponder.commit.group_size"] >= 1
        expected = slice_.span_id if w.attributes["ponder.journal.op"] == "finalize" else None
        assert w.parent_id == expected or (expected is None and w.parent_id in chat_ids)


def test_a_worker_with_json_logs_writes_only_json_lines_naming_its_job(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    with (
        running_receiver() as receiver,
        running_stack(
            pg_url,
            queue_name,
            tmp_path,
            env_overrides={"PONDER_LOG_FORMAT": "json", **_tracing_env(receiver)},
        ) as stack,
    ):
        job = _run_one_job(stack)
        assert job["status"] == "completed", job
        received = receiver.wait_for(_slice_done(job["id"]))
        # read while the processes run: what they write when told to stop is not the point
        worker_log = (tmp_path / "worker.log").read_text()
        api_log = (tmp_path / "api.log").read_text()

    for text in (worker_log, api_log):
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines
        for line in lines:
            record = json.loads(line)  # fails on any line that is not JSON
            assert {"time", "level", "logger", "message"} <= set(record), line
    records = [json.loads(line) for line in worker_log.splitlines() if line.strip()]
    about_job = [r for r in records if r.get("job_id") == job["id"]]
    assert about_job, "no worker line names the job"
    (slice_,) = [
        s
        for s in received
        if s.name == "ponder.slice" and s.attributes["ponder.job.id"] == job["id"]
    ]
    for record in about_job:
        assert record["tenant_id"] == slice_.attributes["ponder.tenant.id"]
        assert record["slice"] == 1 and record["attempt"] == 1
        assert record["trace_id"] == slice_.trace_id
    # the worker logs at INFO: Celery's lines come as JSON too
    assert any(r["logger"].startswith("celery") for r in records)
