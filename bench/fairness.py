"""Fairness: one tenant floods the service, another submits a single job. How long until
that job starts?

Starts a private stack of real processes (simulated model server at 1 s per call, API,
one `ponder worker` at its defaults, beat), lets tenant A submit N jobs of 4 sequential
calls over HTTP, then, while A's flood is running, submits a few single jobs of tenant
B one second apart and reads from Postgres how long each waited between its creation
and its start. Runs twice, side by side: with Ponder's fair shares at their defaults,
and with them switched off (A's whole flood published at once, no places of a worker
process kept for other tenants), which is how the service behaved before.

Prints, per run: B's waits (each, and the worst), how many of A's jobs were running,
waiting in the broker and held in Postgres when B's jobs were submitted. Target (from
the issue): with 5 000 jobs from A, B's single job starts within 1 s. Figures only;
nothing is asserted.

  python bench/fairness.py                 # A submits 5 000 jobs
  python bench/fairness.py --jobs 1000     # a quicker run
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inflight import (
    NO_RATE_LIMIT,
    REDIS,
    default_durability_env,
    post_jobs,
    scratch_database,
)
from ponder.db import make_engine
from ponder.tables import Job
from tests.chaos.helpers import best_of_n_body
from tests.stack import running_stack

CALLS = 4
LATENCY_MS = 1000
PROBES = 5
# switched off: every job published at once, no place of a process kept for others
UNFAIR = {"PONDER_TENANT_MAX_QUEUED": "100000", "PONDER_WORKER_TENANT_RESERVE": "0"}


@dataclass
class Run:
    label: str
    waits: list[float | None] = field(default_factory=list)  # None: not started in time
    flood_running: int = 0
    flood_queued: int = 0
    flood_held: int = 0
    submit_s: float = 0.0


def counts(engine_url: str, tenant_jobs: list[str]) -> tuple[int, int, int]:
    engine = make_engine(engine_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:

            def n(*where: object) -> int:
                q = select(func.count()).where(Job.id.in_(tenant_jobs), *where)  # type: ignore[arg-type]
                return int(conn.execute(q).scalar_one())

            running = n(Job.status == "running", Job.lease_owner.is_not(None))
            queued = n(Job.status == "queued", ~Job.held, Job.lease_owner.is_(None))
            held = n(Job.held)
        return running, queued, held
    finally:
        engine.dispose()


def wait_started(engine_url: str, job_id: str, timeout: float) -> float | None:
    engine = make_engine(engine_url, pool_size=1, max_overflow=0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(
                    select(Job.created_at, Job.started_at).where(Job.id == job_id)
                ).one()
            if row.started_at is not None:
                return float((row.started_at - row.created_at).total_seconds())
            time.sleep(0.02)
        return None
    finally:
        engine.dispose()


def run(label: str, jobs: int, env: dict[str, str], probe_timeout: float) -> Run:
    out = Run(label)
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-fairness-"))
    model = f"sim-fair-{uuid.uuid4().hex[:6]}"
    profile = (
        f"  - name: {model}\n    provider: openai\n"
        "    base_url: http://127.0.0.1:{sim_port}/v1\n    model: sim-1\n"
        f"    max_concurrency: {2 * jobs}\n"
    )
    with (
        scratch_database() as (_name, db_url),
        running_stack(
            db_url,
            f"bench-fair-{uuid.uuid4().hex[:6]}",
            logdir,
            sim_args=("--latency-ms", str(LATENCY_MS)),
            extra_models=profile,
            workers=0,
            broker_url=REDIS,
            env_overrides={**default_durability_env(), **NO_RATE_LIMIT, **env},
        ) as stack,
    ):
        stack.start("worker", "worker", env=env)
        stack.start("beat", "beat", env=env)
        flood_key, other_key = stack.new_key("flood"), stack.new_key("other")
        bodies = [
            {**best_of_n_body(n=CALLS, max_calls=CALLS, seed=i), "model": model}
            for i in range(jobs)
        ]
        started = time.monotonic()
        flood = asyncio.run(post_jobs(stack.api_url, flood_key, bodies))
        out.submit_s = time.monotonic() - started
        out.flood_running, out.flood_queued, out.flood_held = counts(db_url, flood)
        for i in range(PROBES):
            body = {**best_of_n_body(n=1, max_calls=1, seed=10_000 + i), "model": model}
            (job_id,) = asyncio.run(post_jobs(stack.api_url, other_key, [body]))
            out.waits.append(wait_started(db_url, job_id, probe_timeout))
            time.sleep(1.0)
        print(f"  logs: {logdir}")
    return out


def show(run_: Run, probe_timeout: float) -> None:
    waits = [f"{w:.2f} s" if w is not None else f"> {probe_timeout:g} s" for w in run_.waits]
    print(f"=== {run_.label} ===")
    print(
        f"  A's flood submitted in {run_.submit_s:.1f} s; then A's jobs were running "
        f"{run_.flood_running}, waiting in the broker {run_.flood_queued}, held "
        f"{run_.flood_held}"
    )
    print(f"  B's single jobs, creation -> start: {', '.join(waits)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=5000, help="jobs tenant A submits (5000)")
    ap.add_argument(
        "--probe-timeout", type=float, default=30.0, help="longest wait for B's job (30 s)"
    )
    args = ap.parse_args()
    fair = run("fair shares (defaults)", args.jobs, {}, args.probe_timeout)
    show(fair, args.probe_timeout)
    unfair = run("fair shares switched off", args.jobs, UNFAIR, args.probe_timeout)
    show(unfair, args.probe_timeout)
    print("\n=== summary ===")
    for r in (fair, unfair):
        done = [w for w in r.waits if w is not None]
        worst = f"{max(done):.2f} s" if len(done) == len(r.waits) else f"> {args.probe_timeout:g} s"
        median = f"{statistics.median(done):.2f} s" if done else "-"
        print(f"  {r.label:<28} B waits: median {median}, worst {worst}   (target: <= 1 s)")


if __name__ == "__main__":
    main()
