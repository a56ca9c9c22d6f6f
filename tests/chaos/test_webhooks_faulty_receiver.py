"""A webhook receiver that is down, then answers 500s, then 429 with Retry-After, then
recovers: every job's event is delivered, signed so that the independent
`standardwebhooks` package accepts it, and every attempt of one event carries the same
`webhook-id` (so the receiver can drop duplicates). Real processes throughout: sim, api,
worker, beat and the receiver."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks

from ponder.localproc import free_port
from tests.stack import running_stack
from tests.webhook_receiver import Receiver, parse_plan

pytestmark = pytest.mark.chaos

JOBS = 3


def _job(url: str, numbers: list[int]) -> dict[str, Any]:
    return {
        "problem": {"task": "game24", "input": {"numbers": numbers}},
        "strategy": {"name": "best_of_n", "params": {"n": 2, "max_tokens": 256}},
        "model": "sim-http",
        "webhook_url": url,
    }


def _until(what: str, check: Any, timeout: float, logs: Any) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{logs()}")


def test_every_event_is_delivered_through_a_failing_receiver(
    pg_url: str, queue_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # retries in seconds instead of minutes and hours
    monkeypatch.setenv("PONDER_WEBHOOK_RETRY_SCHEDULE", "[0.5, 0.5, 1, 1, 1, 2, 2, 2, 2, 2]")
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hooks/ponder"
    record = tmp_path / "received.jsonl"
    with running_stack(pg_url, queue_name, tmp_path) as stack:
        stack.start("beat", "beat", "--loglevel", "INFO")
        key = stack.new_key("hooks")
        with httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as api:
            secret = api.get("/v1/webhook-secrets").json()["secrets"][0]["secret"]
            puzzles = [[4, 9, 10, 13], [3, 3, 8, 8], [1, 2, 3, 4]]
            ids = []
            for numbers in puzzles[:JOBS]:
                resp = api.post("/v1/jobs", json=_job(hook, numbers))
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["id"])

            def deliveries() -> list[dict[str, Any]]:
                out = []
                for job_id in ids:
                    out.extend(api.get(f"/v1/jobs/{job_id}/deliveries").json()["deliveries"])
                return out

            # 1. the receiver is down: every event fails at least once (connection refused)
            _until(
                "a failed attempt of every event while the receiver is down",
                lambda: len(ds := deliveries()) == JOBS and all(d["attempts"] >= 1 for d in ds),
                60,
                stack.logs,
            )
            assert all(d["status"] == "pending" for d in deliveries())

            # 2. it comes up answering 500s, then 429 with Retry-After: 1, then 200s
            receiver = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.webhook_receiver",
                    "--port",
                    str(port),
                    "--record",
                    str(record),
                    "--plan",
                    "500x3,429:1x2,200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                final = _until(
                    "every event delivered",
                    lambda: (
                        (ds := deliveries()) and all(d["status"] == "delivered" for d in ds) and ds
                    ),
                    90,
                    stack.logs,
                )
            finally:
                receiver.kill()
                receiver.wait()

    requests = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["status"] for r in requests[:5]] == [500, 500, 500, 429, 429]
    wh = standardwebhooks.Webhook(secret)
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in requests:
        payload = wh.verify(r["body"], r["headers"])  # raises if the signature is wrong
        by_id[r["headers"]["webhook-id"]].append({**r, "payload": payload})

    # one webhook-id per event, and each event's attempts all share it
    assert set(by_id) == {d["webhook_id"] for d in final}
    for d in final:
        attempts = by_id[d["webhook_id"]]
        assert {a["payload"]["data"]["id"] for a in attempts} == {d["job_id"]}
        assert attempts[-1]["status"] == 200
        assert sum(a["status"] == 200 for a in attempts) == 1
        assert attempts[-1]["payload"]["type"] == "job.completed"
        assert attempts[-1]["payload"]["data"]["status"] == "completed"
        log = d["attempt_log"]
        assert log[0]["status_code"] is None and log[0]["error"]  # connection refused
        assert log[-1]["status_code"] == 200
        assert (
            len(log)
            == d["attempts"]
            == len(attempts) + sum(1 for a in log if a["status_code"] is None)
        )
    assert {d["job_id"] for d in final} == set(ids)

    # Retry-After was honoured: the attempt after a 429 came no sooner than 1 s later
    for attempts in by_id.values():
        for before, after in itertools.pairwise(attempts):
            if before["status"] == 429:
                assert after["at"] - before["at"] >= 0.95


def test_a_worker_killed_while_sending_a_webhook_is_covered_by_the_reaper(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    """kill -9 the worker while the receiver holds the request open: the claim lapses,
    the reaper hands the delivery to another worker, and the receiver gets the event
    again with the same webhook-id (at-least-once; it drops the duplicate)."""
    receiver = Receiver(parse_plan("200@30x1,200"))
    hook = receiver.start() + "/hooks/ponder"
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        worker_concurrency=1,
        env_overrides={"PONDER_WEBHOOK_TIMEOUT_SECONDS": "3"},
    ) as stack:
        stack.start("beat", "beat", "--loglevel", "INFO")
        key = stack.new_key("hooks")
        with httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as api:
            resp = api.post("/v1/jobs", json=_job(hook, [4, 9, 10, 13]))
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            receiver.wait_for(1, timeout=60)  # the worker is now mid-request
            stack.kill9("worker")
            stack.start("worker2", "worker", "--concurrency", "1", "--loglevel", "INFO")
            requests = receiver.wait_for(2, timeout=60)
            [delivery] = _until(
                "the delivery marked delivered",
                lambda: [
                    d
                    for d in api.get(f"/v1/jobs/{job_id}/deliveries").json()["deliveries"]
                    if d["status"] == "delivered"
                ],
                30,
                stack.logs,
            )
    receiver.stop()
    assert requests[0]["headers"]["webhook-id"] == requests[1]["headers"]["webhook-id"]
    assert requests[1]["headers"]["webhook-id"] == delivery["webhook_id"]
    assert delivery["attempts"] == 2
    # the killed attempt never got to log itself; the second did
    assert [a["number"] for a in delivery["attempt_log"]] == [2]
    assert delivery["attempt_log"][0]["status_code"] == 200
