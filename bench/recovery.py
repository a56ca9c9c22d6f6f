"""Recovery: how soon a job resumes after its worker dies, and what a crash costs.

Runs the service as real processes (simulated model server, API, beat, two workers) on
Postgres and Redis on 127.0.0.1, then:

  (a) kills the worker running a long job (kill -9, several times; then SIGTERM, the
      graceful stop of a deploy, for comparison) and measures the time from the signal
      to the job's "resumed" event on another worker. After a kill -9 that time is bounded
      by the lease (the dead worker's lease must expire) plus the reaper's interval; the
      settings used are printed. A graceful stop hands the job back at once.
  (b) runs 100 jobs while workers are kill -9'd at random (and restarted), then counts
      paid model calls (the jobs' usage), journaled calls (done job_steps), calls lost in
      flight at a crash (paid, then made again on resume) and journaled calls made again
      (paid twice: must be 0). The simulated model's access log gives the number of
      requests it actually served, as a cross-check.

Prints figures; asserts nothing about timing. Takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import tree_pids
from ponder.db import make_engine, make_sessionmaker
from ponder.migrate import upgrade
from ponder.models import Job, JobEvent, JobStep
from tests.chaos.helpers import TERMINAL, api_client, best_of_n_body, submit
from tests.stack import Stack, running_stack

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WORKERS = ("worker", "worker2")
LATENCY_MS = 100


class Db:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, pool_size=2)
        self.sessions = make_sessionmaker(self.engine)

    def job(self, job_id: str) -> Job:
        with self.sessions() as s:
            job = s.get(Job, job_id)
            assert job is not None
            return job

    def journaled(self, job_ids: list[str]) -> int:
        with self.sessions() as s:
            return int(
                s.execute(
                    select(func.count()).where(
                        JobStep.job_id.in_(job_ids),
                        JobStep.kind == "sample",
                        JobStep.status == "done",
                    )
                ).scalar_one()
            )

    def resumptions(self, job_id: str) -> list[datetime]:
        with self.sessions() as s:
            return list(
                s.execute(
                    select(JobEvent.created_at)
                    .where(JobEvent.job_id == job_id, JobEvent.kind == "resumed")
                    .order_by(JobEvent.seq)
                ).scalars()
            )

    def jobs(self, job_ids: list[str]) -> list[Job]:
        with self.sessions() as s:
            return list(s.execute(select(Job).where(Job.id.in_(job_ids))).scalars())


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def start_worker(stack: Stack, name: str) -> None:
    """Start (or restart) worker ``name``; return once it consumes from the queue."""
    log = stack.logdir / f"{name}.log"

    def readies() -> int:
        return log.read_text(errors="replace").count(" ready.") if log.exists() else 0

    before = readies()
    stack.start(name, "worker", "--concurrency", "2", "--loglevel", "INFO")
    wait_for(lambda: readies() > before, f"{name} to start")


def holder(stack: Stack, db: Db, job_id: str) -> str:
    """The name of the worker whose pool process holds the job's lease."""
    owner = db.job(job_id).lease_owner
    assert owner is not None
    pid = int(owner.split(":")[-2])  # host:pid:nonce
    for name in WORKERS:
        proc = stack.procs.get(name)
        if proc is not None and pid in tree_pids(proc.pid):
            return name
    raise RuntimeError(f"no worker process holds the lease {owner}")


def time_to_resume(stack: Stack, db: Db, client: httpx.Client, *, graceful: bool) -> float:
    """Seconds from stopping the worker that runs a long job to the job's resumption."""
    job_id = submit(client, best_of_n_body(n=200, max_calls=220))
    wait_for(
        lambda: db.job(job_id).lease_owner is not None and db.journaled([job_id]) >= 2,
        "the long job to run",
    )
    name = holder(stack, db, job_id)
    seen = len(db.resumptions(job_id))
    stopped_at = datetime.now(UTC)
    if graceful:
        proc = stack.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
    else:
        stack.kill9(name)
    wait_for(lambda: len(db.resumptions(job_id)) > seen, "the job to resume")
    resumed_at = db.resumptions(job_id)[seen]
    if graceful:
        proc.wait(timeout=60)
    start_worker(stack, name)
    client.post(f"/v1/jobs/{job_id}/cancel")
    wait_for(lambda: db.job(job_id).status in TERMINAL, "the cancelled job to stop")
    return (resumed_at - stopped_at).total_seconds()


