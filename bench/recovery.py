"""Recovery: how soon jobs resume after their worker dies or stops, what a crash costs,
and how fast a running job can be cancelled.

Runs the service as real processes (simulated model server, API, beat, workers) on
Postgres and Redis on 127.0.0.1, each scenario on a scratch database of its own.

With the test stack's shortened durability settings (lease 6 s, reaper every 1 s, 100 ms
model calls; two workers of two processes):

  resume  (a) kills the worker running a long job (kill -9, several times; then SIGTERM,
          the graceful stop of a deploy, for comparison) and measures the time from the
          signal to the job's "resumed" event on another worker. After a kill -9 that
          time is bounded by the lease (the dead worker's lease must expire) plus the
          reaper's interval; the settings used are printed. A graceful stop hands the job
          back at once.
  chaos   (b) runs 100 jobs, submitted at a steady pace over 20 s, while workers are
          kill -9'd at random (and restarted), then counts paid model calls (the jobs'
          usage), journaled calls (done job_steps), calls lost in flight at a crash
          (paid, then made again on resume) and journaled calls made again (paid twice:
          must be 0). The simulated model's access log gives the number of requests it
          actually served, as a cross-check.

With the worker's DEFAULT settings (lease 30 s renewed every 10 s, reaper every 5 s,
drain 30 s, requeue after 300 s, slices of 60 s: the test stack's shortened values are
undone) and 1 s model calls, on a model profile allowing every job's call in flight:

  kill9-200    (c) 200 jobs of 6 sequential calls on one worker (`--processes 1`) plus
               beat. Once every job is running with a call in flight, the worker is
               frozen (SIGSTOP), the calls in flight are counted, and its process group is
               kill -9'd; a second worker is started. Prints the calls in flight at the
               kill, the time from the kill to every job resumed (its first "resumed"
               event after the kill; dominated by the 30 s lease), to every job ended,
               the calls paid twice (lost in flight) against the calls in flight,
               journaled calls paid twice (usage != journaled + lost, per job) and budget
               overruns.
  sigterm-200  (d) 200 jobs of 12 sequential calls held by one worker A (`--processes 1`);
               a second worker B (same flags) is started once A holds them all, and waits
               idle. With every job mid-call, A's main process gets SIGTERM. Prints A's
               time to exit, calls in flight at the SIGTERM vs calls lost, pending
               journal steps and leases A left behind, and per job the time from the
               SIGTERM to its "resumed" event on B (p50/p99/max; target: every job within
               2 s), split into SIGTERM -> handed back (the job's enqueued_at) -> resumed.
  cancel       (e) 100 jobs of 20 sequential calls on `ponder worker` (its defaults);
               50 of them, picked at random, are cancelled (POST /v1/jobs/ID/cancel) at
               random moments over 8 s. Per job: the time from the cancel request to the
               job's finished_at (p50/p99/max; target p99 <= 1 s), and the model calls a
               cancelled job started after its cancel was acknowledged (journal steps
               created after it; must be 0).

Prints figures and a summary table next to the targets; asserts nothing about timing.
Everything (the default) takes about three and a half minutes on two cores.

  --scenario kill9-200,sigterm-200,cancel   only the scenarios named (default: all)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text, tuple_
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inflight import post_jobs, scratch_database
from bench.procs import tree_pids
from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.migrate import upgrade
from ponder.tables import Job, JobEvent, JobStep
from tests.chaos.helpers import TERMINAL, api_client, best_of_n_body, submit
from tests.stack import Stack, running_stack

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WORKERS = ("worker", "worker2")
LATENCY_MS = 100

SCENARIOS = ("resume", "chaos", "kill9-200", "sigterm-200", "cancel")
KILL9_CALLS = 6  # sequential calls per job in (c)
SIGTERM_CALLS = 12  # in (d): enough that A still holds every job once B is up
CANCEL_CALLS = 20  # in (e): no job ends by itself while the cancels are sent
SPARE_CALLS = 2  # budget room over the calls a job makes (a call lost at a kill is spent)
MAX_TOKENS = 20_000
# what the test stack shortens, and the rest of what decides recovery, at the defaults
DEFAULTS = (
    "lease_seconds",
    "reaper_interval_seconds",
    "requeue_after_seconds",
    "drain_seconds",
    "slice_seconds",
    "max_attempts",
)

Row = tuple[str, str, str]  # figure, measured, target


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


def start_worker(
    stack: Stack, name: str, *args: str, loglevel: str = "INFO"
) -> subprocess.Popen[bytes]:
    """Start (or restart) worker ``name`` (``ponder worker ARGS``, by default two
    processes); return once it consumes from the queue."""
    log = stack.logdir / f"{name}.log"

    def readies() -> int:
        return log.read_text(errors="replace").count(" ready.") if log.exists() else 0

    before = readies()
    proc = stack.start(name, "worker", *(args or ("--processes", "2")), "--loglevel", loglevel)
    wait_for(lambda: readies() > before, f"{name} to start")
    return proc


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


def chaos_run(
    stack: Stack, db: Db, client: httpx.Client, jobs: int, seed: int, over: float
) -> list[Row]:
    """The jobs are submitted at a steady pace over ``over`` seconds: a worker runs many
    jobs at once, so 100 jobs of four 100 ms calls submitted together would all end
    within a second or two, before the first kill."""
    rng = random.Random(seed)
    served_before = sim_requests(stack)
    bodies = [best_of_n_body(n=4, max_calls=8, seed=i) for i in range(jobs)]
    ids: list[str] = []
    started = time.monotonic()
    kills = 0
    next_kill = started + rng.uniform(2.0, 4.0)
    deadline = started + over + 150
    while True:
        due = min(jobs, 1 + int(jobs * (time.monotonic() - started) / max(over, 1e-9)))
        while len(ids) < due:
            ids.append(submit(client, bodies[len(ids)]))
        finished = sum(1 for job in db.jobs(ids) if job.status in TERMINAL)
        if finished == jobs:
            break
        if time.monotonic() > deadline:
            print(f"  (stopped waiting: {jobs - finished} jobs unfinished)")
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
    print(
        f"\n(b) {jobs} jobs of 4 calls submitted over {over:g} s, {kills} random kill -9s "
        f"of a worker, {took:.0f} s"
    )
    print(f"  job statuses                        {statuses}")
    print(f"  jobs resumed after a kill           {sum(1 for j in rows if j.recoveries)}")
    print(f"  paid model calls (usage)            {paid}")
    print(f"  journaled calls (done job_steps)    {journaled}")
    print(f"  lost in flight (paid, made again)   {lost}  ({lost / max(1, paid):.1%} of paid)")
    print(f"  journaled calls made again          {repeated}  (must be 0)")
    print(f"  requests the model server served    {served}  (<= paid: a lost call may not")
    print("                                       have reached the model)")
    return [
        (
            f"{jobs} jobs, {kills} kill -9s: lost in flight",
            f"{lost} of {paid} paid ({lost / max(1, paid):.1%})",
            "-",
        ),
        ("  journaled calls made again", f"{repeated}", "0"),
    ]


def shortened_settings_run(args: argparse.Namespace, which: set[str]) -> list[Row]:
    """(a) and (b), on the test stack's shortened lease and reaper interval."""
    summary: list[Row] = []
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
                f"\n=== resume / chaos: the test stack's shortened settings ===\n"
                f"settings: lease {env['PONDER_LEASE_SECONDS']} s (renewed every third), "
                f"reaper every {env['PONDER_REAPER_INTERVAL_SECONDS']} s, "
                f"model call {LATENCY_MS} ms, {len(WORKERS)} workers x 2 processes"
            )
            with api_client(stack, stack.new_key("bench")) as client:
                if "resume" in which:
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
                            summary.append(
                                (
                                    f"{label} -> resumed ({len(samples)}x, lease "
                                    f"{env['PONDER_LEASE_SECONDS']} s)",
                                    f"median {statistics.median(samples):.2f} s "
                                    f"(max {max(samples):.2f})",
                                    "-",
                                )
                            )
                if "chaos" in which:
                    summary += chaos_run(
                        stack, db, client, args.jobs, args.seed, args.chaos_seconds
                    )
        db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
    print(f"\nlogs: {logdir}")
    return summary


