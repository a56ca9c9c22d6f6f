"""Batches: how fast a 10 000-item batch is accepted, and how fast workers drain one,
beside the single-job rate measured in the same run on the same stack.

Starts, on a scratch Postgres database and the local Redis: `ponder api` and two
`ponder worker --concurrency 1` processes (two job slots, one per core), the simulated
model at zero latency in-process. Then:

  (a) accept: POST /v1/batches with 10 000 inline items (JSON) and again as a JSON Lines
      upload; the time to the 202 (validation + one bulk INSERT; nothing is published
      beyond the feeder's first few items). Both batches are then cancelled.
  (b) drain: a batch of --drain items (1 000 by default, not 10 000, to stay within a
      few minutes), from the POST to the batch's `finished_at`; meanwhile one job of
      another tenant is submitted and its time to completion printed (it must not wait
      behind the batch).
  (c) single jobs: the same number of the same jobs submitted one by one over HTTP (32
      in parallel) and waited for, as in bench/throughput.py.

Prints figures only (no asserts on timings). Needs Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import start, stop

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/8"
# a short completion: measure the service, not the simulator's search
JOB_FIELDS: dict[str, Any] = {
    "strategy": {"name": "best_of_n", "params": {"n": 1, "max_tokens": 64}},
    "model": "sim",
    "budget": {"max_tokens": 5000},
}


def problems(n: int) -> list[dict[str, Any]]:
    from ponder.datasets import as_problem, load_dataset

    pool = [as_problem(item) for item in load_dataset("game24-all")]
    return [pool[i % len(pool)] for i in range(n)]


def accept(client: httpx.Client, n: int) -> tuple[float, float]:
    """Seconds to accept ``n`` items as JSON, and as a JSON Lines upload."""
    items = [{"custom_id": f"i{i}", "problem": p} for i, p in enumerate(problems(n))]
    body = json.dumps({"items": items, "defaults": JOB_FIELDS}, separators=(",", ":"))
    t0 = time.perf_counter()
    resp = client.post("/v1/batches", content=body, headers={"Content-Type": "application/json"})
    json_seconds = time.perf_counter() - t0
    resp.raise_for_status()
    assert resp.json()["accepted"] == n, resp.text[:500]
    client.post(f"/v1/batches/{resp.json()['id']}/cancel").raise_for_status()

    lines = [json.dumps({"batch": {"defaults": JOB_FIELDS}})]
    lines += [json.dumps(item, separators=(",", ":")) for item in items]
    t0 = time.perf_counter()
    resp = client.post(
        "/v1/batches",
        content="\n".join(lines),
        headers={"Content-Type": "application/x-ndjson"},
    )
    upload_seconds = time.perf_counter() - t0
    resp.raise_for_status()
    client.post(f"/v1/batches/{resp.json()['id']}/cancel").raise_for_status()
    return json_seconds, upload_seconds


def drain(client: httpx.Client, other: httpx.Client, n: int) -> tuple[float, float, float]:
    """Items/s a batch of ``n`` drains at, and the seconds another tenant's single job
    took to finish while it drained."""
    items = [{"problem": p} for p in problems(n)]
    t0 = time.perf_counter()
    resp = client.post("/v1/batches", json={"items": items, "defaults": JOB_FIELDS})
    resp.raise_for_status()
    batch_id = resp.json()["id"]
    time.sleep(1.0)  # let the batch get going
    j0 = time.perf_counter()
    job = other.post("/v1/jobs", json={"problem": problems(1)[0], **JOB_FIELDS}).json()
    while True:
        got = other.get(f"/v1/jobs/{job['id']}", params={"wait": 30}).json()
        if got["status"] in ("completed", "failed", "cancelled"):
            break
    other_seconds = time.perf_counter() - j0
    while True:
        batch = client.get(f"/v1/batches/{batch_id}").json()
        if batch["finished_at"] is not None:
            break
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    assert batch["counts"]["completed"] == n, batch["counts"]
    return n / seconds, seconds, other_seconds


async def singles(url: str, key: str, n: int, parallel: int = 32) -> float:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=parallel)
    bodies = [{"problem": p, **JOB_FIELDS} for p in problems(n)]
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        sem = asyncio.Semaphore(parallel)

        async def one(body: dict[str, Any]) -> str:
            async with sem:
                r = await c.post("/v1/jobs", json=body)
                r.raise_for_status()
                return str(r.json()["id"])

        t0 = time.perf_counter()
        ids = await asyncio.gather(*(one(b) for b in bodies))

        async def wait(job_id: str) -> None:
            async with sem:
                while True:
                    r = await c.get(f"/v1/jobs/{job_id}", params={"wait": 30})
                    if r.json()["status"] in ("completed", "failed", "cancelled"):
                        return

        await asyncio.gather(*(wait(i) for i in ids))
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--accept", type=int, default=10_000, help="items in the accepted batch")
    ap.add_argument("--drain", type=int, default=1_000, help="items drained (and single jobs)")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-batch-"))
    db = f"ponder_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url_db = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    env = {
        "PONDER_DATABASE_URL": url_db,
        "PONDER_BROKER_URL": REDIS,
        "PONDER_QUEUE": f"bench-batch-{uuid.uuid4().hex[:6]}",
        "PONDER_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        # the single jobs of (c) go faster than a tenant's default rate limit
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
        other_key = create_api_key(make_sessionmaker(engine), "bench-other")
        engine.dispose()
        port = free_port()
        api = start(
            [sys.executable, "-m", "ponder", "api", "--port", str(port)],
            env,
            logdir / "api.log",
        )
        workers = [
            start(
                [sys.executable, "-m", "ponder", "worker", "--concurrency=1", "--loglevel=WARNING"],
                env,
                logdir / f"worker{i}.log",
            )
            for i in range(2)
        ]
        procs = [api, *workers]
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/readyz", procs)
        auth = {"Authorization": f"Bearer {key}"}
        other_auth = {"Authorization": f"Bearer {other_key}"}
        with (
            httpx.Client(base_url=url, headers=auth, timeout=120) as client,
            httpx.Client(base_url=url, headers=other_auth, timeout=120) as other,
        ):
            client.post("/v1/jobs", json={"problem": problems(1)[0], **JOB_FIELDS})  # warm up
            json_s, upload_s = accept(client, args.accept)
            rate, drain_s, other_s = drain(client, other, args.drain)
        single_rate = asyncio.run(singles(url, key, args.drain))
    finally:
        stop(procs)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
    print(f"accept {args.accept} items as JSON          : {json_s:6.2f} s to the 202")
    print(f"accept {args.accept} items as JSON Lines    : {upload_s:6.2f} s to the 202")
    print(
        f"drain a {args.drain}-item batch, 2 workers : {rate:6.1f} items/s "
        f"({drain_s:.1f} s; a {args.drain}-item subset, not all {args.accept})"
    )
    print(f"{args.drain} single jobs, same stack       : {single_rate:6.1f} jobs/s")
    print(f"batch rate / single-job rate        : {rate / single_rate:6.2f}")
    print(f"another tenant's job during the drain: {other_s:6.2f} s to completion")
    print(f"logs: {logdir}")


if __name__ == "__main__":
    main()
