"""The whole service as separate processes, over real HTTP, Postgres, Redis and Celery."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack

pytestmark = pytest.mark.e2e

TERMINAL = ("completed", "failed", "cancelled")


def poll_until_done(client: httpx.Client, job_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()
        if job["status"] in TERMINAL:
            return job
    raise AssertionError(f"job {job_id} did not finish")


def test_submit_over_http_and_poll_to_completion(stack: Stack) -> None:
    key = stack.new_key("e2e")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        models = {m["name"] for m in client.get("/v1/models").json()}
        assert {"sim", "sim-http"} <= models
        resp = client.post(
            "/v1/jobs",
            json={
                "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
                "strategy": {"name": "best_of_n", "params": {"n": 8, "max_tokens": 1024}},
                "model": "sim-http",
                "budget": {"max_tokens": 30000, "max_calls": 32},
            },
        )
        assert resp.status_code == 202, resp.text
        job = poll_until_done(client, resp.json()["id"])
    assert job["status"] == "completed", job
    assert job["stop_reason"] == "verified"
    assert job["result"]["verified"] is True
    assert 0 < job["usage"]["tokens"] <= 30000
    assert 1 <= job["usage"]["calls"] <= 32


def test_cli_submit_wait_and_list(stack: Stack, tmp_path: Path) -> None:
    key = stack.new_key("e2e-cli")
    body = tmp_path / "job.json"
    body.write_text(
        json.dumps(
            {
                "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
                "strategy": {"name": "best_of_n", "params": {"n": 4}},
                "model": "sim",
            }
        )
    )
    stack.env["PONDER_API_URL"] = stack.api_url
    stack.env["PONDER_API_KEY"] = key
    out = stack.cli("submit", str(body), "--wait")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["status"] == "completed"
    assert "best score" in out.stderr or "best score" in out.stdout  # the progress line

    listed = stack.cli("jobs")
    assert listed.returncode == 0, listed.stderr
    assert job["id"][:8] in listed.stdout

    shown = stack.cli("show", job["id"])
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["id"] == job["id"]

    bad = stack.cli("show", job["id"], "--api-key", "pk_wrong")
    assert bad.returncode == 1
    assert "401" in bad.stderr


def test_beat_reaper_runs_a_job_whose_message_never_reached_the_broker(stack: Stack) -> None:
    from ponder.config import Settings
    from tests.jobs_helpers import create_job, load_job

    settings = Settings(database_url=stack.env["PONDER_DATABASE_URL"])
    job_id = create_job(settings, numbers=(1, 2, 3, 4))  # in Postgres only, never enqueued
    stack.start("beat", "beat", "--loglevel", "INFO")
    deadline = time.monotonic() + 60
    while load_job(settings, job_id).status not in TERMINAL:
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.1)
    assert load_job(settings, job_id).status == "completed"