# ---- (c)-(e): the worker at its default settings -----------------------------------------


def default_settings_env() -> dict[str, str]:
    """The worker's own defaults for what decides recovery, the test stack's shortened
    lease / reaper / requeue times among them, so the service runs as deployed."""
    fields = Settings.model_fields
    return {f"PONDER_{name.upper()}": f"{fields[name].default:g}" for name in DEFAULTS}


@dataclass
class Deployed:
    """A running stack at the default settings, with a database engine and an API key."""

    stack: Stack
    engine: Engine
    model: str
    key: str
    latency_ms: float

    def bodies(self, jobs: int, calls: int) -> list[dict[str, Any]]:
        """``jobs`` jobs of ``calls`` sequential model calls each (seeded, so a resumed
        job makes exactly the calls it would have), with room for lost calls."""
        return [
            {
                **best_of_n_body(
                    n=calls, max_calls=calls + SPARE_CALLS, seed=i, max_tokens=MAX_TOKENS
                ),
                "model": self.model,
            }
            for i in range(jobs)
        ]

    def submit(self, jobs: int, calls: int) -> list[str]:
        return asyncio.run(post_jobs(self.stack.api_url, self.key, self.bodies(jobs, calls)))

    def warm_up(self) -> None:
        """One short job through the whole path, so every process is up and connected."""
        (job_id,) = self.submit(1, 1)
        wait_for(lambda: self.status([job_id]) <= set(TERMINAL), "the warm-up job", 120)

    def status(self, ids: list[str]) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(Job.status).where(Job.id.in_(ids))).scalars())

    def unfinished(self, ids: list[str]) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(Job.id.in_(ids), Job.status.not_in(TERMINAL))
                ).scalar_one()
            )

    def in_flight(self, ids: list[str]) -> tuple[int, int]:
        """(jobs running with a lease, their model calls in flight: pending journal
        steps, each reserved before its call and completed once its result is durable)."""
        with self.engine.connect() as conn:
            running = conn.execute(
                select(func.count()).where(
                    Job.id.in_(ids), Job.status == "running", Job.lease_owner.is_not(None)
                )
            ).scalar_one()
            pending = conn.execute(
                select(func.count()).where(
                    JobStep.job_id.in_(ids), JobStep.kind == "sample", JobStep.status == "pending"
                )
            ).scalar_one()
        return int(running), int(pending)

    def leases(self, ids: list[str]) -> dict[str, tuple[int, str, datetime]]:
        """job id -> (attempt, lease owner, lease expiry) of the jobs holding a lease."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Job.id, Job.attempt, Job.lease_owner, Job.lease_expires_at).where(
                    Job.id.in_(ids), Job.lease_owner.is_not(None)
                )
            ).all()
        return {r.id: (int(r.attempt), str(r.lease_owner), r.lease_expires_at) for r in rows}

    def resumed(self, ids: list[str], since: datetime) -> dict[str, datetime]:
        """job id -> its first "resumed" event at or after ``since`` (a new claim)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JobEvent.job_id, func.min(JobEvent.created_at))
                .where(
                    JobEvent.job_id.in_(ids),
                    JobEvent.kind == "resumed",
                    JobEvent.created_at >= since,
                )
                .group_by(JobEvent.job_id)
            ).all()
        return {job_id: at for job_id, at in rows}

    def settled(self, ids: list[str], since: datetime) -> bool:
        """Whether every job of ``ids`` has resumed since ``since`` or has ended."""
        with self.engine.connect() as conn:
            ended = set(
                conn.execute(
                    select(Job.id).where(Job.id.in_(ids), Job.status.in_(TERMINAL))
                ).scalars()
            )
        return len(ended | set(self.resumed(ids, since))) >= len(set(ids))

    def audit(self, ids: list[str]) -> Audit:
        with self.engine.connect() as conn:
            jobs = conn.execute(
                select(
                    Job.id,
                    Job.status,
                    Job.budget,
                    Job.usage_calls,
                    Job.usage_tokens,
                    Job.lost_calls,
                    Job.enqueued_at,
                    Job.finished_at,
                ).where(Job.id.in_(ids))
            ).all()
            done = dict(
                conn.execute(
                    select(JobStep.job_id, func.count())
                    .where(
                        JobStep.job_id.in_(ids),
                        JobStep.kind == "sample",
                        JobStep.status == "done",
                    )
                    .group_by(JobStep.job_id)
                ).all()
            )
        a = Audit()
        for j in jobs:
            a.statuses[j.status] = a.statuses.get(j.status, 0) + 1
            journaled = int(done.get(j.id, 0))
            a.paid += j.usage_calls
            a.lost += j.lost_calls
            a.journaled += journaled
            if j.usage_calls != journaled + j.lost_calls:
                a.journal_violations += 1
            max_calls, max_tokens = j.budget.get("max_calls"), j.budget.get("max_tokens")
            if (max_calls is not None and j.usage_calls > max_calls) or (
                max_tokens is not None and j.usage_tokens > max_tokens
            ):
                a.budget_violations += 1
            if j.finished_at is not None:
                a.finished[j.id] = j.finished_at
            if j.enqueued_at is not None:
                a.enqueued[j.id] = j.enqueued_at
        return a


