"""Ponder's Prometheus metrics without services: names, units and bounded labels; the
counters a job run moves (on a SQLite journal, the simulated model), budget refusals,
a crash and its recovery; the state collector (SQLite, and a database that does not
answer); a multi-process worker's shared metrics; the command line's checks."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy import update
from typer.testing import CliRunner

from ponder import metrics
from ponder.cli import app as cli
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.errors import ErrorCode
from ponder.jobstore import jobs_to_requeue
from ponder.llm.base import AuthError, BadRequest, ProviderError, ProviderUnavailable, RateLimited
from ponder.llm.profiles import ModelProfile
from ponder.localproc import free_port
from ponder.sim.model import SimProvider
from ponder.tables import Batch, Job, JobStep, utcnow
from tests.jobs_helpers import (
    CountingProvider,
    Crash,
    create_job,
    expire_lease,
    load_job,
    run_until_done,
)
from tests.metrics_helpers import Scrape, check_labels_bounded
from worker.runner import WorkerServices, run_slice
from worker.supervisor import SharedMetrics

ONE_AT_A_TIME = {
    "name": "best_of_n",
    "params": {"n": 6, "batch_size": 1, "max_tokens": 96, "stop_when_verified": False},
}


def value(name: str, **labels: str) -> float:
    """A sample of this process's registry (0 when it has not been counted yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ponder_metrics() -> list[MetricWrapperBase]:
    return [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]


def services(settings: Settings, providers: list[CountingProvider], **kw: int) -> WorkerServices:
    def factory(profile: ModelProfile) -> CountingProvider:
        provider = CountingProvider(SimProvider(profile.name), crash_at=kw.get("crash_at"))
        providers.append(provider)
        return provider

    return WorkerServices(settings, provider_factory=factory)


# ---------------------------------------------------------------- names and labels


def test_every_metric_is_named_with_its_unit_explained_and_bounded() -> None:
    found = ponder_metrics()
    assert len(found) >= 15
    for metric in found:
        name = metric._name
        assert name.startswith("ponder_"), name
        assert set(metric._labelnames) <= metrics.LABELS, (name, metric._labelnames)
        assert len(metric._documentation.split()) >= 8, f"{name}: say more in its HELP text"
        if metric._type == "histogram":
            assert name.endswith(("_seconds", "_writes")), name
    # the exposition parses, and every counter's samples end in _total
    scraped = Scrape.parse(generate_latest(REGISTRY).decode())
    counters = {f for f, kind in scraped.families.items() if kind == "counter"}
    for sample, _, _ in scraped.samples:
        family = sample.removesuffix("_total").removesuffix("_created")
        if sample.startswith("ponder_") and family in counters:
            assert sample.endswith(("_total", "_created")), sample
    check_labels_bounded(scraped)


def test_the_readme_lists_every_metric() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Metrics") :]
    section = section[: section.index("\n## ", 1)]
    names = [m._name + ("_total" if m._type == "counter" else "") for m in ponder_metrics()]
    names += [
        "ponder_jobs_queued",
        "ponder_queue_oldest_job_age_seconds",
        "ponder_jobs_running",
        "ponder_batch_items",
        "ponder_webhook_deliveries_pending",
        "ponder_metrics_database_up",
        "ponder_metrics_database_read_seconds",
    ]
    missing = [name for name in names if f"`{name}`" not in section]
    assert not missing, f"the README's Metrics section does not list {missing}"


