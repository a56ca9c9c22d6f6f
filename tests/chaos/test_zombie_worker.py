"""A zombie worker: frozen (SIGSTOP, as in a long GC pause or a suspended VM) in the middle
of a model call for longer than its lease, so that another worker takes the job over,
then woken up (SIGCONT) with its call's result in hand. The fencing number stops every
write it tries: the job finishes on the new worker, and the zombie's call is counted
once, as lost, never journaled.

(tests/unit/test_runtime.py checks the fence on a single journal write; this checks it
on a whole worker process that wakes up in the middle of a slice.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_job, wait_until
from tests.stack import running_stack

pytestmark = pytest.mark.chaos

N = 6
MAX_CALLS = 8


def test_a_zombie_worker_cannot_write(pg_url: str, queue_name: str, tmp_path: Path) -> None:
    with running_stack(
        pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "500"), workers=0
    ) as stack:
        stack.start("beat", "beat")
        zombie = stack.start("worker", "worker", "--concurrency", "1")
        probe = Probe(pg_url)
        with api_client(stack, stack.new_key("chaos")) as client:
            job_id = submit(client, best_of_n_body(n=N, max_calls=MAX_CALLS))

            def frozen_mid_call() -> bool:
                os.killpg(zombie.pid, signal.SIGSTOP)
                if probe.samples(job_id, "done") >= 2 and probe.samples(job_id, "pending"):
                    return True
                os.killpg(zombie.pid, signal.SIGCONT)
                return False

            wait_until(frozen_mid_call, "a model call in flight after two journaled calls", stack)
            frozen = probe.job(job_id)
            journaled_at_freeze = probe.samples(job_id, "done")

            stack.start("worker2", "worker", "--concurrency", "1")
            wait_until(
                lambda: probe.job(job_id).attempt > frozen.attempt,
                "another worker to take the job over",
                stack,
            )
            os.killpg(zombie.pid, signal.SIGCONT)
            # the zombie's slice ends on the fence, having written nothing
            wait_until(
                lambda: "'lost'" in (tmp_path / "worker.log").read_text(errors="replace"),
                "the zombie to run into the fence",
                stack,
            )
            job = wait_job(client, job_id, stack)
        row = probe.job(job_id)
        done = probe.samples(job_id, "done")
        probe.close()

    assert job["status"] == "completed", job
    assert row.recoveries == 1
    assert journaled_at_freeze >= 2
    assert done == N
    assert row.lost_calls == 1  # the zombie's call: paid once, counted once
    assert row.usage_calls == done + row.lost_calls <= MAX_CALLS
