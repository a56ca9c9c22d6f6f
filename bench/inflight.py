"""In flight: many slow jobs at once. N jobs of K sequential model calls each, against
`ponder sim serve --latency-ms L`, with `ponder worker` started with its defaults.

Every job could run at the same time (each spends its life waiting on the model), so
the floor on the wall time is K x L however large N is. Starts a private stack of real
processes on a scratch Postgres database and Redis on 127.0.0.1 (simulated model
server, API, one worker; no beat), submits the N jobs over HTTP (32 requests in flight)
and waits until every job has ended. Each job is `best_of_n` with n=K, batch_size=1 and
stop_when_verified false: exactly K model calls, one after the other, each checked by
the (cheap) game24 verifier; the mean calls per job is read back from the jobs' usage.
The model profile allows 2N calls in flight (the default `max_concurrency` of 64 would
cap the run, not the worker) and the worker keeps its default lease and requeue times.
Submitting is part of the wall time (it is printed apart: on two cores the API takes
about 3 s to accept 1 000 jobs).

Prints, next to the issue's targets:

  - wall time from the first submit to the last job's `finished_at`, against K x L;
  - jobs completed / failed, and model calls per job;
  - the peak number of jobs running at once, from the jobs' own started_at/finished_at;
  - the peak RSS of the worker's process tree (sampled every 100 ms from /proc; the sum
    over processes, which counts pages shared after a fork once per process, so the
    sampled PSS is printed too), in total and per process;
  - the Postgres connections the worker's processes hold (sampled from
    pg_stat_activity; attributed by application_name `ponder-worker:<pid>` when the
    worker sets it, else by client port), peak in total and per process;
  - the event-loop lag the worker logs per process when it stops on SIGTERM
    (`event loop lag over the run: p50=... p99=... max=... samples=...`), or n/a;
  - CPU seconds per process over the run (everything shares this machine's cores).

Targets (from the issue): 200 x 4 at 1 s within 6 s (1.5x the limit); 1 000 x 4 at 1 s
within 8 s with the worker tree within 600 MiB and at most 20 Postgres connections per
process. Prints figures; asserts nothing about timing.

  --full                                  200x4 then 1000x4, both at 1 s
  --jobs 20 --calls 2 --latency-ms 200    a quick check
  --worker-args='--concurrency=8'         passed to `ponder worker` as is
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import tree_pids
from bench.throughput import CpuMeter
from ponder.config import Settings
from ponder.db import make_engine
from ponder.migrate import upgrade
from ponder.tables import Job
from tests.chaos.helpers import TERMINAL, best_of_n_body
from tests.conftest import PG_ADMIN
from tests.stack import Stack, running_stack

REDIS = "redis://127.0.0.1:6379/8"
SUBMIT_PARALLEL = 32
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
MIB = 1024  # KiB per MiB
LAG_LINE = re.compile(
    r"event loop lag over the run: p50=(?P<p50>[\d.]+)\s*ms p99=(?P<p99>[\d.]+)\s*ms "
    r"max=(?P<max>[\d.]+)\s*ms samples=(?P<samples>\d+)"
)
# who logged a lag line: a pid, or Celery's process name (``INFO/ForkPoolWorker-1]``)
LAG_WHO = re.compile(r"ponder-worker:(\d+)|pid[=: ](\d+)|\[(\d+)\]|/([A-Za-z][\w-]*)\]")
WORKER_APP = re.compile(r"ponder-worker:(\d+)$")


@dataclass(frozen=True)
class Targets:
    wall_s: float
    rss_mib: float | None = None
    conns_per_process: int | None = None


# the targets, by (jobs, calls, latency in ms)
TARGETS: dict[tuple[int, int, float], Targets] = {
    (200, 4, 1000.0): Targets(wall_s=6.0),
    (1000, 4, 1000.0): Targets(wall_s=8.0, rss_mib=600.0, conns_per_process=20),
}
PRESETS = {"200x4": (200, 4, 1000.0), "1000x4": (1000, 4, 1000.0)}


@dataclass(frozen=True)
class Shape:
    jobs: int
    calls: int
    latency_ms: float

    @property
    def limit_s(self) -> float:
        return self.calls * self.latency_ms / 1000

    @property
    def label(self) -> str:
        return f"{self.jobs}x{self.calls}@{self.latency_ms:g}ms"

    @property
    def targets(self) -> Targets | None:
        return TARGETS.get((self.jobs, self.calls, self.latency_ms))


# ---- sampling the worker's process tree and its Postgres connections -------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _rss_kib(pid: int) -> int | None:
    statm = _read(f"/proc/{pid}/statm")
    return int(statm.split()[1]) * PAGE_KIB if statm else None


def _pss_kib(pid: int) -> int:
    rollup = _read(f"/proc/{pid}/smaps_rollup") or ""
    for line in rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _describe(pid: int, root: int) -> str:
    """``main: python -m ponder worker`` (the program's base name and its arguments)."""
    argv = (_read(f"/proc/{pid}/cmdline") or "").rstrip("\0").split("\0")
    cmd = " ".join([os.path.basename(argv[0]), *argv[1:]])
    shown = cmd if len(cmd) <= 60 else cmd[:57] + "..."
    return f"{'main' if pid == root else 'child'}: {shown}"


def _socket_owners(pids: list[int]) -> dict[int, int]:
    """Socket inode -> the pid (of ``pids``) that holds it open."""
    owners: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        owners[int(target[8:-1])] = pid
    return owners


def _client_ports_to(server_port: int, owners: dict[int, int]) -> dict[int, int]:
    """Local TCP port -> owning pid, for the sockets in ``owners`` connected to
    ``server_port`` (read from /proc/net/tcp and tcp6)."""
    ports: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (_read(table) or "").splitlines()[1:]:
            cols = line.split()
            if len(cols) < 10 or int(cols[2].rsplit(":", 1)[1], 16) != server_port:
                continue
            pid = owners.get(int(cols[9]))
            if pid is not None:
                ports[int(cols[1].rsplit(":", 1)[1], 16)] = pid
    return ports


@dataclass
class Peaks:
    """What :class:`TreeSampler` saw; sizes in KiB."""

    samples: int = 0
    rss_total: int = 0
    rss_by_pid: dict[int, int] = field(default_factory=dict)
    pss_total: int = 0
    processes: int = 0
    names: dict[int, str] = field(default_factory=dict)
    conn_samples: int = 0
    conns_total: int = 0
    conns_by_pid: dict[int, int] = field(default_factory=dict)
    conns_all_clients: int = 0  # every client of the database: API, worker, this script
    attributed_by: set[str] = field(default_factory=set)


class TreeSampler:
    """Samples, in a thread, the RSS of a process tree every ``every`` seconds, its PSS
    every second, and the Postgres connections to ``db_name`` every ``pg_every``."""

    def __init__(self, root: int, db_name: str, *, every: float = 0.1, pg_every: float = 0.25):
        self.root = root
        self.db_name = db_name
        self.every = every
        self.pg_every = pg_every
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        admin = make_url(PG_ADMIN)
        self._pg_port = admin.port or 5432
        self._admin = create_engine(admin, pool_size=1, isolation_level="AUTOCOMMIT")
        self._ports: dict[int, int | None] = {}  # client port -> pid of the tree, or None
        self._rescanned = False

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._admin.dispose()

    def _run(self) -> None:
        pids: list[int] = []
        next_tree = next_pss = next_pg = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tree:  # walking all of /proc costs more than reading the tree
                pids, next_tree = tree_pids(self.root), now + 0.5
            self._memory(pids, pss=now >= next_pss)
            if now >= next_pss:
                next_pss = now + 1.0
            if now >= next_pg:
                next_pg = now + self.pg_every
                self._connections(pids)
            self._stop.wait(self.every)

    def _memory(self, pids: list[int], *, pss: bool) -> None:
        p = self.peaks
        total = 0
        for pid in pids:
            kib = _rss_kib(pid)
            if kib is None:
                continue
            total += kib
            p.rss_by_pid[pid] = max(kib, p.rss_by_pid.get(pid, 0))
            if pid not in p.names:
                p.names[pid] = _describe(pid, self.root)
        p.samples += 1
        p.rss_total = max(p.rss_total, total)
        p.processes = max(p.processes, len(pids))
        if pss:
            p.pss_total = max(p.pss_total, sum(_pss_kib(pid) for pid in pids))

    def _port_owner(self, client_port: int | None, pids: list[int]) -> int | None:
        """The pid of the tree holding the Postgres connection from ``client_port``, or
        None. Ports are looked up (every fd of the tree) at most once per sample, and only
        for a port not seen before; the ports of other clients are remembered as such."""
        if client_port is None:  # a Unix socket
            return None
        if client_port not in self._ports and not self._rescanned:
            self._rescanned = True
            found = _client_ports_to(self._pg_port, _socket_owners(pids))
            self._ports = {port: None for port in self._ports} | found
            self._ports.setdefault(client_port, None)
        return self._ports.get(client_port)

    def _connections(self, pids: list[int]) -> None:
        try:
            with self._admin.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT application_name, client_port FROM pg_stat_activity"
                        " WHERE datname = :db AND backend_type = 'client backend'"
                    ),
                    {"db": self.db_name},
                ).all()
        except Exception:  # the database is going away at the end of a run
            return
        p = self.peaks
        tree = set(pids)
        by_pid: dict[int, int] = {}
        for app_name, client_port in rows:
            named = WORKER_APP.match(app_name or "")
            if named:
                pid = int(named.group(1))
                by_pid[pid] = by_pid.get(pid, 0) + 1
                p.attributed_by.add("application_name")
                continue
            owner = self._port_owner(client_port, pids)
            if owner is not None and owner in tree:
                by_pid[owner] = by_pid.get(owner, 0) + 1
                p.attributed_by.add("client port")
        self._rescanned = False
        p.conn_samples += 1
        p.conns_all_clients = max(p.conns_all_clients, len(rows))
        p.conns_total = max(p.conns_total, sum(by_pid.values()))
        for pid, n in by_pid.items():
            p.conns_by_pid[pid] = max(n, p.conns_by_pid.get(pid, 0))
            if pid not in p.names:
                p.names[pid] = _describe(pid, self.root)