def sim_requests(stack: Stack) -> int:
    return (stack.logdir / "sim.log").read_text().count('"POST /v1/chat/completions')


def chaos_run(stack: Stack, db: Db, client: httpx.Client, jobs: int, seed: int) -> None:
    rng = random.Random(seed)
    served_before = sim_requests(stack)
    ids = [submit(client, best_of_n_body(n=4, max_calls=8, seed=i)) for i in range(jobs)]
    started = time.monotonic()
    kills = 0
    next_kill = started + rng.uniform(2.0, 4.0)
    deadline = started + 150
    while True:
        finished = sum(1 for job in db.jobs(ids) if job.status in TERMINAL)
        if finished == jobs:
            break
        if time.monotonic() > deadline:
            print(f"  (stopped waiting: {jobs - finished} jobs unfinished after 150 s)")
            break
        if time.monotonic() >= next_kill:
            name = rng.choice(WORKERS)
            stack.kill9(name)
            start_worker(stack, name)
            kills += 1
            next_kill = time.monotonic() + rng.uniform(3.0, 6.0)
        time.sleep(0.2)
    took = time.monotonic() - started
    rows = db.jobs(ids)
    paid = sum(j.usage_calls for j in rows)
    lost = sum(j.lost_calls for j in rows)
    journaled = db.journaled(ids)
    repeated = paid - journaled - lost
    served = sim_requests(stack) - served_before
    statuses = {s: sum(1 for j in rows if j.status == s) for s in sorted({j.status for j in rows})}
    print(f"\n(b) {jobs} jobs of 4 calls, {kills} random kill -9s of a worker, {took:.0f} s")
    print(f"  job statuses                        {statuses}")
    print(f"  jobs resumed after a kill           {sum(1 for j in rows if j.recoveries)}")
    print(f"  paid model calls (usage)            {paid}")
    print(f"  journaled calls (done job_steps)    {journaled}")
    print(f"  lost in flight (paid, made again)   {lost}  ({lost / max(1, paid):.1%} of paid)")
    print(f"  journaled calls made again          {repeated}  (must be 0)")
    print(f"  requests the model server served    {served}  (<= paid: a lost call may not")
    print("                                       have reached the model)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kills", type=int, default=5, help="kill -9s timed in (a)")
    ap.add_argument("--stops", type=int, default=3, help="graceful SIGTERMs timed in (a)")
    ap.add_argument("--jobs", type=int, default=100, help="jobs in (b)")
    ap.add_argument("--seed", type=int, default=1, help="seed of (b)'s kill schedule")
    args = ap.parse_args()

    db_name = f"ponder_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db_name
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-recovery-"))
    try:
        upgrade(url)
        db = Db(url)
        with running_stack(
            url,
            f"bench-recovery-{uuid.uuid4().hex[:6]}",
            logdir,
            sim_args=("--latency-ms", str(LATENCY_MS)),
            workers=0,
        ) as stack:
            stack.start("beat", "beat", "--loglevel", "WARNING")
            for name in WORKERS:
                start_worker(stack, name)
            env = stack.env
            print(
                f"settings: lease {env['PONDER_LEASE_SECONDS']} s (renewed every third), "
                f"reaper every {env['PONDER_REAPER_INTERVAL_SECONDS']} s, "
                f"model call {LATENCY_MS} ms, {len(WORKERS)} workers x 2 processes"
            )
            with api_client(stack, stack.new_key("bench")) as client:
                kills = [
                    time_to_resume(stack, db, client, graceful=False) for _ in range(args.kills)
                ]
                stops = [
                    time_to_resume(stack, db, client, graceful=True) for _ in range(args.stops)
                ]
                print("\n(a) signal to resumption on another worker, seconds")
                print(f"  {'stop':<10} {'n':>3} {'min':>6} {'median':>7} {'max':>6}")
                for label, samples in (("kill -9", kills), ("SIGTERM", stops)):
                    if samples:
                        print(
                            f"  {label:<10} {len(samples):>3} {min(samples):>6.2f} "
                            f"{statistics.median(samples):>7.2f} {max(samples):>6.2f}"
                        )
                chaos_run(stack, db, client, args.jobs, args.seed)
        db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
    print(f"\nlogs: {logdir}")


if __name__ == "__main__":
    main()
