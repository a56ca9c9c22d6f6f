"""GET /v1/jobs/{id}/trace after a real run."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ponder.config import Settings
from tests.jobs_helpers import run_until_done
from worker.runner import WorkerServices

pytestmark = pytest.mark.integration


def test_trace_shows_calls_candidates_and_spend(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    body = {
        "problem": {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
        "strategy": {
            "name": "best_of_n",
            "params": {"n": 6, "batch_size": 2, "max_tokens": 256, "stop_when_verified": False},
        },
    }
    job_id = client.post("/v1/jobs", json=body, headers=headers).json()["id"]
    svc = WorkerServices(pg_settings)
    run_until_done(svc, job_id)
    svc.close()

    trace = client.get(f"/v1/jobs/{job_id}/trace", headers=headers).json()
    job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    samples = [s for s in trace["steps"] if s["kind"] == "sample"]
    assert len(samples) == 3 and all(s["status"] == "done" for s in samples)
    assert [s["key"] for s in trace["steps"]] == sorted(s["key"] for s in trace["steps"])
    candidates = [e for e in trace["events"] if e["kind"] == "candidate"]
    assert len(candidates) == 6
    assert all(0.0 <= c["data"]["score"] <= 1.0 for c in candidates)
    assert trace["events"][0]["kind"] == "started"
    assert trace["events"][-1]["kind"] == "completed"
    # spend is cumulative and ends at the job's usage
    tokens = [p["tokens"] for p in trace["spend"]]
    assert tokens == sorted(tokens)
    assert tokens[-1] == job["usage"]["tokens"]
    assert trace["spend"][-1]["calls"] == job["usage"]["calls"] == 6
    assert trace["truncated"] is False
    # each call's latency and slice; one slice ran it all, so nothing was replayed
    for step in trace["steps"]:
        assert step["seconds"] is not None and step["seconds"] >= 0
        assert step["attempt"] == 1 and step["replayed"] is False
    # every improvement says what had been spent when it came (the anytime curve)
    bests = [e["data"] for e in trace["events"] if e["kind"] == "best"]
    assert bests
    assert [b["tokens"] for b in bests] == sorted(b["tokens"] for b in bests)
    assert all(0 < b["tokens"] <= job["usage"]["tokens"] for b in bests)
    assert all(1 <= b["calls"] <= 6 and b["cost_usd"] >= 0 for b in bests)


def test_trace_marks_the_calls_a_later_slice_replayed(
    client: TestClient, headers: dict[str, str], pg_settings: Settings
) -> None:
    """Each slice ends after one call here: every later slice replays the calls of the
    ones before it, so every done call but those of the last slice is marked replayed."""
    body = {
        "problem": {"task": "game24", "input": {"numbers": [3, 3, 8, 8]}},
        "strategy": {
            "name": "best_of_n",
            "params": {"n": 3, "batch_size": 1, "max_tokens": 256, "stop_when_verified": False},
        },
    }
    job_id = client.post("/v1/jobs", json=body, headers=headers).json()["id"]
    svc = WorkerServices(pg_settings.model_copy(update={"slice_seconds": 1e-9}))
    run_until_done(svc, job_id)
    svc.close()

    trace = client.get(f"/v1/jobs/{job_id}/trace", headers=headers).json()
    samples = [s for s in trace["steps"] if s["kind"] == "sample"]
    assert len(samples) == 3
    attempts = [s["attempt"] for s in samples]
    assert attempts == sorted(attempts) and len(set(attempts)) == 3
    last = max(s["attempt"] for s in trace["steps"])
    for step in trace["steps"]:
        assert step["replayed"] is (step["attempt"] < last), step
    assert any(s["replayed"] for s in samples)


def test_trace_of_another_tenants_job_is_a_404(client: TestClient, headers: dict[str, str]) -> None:
    from tests.api_helpers import auth_headers

    body = {
        "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
        "strategy": {"name": "best_of_n"},
    }
    job_id = client.post("/v1/jobs", json=body, headers=headers).json()["id"]
    other = auth_headers(client, "someone-else")
    resp = client.get(f"/v1/jobs/{job_id}/trace", headers=other)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