# ---- one run ------------------------------------------------------------------------------


@dataclass
class Outcome:
    shape: Shape
    worker_cmd: str
    submit_s: float = 0.0
    wall_s: float | None = None  # first submit -> last finished_at (None: timed out)
    seen_s: float = 0.0  # first submit -> this script saw every job ended
    statuses: dict[str, int] = field(default_factory=dict)
    calls: list[int] = field(default_factory=list)
    peak_running: int = 0
    all_started_s: float | None = None
    durations: list[float] = field(default_factory=list)
    queue_waits: list[float] = field(default_factory=list)
    peaks: Peaks = field(default_factory=Peaks)
    cpu: dict[str, float] = field(default_factory=dict)
    lags: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    stop_s: float | None = None
    logdir: Path = Path()


@contextlib.contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """A new, migrated database: yields (its name, its URL); dropped afterwards."""
    name = f"ponder_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield name, url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# these benches submit faster than a tenant's default rate limit (600 jobs a minute, in
# bursts of 600): they measure the service, not the quota (bench/quotas.py does)
NO_RATE_LIMIT = {"PONDER_TENANT_JOBS_PER_MINUTE": "null"}


def default_durability_env() -> dict[str, str]:
    """The worker's own defaults for what the test stack shortens (lease, requeue,
    reaper), so the worker runs as deployed."""
    fields = Settings.model_fields
    return {
        f"PONDER_{name.upper()}": str(fields[name].default)
        for name in ("lease_seconds", "requeue_after_seconds", "reaper_interval_seconds")
    }


