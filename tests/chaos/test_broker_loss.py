"""Redis is transport only: flush it and restart it (empty) while 50 jobs are queued or
running, and every job still completes — the reaper re-enqueues from Postgres whatever
the broker forgot. Runs on a private redis-server, never the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_until
from tests.privsvc import PrivateRedis
from tests.stack import running_stack

pytestmark = pytest.mark.chaos

JOBS = 50


def test_redis_flushed_and_restarted_under_50_jobs(
    private_redis: PrivateRedis, pg_url: str, queue_name: str, tmp_path: Path
) -> None:
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        sim_args=("--latency-ms", "50"),
        broker_url=private_redis.url,
    ) as stack:
        stack.start("beat", "beat")
        probe = Probe(pg_url)
        with api_client(stack, stack.new_key("chaos")) as client:
            ids = [
                submit(client, best_of_n_body(n=2, max_calls=4, seed=seed)) for seed in range(JOBS)
            ]
        wait_until(lambda: probe.count("completed") >= 3, "the first jobs to complete", stack)
        before = probe.count("completed")
        private_redis.flushall()  # every queued message, unacked message and lock is gone
        private_redis.stop()
        private_redis.start()  # empty
        wait_until(
            lambda: probe.count("completed") == JOBS,
            f"all {JOBS} jobs to complete",
            stack,
            timeout=90,
        )
        rows = [probe.job(job_id) for job_id in ids]
        usage, done, lost = probe.totals()
        probe.close()

    assert JOBS - before >= 10  # the broker was lost with plenty of work still to do
    assert all(row.status == "completed" for row in rows)
    assert usage == done + lost  # nothing journaled was paid for twice
