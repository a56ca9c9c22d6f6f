"""One event loop per worker process, shared by every job slice the process runs.

Jobs spend nearly all their time waiting on model servers, so a process runs hundreds of
slices at once as coroutines on one asyncio loop, in a thread of its own. Celery's
thread pool admits the slices (one pool thread per slice in flight, ``--max-jobs``
threads); each thread hands its slice to this loop and waits for the outcome, so Celery
keeps acknowledging a message only when its slice has ended (a worker that dies leaves
its messages to be delivered again).

Around the slices the loop runs what they share:

* the group committer (:mod:`ponder.groupcommit`): every journal write of every slice,
  committed together on one connection in one thread;
* one lease heartbeat for the whole process (:class:`LeaseKeeper`, in a thread of its
  own): one statement per tick renews every lease the process holds, each checked
  against its fencing number, and one renews the process's ``workers`` row
  (:mod:`ponder.workers`), so an idle worker is seen too;
* a stop watcher: one poll of the worker's stop flag for all slices;
* a lag monitor (:class:`LoopLag`): how late the loop wakes up, with a warning when a
  callback blocks it for more than 100 ms.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine

from ponder.groupcommit import GroupCommitter
from ponder.jobstore import LeaseRenewal, SqlJournal, renew_leases
from ponder.workers import WorkerInfo, beat, leave

log = logging.getLogger("ponder.worker.engine")

T = TypeVar("T")

# how often the stop watcher looks at the worker's stop flag
STOP_POLL_SECONDS = 0.2
LAG_SAMPLE_SECONDS = 0.1
LAG_WARN_SECONDS = 0.1
# at most one lag warning per this many seconds (a blocked loop should not flood the log)
LAG_WARN_EVERY_SECONDS = 10.0


class LoopLag:
    """Samples how late the loop runs a timer, ``LAG_SAMPLE_SECONDS`` apart."""

    def __init__(self, keep: int = 100_000) -> None:
        self.samples: deque[float] = deque(maxlen=keep)
        self._last_warning = 0.0

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            lag = max(0.0, time.monotonic() - before - LAG_SAMPLE_SECONDS)
            self.samples.append(lag)
            now = time.monotonic()
            if lag > LAG_WARN_SECONDS and now - self._last_warning > LAG_WARN_EVERY_SECONDS:
                self._last_warning = now
                log.warning(
                    "the event loop was blocked for %.0f ms: something ran on it without "
                    "yielding (every job in this process waited)",
                    lag * 1000,
                )

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}
        ordered = sorted(self.samples)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        return {
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": ordered[-1] * 1000,
            "samples": len(ordered),
        }


@dataclass
class _Lease:
    journal: SqlJournal
    seconds_used: Callable[[], float]


class LeaseKeeper:
    """The process's one heartbeat: renews every lease its slices hold, in one statement
    per tick, and tells each slice's journal its job's cancel flag or that the lease is
    gone (then the slice stops without writing).

    It runs in a thread of its own with its own connection, not on the loop: a slice
    that blocks the loop (a verifier that never yields) must not let every lease of the
    process lapse. Given ``worker``, each tick also renews the process's heartbeat row
    (written at start, deleted at a clean stop)."""

    def __init__(
        self, engine: Engine, lease_seconds: float, worker: WorkerInfo | None = None
    ) -> None:
        self._engine = engine
        self._lease_seconds = lease_seconds
        self.worker = worker
        self._leases: dict[int, _Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ponder-leases", daemon=True)
        self.ticks = 0

    def hold(self, journal: SqlJournal, seconds_used: Callable[[], float]) -> None:
        with self._lock:
            self._leases[id(journal)] = _Lease(journal, seconds_used)

    def release(self, journal: SqlJournal) -> None:
        with self._lock:
            self._leases.pop(id(journal), None)

    def __len__(self) -> int:
        return len(self._leases)

    def renew(self) -> None:
        """One tick: renew every lease held now."""
        with self._lock:
            held = list(self._leases.values())
        if not held:
            return
        renewals = [
            LeaseRenewal(h.journal.job_id, h.journal.attempt, h.journal.owner, h.seconds_used())
            for h in held
        ]
        with self._engine.begin() as conn:
            renewed = renew_leases(conn, renewals, self._lease_seconds)
        self.ticks += 1
        with self._lock:
            for h in held:
                if id(h.journal) in self._leases:  # its slice has not ended meanwhile
                    h.journal.note_heartbeat(renewed.get(h.journal.job_id))

    def beat(self) -> None:
        """Renew the process's heartbeat row (if it has one)."""
        if self.worker is not None:
            with self._engine.begin() as conn:
                beat(conn, self.worker)

    def start(self) -> None:
        # the first heartbeat before this returns: a worker is seen as soon as it started
        self._tick(self.beat, "worker heartbeat")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.worker is not None:
            try:
                with self._engine.begin() as conn:
                    leave(conn, self.worker.id)
            except Exception as exc:  # its row is forgotten once it stops being renewed
                log.warning("could not remove this worker's heartbeat row: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._lease_seconds / 3):
            self._tick(self.renew, "lease heartbeat")
            self._tick(self.beat, "worker heartbeat")

    @staticmethod
    def _tick(step: Callable[[], None], what: str) -> None:
        try:
            step()
        except Exception as exc:  # the database is away: try again next tick
            log.warning("%s failed, retrying next tick: %s", what, exc)


class TenantSlots:
    """How many slices each tenant runs in this process, against its share: a tenant may
    take at most ``share`` of the process's places, so others always find one free
    (see ponder.fairness). Used on the loop only."""

    def __init__(self, share: int) -> None:
        self.share = share
        self._running: dict[str, int] = {}

    def take(self, tenant_id: str, *, always: bool = False) -> bool:
        """Count one more slice of the tenant; False (nothing counted) when it has its
        share already, unless ``always``."""
        held = self._running.get(tenant_id, 0)
        if held >= self.share and not always:
            return False
        self._running[tenant_id] = held + 1
        return True

    def give_back(self, tenant_id: str) -> None:
        left = self._running.get(tenant_id, 0) - 1
        if left > 0:
            self._running[tenant_id] = left
        else:
            self._running.pop(tenant_id, None)

    def running(self, tenant_id: str) -> int:
        return self._running.get(tenant_id, 0)


class StopWatch:
    """One poll of a stop flag for every slice: an asyncio event set once the flag is up."""

    def __init__(self) -> None:
        self._events: dict[Callable[[], bool], asyncio.Event] = {}

    def event(self, stopping: Callable[[], bool]) -> asyncio.Event:
        ev = self._events.get(stopping)
        if ev is None:
            ev = self._events[stopping] = asyncio.Event()
            if stopping():
                ev.set()
        return ev

    async def run(self) -> None:
        while True:
            await asyncio.sleep(STOP_POLL_SECONDS)
            for stopping, ev in list(self._events.items()):
                if not ev.is_set() and stopping():
                    ev.set()


class JobLoop:
    """The process's event loop thread and what its slices share. Start it once per
    process (after any fork); :meth:`call` runs a coroutine on it from any thread."""

    def __init__(self, committer: GroupCommitter, leases: LeaseKeeper, tenant_share: int) -> None:
        self.committer = committer
        self.leases = leases
        self.tenants = TenantSlots(tenant_share)
        self.stops = StopWatch()
        self.lag = LoopLag()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_forever, name="ponder-job-loop", daemon=True
        )
        self._background: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False
        self._lock = threading.Lock()

    def _run_forever(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            self._thread.start()
            self.leases.start()

        async def background() -> None:
            for coro in (self.stops.run(), self.lag.run()):
                self._background.append(asyncio.ensure_future(coro))

        self.call(background())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (from another thread)."""
        if not self._started:
            self.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if not self._started:
            self.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self, *closers: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``closers`` on the loop, commit what is queued, stop the loop's thread and
        log the loop's lag over the run."""
        if not self._started or self._closed:
            self._closed = True
            return
        self._closed = True

        async def shutdown() -> None:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self.committer.aclose()
            for closer in closers:
                try:
                    await closer()
                except Exception:
                    log.warning("closing a client failed", exc_info=True)

        self.leases.stop()
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=30)
        finally:
            lag = self.lag.summary()
            if lag["samples"]:
                log.info(
                    "event loop lag over the run: p50=%.1fms p99=%.1fms max=%.1fms samples=%d",
                    lag["p50_ms"],
                    lag["p99_ms"],
                    lag["max_ms"],
                    lag["samples"],
                )
            log.info("group commits over the run: %s", self.committer.stats.as_dict())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self.loop.is_running():
                self.loop.close()