async def post_jobs(url: str, key: str, bodies: list[dict[str, Any]]) -> list[str]:
    """POST every body to /v1/jobs, ``SUBMIT_PARALLEL`` at a time; the new jobs' ids."""
    import aiohttp

    gate = asyncio.Semaphore(SUBMIT_PARALLEL)
    session = aiohttp.ClientSession(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        connector=aiohttp.TCPConnector(limit=SUBMIT_PARALLEL),
        timeout=aiohttp.ClientTimeout(total=120),
    )

    async def post(body: dict[str, Any]) -> str:
        async with gate, session.post("/v1/jobs", json=body) as resp:
            if resp.status != 202:
                raise RuntimeError(f"POST /v1/jobs: HTTP {resp.status}: {await resp.text()}")
            return str((await resp.json())["id"])

    async with session:
        return list(await asyncio.gather(*map(post, bodies)))


def wait_ended(engine: Engine, deadline: float) -> bool:
    """Poll Postgres until no job of the (private) database is still to end; False if
    ``deadline`` passes first. Call it once every job has been submitted."""
    query = select(func.count()).where(Job.status.not_in(TERMINAL))
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(query).scalar_one() == 0:
                return True
        time.sleep(0.2)  # the wall time is read from the jobs' finished_at, not from here
    return False