def test_label_values_come_from_closed_sets() -> None:
    outcomes = {
        metrics.call_outcome(error)
        for error in (
            None,
            TimeoutError(),
            asyncio.CancelledError(),
            Crash("gone"),
            ValueError("a bug"),
            ProviderError("x"),
            ProviderUnavailable("x"),
            RateLimited("x"),
            BadRequest("x"),
            AuthError("x"),
        )
    }
    allowed = {"ok", "timeout", "cancelled", "error"} | {code.value for code in ErrorCode}
    assert outcomes <= allowed
    assert {"ok", "timeout", "cancelled", "error", "provider_unavailable", "provider_auth"} <= (
        outcomes
    )
    responses = {metrics.response_class(code, None) for code in range(100, 600)}
    responses |= {
        metrics.response_class(None, failure)
        for failure in ("timeout", "refused", "network", "not_sent", "anything", None)
    }
    assert responses == {
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "timeout",
        "refused",
        "network",
        "not_sent",
    }
    assert metrics.response_class(999, None) == metrics.OTHER
    # a value outside its set is shown as "other", never as itself
    metrics.job_finished("0b1e2c9a-6c1f-4c55-9d4f-2f4b8f8e7a10", "free text from somewhere")
    assert value("ponder_jobs_finished_total", status="other", stop_reason="other") >= 1
    metrics.call_replayed("something else")
    assert value("ponder_replayed_calls_total", kind="other") >= 1


def test_model_names_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_models_seen", set())
    monkeypatch.setattr(metrics, "MAX_MODEL_LABELS", 3)
    labels = [metrics.model_label(f"profile-{i}") for i in range(6)]
    assert labels == ["profile-0", "profile-1", "profile-2", "other", "other", "other"]
    assert metrics.model_label("profile-1") == "profile-1"


# ---------------------------------------------------------------- what a run counts


def test_a_job_run_moves_the_counters_by_what_it_used(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME, budget={"max_calls": 64})
    providers: list[CountingProvider] = []
    svc = services(sqlite_settings, providers)
    before = {
        "calls": value("ponder_model_calls_total", model="sim", outcome="ok"),
        "prompt": value("ponder_model_tokens_total", model="sim", type="prompt"),
        "completion": value("ponder_model_tokens_total", model="sim", type="completion"),
        "completions": value("ponder_model_completions_total", model="sim"),
        "finished": value(
            "ponder_jobs_finished_total", status="completed", stop_reason="search_exhausted"
        ),
        "slices": value("ponder_slice_duration_seconds_count", outcome="finished"),
        "writes": value("ponder_journal_write_duration_seconds_count"),
        "running": value("ponder_worker_slices_running"),
    }
    outcome = run_until_done(svc, job_id)
    svc.close()
    job = load_job(sqlite_settings, job_id)
    assert outcome.kind == "finished"
    assert (job.status, job.stop_reason) == ("completed", "search_exhausted")
    calls = value("ponder_model_calls_total", model="sim", outcome="ok") - before["calls"]
    assert calls == providers[0].calls == 6
    tokens = (
        value("ponder_model_tokens_total", model="sim", type="prompt")
        - before["prompt"]
        + value("ponder_model_tokens_total", model="sim", type="completion")
        - before["completion"]
    )
    assert tokens == job.usage_tokens > 0
    completions = value("ponder_model_completions_total", model="sim") - before["completions"]
    assert completions == job.usage_calls
    finished = value(
        "ponder_jobs_finished_total", status="completed", stop_reason="search_exhausted"
    )
    assert finished - before["finished"] == 1
    slices = value("ponder_slice_duration_seconds_count", outcome="finished")
    assert slices - before["slices"] == 1
    # a claim, 6 reservations and 6 results, the final status at least
    assert value("ponder_journal_write_duration_seconds_count") - before["writes"] >= 14
    assert value("ponder_worker_slices_running") == before["running"]


def test_a_call_the_budget_refuses_is_counted(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME, budget={"max_calls": 2})
    before = value("ponder_budget_refusals_total", limit="calls")
    svc = services(sqlite_settings, [])
    run_until_done(svc, job_id)
    svc.close()
    assert load_job(sqlite_settings, job_id).stop_reason == "budget_exhausted"
    assert value("ponder_budget_refusals_total", limit="calls") - before == 1