@dataclass
class Audit:
    """What Postgres says about a set of jobs once they have ended."""

    statuses: dict[str, int] = field(default_factory=dict)
    paid: int = 0  # sum of usage_calls
    lost: int = 0  # sum of lost_calls: paid, in flight at a crash, made again
    journaled: int = 0  # done sample steps
    journal_violations: int = 0  # jobs whose usage_calls != journaled + lost_calls
    budget_violations: int = 0  # jobs whose usage went over max_calls / max_tokens
    finished: dict[str, datetime] = field(default_factory=dict)
    enqueued: dict[str, datetime] = field(default_factory=dict)

    @property
    def repeated_journaled(self) -> int:
        """Journaled calls paid again (summed over jobs; each job's must be 0)."""
        return self.paid - self.journaled - self.lost

    def completed(self) -> int:
        return self.statuses.get("completed", 0)


@contextlib.contextmanager
def deployed_stack(label: str, latency_ms: float, max_in_flight: int) -> Iterator[Deployed]:
    """sim (``latency_ms`` per call), api and beat at the default settings, on a scratch
    database; no worker yet. The jobs' model profile allows ``max_in_flight`` calls at
    once (the default cap of 64 would bound the runs, not the worker)."""
    logdir = Path(tempfile.mkdtemp(prefix=f"ponder-bench-recovery-{label}-"))
    model = f"sim-recovery-{uuid.uuid4().hex[:6]}"
    profile = (
        f"  - name: {model}\n    provider: openai\n"
        "    base_url: http://127.0.0.1:{sim_port}/v1\n    model: sim-1\n"
        f"    max_concurrency: {max(64, max_in_flight)}\n"
    )
    with (
        scratch_database() as (_name, url),
        running_stack(
            url,
            f"bench-recovery-{uuid.uuid4().hex[:6]}",
            logdir,
            sim_args=("--latency-ms", f"{latency_ms:g}"),
            extra_models=profile,
            workers=0,
            env_overrides=default_settings_env(),
        ) as stack,
    ):
        engine = make_engine(url, pool_size=2, max_overflow=2)
        try:
            stack.start("beat", "beat", "--loglevel", "WARNING")
            env = stack.env
            print(
                f"settings (the worker's defaults): lease {env['PONDER_LEASE_SECONDS']} s "
                f"(renewed every third), reaper every {env['PONDER_REAPER_INTERVAL_SECONDS']} s, "
                f"drain {env['PONDER_DRAIN_SECONDS']} s, requeue after "
                f"{env['PONDER_REQUEUE_AFTER_SECONDS']} s, slices of "
                f"{env['PONDER_SLICE_SECONDS']} s; model call {latency_ms:g} ms; logs: {logdir}"
            )
            yield Deployed(stack, engine, model, stack.new_key("bench"), latency_ms)
        finally:
            engine.dispose()