def peak_overlap(intervals: list[tuple[datetime, datetime | None]]) -> int:
    """Most intervals open at one instant (an open end runs on forever); an interval that
    ends when another starts does not overlap it."""
    edges = [(start, 1) for start, _ in intervals]
    edges += [(end, -1) for _, end in intervals if end is not None]
    running = peak = 0
    for _, step in sorted(edges):  # at a tie, -1 sorts before +1
        running += step
        peak = max(peak, running)
    return peak


def read_lags(log: Path) -> list[tuple[str, dict[str, float]]]:
    found = []
    for n, line in enumerate(log.read_text(errors="replace").splitlines()):
        m = LAG_LINE.search(line)
        if m is None:
            continue
        who = LAG_WHO.search(line[: m.start()]) or LAG_WHO.search(line)
        label = next((g for g in who.groups() if g), "") if who else ""
        figures = {k: float(v) for k, v in m.groupdict().items()}
        found.append((label or f"line {n + 1}", figures))
    return found


def job_bodies(shape: Shape, model: str) -> list[dict[str, Any]]:
    bodies = []
    for i in range(shape.jobs):
        body = best_of_n_body(
            n=shape.calls,
            max_calls=shape.calls,
            seed=i,
            max_tokens=max(20_000, 1_000 * shape.calls),
        )
        bodies.append({**body, "model": model})
    return bodies


def run(shape: Shape, worker_args: list[str], timeout: float) -> Outcome:
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-inflight-"))
    # one model profile of this run's own (the concurrency limiter's Redis keys are per
    # profile name), allowing every job's call in flight at once: the default cap of 64
    # would bound the run, not the worker
    model = f"sim-inflight-{uuid.uuid4().hex[:6]}"
    profile = (
        f"  - name: {model}\n    provider: openai\n"
        "    base_url: http://127.0.0.1:{sim_port}/v1\n    model: sim-1\n"
        f"    max_concurrency: {max(64, 2 * shape.jobs)}\n"
    )
    worker_cmd = shlex.join(["ponder", "worker", *worker_args])
    out = Outcome(shape=shape, worker_cmd=worker_cmd, logdir=logdir)
    with (
        scratch_database() as (db_name, db_url),
        running_stack(
            db_url,
            f"bench-inflight-{uuid.uuid4().hex[:6]}",
            logdir,
            sim_args=("--latency-ms", f"{shape.latency_ms:g}"),
            extra_models=profile,
            workers=0,
            broker_url=REDIS,
            env_overrides={**default_durability_env(), **NO_RATE_LIMIT},
        ) as stack,
    ):
        worker = stack.start("worker", "worker", *worker_args)
        key = stack.new_key("bench")
        engine = make_engine(db_url, pool_size=1, max_overflow=1)
        try:
            measure(stack, worker.pid, db_name, engine, key, model, out, timeout)
        finally:
            engine.dispose()
            out.stop_s, out.lags = stop_worker(stack, logdir / "worker.log")
    return out


def measure(
    stack: Stack,
    worker_pid: int,
    db_name: str,
    engine: Engine,
    key: str,
    model: str,
    out: Outcome,
    timeout: float,
) -> None:
    shape = out.shape
    # one job first, through the whole path: the worker is up and has a connection
    warm = best_of_n_body(n=1, max_calls=1, seed=0)
    asyncio.run(post_jobs(stack.api_url, key, [{**warm, "model": model}]))
    if not wait_ended(engine, time.monotonic() + 120):
        raise SystemExit(f"the warm-up job did not end within 120 s; logs in {stack.logdir}")
    bodies = job_bodies(shape, model)
    procs = {"worker": worker_pid, "api": stack.procs["api"].pid, "sim": stack.procs["sim"].pid}
    meter = CpuMeter(procs)
    with TreeSampler(worker_pid, db_name) as sampler:
        meter.begin()
        t0_wall = datetime.now(UTC)
        t0 = time.monotonic()
        ids = asyncio.run(post_jobs(stack.api_url, key, bodies))
        out.submit_s = time.monotonic() - t0
        ended = wait_ended(engine, t0 + timeout)
        out.seen_s = time.monotonic() - t0
        meter.end()
    out.peaks = sampler.peaks
    out.cpu = meter.used
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Job.status, Job.created_at, Job.started_at, Job.finished_at, Job.usage_calls
            ).where(Job.id.in_(ids))
        ).all()
    for status, created, started, finished, calls in rows:
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if status == "completed":
            out.calls.append(calls)
        if started is not None:
            out.queue_waits.append((started - created).total_seconds())
            if finished is not None:
                out.durations.append((finished - started).total_seconds())
    starts = [r.started_at for r in rows if r.started_at is not None]
    out.peak_running = peak_overlap([(r.started_at, r.finished_at) for r in rows if r.started_at])
    if len(starts) == len(rows):
        out.all_started_s = (max(starts) - t0_wall).total_seconds()
    if ended:
        out.wall_s = (max(r.finished_at for r in rows) - t0_wall).total_seconds()


