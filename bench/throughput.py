"""Throughput: Ponder's end-to-end rate of 1-call jobs vs raw Celery no-op round trips.

Both run in this one script, on the same Redis broker and with the same worker
concurrency (2 processes, one per core):

  (a) raw Celery: send N no-op tasks and wait for every result (Redis result backend);
  (b) Ponder: submit N best_of_n(n=1) jobs through the HTTP API (simulated model at zero
      latency) and wait until every job is completed — a job is a REST call, a Postgres
      row, a Celery task, a lease, a journaled model call, a verifier call, finalization.

Prints both rates, their ratio (target: Ponder >= 50% of raw Celery), the CPU time per
task and per job split by process (client, API, worker, Postgres, Redis, rest of the
machine) and the peak RSS of the Ponder worker process tree. Needs Postgres and Redis on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import (
    cpu_seconds,
    machine_cpu_seconds,
    peak_rss_mib,
    service_cpu_seconds,
    start,
    stop,
)

Snapshot = dict[str, float]


class CpuMeter:
    """CPU seconds per part (this client, the service's processes, Postgres, Redis, the
    whole machine) between :meth:`begin` and :meth:`end`, to show where a job's cost goes."""

    def __init__(self, parts: dict[str, int]) -> None:
        self.parts = parts  # name -> pid of a process tree
        self._t0: Snapshot = {}
        self.used: Snapshot = {}

    def _snap(self) -> Snapshot:
        snap = {name: cpu_seconds(pid) for name, pid in self.parts.items()}
        snap["client"] = time.process_time()
        snap["postgres"] = service_cpu_seconds("postgres")
        snap["redis"] = service_cpu_seconds("redis-server")
        snap["machine"] = machine_cpu_seconds()
        return snap

    def begin(self) -> None:
        self._t0 = self._snap()

    def end(self) -> None:
        t1 = self._snap()
        self.used = {k: t1[k] - self._t0[k] for k in t1}

    def per_item_ms(self, n: int) -> str:
        shown = [f"{k} {1000 * v / n:.1f}" for k, v in self.used.items() if k != "machine"]
        rest = self.used["machine"] - sum(v for k, v in self.used.items() if k != "machine")
        shown.append(f"other {1000 * rest / n:.1f}")
        return f"{1000 * self.used['machine'] / n:.1f} ms = " + ", ".join(shown)


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/8"


def bench_celery(n: int, concurrency: int, logdir: Path) -> tuple[float, CpuMeter]:
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
        meter = CpuMeter({"worker": worker.pid})
        meter.begin()
        t0 = time.perf_counter()
        results = [noop.apply_async((i,), queue=queue) for i in range(n)]
        for r in results:
            r.get(timeout=120)
        rate = n / (time.perf_counter() - t0)
        meter.end()
        return rate, meter
    finally:
        stop([worker])


async def _submit_all(url: str, key: str, n: int, parallel: int, meter: CpuMeter) -> float:
    # The load generator is aiohttp, not httpx: on this shared 2-core box the client's
    # CPU is taken from the service it measures, and httpx's async client costs ~3 ms of
    # CPU per request at 32 in flight against aiohttp's ~0.3 ms (its CPU is printed).
    import aiohttp

    body = {
        "problem": {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
        # a short completion: measure the service, not the simulator's search
        "strategy": {"name": "best_of_n", "params": {"n": 1, "max_tokens": 64}},
        "model": "sim",
        "budget": {"max_tokens": 5000},
    }
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=parallel)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        base_url=url, headers=headers, connector=connector, timeout=timeout
    ) as c:
        # warm up the whole path once
        async with c.post("/v1/jobs", json=body) as r:
            first = await r.json()
        async with c.get(f"/v1/jobs/{first['id']}", params={"wait": "30"}) as r:
            await r.read()
        sem = asyncio.Semaphore(parallel)

        async def one() -> str:
            async with sem, c.post("/v1/jobs", json=body) as r:
                r.raise_for_status()
                return str((await r.json())["id"])

        meter.begin()
        t0 = time.perf_counter()
        ids = await asyncio.gather(*(one() for _ in range(n)))

        async def wait(job_id: str) -> None:
            async with sem:
                while True:
                    async with c.get(f"/v1/jobs/{job_id}", params={"wait": "30"}) as r:
                        job = await r.json()
                    if job["status"] in ("completed", "failed", "cancelled"):
                        assert job["status"] == "completed", job
                        return

        await asyncio.gather(*(wait(i) for i in ids))
        rate = n / (time.perf_counter() - t0)
        meter.end()
        return rate


def bench_ponder(n: int, concurrency: int, logdir: Path) -> tuple[float, float, CpuMeter]:
    db = f"ponder_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url_db = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    env = {
        "PONDER_DATABASE_URL": url_db,
        "PONDER_BROKER_URL": REDIS,
        "PONDER_QUEUE": f"bench-ponder-{uuid.uuid4().hex[:6]}",
        # --jobs above a tenant's default burst (600) would meet its rate limit
        "PONDER_TENANT_JOBS_PER_MINUTE": "null",
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
        meter = CpuMeter({"api": api.pid, "worker": worker.pid})
        rate = asyncio.run(_submit_all(url, key, n, parallel=32, meter=meter))
        rss = peak_rss_mib(worker.pid)
        return rate, rss, meter
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
    celery_rate, celery_cpu = bench_celery(args.jobs, args.concurrency, logdir)
    ponder_rate, rss, ponder_cpu = bench_ponder(args.jobs, args.concurrency, logdir)
    print(f"raw Celery no-op round trips : {celery_rate:8.1f} /s  ({args.jobs} tasks)")
    print(f"Ponder 1-call jobs end to end: {ponder_rate:8.1f} /s  ({args.jobs} jobs)")
    print(f"ratio Ponder / raw Celery    : {ponder_rate / celery_rate:8.2f}  (target >= 0.50)")
    print(f"CPU per no-op task (machine) : {celery_cpu.per_item_ms(args.jobs)}")
    print(f"CPU per Ponder job (machine) : {ponder_cpu.per_item_ms(args.jobs)}")
    print(f"peak RSS of the Ponder worker: {rss:8.1f} MiB (main + {args.concurrency} children)")
    print(f"logs: {logdir}")


if __name__ == "__main__":
    main()
