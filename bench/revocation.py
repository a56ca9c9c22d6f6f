"""Revocation latency: how long a key revoked through one API process keeps working on
another, and how long that process's open event stream of the key stays open.

Starts, on a scratch Postgres database and the local Redis, two `ponder api` processes
(A and B; no workers, so jobs stay queued and their event streams stay open). Then, for
each of --rounds keys:

  1. A creates the key (POST /v1/keys) and a job with it; B serves the job to it once
     (so B has the key in its auth cache) and opens its event stream.
  2. A poller asks B for the job with the key again and again (2 ms apart, on a
     kept-alive connection).
  3. DELETE /v1/keys/{id} on A.

It prints, over the rounds, p50 / p99 / max of:

  - B refuses: from sending the DELETE to B's first 401 for the key (to within one
    poll: a request and 2 ms);
  - B refuses, after the 204: the same from A's answer (A announces before answering,
    so B is usually already refusing: near 0 or negative);
  - B's stream ends: from sending the DELETE to the end of B's event stream of the key;
  - A's DELETE: from sending it to its 204 (revoke in Postgres, drop locally, publish);
  - A refuses: whether A refused the key on the first request after its 204.

The auth cache is left at --cache-seconds (600 by default, so only the announcement
over Redis can make B refuse a key it has cached; the TTL is the fallback when Redis is
down). Prints figures only (no asserts on timings). Needs Postgres and Redis on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
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
# between the poller's requests to B (a busy loop would take a core from A and B)
POLL_SECONDS = 0.002
JOB = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 2}},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def one_round(a: str, b: str, admin: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(base_url=a, headers=admin, timeout=30) as client:
        made = client.post("/v1/keys", json={"scopes": ["submit", "read"]}).json()
        auth = {"Authorization": f"Bearer {made['key']}"}
        job_id = client.post("/v1/jobs", json=JOB, headers=auth).json()["id"]
    path = f"/v1/jobs/{job_id}"
    stream: dict[str, Any] = {"opened": threading.Event()}
    refused: dict[str, float] = {}
    stop_polling = threading.Event()

    def follow() -> None:
        with (
            httpx.Client(base_url=b, headers=auth, timeout=60) as c,
            c.stream("GET", f"{path}/events") as response,
        ):
            stream["opened"].set()
            for _ in response.iter_text():
                pass
        stream["ended"] = time.monotonic()

    def poll(client: httpx.Client) -> None:
        while not stop_polling.is_set():
            if client.get(path).status_code == 401:
                refused["at"] = time.monotonic()
                return
            time.sleep(POLL_SECONDS)

    with httpx.Client(base_url=b, headers=auth, timeout=30) as on_b:
        assert on_b.get(path).status_code == 200  # cached on B now
        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        if not stream["opened"].wait(15):
            raise RuntimeError("B's event stream did not open")
        poller = threading.Thread(target=poll, args=(on_b,), daemon=True)
        poller.start()
        time.sleep(0.05)
        with httpx.Client(base_url=a, headers=admin, timeout=30) as client:
            sent = time.monotonic()
            status = client.delete(f"/v1/keys/{made['id']}").status_code
            answered = time.monotonic()
            assert status == 204, status
            a_refused = client.get(path, headers=auth).status_code == 401
        poller.join(10)
        reader.join(10)
        stop_polling.set()
    if "at" not in refused or "ended" not in stream:
        raise RuntimeError("B still accepted the key (or kept its stream) after 10 s")
    return {
        "refused": refused["at"] - sent,
        "refused_after_204": refused["at"] - answered,
        "stream": stream["ended"] - sent,
        "delete": answered - sent,
        "a_refused": a_refused,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="keys revoked")
    ap.add_argument("--cache-seconds", type=float, default=600.0, help="PONDER_AUTH_CACHE_SECONDS")
    args = ap.parse_args()
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-revocation-"))
    db = f"ponder_bench_{uuid.uuid4().hex[:8]}"
    admin_engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url_db = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    env = {
        "PONDER_DATABASE_URL": url_db,
        "PONDER_BROKER_URL": REDIS,
        "PONDER_QUEUE": f"bench-revocation-{uuid.uuid4().hex[:6]}",
        "PONDER_AUTH_CACHE_SECONDS": str(args.cache_seconds),
    }
    procs = []
    rounds: list[dict[str, Any]] = []
    try:
        from ponder.auth import create_api_key
        from ponder.db import make_engine, make_sessionmaker
        from ponder.localproc import free_port, wait_http_ok
        from ponder.migrate import upgrade

        upgrade(url_db)
        engine = make_engine(url_db)
        admin_key = create_api_key(make_sessionmaker(engine), "bench")
        engine.dispose()
        urls = []
        for name in ("a", "b"):
            port = free_port()
            procs.append(
                start(
                    [sys.executable, "-m", "ponder", "api", "--port", str(port)],
                    env,
                    logdir / f"api-{name}.log",
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http_ok(f"{url}/readyz", procs)
        time.sleep(1.0)  # both subscribed to the revocation channel
        admin = {"Authorization": f"Bearer {admin_key}"}
        for _ in range(args.rounds):
            rounds.append(one_round(urls[0], urls[1], admin))
    finally:
        stop(procs)
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin_engine.dispose()

    def line(label: str, values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return (
            f"{label:<34}: p50 {statistics.median(ms):7.1f} ms   p99 {percentile(ms, 0.99):7.1f} ms"
            f"   max {max(ms):7.1f} ms"
        )

    print(f"{len(rounds)} revocations through API A, auth cache {args.cache_seconds:g} s:")
    print(line("B refuses (from the DELETE sent)", [r["refused"] for r in rounds]))
    print(line("B refuses (from A's 204)", [r["refused_after_204"] for r in rounds]))
    print(line("B's event stream ends", [r["stream"] for r in rounds]))
    print(line("A's DELETE, sent to 204", [r["delete"] for r in rounds]))
    refused_on_a = sum(1 for r in rounds if r["a_refused"])
    print(f"A refuses on the first request after its 204: {refused_on_a}/{len(rounds)}")
    print(f"logs: {logdir}")


if __name__ == "__main__":
    main()