@contextlib.contextmanager
def frozen_mid_call(
    d: Deployed, proc: subprocess.Popen[bytes], ids: list[str], timeout: float
) -> Iterator[tuple[int, int, bool]]:
    """SIGSTOP the worker's process group at a moment when every job of ``ids`` is running
    with a model call in flight; yields (jobs running, calls in flight, whether every job
    had one) while the worker stays frozen, and lets it go on (SIGCONT) afterwards. After
    ``timeout`` seconds without such a moment it freezes at the next try, whatever holds."""
    want = len(ids)
    deadline = time.monotonic() + timeout
    while True:
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            running, pending = d.in_flight(ids)
        except BaseException:
            os.killpg(proc.pid, signal.SIGCONT)
            raise
        full = running >= want and pending >= want
        if full or time.monotonic() > deadline:
            break
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    try:
        yield running, pending, full
    finally:
        with contextlib.suppress(ProcessLookupError):  # a kill -9'd group is gone
            os.killpg(proc.pid, signal.SIGCONT)


class ClaimWatcher:
    """Polls, in a thread, the lease owners of ``ids`` every ``every`` seconds and notes
    when each job is first seen claimed by an owner not in ``old_owners`` (the claim is
    not timestamped in Postgres: the "resumed" event goes out with the job's next write)."""

    def __init__(self, engine: Engine, ids: list[str], old_owners: set[str], every: float = 0.1):
        self.engine, self.ids, self.old_owners, self.every = engine, ids, old_owners, every
        self.seen: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="claim-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        query = select(Job.id, Job.lease_owner, Job.status).where(Job.id.in_(self.ids))
        with self.engine.connect() as conn:
            while not self._stop.is_set() and len(self.seen) < len(self.ids):
                rows = conn.execute(query).all()
                conn.rollback()
                now = datetime.now(UTC)
                for job_id, owner, status in rows:
                    claimed = owner is not None and owner not in self.old_owners
                    if job_id not in self.seen and (claimed or status in TERMINAL):
                        self.seen[job_id] = now
                self._stop.wait(self.every)