def test_a_crash_and_its_recovery_are_counted(sqlite_settings: Settings) -> None:
    job_id = create_job(sqlite_settings, strategy=ONE_AT_A_TIME)
    before = {
        "crashed": value("ponder_model_calls_total", model="sim", outcome="cancelled"),
        "recovered": value("ponder_lease_recoveries_total"),
        "lost": value("ponder_lost_calls_total"),
        "replayed": value("ponder_replayed_calls_total", kind="sample"),
    }
    crashing = services(sqlite_settings, [], crash_at=3)
    with pytest.raises(Crash):
        run_slice(crashing, job_id, owner="doomed")
    # the model call that was in flight when the process "died"
    assert (
        value("ponder_model_calls_total", model="sim", outcome="cancelled") - before["crashed"] == 1
    )

    expire_lease(sqlite_settings, job_id)
    engine = make_engine(sqlite_settings.database_url)
    sessions = make_sessionmaker(engine)
    now = utcnow()
    for _ in range(2):  # the reaper finds the expired lease on each tick: counted once
        found = jobs_to_requeue(sessions, stale_before=now, now=now)
        assert [job for job, _ in found] == [job_id]
        now += timedelta(seconds=1)
    assert value("ponder_lease_recoveries_total") - before["recovered"] == 1

    # the call in flight at the crash was journaled as lost by the crashing run
    assert value("ponder_lost_calls_total") - before["lost"] == 1
    # a call whose worker died before it could write anything: its reservation is
    # still pending in the journal, and the next claim counts it as lost
    with sessions() as s, s.begin():
        job = s.get(Job, job_id)
        assert job is not None
        s.add(
            JobStep(
                job_id=job_id,
                key=1000,
                kind="sample",
                status="pending",
                digest="x",
                attempt=job.attempt,
                reserved_tokens=100,
                reserved_calls=1,
            )
        )
    engine.dispose()

    svc = services(sqlite_settings, [])
    run_until_done(svc, job_id)
    svc.close()
    job = load_job(sqlite_settings, job_id)
    assert job.status == "completed"
    assert value("ponder_lost_calls_total") - before["lost"] == job.lost_calls == 2
    # the two calls journaled before the crash come back from the journal
    assert value("ponder_replayed_calls_total", kind="sample") - before["replayed"] == 2


@dataclass(frozen=True)
class _Outcome:
    kind: str


def test_a_slice_is_timed_by_its_outcome_even_when_it_fails() -> None:
    @metrics.timed_slice
    async def handed_off() -> _Outcome:
        assert value("ponder_worker_slices_running") == running + 1
        return _Outcome("handoff")

    @metrics.timed_slice
    async def broken() -> _Outcome:
        raise RuntimeError("a bug")

    running = value("ponder_worker_slices_running")
    handoffs = value("ponder_slice_duration_seconds_count", outcome="handoff")
    errors = value("ponder_slice_duration_seconds_count", outcome="error")
    assert asyncio.run(handed_off()).kind == "handoff"
    with pytest.raises(RuntimeError):
        asyncio.run(broken())
    assert value("ponder_slice_duration_seconds_count", outcome="handoff") == handoffs + 1
    assert value("ponder_slice_duration_seconds_count", outcome="error") == errors + 1
    assert value("ponder_worker_slices_running") == running


# ---------------------------------------------------------------- state from the database


