"""A profile's ``max_concurrency`` holds across worker processes: two real ``ponder
worker`` processes (two slices at once each, ``PONDER_WORKER_MAX_JOBS=2``, so four slices
at once and both processes get some) share a model profile
with ``max_concurrency: 2`` on a ``ponder sim serve --latency-ms 300``; the sim server
counts the requests in flight, and never sees more than 2. A second profile on the same
server with a wide limit shows the workers really could have sent more."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

TERMINAL = ("completed", "failed", "cancelled")
PUZZLES = [[4, 9, 10, 13], [1, 2, 3, 4], [3, 3, 8, 8], [2, 5, 7, 11], [1, 5, 5, 5], [6, 6, 6, 6]]


@pytest.fixture
def limited(pg_url: str, queue_name: str, tmp_path: Path) -> Iterator[tuple[Stack, str, str]]:
    # unique names: the slots live in the shared Redis, keyed by profile name
    tag = uuid.uuid4().hex[:8]
    narrow, wide = f"sim-narrow-{tag}", f"sim-wide-{tag}"
    extra = "".join(
        f"  - name: {name}\n"
        "    provider: openai\n"
        "    base_url: http://127.0.0.1:{sim_port}/v1\n"
        "    model: sim-1\n"
        "    supports_n: false\n"  # n samples = n concurrent requests
        f"    max_concurrency: {limit}\n"
        for name, limit in ((narrow, 2), (wide, 16))
    )
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        sim_args=("--latency-ms", "300"),
        worker_concurrency=1,
        extra_models=extra,
        workers=2,
        env_overrides={"PONDER_WORKER_MAX_JOBS": "2"},
    ) as stack:
        yield stack, narrow, wide


def submit(client: httpx.Client, model: str, numbers: list[int]) -> str:
    response = client.post(
        "/v1/jobs",
        json={
            "problem": {"task": "game24", "input": {"numbers": numbers}},
            "strategy": {"name": "best_of_n", "params": {"n": 4, "max_tokens": 256}},
            "model": model,
            "budget": {"max_tokens": 20000, "max_calls": 8},
        },
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_all(client: httpx.Client, job_ids: list[str], timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    done: dict[str, Any] = {}
    while len(done) < len(job_ids) and time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id not in done:
                job = client.get(f"/v1/jobs/{job_id}", params={"wait": 1}).json()
                if job["status"] in TERMINAL:
                    done[job_id] = job
    assert len(done) == len(job_ids), f"{len(job_ids) - len(done)} job(s) did not finish"
    return [done[j] for j in job_ids]


def inflight(stack: Stack) -> dict[str, int]:
    counters: dict[str, int] = httpx.get(f"{stack.sim_url}/debug/inflight", timeout=5).json()
    return counters


def test_two_workers_never_exceed_the_profile_limit(limited: tuple[Stack, str, str]) -> None:
    stack, narrow, wide = limited
    key = stack.new_key("limits")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        jobs = wait_all(client, [submit(client, narrow, numbers) for numbers in PUZZLES])
        assert all(job["status"] == "completed" for job in jobs), jobs
        counters = inflight(stack)
        assert counters["inflight"] == 0
        assert counters["requests"] >= 4 * len(PUZZLES)
        # 24+ requests, never more than 2 at once (counted by the server itself)
        assert counters["max_inflight"] == 2, counters

        # Both workers took part: slices were spread over the two processes.
        for name in ("worker", "worker2"):
            log = (stack.logdir / f"{name}.log").read_text(errors="replace")
            assert "succeeded" in log, f"{name} ran no slice:\n{stack.logs()}"
            assert "Redis unavailable" not in log

        # Control: the same workers on a wide profile send many more at once.
        jobs = wait_all(client, [submit(client, wide, numbers) for numbers in PUZZLES[:4]])
        assert all(job["status"] == "completed" for job in jobs), jobs
        assert inflight(stack)["max_inflight"] > 2
