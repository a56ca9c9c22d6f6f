"""kill -9 a worker in the middle of a multi-call job — while a model call is in flight,
while a call's result is being journaled, while the job is being finalized. The reaper
hands the job to another worker, which replays the journal; the job ends with the same
answer as an uninterrupted run with the same seed, no journaled call is paid twice, and
the budget holds.

The last two points use ``PONDER_TEST_FAULT`` (see worker/faults.py): the worker kills
itself just before committing that transaction, so the transaction is lost with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_job, wait_until
from tests.stack import running_stack

pytestmark = pytest.mark.chaos

N = 8  # model calls the job makes
MAX_CALLS = 10  # room for the call lost at the kill (counted as spent)
MAX_TOKENS = 20_000


@pytest.mark.parametrize(
    ("point", "fault", "lost"),
    [
        pytest.param("during-a-model-call", None, 1, id="during-a-model-call"),
        pytest.param("during-a-journal-write", "step_commit:3", 1, id="during-a-journal-write"),
        pytest.param("during-finalize", "finalize_commit:1", 0, id="during-finalize"),
    ],
)
def test_kill_9_worker(
    point: str, fault: str | None, lost: int, pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    with running_stack(
        pg_url, queue_name, tmp_path, sim_args=("--latency-ms", "300"), workers=0
    ) as stack:
        stack.start("beat", "beat")
        doomed = stack.start(
            "worker",
            "worker",
            "--concurrency",
            "1",
            env={"PONDER_TEST_FAULT": fault} if fault else None,
        )
        probe = Probe(pg_url)
        body = best_of_n_body(n=N, max_calls=MAX_CALLS, max_tokens=MAX_TOKENS)
        with api_client(stack, stack.new_key("chaos")) as client:
            job_id = submit(client, body)
            if fault is None:
                # freeze the worker (SIGSTOP) so that what we see is what the kill hits
                def frozen_mid_call() -> bool:
                    os.killpg(doomed.pid, signal.SIGSTOP)
                    if probe.samples(job_id, "done") >= 3 and probe.samples(job_id, "pending"):
                        return True
                    os.killpg(doomed.pid, signal.SIGCONT)
                    return False

                wait_until(
                    frozen_mid_call, "a model call in flight after three journaled calls", stack
                )
                stack.kill9("worker")
            else:
                wait_until(lambda: doomed.poll() is not None, "the worker to kill itself", stack)
                assert doomed.returncode == -signal.SIGKILL, stack.logs()
            at_kill = probe.job(job_id)
            journaled_at_kill = probe.samples(job_id, "done")
            # what the dead worker left: the job leased, a call reserved but not journaled
            assert at_kill.status == "running" and at_kill.lease_owner is not None
            assert probe.samples(job_id, "pending") == lost
            if fault == "step_commit:3":
                assert journaled_at_kill == 2  # the third result died with its transaction
            if fault == "finalize_commit:1":
                assert journaled_at_kill == N

            stack.start("worker2", "worker", "--concurrency", "2")
            reference_id = submit(client, body)  # the same job and seed, uninterrupted
            job = wait_job(client, job_id, stack)
            reference = wait_job(client, reference_id, stack)
        row = probe.job(job_id)
        done = probe.samples(job_id, "done")
        probe.close()

    assert job["status"] == "completed", job
    assert reference["status"] == "completed", reference
    assert job["result"]["answer"] == reference["result"]["answer"]
    assert row.recoveries == 1
    assert done == N  # every call journaled once, whatever was kept before the kill
    assert row.lost_calls == lost  # only a call in flight at the kill is lost
    assert row.usage_calls == done + row.lost_calls  # no journaled call paid twice
    if point == "during-finalize":
        assert row.usage_calls == at_kill.usage_calls  # the resumed run only replayed
    assert row.usage_calls <= MAX_CALLS
    assert row.usage_tokens <= MAX_TOKENS