def stop_worker(stack: Stack, log: Path) -> tuple[float | None, list[tuple[str, dict[str, float]]]]:
    """SIGTERM the worker, wait for it to exit; the seconds that took (None: it had to be
    killed) and the event-loop lag lines it logged."""
    proc = stack.procs.pop("worker")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    took: float | None
    try:
        proc.wait(timeout=90)
        took = time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        took = None
    return took, read_lags(log)


# ---- printing -----------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _mib(kib: int) -> str:
    return f"{kib / MIB:.0f} MiB"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def table(out: Outcome) -> list[tuple[str, str, str]]:
    """(figure, measured, target) rows."""
    s, t, p = out.shape, out.shape.targets, out.peaks
    done, failed = out.statuses.get("completed", 0), out.statuses.get("failed", 0)
    rows: list[tuple[str, str, str]] = []
    if out.wall_s is None:
        wall = f"> {out.seen_s:.1f} s (timed out, {s.jobs - done - failed} unfinished)"
    else:
        wall = f"{out.wall_s:.2f} s = {out.wall_s / s.limit_s:.2f}x the limit"
    target = "-"
    if t is not None:
        met = out.wall_s is not None and out.wall_s <= t.wall_s
        target = f"<= {t.wall_s:g} s ({t.wall_s / s.limit_s:g}x)  {_verdict(met)}"
    rows.append((f"wall time (limit K x L = {s.limit_s:g} s)", wall, target))
    if out.wall_s is not None:
        tail = out.wall_s - out.submit_s
        rows.append(("  of which after the last submit", f"{tail:.2f} s", "-"))
    others = {k: v for k, v in out.statuses.items() if k not in ("completed", "failed")}
    extra = f" (+ {others})" if others else ""
    rows.append(("jobs completed / failed", f"{done} / {failed}{extra}", f"{s.jobs} / 0"))
    calls = f"{statistics.fmean(out.calls):.2f}" if out.calls else "n/a"
    if out.calls and min(out.calls) != max(out.calls):
        calls += f" (min {min(out.calls)}, max {max(out.calls)})"
    rows.append(("model calls per completed job", calls, f"{s.calls}"))
    rows.append(("peak jobs running at once", f"{out.peak_running}", f"(all {s.jobs})"))
    if out.all_started_s is not None:
        rows.append(("every job started by", f"{out.all_started_s:.2f} s", "-"))
    if out.durations:
        d = out.durations
        rows.append(
            (
                "job run time p50 / max",
                f"{statistics.median(d):.2f} / {max(d):.2f} s",
                f"(K x L = {s.limit_s:g} s)",
            )
        )
    rss_target = "-"
    if t is not None and t.rss_mib is not None:
        rss_target = f"<= {t.rss_mib:g} MiB  {_verdict(p.rss_total / MIB <= t.rss_mib)}"
    rows.append(
        (
            "peak worker tree RSS (sum)",
            f"{_mib(p.rss_total)} over {p.processes} processes",
            rss_target,
        )
    )
    rows.append(("peak worker tree PSS (1 s samples)", _mib(p.pss_total), "-"))
    conn_target = "-"
    if p.conns_by_pid:
        per_process = max(p.conns_by_pid.values())
        if t is not None and t.conns_per_process is not None:
            ok = per_process <= t.conns_per_process
            conn_target = f"<= {t.conns_per_process} per process  {_verdict(ok)}"
        how = ", ".join(sorted(p.attributed_by))
        conns = f"{per_process} per process, {p.conns_total} in total (by {how})"
    else:
        conns = "n/a (no connection could be attributed to a worker process)"
    rows.append(("peak Postgres connections, worker", conns, conn_target))
    if out.lags:
        worst = max(out.lags, key=lambda item: item[1]["p99"])
        lag = f"{worst[1]['p99']:.1f} ms (worst of {len(out.lags)} processes)"
    else:
        lag = "n/a (the worker logged no lag line)"
    rows.append(("event-loop lag p99", lag, "-"))
    rows.append(("submission (HTTP, 32 in flight)", f"{out.submit_s:.2f} s for {s.jobs} jobs", "-"))
    return rows


