"""Throughput: Ponder's end-to-end rate of 1-call jobs vs raw Celery no-op round trips.

Both run in this one script, on the same Redis broker and with the same worker
concurrency (2 processes, one per core):

  (a) raw Celery: send N no-op tasks and wait for every result (Redis result backend);
  (b) Ponder: submit N best_of_n(n=1) jobs through the HTTP API (simulated model at zero
      latency) and wait until every job is completed — a job is a REST call, a Postgres
      row, a Celery task, a lease, a journaled model call, a verifier call, finalization.

Prints both rates, their ratio (target: Ponder >= 50% of raw Celery) and the peak RSS of
the Ponder worker process tree. Needs Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import peak_rss_mib, start, stop

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/8"


def bench_celery(n: int, concurrency: int, logdir: Path) -> float:
    queue = f"bench-noop-{uuid.uuid4().hex[:6]}"
    env = {"BENCH_QUEUE": queue, "BENCH_BROKER_URL": REDIS}
    worker = start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.noop_app",
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={queue}",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        logdir / "celery-noop.log",
    )
    try:
        import os

        os.environ.update(env)
        from bench.noop_app import app, noop

        app.conf.task_default_queue = queue
        noop.apply_async((0,), queue=queue).get(timeout=60)  # warm up: worker is ready
        t0 = time.perf_counter()
        results = [noop.apply_async((i,), queue=queue) for i in range(n)]
        for r in results:
            r.get(timeout=120)
        return n / (time.perf_counter() - t0)
    finally:
        stop([worker])


async def _submit_all(url: str, key: str, n: int, parallel: int) -> float:
    body = {
        "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
        # a short completion: measure the service, not the simulator's search
        "strategy": {"name": "best_of_n", "params": {"n": 1, "max_tokens": 64}},
        "model": "sim",
        "budget": {"max_tokens": 5000},
    }
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=parallel)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        # warm up the whole path once
        first = (await c.post("/v1/jobs", json=body)).json()
        await c.get(f"/v1/jobs/{first['id']}", params={"wait": 30})
        sem = asyncio.Semaphore(parallel)

        async def one() -> str:
            async with sem:
                r = await c.post("/v1/jobs", json=body)
                r.raise_for_status()
                return str(r.json()["id"])

        t0 = time.perf_counter()
        ids = await asyncio.gather(*(one() for _ in range(n)))

        async def wait(job_id: str) -> None:
            async with sem:
                while True:
                    r = await c.get(f"/v1/jobs/{job_id}", params={"wait": 30})
                    if r.json()["status"] in ("completed", "failed", "cancelled"):
                        assert r.json()["status"] == "completed", r.json()
                        return

        await asyncio.gather(*(wait(i) for i in ids))
        return n / (time.perf_counter() - t0)


def bench_ponder(n: int, concurrency: int, logdir: Path) -> tuple[float, float]:
    db = f"ponder_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url_db = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    env = {
        "PONDER_DATABASE_URL": url_db,
        "PONDER_BROKER_URL": REDIS,
        "PONDER_QUEUE": f"bench-ponder-{uuid.uuid4().hex[:6]}",
    }
    procs = []
    try:
        from ponder.auth import create_api_key
        from ponder.db import make_engine, make_sessionmaker
        from ponder.localproc import free_port, wait_http_ok
        from ponder.migrate import upgrade

        upgrade(url_db)
        engine = make_engine(url_db)
        key = create_api_key(make_sessionmaker(engine), "bench")
        engine.dispose()
        port = free_port()
        api = start(
            [sys.executable, "-m", "ponder", "api", "--port", str(port)],
            env,
            logdir / "ponder-api.log",
        )
        worker = start(
            [
                sys.executable,
                "-m",
                "ponder",
                "worker",
                f"--concurrency={concurrency}",
                "--loglevel=WARNING",
            ],
            env,
            logdir / "ponder-worker.log",
        )
        procs = [api, worker]
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/readyz", procs)
        rate = asyncio.run(_submit_all(url, key, n, parallel=32))
        rss = peak_rss_mib(worker.pid)
        return rate, rss
    finally:
        stop(procs)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=500, help="jobs (and no-op tasks) per side")
    ap.add_argument("--concurrency", type=int, default=2, help="worker processes, both sides")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-"))
    celery_rate = bench_celery(args.jobs, args.concurrency, logdir)
    ponder_rate, rss = bench_ponder(args.jobs, args.concurrency, logdir)
    print(f"raw Celery no-op round trips : {celery_rate:8.1f} /s  ({args.jobs} tasks)")
    print(f"Ponder 1-call jobs end to end: {ponder_rate:8.1f} /s  ({args.jobs} jobs)")
    print(f"ratio Ponder / raw Celery    : {ponder_rate / celery_rate:8.2f}  (target >= 0.50)")
    print(f"peak RSS of the Ponder worker: {rss:8.1f} MiB (main + {args.concurrency} children)")
    print(f"logs: {logdir}")


if __name__ == "__main__":
    main()
