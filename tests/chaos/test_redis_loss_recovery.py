"""Redis loss is noticed by the queue marker at the DEFAULT settings
(requeue_after_seconds 300, reaper every 5 s): 30 jobs wait in the queue, the private
Redis is flushed (or restarted empty), and every job is re-published once, long before
the 300 s requeue timeout would have done it, and completes. The delays are read from
the jobs' rows (``enqueued_at`` is set when a job is re-published) and printed (run
with ``-s`` to see them; the README reports them); the re-publishing is read from the
reaper's log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.tables import Job, utcnow
from tests.chaos.helpers import Probe, api_client, best_of_n_body, submit, wait_until
from tests.privsvc import PrivateRedis
from tests.stack import PONDER, Stack, running_stack
from worker.celery_app import broker_options
from worker.queue_watch import QueueWatch

pytestmark = pytest.mark.chaos

JOBS = 30
# Re-published by the marker check, not by the requeue timeout (300 s): it takes a tick
# or two (2-7 s here); 60 s tells the two paths apart with room for a loaded machine.
RECOVERY_SECONDS = 60.0
# the stack shortens these for the other chaos tests; this one runs at the defaults
DEFAULT_ENV = {
    f"PONDER_{name.upper()}": str(Settings.model_fields[name].default)
    for name in ("requeue_after_seconds", "reaper_interval_seconds", "lease_seconds")
}
REPUBLISHED = re.compile(r"queue watch: re-published (\d+) job")


@pytest.fixture
def broker(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    yield client
    client.close()


def marker_is_clean(client: redis.Redis, queue: str) -> bool:
    """The reaper has checked the queue and needs no second look."""
    try:
        raw = client.get(f"ponder:queue-marker:{queue}")
    except redis.ConnectionError:
        return False
    return raw is not None and json.loads(raw)["recheck_before"] is None


def republished_in_log(stack: Stack) -> int:
    log = (stack.logdir / "worker.log").read_text(errors="replace")
    return sum(int(n) for n in REPUBLISHED.findall(log))


def jobs_in_broker(client: redis.Redis, queue: str) -> set[str]:
    _, options = broker_options("redis://")
    return QueueWatch(None, queue, options).job_ids_in_broker(client)


def enqueued_at(pg_url: str, ids: list[str]) -> dict[str, datetime]:
    """When each job was last published (a re-publish sets it)."""
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine)() as s:
            rows = s.execute(select(Job.id, Job.enqueued_at).where(Job.id.in_(ids))).all()
    finally:
        engine.dispose()
    return {job_id: at for job_id, at in rows}


def test_a_flushed_redis_is_noticed_and_its_30_jobs_republished_before_the_requeue_timeout(
    private_redis: PrivateRedis,
    broker: redis.Redis,
    pg_url: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        sim_args=("--latency-ms", "50"),
        broker_url=private_redis.url,
        env_overrides=DEFAULT_ENV,
    ) as stack:
        stack.start("beat", "beat")
        probe = Probe(pg_url)
        # steady state: the reaper has looked at the (empty) queue and marked it
        wait_until(lambda: marker_is_clean(broker, queue_name), "the queue marker", stack)
        # the worker goes away (as if busy elsewhere), so the jobs wait in the broker
        worker = stack.procs["worker"]
        assert isinstance(worker.args, list)
        worker_args = [str(arg) for arg in worker.args[len(PONDER) :]]
        worker.terminate()
        worker.wait(timeout=60)
        with api_client(stack, stack.new_key("chaos")) as client:
            ids = [submit(client, best_of_n_body(n=2, max_calls=4, seed=s)) for s in range(JOBS)]
        assert jobs_in_broker(broker, queue_name) == set(ids)

        lost_at = utcnow()
        private_redis.flushall()
        stack.start("worker", *worker_args)

        wait_until(
            lambda: probe.count("completed") == JOBS, f"all {JOBS} jobs to complete", stack, 120
        )
        rows = [probe.job(job_id) for job_id in ids]
        sent = enqueued_at(pg_url, ids)
        probe.close()
        republished = republished_in_log(stack)

    delays = sorted((at - lost_at).total_seconds() for at in sent.values())
    print(f"re-published {delays[0]:.1f} to {delays[-1]:.1f} s after the flush")
    assert all(row.status == "completed" for row in rows)
    assert delays[0] > 0, "every job was re-published after the flush"
    assert delays[-1] <= RECOVERY_SECONDS, delays
    assert republished == JOBS  # each job once: no flood of duplicates
    assert all(row.attempt == 1 for row in rows)  # each claimed once


def test_a_restarted_redis_is_noticed_while_a_worker_is_busy(
    private_redis: PrivateRedis,
    broker: redis.Redis,
    pg_url: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    with running_stack(
        pg_url,
        queue_name,
        tmp_path,
        # ~1 s a job, one at a time on each of 2 processes: the queue drains in ~15 s, so
        # most jobs are still waiting in the broker when it goes
        sim_args=("--latency-ms", "400"),
        broker_url=private_redis.url,
        env_overrides={**DEFAULT_ENV, "PONDER_WORKER_MAX_JOBS": "1"},
    ) as stack:
        stack.start("beat", "beat")
        probe = Probe(pg_url)
        wait_until(lambda: marker_is_clean(broker, queue_name), "the queue marker", stack)
        with api_client(stack, stack.new_key("chaos")) as client:
            ids = [submit(client, best_of_n_body(n=2, max_calls=4, seed=s)) for s in range(JOBS)]
        wait_until(lambda: probe.count("completed") >= 2, "the first jobs to complete", stack)

        waiting_before = probe.count("queued")
        lost_at = utcnow()
        private_redis.stop()
        private_redis.start()  # empty, and a new server run
        waiting_after = probe.count("queued")

        wait_until(
            lambda: probe.count("completed") == JOBS, f"all {JOBS} jobs to complete", stack, 120
        )
        rows = [probe.job(job_id) for job_id in ids]
        sent = {job_id: at for job_id, at in enqueued_at(pg_url, ids).items() if at > lost_at}
        probe.close()
        republished = republished_in_log(stack)

    delays = sorted((at - lost_at).total_seconds() for at in sent.values())
    print(
        f"{waiting_before} jobs waited; {len(sent)} re-published "
        f"{delays[0]:.1f} to {delays[-1]:.1f} s after the restart"
    )
    assert all(row.status == "completed" for row in rows)
    assert waiting_before >= 10  # the broker was lost with plenty of work still waiting
    # every job still waiting after the loss came back through the watch, except at
    # most one per worker process that had its message in hand at that instant
    assert waiting_after - 2 <= len(sent) <= waiting_before
    assert delays[-1] <= RECOVERY_SECONDS, delays
    assert republished == len(sent)  # each job once: no flood of duplicates
