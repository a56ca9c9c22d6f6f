"""Batches on the whole service as processes (`ponder api`, `ponder worker` x1 with two
slots, `ponder sim serve`), over real HTTP, Postgres, Redis and Celery: two batches of
Game of 24 puzzles on the simulated model run to the end, fed by the workers' own
after-finish hook, and `ponder report` compares them (table + PNG)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ponder.db import make_engine, make_sessionmaker
from ponder.tables import WebhookDelivery
from tests.stack import Stack

pytestmark = pytest.mark.e2e

PUZZLES = [[1, 2, 3, 4], [4, 9, 10, 13], [2, 2, 2, 12], [4, 6, 6, 6], [1, 1, 4, 6], [2, 3, 4, 6]]


def wait_items(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    """Long-poll every item's job to its end; then the batch's results."""
    results = [
        json.loads(x) for x in client.get(f"/v1/batches/{batch_id}/results").text.splitlines()
    ]
    for line in results:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{line['job_id']}", params={"wait": 20}).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
        else:
            raise AssertionError(f"item {line['job_id']} did not finish")
    return [json.loads(x) for x in client.get(f"/v1/batches/{batch_id}/results").text.splitlines()]


def wait_finished(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    """The batch once it has finished: the worker completes it right after its last
    item's final write (there is no event to wait on for that short gap)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if batch["finished_at"] is not None:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish: {batch}")


def test_batches_run_to_completion_and_report_compares_them(
    stack: Stack, tmp_path: Path, pg_url: str
) -> None:
    key = stack.new_key("e2e-batches")
    headers = {"Authorization": f"Bearer {key}"}
    strategies = {
        "cheap": {"name": "best_of_n", "params": {"n": 2, "max_tokens": 256}},
        "rich": {"name": "self_consistency", "params": {"n": 6, "max_tokens": 512}},
    }
    batch_ids = {}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=60) as client:
        for name, strategy in strategies.items():
            resp = client.post(
                "/v1/batches",
                json={
                    "items": [
                        {
                            "custom_id": f"{name}-{i}",
                            "problem": {"task": "game24", "input": {"numbers": p}},
                        }
                        for i, p in enumerate(PUZZLES)
                    ],
                    "defaults": {
                        "strategy": strategy,
                        "model": "sim",
                        "budget": {"max_tokens": 20000},
                    },
                    "webhook_url": "https://hooks.example.com/ponder",
                    "metadata": {"name": name},
                },
            )
            assert resp.status_code == 202, resp.text
            batch_ids[name] = resp.json()["id"]
        for name, batch_id in batch_ids.items():
            results = wait_items(client, batch_id)
            assert [r["custom_id"] for r in results] == [f"{name}-{i}" for i in range(6)]
            assert all(r["status"] == "completed" for r in results), results
            batch = wait_finished(client, batch_id)
            assert batch["status"] == "completed" and batch["counts"]["completed"] == 6
            assert batch["accuracy"]["scored"] == 6
            assert batch["usage"]["tokens"] == sum(r["usage"]["tokens"] for r in results)
            assert batch["latency"]["p95_seconds"] is not None

    engine = make_engine(pg_url)
    try:
        with make_sessionmaker(engine)() as s:
            rows = list(
                s.execute(
                    select(WebhookDelivery.payload).where(
                        WebhookDelivery.event_type == "batch.completed"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()
    assert sorted(r["data"]["id"] for r in rows) == sorted(batch_ids.values())  # once each

    stack.env["PONDER_API_URL"] = stack.api_url
    stack.env["PONDER_API_KEY"] = key
    png = tmp_path / "compare.png"
    out = stack.cli("report", batch_ids["cheap"], batch_ids["rich"], "--out", str(png))
    assert out.returncode == 0, out.stderr
    assert "best_of_n" in out.stdout and "self_consistency" in out.stdout
    assert "cheap" in out.stdout and "rich" in out.stdout
    assert f"wrote {png}" in out.stdout.replace("\n", "")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    listed = stack.cli("batches", "results", batch_ids["cheap"])
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 6
    missing = stack.cli("report", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "404" in missing.stderr
