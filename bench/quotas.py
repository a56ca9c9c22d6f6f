"""Tenant quotas: a tenant over its rate gets 429s once its burst is spent, and another
tenant's submissions are not slowed down by the flood.

Starts, on a scratch Postgres database and the local Redis (no worker: jobs only queue),
--apis `ponder api` processes on their own ports. Tenant `flood` gets its own limits
(`ponder tenants limits set flood --jobs-per-minute R --jobs-burst B`); tenant `calm`
gets a bucket large enough for all its probes (its submissions go through the same
checks). Then, side by side in one run:

  (a) alone: `calm` submits --probes jobs one after the other and the latency of each
      POST /v1/jobs is recorded;
  (b) flood: a separate process sends `flood`'s jobs at --flood-rate requests a second
      (0: as fast as --flood-parallel requests in flight allow), spread over the API
      processes, for --flood-seconds, while
      `calm` submits --probes jobs again. Printed: how many of `flood`'s submissions
      were accepted before its first 429 against its burst, how many in all against
      burst + rate x time (what the token bucket allows, across every API process),
      and whether every 429 carried Retry-After;
  (c) unlimited flood, for comparison: the same, with `flood`'s limits lifted.

The three phases run --rounds times in turn (the machine's other load falls on each
alike); calm's latencies are pooled per phase, the flood's counts shown per round.

Figures only (nothing is asserted). Needs Postgres and Redis on 127.0.0.1.

  python bench/quotas.py
  python bench/quotas.py --apis 1 --flood-seconds 3 --probes 100     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inflight import REDIS, scratch_database
from ponder.localproc import free_port, wait_http_ok

PONDER = [sys.executable, "-m", "ponder"]
BODY: dict[str, Any] = {
    "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    "strategy": {"name": "best_of_n", "params": {"n": 1}},
}


@dataclass
class Flood:
    seconds: float = 0.0
    statuses: list[int] = field(default_factory=list)  # in the order the answers came
    retry_after_missing: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.statuses.count(202)

    @property
    def before_first_429(self) -> int:
        return self.statuses.index(429) if 429 in self.statuses else len(self.statuses)


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [*PONDER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"ponder {' '.join(args)}: {out.stderr}")
    return out.stdout


def _flood_process(
    urls: list[str], key: str, seconds: float, parallel: int, rate: float, out: Any
) -> None:
    """Runs in its own process: POST jobs for ``seconds``, ``rate`` a second (0: as fast
    as ``parallel`` requests in flight allow)."""
    import aiohttp

    async def main() -> Flood:
        flood = Flood()
        sessions = [
            aiohttp.ClientSession(
                base_url=url,
                headers={"Authorization": f"Bearer {key}"},
                connector=aiohttp.TCPConnector(limit=parallel),
            )
            for url in urls
        ]
        started = time.monotonic()
        deadline = started + seconds
        counter = 0

        async def worker(index: int) -> None:
            nonlocal counter
            while time.monotonic() < deadline:
                counter += 1
                if rate > 0:  # the k-th request leaves at start + k / rate
                    await asyncio.sleep(max(0.0, started + counter / rate - time.monotonic()))
                    if time.monotonic() >= deadline:
                        break
                session = sessions[counter % len(sessions)]
                body = {**BODY, "seed": counter}
                sent = time.perf_counter()
                async with session.post("/v1/jobs", json=body) as resp:
                    await resp.read()
                    flood.latencies.append(time.perf_counter() - sent)
                    flood.statuses.append(resp.status)
                    if resp.status == 429 and "Retry-After" not in resp.headers:
                        flood.retry_after_missing += 1

        await asyncio.gather(*(worker(i) for i in range(parallel)))
        flood.seconds = time.monotonic() - started
        for s in sessions:
            await s.close()
        return flood

    out.put(asyncio.run(main()))


def probe(url: str, key: str, n: int) -> list[float]:
    """``n`` sequential submissions of tenant calm; the latency of each, in seconds."""
    latencies = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        client.post("/v1/jobs", json=BODY)  # warm the connection
        for i in range(n):
            sent = time.perf_counter()
            resp = client.post("/v1/jobs", json={**BODY, "seed": 10_000 + i})
            latencies.append(time.perf_counter() - sent)
            if resp.status_code != 202:
                raise RuntimeError(f"calm was refused: {resp.status_code} {resp.text}")
            time.sleep(0.01)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def run_flood(
    urls: list[str], flood_key: str, calm_url: str, calm_key: str, args: argparse.Namespace
) -> tuple[Flood, list[float]]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_flood_process,
        args=(
            urls,
            flood_key,
            args.flood_seconds,
            args.flood_parallel,
            args.flood_rate,
            queue,
        ),
    )
    proc.start()
    time.sleep(min(1.0, args.flood_seconds / 4))  # the flood is under way
    calm = probe(calm_url, calm_key, args.probes)
    flood: Flood = queue.get(timeout=args.flood_seconds + 120)
    proc.join(timeout=30)
    return flood, calm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apis", type=int, default=2, help="API processes (the bucket is shared)")
    ap.add_argument("--rate", type=float, default=600.0, help="flood's jobs per minute")
    ap.add_argument("--burst", type=int, default=100, help="flood's burst")
    ap.add_argument("--flood-seconds", type=float, default=5.0)
    ap.add_argument("--flood-parallel", type=int, default=16, help="flood requests in flight")
    ap.add_argument(
        "--flood-rate",
        type=float,
        default=200.0,
        help="requests a second the flood offers (0: as fast as it can); the default is "
        "more than the API can store on a small machine, so the unlimited flood saturates it",
    )
    ap.add_argument("--probes", type=int, default=200, help="calm's submissions per phase")
    ap.add_argument(
        "--rounds", type=int, default=3, help="times the three phases run, one after another"
    )
    args = ap.parse_args()

    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-quotas-"))
    queue = f"bench-quotas-{uuid.uuid4().hex[:8]}"
    with scratch_database() as (_name, url):
        env = {
            **os.environ,
            "PONDER_DATABASE_URL": url,
            "PONDER_BROKER_URL": REDIS,
            "PONDER_QUEUE": queue,
        }
        flood_key = _cli(env, "keys", "create", "--tenant", "flood").strip().splitlines()[-1]
        calm_key = _cli(env, "keys", "create", "--tenant", "calm").strip().splitlines()[-1]
        _set_flood_limits(env, args.rate, args.burst)
        # calm's own bucket is checked like anyone's, but large enough for every phase
        _cli(
            env,
            "tenants",
            "limits",
            "set",
            "calm",
            "--jobs-per-minute",
            "1000000",
            "--jobs-burst",
            "1000000",
        )
        procs = []
        urls = []
        try:
            for i in range(args.apis):
                port = free_port()
                log = open(logdir / f"api{i}.log", "ab")  # noqa: SIM115
                procs.append(
                    subprocess.Popen(
                        [*PONDER, "api", "--port", str(port)], env=env, stdout=log, stderr=log
                    )
                )
                urls.append(f"http://127.0.0.1:{port}")
            for u in urls:
                wait_http_ok(f"{u}/readyz", procs)

            alone: list[float] = []
            during: list[float] = []
            during_unlimited: list[float] = []
            floods: list[Flood] = []
            unlimited_floods: list[Flood] = []
            for round_ in range(args.rounds):
                if round_:
                    _set_flood_limits(env, args.rate, args.burst)  # a full bucket again
                    time.sleep(5.5)  # the API processes read limits again (cache: 5 s)
                # the phases alternate, so the machine's other load falls on each alike
                alone += probe(urls[0], calm_key, args.probes)
                flood, calm = run_flood(urls, flood_key, urls[0], calm_key, args)
                floods.append(flood)
                during += calm
                _set_flood_limits(env, 1e9, 1_000_000_000)
                time.sleep(5.5)
                flood, calm = run_flood(urls, flood_key, urls[0], calm_key, args)
                unlimited_floods.append(flood)
                during_unlimited += calm
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=20)
            _drop_queue(queue)

    offered = "as fast as it can" if args.flood_rate <= 0 else f"{args.flood_rate:g} requests/s"
    print(
        f"tenant quotas: {args.apis} API process(es); flood limited to {args.rate:g} jobs/min "
        f"(burst {args.burst}),\n  offering {offered} ({args.flood_parallel} in flight at most) "
        f"for {args.flood_seconds:g} s;\n  calm submits {args.probes} jobs one "
        f"after the other in each phase; {args.rounds} round(s) of the three phases."
    )
    print()
    print("flood, limited (each round starts with a full bucket):")
    for i, f in enumerate(floods, 1):
        allowed = args.burst + args.rate / 60 * f.seconds
        print(
            f"  round {i}: accepted before its first 429 {f.before_first_429} (burst "
            f"{args.burst}); in all {f.accepted} of {len(f.statuses)} in {f.seconds:.1f} s "
            f"(the bucket allows {allowed:.0f}); 429s without Retry-After "
            f"{f.retry_after_missing} of {f.statuses.count(429)}"
        )
    ok = [lat for f in floods for st, lat in zip(f.statuses, f.latencies, strict=True) if st == 202]
    no = [lat for f in floods for st, lat in zip(f.statuses, f.latencies, strict=True) if st == 429]
    print(
        f"  flood's latency p50/p99: accepted {pct(ok, 50):.1f} / {pct(ok, 99):.1f} ms, "
        f"refused {pct(no, 50):.1f} / {pct(no, 99):.1f} ms"
    )
    print(
        "flood, unlimited (comparison): accepted "
        + ", ".join(f"{f.accepted} of {len(f.statuses)}" for f in unlimited_floods)
    )
    print()
    print(
        f"calm's submit latency (ms, {len(alone)} submissions per column)"
        "\n                                 alone   flood limited   flood unlimited"
    )
    for label, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        print(
            f"  {label:<28}{pct(alone, q):7.1f}   {pct(during, q):13.1f}   "
            f"{pct(during_unlimited, q):15.1f}"
        )
    print(
        f"  {'mean':<28}{statistics.mean(alone) * 1000:7.1f}   "
        f"{statistics.mean(during) * 1000:13.1f}   {statistics.mean(during_unlimited) * 1000:15.1f}"
    )
    print(f"(API logs in {logdir})")


def _set_flood_limits(env: dict[str, str], rate: float, burst: int) -> None:
    _cli(
        env,
        "tenants",
        "limits",
        "set",
        "flood",
        "--jobs-per-minute",
        str(rate),
        "--jobs-burst",
        str(burst),
    )


def _drop_queue(queue: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS)
    try:
        keys = list(r.scan_iter(f"{queue}*")) + list(r.scan_iter(f"_kombu.binding*.{queue}"))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


if __name__ == "__main__":
    main()