def report(out: Outcome) -> None:
    s, p = out.shape, out.peaks
    print(f"\n=== {s.jobs} jobs x {s.calls} sequential calls at {s.latency_ms:g} ms ===")
    print(f"worker: {out.worker_cmd}")
    rows = [("figure", "measured", "target"), *table(out)]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for i, (name, measured, target) in enumerate(rows):
        print(f"  {name:<{widths[0]}}  {measured:<{widths[1]}}  {target}")
        if i == 0:
            print(f"  {'-' * widths[0]}  {'-' * widths[1]}  {'-' * 6}")
    if out.queue_waits:
        w = out.queue_waits
        print(f"  created -> started p50 / p99 / max: {statistics.median(w):.2f} / ", end="")
        print(f"{_pct(w, 0.99):.2f} / {max(w):.2f} s")
    print("  per worker process (peaks):")
    for pid in sorted(p.names):
        rss = _mib(p.rss_by_pid.get(pid, 0))
        conns = p.conns_by_pid.get(pid, 0) if p.conn_samples else "n/a"
        print(f"    pid {pid:<7} RSS {rss:>8}  Postgres connections {conns!s:>3}  ({p.names[pid]})")
    print(
        f"  Postgres connections to the database, all clients (API, worker, this script): "
        f"peak {p.conns_all_clients}"
    )
    if out.lags:
        print("  event-loop lag by process (logged on SIGTERM):")
        for who, f in out.lags:
            print(
                f"    {who:<18} p50 {f['p50']:.1f} ms  p99 {f['p99']:.1f} ms  "
                f"max {f['max']:.1f} ms  samples {f['samples']:.0f}"
            )
    seen = max(out.seen_s, 1e-9)
    cpu = ", ".join(f"{k} {out.cpu[k]:.1f}" for k in ("worker", "sim", "api", "postgres", "client"))
    if out.cpu:
        print(
            f"  CPU seconds over the run ({seen:.1f} s, {os.cpu_count()} cores): {cpu}; "
            f"machine {out.cpu['machine']:.1f} ({out.cpu['machine'] / seen:.2f} cores busy)"
        )
    stop = f"{out.stop_s:.1f} s" if out.stop_s is not None else "did not exit in 90 s: killed"
    print(f"  worker exit after SIGTERM: {stop}")
    print(f"  samples: {p.samples} of memory, {p.conn_samples} of connections; logs: {out.logdir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200, help="N: jobs submitted (default 200)")
    ap.add_argument("--calls", type=int, default=4, help="K: model calls per job (default 4)")
    ap.add_argument(
        "--latency-ms", type=float, default=1000.0, help="L: each model call's latency (1000)"
    )
    ap.add_argument(
        "--scenario", choices=sorted(PRESETS), help="a preset of the issue (sets N, K, L)"
    )
    ap.add_argument("--full", action="store_true", help="run 200x4 then 1000x4, both at 1 s")
    ap.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the jobs after the first submit (default 300)",
    )
    ap.add_argument(
        "--worker-args",
        default="",
        help="extra arguments for `ponder worker`, e.g. --worker-args='--concurrency=8' "
        "(default: none, the worker's defaults)",
    )
    args = ap.parse_args()
    if args.full:
        shapes = [Shape(*PRESETS[name]) for name in ("200x4", "1000x4")]
    elif args.scenario:
        shapes = [Shape(*PRESETS[args.scenario])]
    else:
        shapes = [Shape(args.jobs, args.calls, args.latency_ms)]
    # a worker with a model call in flight per job holds a socket per job; so does the sim
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65_536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    outcomes = []
    for shape in shapes:
        outcome = run(shape, shlex.split(args.worker_args), args.timeout)
        report(outcome)
        outcomes.append(outcome)
    if len(outcomes) > 1:
        print("\n=== summary ===")
        for outcome in outcomes:
            print(f"{outcome.shape.label}:")
            for name, measured, target in table(outcome):
                print(f"  {name:<36} {measured:<52} {target}")


if __name__ == "__main__":
    main()
