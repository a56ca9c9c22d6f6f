"""Every registered strategy, submitted through the API and run by a real Celery worker
over Redis and Postgres, finishes with a result and a trace."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from ponder.config import Settings
from strategies.registry import all_strategies
from tests.api_helpers import api_client, auth_headers
from worker.celery_tasks import create_worker_app

pytestmark = pytest.mark.integration

GAME24 = {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}


@pytest.fixture
def stack(pg_settings: Settings) -> Iterator[TestClient]:
    app = create_worker_app(pg_settings)
    with (
        start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30),
        api_client(pg_settings) as client,
    ):
        yield client
    app.ponder_services.close()  # type: ignore[attr-defined]


def test_every_strategy_runs_end_to_end(stack: TestClient) -> None:
    headers = auth_headers(stack, "e2e-strategies")
    names = [s.name for s in all_strategies()]
    assert {
        "best_of_n",
        "self_consistency",
        "refine",
        "beam_search",
        "tree_of_thoughts",
        "mcts",
        "thinking",
        "auto",
    } <= set(names)
    ids = {}
    for name in names:
        resp = stack.post(
            "/v1/jobs",
            json={"problem": GAME24, "strategy": {"name": name}, "budget": {"max_tokens": 40_000}},
            headers=headers,
        )
        assert resp.status_code == 202, resp.text
        ids[name] = resp.json()["id"]
    deadline = time.monotonic() + 120
    for name, job_id in ids.items():
        while True:
            job = stack.get(f"/v1/jobs/{job_id}", params={"wait": 5}, headers=headers).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, f"{name} did not finish"
        assert job["status"] == "completed", (name, job["error"])
        assert job["result"] is not None, name
        assert job["usage"]["tokens"] <= 40_000
        trace = stack.get(f"/v1/jobs/{job_id}/trace", headers=headers).json()
        assert any(s["kind"] == "sample" for s in trace["steps"]), name
        assert trace["events"][-1]["kind"] == "completed"
