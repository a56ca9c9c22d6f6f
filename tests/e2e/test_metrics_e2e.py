"""Prometheus metrics of the whole service as processes: a known workload (5 jobs on the
simulated model over HTTP, two of them with webhooks) moves the worker's and the API's
counters by exactly what the API reports the jobs used, scrapes parse with
prometheus_client's parser, and no label ever holds an id. Also: the API's metrics on a
port and interface of their own, and a single-process worker's metrics port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.localproc import free_port, wait_http_ok
from tests.metrics_helpers import Scrape, check_labels_bounded, delta, scrape
from tests.stack import running_stack
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.e2e

TERMINAL = ("completed", "failed", "cancelled")

# a second profile on the same simulated server, with prices, so cost moves too
PRICED = (
    "  - name: sim-priced\n"
    "    provider: openai\n"
    "    base_url: http://127.0.0.1:{sim_port}/v1\n"
    "    model: sim-1\n"
    "    price_in_per_mtok: 3.0\n"
    "    price_out_per_mtok: 15.0\n"
)


def job_body(model: str, numbers: list[int], webhook_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "problem": {"task": "game24", "input": {"numbers": numbers}},
        "strategy": {
            "name": "best_of_n",
            "params": {"n": 4, "batch_size": 2, "stop_when_verified": False},
        },
        "model": model,
        "budget": {"max_tokens": 40_000, "max_calls": 16},
    }
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    return body


def wait_done(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
        if job["status"] in TERMINAL:
            return job
    raise AssertionError(f"job {job_id} did not finish")


def scrape_until(url: str, done: Callable[[Scrape], bool], timeout: float = 30.0) -> Scrape:
    """Scrape ``url`` until ``done`` holds: a worker counts a job as finished right after
    its final write commits, which the API may report a moment earlier."""
    deadline = time.monotonic() + timeout
    while True:
        scraped = scrape(url)
        if done(scraped) or time.monotonic() > deadline:
            return scraped
        time.sleep(0.1)


def test_a_known_workload_moves_the_counters_by_what_the_jobs_used(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    worker_port = free_port()
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    receiver = Receiver(parse_plan("500x1,200"))
    hook = receiver.start() + "/hook"
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        extra_models=PRICED,
        worker_args=("--metrics-port", str(worker_port)),
        # a failed webhook attempt is retried at once (the first one answers 500)
        env_overrides={"PONDER_WEBHOOK_RETRY_SCHEDULE": "[0.2]"},
    ) as s:
        wait_http_ok(worker_metrics, list(s.procs.values()))
        api_metrics = f"{s.api_url}/metrics"
        worker_before, api_before = scrape(worker_metrics), scrape(api_metrics)
        key = s.new_key("metrics")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=s.api_url, headers=headers, timeout=30) as client:
            bodies = [
                job_body("sim-http", [4, 9, 10, 13], hook),
                job_body("sim-http", [1, 2, 3, 4]),
                job_body("sim-http", [2, 3, 4, 6]),
                job_body("sim-priced", [4, 6, 6, 6], hook),
                job_body("sim-priced", [1, 1, 4, 6]),
            ]
            ids = []
            for body in bodies:
                answer = client.post("/v1/jobs", json=body)
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
            jobs = [wait_done(client, job_id) for job_id in ids]
            traces = [client.get(f"/v1/jobs/{job_id}/trace").json() for job_id in ids]
            receiver.wait_for(3)  # two deliveries, one of them retried once
            api_after = scrape(api_metrics)

        worker_after = scrape_until(
            worker_metrics,
            lambda m: (
                m.total("ponder_jobs_finished_total") >= 5
                and m.total("ponder_webhook_attempts_total") >= 3
            ),
        )
    receiver.stop()

    moved = delta(worker_before, worker_after)
    # jobs finished, by the status and stop reason the API reports
    assert moved("ponder_jobs_finished_total") == 5
    for status, reason in {(j["status"], j["stop_reason"]) for j in jobs}:
        expected = sum(1 for j in jobs if (j["status"], j["stop_reason"]) == (status, reason))
        assert moved("ponder_jobs_finished_total", status=status, stop_reason=reason) == expected

    # tokens, completions and cost: exactly the jobs' usage as the API reports it
    tokens = moved("ponder_model_tokens_total")
    assert tokens == sum(j["usage"]["tokens"] for j in jobs) > 0
    samples = [step for t in traces for step in t["steps"] if step["kind"] == "sample"]
    prompt = sum(step["result"]["usage"]["prompt_tokens"] for step in samples)
    assert moved("ponder_model_tokens_total", type="prompt") == prompt
    assert moved("ponder_model_tokens_total", type="completion") == tokens - prompt
    assert moved("ponder_model_completions_total") == sum(j["usage"]["calls"] for j in jobs)
    cost = sum(j["usage"]["cost_usd"] for j in jobs)
    assert cost > 0
    assert moved("ponder_model_cost_usd_total") == pytest.approx(cost, rel=1e-6)
    assert moved("ponder_model_cost_usd_total", model="sim-http") == 0

    # model calls by profile: one request per journaled sample step of that model's jobs
    for model in ("sim-http", "sim-priced"):
        requests = sum(
            1
            for job, trace in zip(jobs, traces, strict=True)
            if job["model"] == model
            for step in trace["steps"]
            if step["kind"] == "sample"
        )
        assert requests > 0
        assert moved("ponder_model_calls_total", model=model, outcome="ok") == requests
        assert moved("ponder_model_call_duration_seconds_count", model=model) == requests
    assert worker_after.label_values("ponder_model_calls_total", "model") == {
        "sim-http",
        "sim-priced",
    }

    # slices, journal writes, webhooks
    assert moved("ponder_slice_duration_seconds_count", outcome="finished") == 5
    assert moved("ponder_journal_write_duration_seconds_count") > 0
    assert moved("ponder_journal_commit_writes_count") > 0
    assert moved("ponder_webhook_attempts_total", response="5xx", outcome="retry") == 1
    assert moved("ponder_webhook_attempts_total", response="2xx", outcome="delivered") == 2
    assert moved("ponder_webhook_attempt_duration_seconds_count") == 3
    assert worker_after.total("ponder_worker_slices_running") == 0

    # the API: what it accepted, and the state it reads from Postgres
    assert delta(api_before, api_after)("ponder_jobs_submitted_total", kind="job") == 5
    assert api_after.total("ponder_metrics_database_up") == 1
    for gauge in (
        "ponder_jobs_queued",
        "ponder_jobs_running",
        "ponder_queue_oldest_job_age_seconds",
        "ponder_batch_items",
        "ponder_webhook_deliveries_pending",
    ):
        assert api_after.families.get(gauge) == "gauge", gauge
    assert api_after.total("ponder_jobs_running") == 0
    assert api_after.total("ponder_jobs_queued") == 0

    for scraped in (worker_before, worker_after, api_before, api_after):
        check_labels_bounded(scraped)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_api_metrics_on_another_interface_and_a_single_process_worker(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    # the API listens on 127.0.0.1, its metrics on ::1 (another interface) when there is
    # an IPv6 loopback, else on another port of 127.0.0.1
    host = "::1" if _ipv6_loopback() else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    api_port, worker_port = free_port(), free_port()
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        worker_concurrency=1,
        api_args=("--metrics-port", str(api_port), "--metrics-host", host),
        worker_args=("--metrics-port", str(worker_port)),
    ) as s:
        api_metrics = f"http://{shown}:{api_port}/metrics"
        worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
        wait_http_ok(worker_metrics, list(s.procs.values()))
        # not on the API's own port
        answer = httpx.get(f"{s.api_url}/metrics")
        assert answer.status_code == 404
        assert "port of their own" in answer.json()["detail"]
        if host == "::1":
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{api_port}/metrics")

        key = s.new_key("metrics-elsewhere")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=s.api_url, headers=headers, timeout=30) as client:
            answer = client.post("/v1/jobs", json=job_body("sim-http", [4, 9, 10, 13]))
            assert answer.status_code == 202, answer.text
            job = wait_done(client, answer.json()["id"])
        api_after = scrape(api_metrics)
        worker_after = scrape_until(
            worker_metrics, lambda m: m.total("ponder_jobs_finished_total") >= 1
        )

    assert api_after.total("ponder_jobs_submitted_total", kind="job") == 1
    assert api_after.total("ponder_metrics_database_up") == 1
    assert api_after.has("process_cpu_seconds_total")  # a single process: its own figures
    assert worker_after.has("process_cpu_seconds_total")
    assert worker_after.total("ponder_jobs_finished_total", status=job["status"]) == 1
    assert worker_after.total("ponder_model_tokens_total") == job["usage"]["tokens"]
    check_labels_bounded(api_after)
    check_labels_bounded(worker_after)