def test_the_state_collector_reads_queue_depth_flight_and_batch_items(
    sqlite_settings: Settings,
) -> None:
    ids = [create_job(sqlite_settings) for _ in range(6)]
    engine = make_engine(sqlite_settings.database_url)
    sessions = make_sessionmaker(engine)
    an_hour_ago = utcnow() - timedelta(hours=1)
    with sessions() as s, s.begin():
        tenant_id = s.get(Job, ids[0]).tenant_id  # type: ignore[union-attr]
        s.add(Batch(id="b1", tenant_id=tenant_id, status="running", source="inline"))
        s.flush()
        changes = [
            {"priority": 7},  # queued, published
            {"priority": 7, "created_at": an_hour_ago},
            {"held": True, "batch_id": "b1", "item_index": 0},  # waiting for the feeder
            {"status": "running", "lease_owner": "w", "batch_id": "b1", "item_index": 1},
            {"status": "running"},  # between two slices
            {"status": "completed", "batch_id": "b1", "item_index": 2},
        ]
        for job_id, values in zip(ids, changes, strict=True):
            s.execute(update(Job).where(Job.id == job_id).values(**values))
    state = metrics.DatabaseState(engine, timeout=2.0)
    scraped = Scrape.parse(generate_latest(metrics.api_registry(state)).decode())
    engine.dispose()

    assert scraped.total("ponder_metrics_database_up") == 1
    assert scraped.total("ponder_jobs_queued", priority="7", held="false") == 2
    assert scraped.total("ponder_jobs_queued", priority="0", held="true") == 1
    assert scraped.total("ponder_jobs_queued") == 3
    assert scraped.total("ponder_jobs_running", leased="true") == 1
    assert scraped.total("ponder_jobs_running", leased="false") == 1
    assert scraped.total("ponder_queue_oldest_job_age_seconds", held="false") >= 3600
    items = {
        status: scraped.total("ponder_batch_items", status=status)
        for status in scraped.label_values("ponder_batch_items", "status")
    }
    assert items == {
        "held": 1,
        "queued": 0,
        "running": 1,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert scraped.has("ponder_jobs_submitted_total") or "ponder_jobs_submitted" in (
        scraped.families
    )  # this process's own metrics come along
    check_labels_bounded(scraped)


def test_a_database_that_does_not_answer_leaves_the_scrape_answering() -> None:
    # nothing listens on this port: the connection is refused
    engine = make_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/ponder",
        pool_size=1,
        max_overflow=0,
        connect_args={"connect_timeout": 2},
    )
    scraped = Scrape.parse(
        generate_latest(metrics.api_registry(metrics.DatabaseState(engine, timeout=1.0))).decode()
    )
    engine.dispose()
    assert scraped.total("ponder_metrics_database_up") == 0
    assert scraped.has("ponder_metrics_database_read_seconds")
    for gauge in ("ponder_jobs_queued", "ponder_jobs_running", "ponder_batch_items"):
        assert gauge not in scraped.families


# ---------------------------------------------------------------- several processes


CHILD = """
from ponder import metrics
metrics.job_submitted("job", {count})
metrics.SLICES_RUNNING.inc()
print("counted", flush=True)
import sys; sys.stdin.read()  # stay alive until told
"""


def test_a_multi_process_worker_serves_the_sum_of_its_processes() -> None:
    port = free_port()
    shared = SharedMetrics("127.0.0.1", port)
    directory = Path(shared.directory)
    env = shared.child_env()
    assert env["PROMETHEUS_MULTIPROC_DIR"] == shared.directory
    assert "PONDER_WORKER_METRICS_PORT" not in env
    children = []
    try:
        for count in (2, 3):
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD.format(count=count)],
                env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(child)
            assert child.stdout is not None and child.stdout.readline() == "counted\n"
        scraped = Scrape.parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert scraped.total("ponder_jobs_submitted_total", kind="job") == 5
        assert scraped.total("ponder_worker_slices_running") == 2
        # a process dies: what it counted stays, its share of the live gauge goes
        children[0].communicate("")
        shared.process_died(children[0].pid)
        scraped = Scrape.parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert scraped.total("ponder_jobs_submitted_total", kind="job") == 5
        assert scraped.total("ponder_worker_slices_running") == 1
    finally:
        for child in children:
            if child.poll() is None:
                child.communicate("")
        shared.close()
    assert not directory.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


# ---------------------------------------------------------------- the command line


def test_a_metrics_port_with_metrics_turned_off_is_refused() -> None:
    runner = CliRunner()
    env = {"PONDER_METRICS_ENABLED": "false"}
    for command in (["worker", "--processes", "1"], ["worker", "--processes", "2"], ["api"]):
        result = runner.invoke(cli, [*command, "--metrics-port", "9999"], env=env)
        assert result.exit_code == 2, result.output
        assert "PONDER_METRICS_ENABLED" in result.output


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_metrics_port_in_use_stops_the_worker_with_a_message(processes: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["worker", "--processes", processes, "--metrics-port", str(port)]
        )
    assert result.exit_code == 2, result.output
    assert f"cannot serve metrics on 127.0.0.1 port {port}" in result.output
