"""Traces (ponder.telemetry): the spans of one job, submitted through the API and run by
the worker's runner in this process, caught by the SDK's in-memory exporter; tracing
turned on and off by the standard OTEL_* variables; and nothing imported or recorded
when the OpenTelemetry SDK is missing."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from sqlalchemy import update

from api.main import create_app
from ponder import telemetry
from ponder.auth import create_api_key
from ponder.config import Settings
from ponder.tables import Job
from tests.jobs_helpers import create_job, load_job, run_until_done
from tests.strategy_harness import services
from worker.celery_app import dispatcher_for

ONE_AT_A_TIME = {
    "name": "best_of_n",
    "params": {"n": 4, "batch_size": 1, "max_tokens": 96, "stop_when_verified": False},
}
JOB = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": ONE_AT_A_TIME,
    "budget": {"max_tokens": 40_000, "max_calls": 16},
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install(provider)
    try:
        yield exporter
    finally:
        telemetry.uninstall()
        provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _submit(settings: Settings) -> str:
    """Submit JOB through the API; returns the job's id."""
    app = create_app(settings, dispatcher=dispatcher_for(settings))
    with TestClient(app) as client:
        key = create_api_key(client.app.state.sessions, "traced")  # type: ignore[attr-defined]
        response = client.post("/v1/jobs", json=JOB, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id


def test_one_job_is_one_trace_from_submit_to_every_call(
    spans: InMemorySpanExporter, sqlite_settings: Settings
) -> None:
    job_id = _submit(sqlite_settings)
    svc = services(sqlite_settings, [])
    try:
        run_until_done(svc, job_id)
    finally:
        svc.close()
    job = load_job(sqlite_settings, job_id)
    assert job.status == "completed"
    tenant_id = job.tenant_id
    finished = spans.get_finished_spans()

    (submit,) = _by_name(finished, "ponder.submit")
    assert submit.parent is None  # no HTTP span here: the test client sets no provider
    assert _attrs(submit) == {
        "ponder.tenant.id": tenant_id,
        "ponder.strategy": "best_of_n",
        "ponder.model": "sim",
        "ponder.job.priority": 0,
        "ponder.job.id": job_id,
        "ponder.idempotent_replay": False,
        "ponder.budget.max_tokens": 40_000,
        "ponder.budget.max_calls": 16,
    }
    trace_id = submit.context.trace_id
    # the row keeps the submission's context: that is how the worker joins the trace
    assert job.trace_context is not None
    assert job.trace_context["traceparent"].startswith(
        f"00-{format_trace_id(trace_id)}-{format_span_id(submit.context.span_id)}-"
    )
    assert {s.context.trace_id for s in finished} == {trace_id}

    (slice_,) = _by_name(finished, "ponder.slice")
    assert _parent_id(slice_) == submit.context.span_id
    assert slice_.kind is SpanKind.CONSUMER
    slice_attrs = _attrs(slice_)
    assert slice_attrs["ponder.job.id"] == job_id
    assert slice_attrs["ponder.tenant.id"] == tenant_id
    assert slice_attrs["ponder.slice"] == 1
    assert slice_attrs["ponder.attempt"] == 1
    assert slice_attrs["ponder.slice.outcome"] == "finished"
    assert slice_attrs["ponder.calls.new"] == 4
    assert slice_attrs["ponder.journal.replayed"] == 0

    chats = _by_name(finished, "chat sim")
    assert len(chats) == 4
    for chat in chats:
        a = _attrs(chat)
        assert _parent_id(chat) == slice_.context.span_id
        assert chat.kind is SpanKind.CLIENT
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == "sim"
        assert a["gen_ai.response.model"] == "sim"
        assert a["gen_ai.request.max_tokens"] == 96
        assert a["ponder.replayed"] is False
        assert a["ponder.budget.max_tokens"] == 40_000
        assert 0 <= a["ponder.budget.tokens_remaining"] < 40_000
        assert 0 <= a["ponder.budget.calls_remaining"] < 16
    usage = [
        _attrs(c)["gen_ai.usage.input_tokens"] + _attrs(c)["gen_ai.usage.output_tokens"]
        for c in chats
    ]
    assert sum(usage) == job.usage_tokens
    assert sum(_attrs(c)["ponder.cost_usd"] for c in chats) == pytest.approx(job.usage_cost_usd)
    # the budget shrinks call after call
    remaining = [_attrs(c)["ponder.budget.tokens_remaining"] for c in chats]
    assert sorted(remaining, reverse=True) == remaining

    verifies = _by_name(finished, "ponder.verify")
    assert len(verifies) == 4
    assert all(_parent_id(v) == slice_.context.span_id for v in verifies)
    assert all(isinstance(_attrs(v)["ponder.verdict.passed"], bool) for v in verifies)

    writes = _by_name(finished, "ponder.journal.write")
    chat_ids = {c.context.span_id for c in chats}
    ops: dict[str, list[ReadableSpan]] = {}
    for w in writes:
        ops.setdefault(_attrs(w)["ponder.journal.op"], []).append(w)
        assert _attrs(w)["ponder.commit.group_size"] >= 1
    assert len(ops["reserve"]) == len(ops["result"]) == 4
    assert all(_parent_id(w) in chat_ids for w in ops["reserve"] + ops["result"])
    (final,) = ops["finalize"]
    assert _parent_id(final) == slice_.context.span_id


def test_a_resumed_job_joins_the_same_trace_and_replays_for_free(
    spans: InMemorySpanExporter, sqlite_settings: Settings
) -> None:
    job_id = _submit(sqlite_settings)
    svc = services(sqlite_settings, [])
    run_until_done(svc, job_id)
    first = load_job(sqlite_settings, job_id)
    # run the strategy again over the finished job's journal: every call replays
    with svc.sessions() as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(status="running", lease_owner=None))
    run_until_done(svc, job_id)
    svc.close()
    assert load_job(sqlite_settings, job_id).usage_tokens == first.usage_tokens

    finished = spans.get_finished_spans()
    (submit,) = _by_name(finished, "ponder.submit")
    slices = _by_name(finished, "ponder.slice")
    assert [_attrs(s)["ponder.attempt"] for s in slices] == [1, 2]
    assert all(_parent_id(s) == submit.context.span_id for s in slices)
    second = slices[1]
    assert _attrs(second)["ponder.journal.replayed"] == 8  # 4 samples, 4 verdicts
    assert _attrs(second)["ponder.calls.new"] == 0
    replayed = [c for c in _by_name(finished, "chat sim") if _attrs(c)["ponder.replayed"]]
    assert len(replayed) == 4
    for chat in replayed:
        assert _parent_id(chat) == second.context.span_id
        assert _attrs(chat)["ponder.cost_usd"] == 0.0
        assert "gen_ai.usage.input_tokens" not in _attrs(chat)  # no model call was made