def owner_pid(owner: str) -> int:
    return int(owner.split(":")[-2])  # host:pid:nonce


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {statistics.median(values):.2f} / p99 {pct(values, 0.99):.2f} / "
        f"max {max(values):.2f} s"
    )


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def show(rows: list[Row]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for name, measured, target in rows:
        print(f"  {name:<{widths[0]}}  {measured:<{widths[1]}}  {target}")


def kill9_many(args: argparse.Namespace) -> list[Row]:
    """(c) kill -9 of a worker holding every job with a call in flight."""
    n, calls = args.inflight_jobs, KILL9_CALLS
    print(
        f"\n=== kill9-200: kill -9 of a worker holding {n} jobs mid-call "
        f"({calls} sequential calls each) ==="
    )
    with deployed_stack("kill9", args.latency_ms, 2 * n) as d:
        stack = d.stack
        doomed = start_worker(stack, "worker", "--processes", "1")
        d.warm_up()
        served_before = sim_requests(stack)
        ids = d.submit(n, calls)
        wait_for(lambda: d.in_flight(ids)[0] >= n, f"all {n} jobs running", 60)
        with frozen_mid_call(d, doomed, ids, timeout=calls * args.latency_ms / 2000) as frozen:
            running, in_flight, full = frozen
            leases = d.leases(ids)
            killed_at = datetime.now(UTC)
            stack.kill9("worker")
        lease_left = [seconds(exp, killed_at) for _, _, exp in leases.values()]
        t0 = time.monotonic()
        start_worker(stack, "worker2", "--processes", "1")
        b_ready = time.monotonic() - t0
        wait_for(lambda: d.settled(ids, killed_at), "every job to resume", 180)
        resumed = d.resumed(ids, killed_at)
        wait_for(lambda: d.unfinished(ids) == 0, "every job to end", 180)
        audit = d.audit(ids)
        served = sim_requests(stack) - served_before

    delays = [seconds(at, killed_at) for at in resumed.values()]
    ended = [seconds(at, killed_at) for at in audit.finished.values()]
    statuses = dict(sorted(audit.statuses.items()))
    print(
        f"  frozen (SIGSTOP) with {running} jobs running and {in_flight} calls in flight"
        + ("" if full else f" (not every job had a call in flight: gave up waiting for {n})")
    )
    if lease_left:
        print(
            f"  the dead worker's leases had {min(lease_left):.1f}-{max(lease_left):.1f} s "
            "left at the kill; the reaper re-queues a job at its first tick after expiry"
        )
    print(f"  the second worker was consuming {b_ready:.1f} s after the kill")
    rows: list[Row] = [
        ("calls in flight at the kill", f"{in_flight} ({running} jobs running)", f">= {n}"),
        (
            "kill -> every job resumed",
            f"{max(delays):.1f} s (p50 {statistics.median(delays):.1f}, {len(resumed)}/{n} resumed)"
            if delays
            else "n/a (no job resumed)",
            "- (the 30 s lease + reaper tick dominate)",
        ),
        ("kill -> every job ended", f"{max(ended):.1f} s" if ended else "n/a", "-"),
        ("jobs completed", f"{audit.completed()} / {n} {statuses}", f"{n} / {n}"),
        (
            "paid calls made again (lost_calls)",
            f"{audit.lost} (of {in_flight} in flight at the kill)",
            f"<= {in_flight}",
        ),
        (
            "journaled calls made again",
            f"{audit.repeated_journaled} ({audit.journal_violations} jobs with usage != "
            "journaled + lost)",
            "0",
        ),
        ("budget overruns (max_calls/max_tokens)", f"{audit.budget_violations}", "0"),
        (
            "calls paid / journaled / answered (sim log)",
            f"{audit.paid} / {audit.journaled} / {served}",
            f"journaled = {n * calls}",
        ),
    ]
    show(rows)
    print(
        "  (a call cut off by the kill is paid at its reservation but may be missing from the"
        "\n  model server's access log, which logs answered requests only)"
    )
    print(
        "  note: the resume time is dominated by the default 30 s lease (renewed every 10 s),"
        "\n  which a dead worker's jobs must outlive before the reaper (every 5 s) re-queues"
        "\n  them; it is not a figure of the worker's speed."
    )
    return [(f"kill9-200: {name}", measured, target) for name, measured, target in rows]


def sigterm_many(args: argparse.Namespace) -> list[Row]:
    """(d) SIGTERM of a worker holding every job with a call in flight; another worker,
    idle, is up and waiting."""
    n, calls = args.inflight_jobs, SIGTERM_CALLS
    print(
        f"\n=== sigterm-200: SIGTERM to a worker holding {n} jobs mid-call "
        f"({calls} sequential calls each), a second worker idle ==="
    )
    with deployed_stack("sigterm", args.latency_ms, 2 * n) as d:
        stack = d.stack
        a = start_worker(stack, "worker", "--processes", "1")
        d.warm_up()
        ids = d.submit(n, calls)
        wait_for(lambda: d.in_flight(ids)[0] >= n, f"all {n} jobs running on A", 60)
        t0 = time.monotonic()
        start_worker(stack, "worker2", "--processes", "1")  # B: every job is taken
        b_ready = time.monotonic() - t0
        a_pids = set(tree_pids(a.pid))
        with frozen_mid_call(d, a, ids, timeout=calls * args.latency_ms / 4000) as frozen:
            running, in_flight, full = frozen
            held = {
                job_id: lease
                for job_id, lease in d.leases(ids).items()
                if owner_pid(lease[1]) in a_pids
            }
            owners = {lease[1] for lease in held.values()}
            watcher = ClaimWatcher(d.engine, list(held), owners)
            watcher.start()
            term_at = datetime.now(UTC)
            t_term = time.monotonic()
            a.send_signal(signal.SIGTERM)  # the main process; delivered as it goes on
        try:
            a.wait(timeout=120)
            exit_s: float | None = time.monotonic() - t_term
        except subprocess.TimeoutExpired:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait(timeout=10)
            exit_s = None
        stack.procs.pop("worker")
        pairs = [(job_id, attempt) for job_id, (attempt, _, _) in held.items()]
        with d.engine.connect() as conn:
            left_pending = conn.execute(
                select(func.count()).where(
                    tuple_(JobStep.job_id, JobStep.attempt).in_(pairs),
                    JobStep.status == "pending",
                )
            ).scalar_one()
            left_leases = conn.execute(
                select(func.count()).where(Job.id.in_(ids), Job.lease_owner.in_(owners))
            ).scalar_one()
            lost_by_now = conn.execute(
                select(func.coalesce(func.sum(Job.lost_calls), 0)).where(Job.id.in_(ids))
            ).scalar_one()
            handed_back: dict[str, datetime] = {
                job_id: at
                for job_id, at in conn.execute(
                    select(Job.id, Job.enqueued_at).where(
                        Job.id.in_(list(held)), Job.enqueued_at >= term_at
                    )
                ).all()
                if at is not None
            }
        try:
            wait_for(lambda: d.settled(list(held), term_at), "every job to resume", 120)
        finally:
            watcher.stop()
        resumed = d.resumed(list(held), term_at)
        claimed = {j: at for j, at in watcher.seen.items() if j in resumed}
        wait_for(lambda: d.unfinished(ids) == 0, "every job to end", 180)
        audit = d.audit(ids)

    delays = [seconds(at, term_at) for at in resumed.values()]
    to_handback = [seconds(at, term_at) for at in handed_back.values()]
    handback_to_resume = [seconds(resumed[j], at) for j, at in handed_back.items() if j in resumed]
    ended = [seconds(at, term_at) for at in audit.finished.values()]
    not_resumed = [j for j in held if j not in resumed]
    ended_on_a = sum(1 for j in not_resumed if j in audit.finished)
    statuses = dict(sorted(audit.statuses.items()))
    within = sum(1 for x in delays if x <= 2.0)
    print(
        f"  B was consuming {b_ready:.1f} s after it was started, with A holding every job; "
        f"A was frozen (SIGSTOP) with {running} jobs running, {len(held)} leases and "
        f"{in_flight} calls in flight, sent SIGTERM and let go on (SIGCONT)"
        + ("" if full else f" (not every job had a call in flight: gave up waiting for {n})")
    )
    print(
        f"  SIGTERM -> handed back (the job's enqueued_at): {spread(to_handback)} "
        f"({len(handed_back)} jobs)"
    )
    print(f"  handed back -> resumed on B: {spread(handback_to_resume)}")
    print(
        "    of which handed back -> seen claimed by B (lease owner polled every 0.1 s): "
        + spread([seconds(at, handed_back[j]) for j, at in claimed.items() if j in handed_back])
    )
    print(
        "    and seen claimed -> the resumed event (written with B's first write, the next "
        f"call's reservation): {spread([seconds(resumed[j], at) for j, at in claimed.items()])}"
    )
    if not_resumed:
        print(f"  {len(not_resumed)} held jobs were not resumed ({ended_on_a} ended on A)")
    rows: list[Row] = [
        (
            "A's exit after SIGTERM",
            f"{exit_s:.2f} s" if exit_s is not None else "> 120 s (killed)",
            f"<= drain {d.stack.env['PONDER_DRAIN_SECONDS']} s",
        ),
        ("calls lost (lost_calls)", f"{audit.lost} (of {in_flight} in flight at SIGTERM)", "0"),
        (
            "A's pending steps left after its exit",
            f"{left_pending} (+ {lost_by_now} already swept as lost by B)",
            "0",
        ),
        ("leases still held by A after its exit", f"{left_leases}", "0"),
        (
            "SIGTERM -> resumed on B, per job",
            spread(delays) + f" ({len(resumed)}/{len(held)} resumed)",
            f"all <= 2 s  {verdict(bool(delays) and len(resumed) == n and max(delays) <= 2)}",
        ),
        ("  jobs resumed within 2 s", f"{within} / {n}", f"{n} / {n}"),
        ("SIGTERM -> every job ended", f"{max(ended):.1f} s" if ended else "n/a", "-"),
        ("jobs completed", f"{audit.completed()} / {n} {statuses}", f"{n} / {n}"),
        (
            "calls made again (lost + journaled)",
            f"{audit.lost} + {audit.repeated_journaled} ({audit.journal_violations} jobs with "
            "usage != journaled + lost)",
            "0 + 0",
        ),
        ("budget overruns (max_calls/max_tokens)", f"{audit.budget_violations}", "0"),
    ]
    show(rows)
    return [(f"sigterm-200: {name}", measured, target) for name, measured, target in rows]


def cancel_running(args: argparse.Namespace) -> list[Row]:
    """(e) cancels of running jobs at random moments: the time to stop, and no call
    started after the cancel."""
    n, k, calls = args.cancel_jobs, args.cancels, CANCEL_CALLS
    window = args.cancel_window
    print(
        f"\n=== cancel: {k} of {n} running jobs ({calls} sequential calls each) cancelled "
        f"at random moments over {window:g} s ==="
    )
    rng = random.Random(args.seed)
    with deployed_stack("cancel", args.latency_ms, 2 * n) as d:
        stack = d.stack
        start_worker(stack, "worker", loglevel="INFO")  # `ponder worker`: its defaults
        d.warm_up()
        ids = d.submit(n, calls)
        wait_for(lambda: d.in_flight(ids)[0] >= n, f"all {n} jobs running", 60)
        chosen = rng.sample(ids, k)
        moments = sorted(rng.uniform(0, window) for _ in chosen)
        sent: dict[str, tuple[datetime, datetime, int]] = {}
        t0 = time.monotonic()
        with api_client(stack, d.key) as client:
            for job_id, moment in zip(chosen, moments, strict=True):
                time.sleep(max(0.0, t0 + moment - time.monotonic()))
                at = datetime.now(UTC)
                code = client.post(f"/v1/jobs/{job_id}/cancel").status_code
                sent[job_id] = (at, datetime.now(UTC), code)
        wait_for(lambda: d.unfinished(chosen) == 0, "every cancelled job to stop", 60)
        stopped_s = time.monotonic() - t0
        wait_for(lambda: d.unfinished(ids) == 0, "every job to end", calls * 2 + 120)
        audit = d.audit(chosen)
        others = d.audit([j for j in ids if j not in sent])
        with d.engine.connect() as conn:
            steps = conn.execute(
                select(JobStep.job_id, JobStep.created_at, JobStep.completed_at).where(
                    JobStep.job_id.in_(chosen), JobStep.kind == "sample"
                )
            ).all()

    latencies = [seconds(audit.finished[j], at) for j, (at, _, _) in sent.items()]
    in_flight = after_ack = racing = 0
    call_returned: dict[str, datetime] = {}  # the call in flight at the cancel: its end
    for job_id, created, completed in steps:
        at, ack, _ = sent[job_id]
        if created > ack:
            after_ack += 1  # started after the cancel was acknowledged: must not happen
        elif created >= at:
            racing += 1  # reserved while the cancel request was being served
        elif completed is None or completed > at:
            in_flight += 1
            if completed is not None:
                call_returned[job_id] = max(completed, call_returned.get(job_id, completed))
    waiting = [seconds(end, sent[j][0]) for j, end in call_returned.items()]
    stopping = [seconds(audit.finished[j], end) for j, end in call_returned.items()]
    codes = sorted({code for _, _, code in sent.values()})
    statuses = dict(sorted(audit.statuses.items()))
    ok = bool(latencies) and pct(latencies, 0.99) <= 1.0
    print(
        f"  cancels sent over {window:g} s (HTTP {codes}); every cancelled job stopped "
        f"{stopped_s:.1f} s after the first cancel"
    )
    print(
        f"  of which: waiting for the call in flight to return {spread(waiting)}; "
        f"from its return to finished_at {spread(stopping)} ({len(waiting)} jobs had one)"
    )
    rows: list[Row] = [
        ("cancel request -> finished_at", spread(latencies), f"p99 <= 1 s  {verdict(ok)}"),
        ("cancelled jobs' status", f"{statuses}", f"cancelled: {k}"),
        ("calls in flight at their cancel", f"{in_flight} (finished, journaled)", "-"),
        ("  reserved while the cancel was served", f"{racing}", "-"),
        ("calls started after the cancel returned", f"{after_ack}", "0"),
        (
            "the other jobs completed",
            f"{others.completed()} / {n - k}",
            f"{n - k} / {n - k}",
        ),
        (
            "journaled calls made again / overruns",
            f"{audit.repeated_journaled + others.repeated_journaled} / "
            f"{audit.budget_violations + others.budget_violations}",
            "0 / 0",
        ),
    ]
    show(rows)
    print(
        f"  a {d.latency_ms:g} ms call in flight is not interrupted: the job stops when it "
        "has returned, before its next call"
    )
    return [(f"cancel: {name}", measured, target) for name, measured, target in rows]


def raise_fd_limit() -> None:
    """A worker with a call in flight per job holds a socket per job; so does the sim."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65_536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def scenarios(value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    if names == ["all"]:
        return list(SCENARIOS)
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(SCENARIOS)} or all"
        )
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--scenario",
        type=scenarios,
        default=list(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)",
    )
    ap.add_argument("--kills", type=int, default=5, help="kill -9s timed in (a)")
    ap.add_argument("--stops", type=int, default=3, help="graceful SIGTERMs timed in (a)")
    ap.add_argument("--jobs", type=int, default=100, help="jobs in (b)")
    ap.add_argument(
        "--chaos-seconds",
        type=float,
        default=20.0,
        help="(b)'s jobs are submitted at a steady pace over this long (default 20)",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of (b)'s kill schedule and (e)")
    ap.add_argument(
        "--inflight-jobs", type=int, default=200, help="jobs held by the worker in (c), (d)"
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=1000.0,
        help="each model call's latency in (c), (d), (e) (default 1000)",
    )
    ap.add_argument("--cancel-jobs", type=int, default=100, help="jobs running in (e)")
    ap.add_argument("--cancels", type=int, default=50, help="of them cancelled in (e)")
    ap.add_argument(
        "--cancel-window", type=float, default=8.0, help="seconds the cancels are spread over"
    )
    args = ap.parse_args()
    which = list(dict.fromkeys(args.scenario))
    raise_fd_limit()

    summary: list[Row] = []
    if {"resume", "chaos"} & set(which):
        summary += shortened_settings_run(args, set(which))
    runs = {"kill9-200": kill9_many, "sigterm-200": sigterm_many, "cancel": cancel_running}
    for name in which:
        if name in runs:
            summary += runs[name](args)

    print("\n=== summary ===")
    show([("figure", "measured", "target"), *summary])


if __name__ == "__main__":
    main()
