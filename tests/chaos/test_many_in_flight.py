"""Faults with a worker process holding well over a hundred jobs at once: kill -9 while
they are mid-call, and SIGTERM (graceful stop) while they are mid-call. Every job
completes on another worker within its budget; after kill -9 only calls that were in
flight are paid again, and after SIGTERM not even those (they are drained and
journaled before the jobs are handed back)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_until
from tests.stack import Stack, running_stack

pytestmark = pytest.mark.chaos

JOBS = 150
CALLS = 4
MAX_CALLS = 6  # room for a call lost at the kill (its worst case counts as spent)
MAX_TOKENS = 20_000


def _submit_all(stack, key: str) -> list[str]:  # type: ignore[no-untyped-def]
    bodies = [
        best_of_n_body(n=CALLS, max_calls=MAX_CALLS, max_tokens=MAX_TOKENS, seed=i)
        for i in range(JOBS)
    ]

    def one(body: dict[str, object]) -> str:
        with api_client(stack, key) as client:
            return submit(client, body)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, bodies))


def _counts(probe: Probe, ids: list[str]) -> dict[str, int]:
    from ponder.tables import Job, JobStep

    with probe.sessions() as s:
        running = s.execute(
            select(func.count())
            .select_from(Job)
            .where(Job.id.in_(ids), Job.status == "running", Job.lease_owner.is_not(None))
        ).scalar_one()
        pending = s.execute(
            select(func.count())
            .select_from(JobStep)
            .where(JobStep.job_id.in_(ids), JobStep.status == "pending")
        ).scalar_one()
        unfinished = s.execute(
            select(func.count())
            .select_from(Job)
            .where(Job.id.in_(ids), Job.status.not_in(["completed", "failed", "cancelled"]))
        ).scalar_one()
    return {"running": running, "pending": pending, "unfinished": unfinished}


def _check_every_job(probe: Probe, ids: list[str]) -> tuple[int, int]:
    """Each job completed within its budget, every paid call journaled or counted lost.
    Returns (journaled calls, lost calls) over all jobs."""
    journaled = lost = 0
    for job_id in ids:
        row = probe.job(job_id)
        done = probe.samples(job_id, "done")
        assert row.status == "completed", (job_id, row.status, row.error)
        assert done == CALLS  # every call journaled exactly once
        assert row.usage_calls == done + row.lost_calls  # no journaled call paid twice
        assert row.usage_calls <= MAX_CALLS and row.usage_tokens <= MAX_TOKENS
        journaled += done
        lost += row.lost_calls
    return journaled, lost


@contextmanager
def _queued_stack(
    pg_url: str, queue_name: str, tmp_path: Path
) -> Iterator[tuple[Stack, Probe, list[str], subprocess.Popen[bytes]]]:
    """The stack with every job queued before its one worker process starts (so the
    worker takes them all at once), then that worker."""
    with running_stack(
        pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "1000"), workers=0
    ) as stack:
        stack.start("beat", "beat")
        probe = Probe(pg_url)
        try:
            ids = _submit_all(stack, stack.new_key("chaos"))
            worker = stack.start("worker", "worker", "--processes", "1")
            yield stack, probe, ids, worker
        finally:
            probe.close()


def _finish_elsewhere(stack: Stack, probe: Probe, ids: list[str]) -> tuple[int, int]:
    """Start a second worker, wait for every job to end, check them all."""
    stack.start("worker2", "worker", "--processes", "1")
    wait_until(lambda: _counts(probe, ids)["unfinished"] == 0, "every job to finish", stack, 180)
    return _check_every_job(probe, ids)


def test_kill_9_with_many_jobs_in_flight(pg_url: str, queue_name: str, tmp_path: Path) -> None:
    with _queued_stack(pg_url, queue_name, tmp_path) as (stack, probe, ids, doomed):

        def frozen_with_many_mid_call() -> bool:
            os.killpg(doomed.pid, signal.SIGSTOP)
            c = _counts(probe, ids)
            if c["running"] >= 100 and c["pending"] >= 100:
                return True
            os.killpg(doomed.pid, signal.SIGCONT)
            return False

        wait_until(frozen_with_many_mid_call, "100 jobs running with a call in flight", stack)
        in_flight = _counts(probe, ids)["pending"]
        stack.kill9("worker")
        journaled, lost = _finish_elsewhere(stack, probe, ids)
    assert journaled == JOBS * CALLS
    # only the calls in flight at the kill were paid again (lost), none of the journaled
    assert 0 < lost <= in_flight


def test_sigterm_with_many_jobs_in_flight_loses_no_call(
    pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    with _queued_stack(pg_url, queue_name, tmp_path) as (stack, probe, ids, stopping):
        wait_until(lambda: _counts(probe, ids)["running"] >= 100, "100 jobs running at once", stack)
        stopping.send_signal(signal.SIGTERM)
        stopping.wait(timeout=60)
        after = _counts(probe, ids)
        # every call in flight was drained and journaled, every lease handed back
        assert after["pending"] == 0, after
        assert after["running"] == 0, after
        stack.procs.pop("worker")
        journaled, lost = _finish_elsewhere(stack, probe, ids)
    assert journaled == JOBS * CALLS
    assert lost == 0