def test_a_job_stored_without_a_trace_context_gets_a_trace_of_its_own(
    spans: InMemorySpanExporter, sqlite_settings: Settings
) -> None:
    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME)
    svc = services(sqlite_settings, [])
    try:
        run_until_done(svc, job_id)
    finally:
        svc.close()
    finished = spans.get_finished_spans()
    (slice_,) = _by_name(finished, "ponder.slice")
    assert slice_.parent is None
    assert {s.context.trace_id for s in finished} == {slice_.context.trace_id}


def test_exceptions_mark_the_span_failed(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), telemetry.span("ponder.test"):
        raise ValueError("boom")
    (span,) = spans.get_finished_spans()
    assert not span.status.is_ok
    assert span.events[0].name == "exception"


def test_carrier_round_trip(spans: InMemorySpanExporter) -> None:
    assert telemetry.carrier() is None  # no span current
    with telemetry.span("outer"):
        headers = telemetry.carrier()
    assert headers is not None
    with telemetry.span("elsewhere", parent=headers):
        pass
    outer, elsewhere = spans.get_finished_spans()
    assert _parent_id(elsewhere) == outer.context.span_id


# ---- turned on and off by the environment --------------------------------------------


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1]:4318"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1]:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://[::1]:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, Console"}, ["otlp", "console"]),
    ],
)
def test_which_exporters_the_environment_asks_for(
    environ: dict[str, str], names: list[str]
) -> None:
    assert telemetry.exporter_names(environ) == names


_SCRIPT = """
from ponder import telemetry
on = telemetry.setup("ponder-test")
with telemetry.span("ponder.test", {"ponder.answer": 42}):
    pass
telemetry.uninstall()
print("on" if on else "off")
"""


def _run_script(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.splitlines()


def test_the_console_exporter_writes_one_json_object_per_span() -> None:
    *spans_out, state = _run_script(OTEL_TRACES_EXPORTER="console")
    assert state == "on"
    (line,) = spans_out
    span = json.loads(line)
    assert span["name"] == "ponder.test"
    assert span["attributes"] == {"ponder.answer": 42}
    assert span["resource"]["attributes"]["service.name"] == "ponder-test"


def test_otel_service_name_wins_over_the_default() -> None:
    *spans_out, _ = _run_script(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="mine")
    assert json.loads(spans_out[0])["resource"]["attributes"]["service.name"] == "mine"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
    ],
)
def test_tracing_stays_off(env: dict[str, str]) -> None:
    assert _run_script(**env) == ["off"]


def test_an_unknown_exporter_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ponder.telemetry"):
        assert not telemetry.setup("ponder-test", {"OTEL_TRACES_EXPORTER": "nosuchexporter"})
    assert not telemetry.enabled()
    assert "'nosuchexporter'" in caplog.text


# ---- off and free without the extra ------------------------------------------------------


def test_without_opentelemetry_tracing_is_off_and_jobs_run(
    monkeypatch: pytest.MonkeyPatch, sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # as if the extra were not installed: every opentelemetry import fails
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError):
        importlib.import_module("opentelemetry.sdk.trace")
    importlib.reload(telemetry)  # the module itself imports without it

    with caplog.at_level(logging.WARNING, logger="ponder.telemetry"):
        assert not telemetry.setup("ponder-worker", {"OTEL_TRACES_EXPORTER": "console"})
    assert "pip install 'ponder[otel]'" in caplog.text
    assert not telemetry.enabled()
    # one shared no-op: a call site costs a call, nothing is made per span
    assert telemetry.span("a", {"x": 1}) is telemetry.span("b") is telemetry.NOOP
    assert telemetry.carrier() is None and telemetry.current_ids() is None

    job_id = _submit(sqlite_settings)
    svc = services(sqlite_settings, [])
    try:
        run_until_done(svc, job_id)
    finally:
        svc.close()
    job = load_job(sqlite_settings, job_id)
    assert job.status == "completed", job.error
    assert job.trace_context is None
