"""A job whose workers keep dying: it still finishes, losing only the calls in flight at
each death; and once it has been interrupted more than ``max_attempts`` times it fails,
saying why, instead of being retried for ever.

Each doomed worker runs with ``PONDER_TEST_FAULT=step_commit:2`` (worker/faults.py): it
journals one new call of the job, then kills itself (kill -9) while journaling the next."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_job, wait_until
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.chaos

N = 8
MAX_CALLS = 12
# short leases: each death costs a lease's length before the reaper hands the job on
WORKER_ENV = {"PONDER_LEASE_SECONDS": "3"}


def kill_repeatedly(
    stack: Stack, probe: Probe, job_id: str, deaths: int, env: dict[str, str]
) -> None:
    """Start ``deaths`` doomed workers; return once each has taken the job and died."""
    doomed = [
        stack.start(
            f"doomed{i}",
            "worker",
            "--concurrency",
            "1",
            env={**WORKER_ENV, **env, "PONDER_TEST_FAULT": "step_commit:2"},
        )
        for i in range(deaths)
    ]
    wait_until(
        lambda: all(p.poll() is not None for p in doomed),
        f"{deaths} workers to take the job and die",
        stack,
        timeout=20.0 * deaths,
    )
    assert all(p.returncode == -signal.SIGKILL for p in doomed), stack.logs()
    assert probe.job(job_id).status == "running"


def test_a_job_interrupted_three_times_in_a_row_still_finishes(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    with running_stack(
        pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "100"), workers=0
    ) as stack:
        stack.start("beat", "beat")
        probe = Probe(pg_url)
        body = best_of_n_body(n=N, max_calls=MAX_CALLS)
        with api_client(stack, stack.new_key("chaos")) as client:
            job_id = submit(client, body)
            kill_repeatedly(stack, probe, job_id, deaths=3, env={})
            assert probe.samples(job_id, "done") == 3  # one new call kept per doomed worker

            stack.start("worker", "worker", "--concurrency", "2", env=WORKER_ENV)
            reference_id = submit(client, body)
            job = wait_job(client, job_id, stack)
            reference = wait_job(client, reference_id, stack)
        row = probe.job(job_id)
        done = probe.samples(job_id, "done")
        probe.close()

    assert job["status"] == "completed", job
    assert job["result"]["answer"] == reference["result"]["answer"]
    assert row.recoveries == 3
    assert row.lost_calls == 3  # the call each doomed worker was journaling
    assert done == N
    assert row.usage_calls == done + row.lost_calls <= MAX_CALLS


def test_past_max_attempts_the_job_fails_with_the_reason(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    attempts = {"PONDER_MAX_ATTEMPTS": "1"}
    with running_stack(
        pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "100"), workers=0
    ) as stack:
        stack.start("beat", "beat")
        probe = Probe(pg_url)
        with api_client(stack, stack.new_key("chaos")) as client:
            job_id = submit(client, best_of_n_body(n=N, max_calls=MAX_CALLS))
            kill_repeatedly(stack, probe, job_id, deaths=2, env=attempts)
            stack.start("worker", "worker", "--concurrency", "1", env={**WORKER_ENV, **attempts})
            job = wait_job(client, job_id, stack)
        row = probe.job(job_id)
        done = probe.samples(job_id, "done")
        probe.close()

    assert job["status"] == "failed", job
    assert job["stop_reason"] == "error"
    assert "interrupted 2 times" in job["error"] and "max_attempts=1" in job["error"]
    assert done == 2  # what the two doomed workers journaled is kept ...
    assert job["result"] == row.best  # ... and the best of it is the result
    assert row.usage_calls == done + row.lost_calls
