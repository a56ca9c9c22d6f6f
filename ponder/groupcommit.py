"""Group commit: the database writes of many concurrent jobs, committed together.

A worker process runs hundreds of job slices on one event loop. Each slice journals as it
goes (a reservation before a model call, the result after it, events, the final state),
and each of those writes must be durable before the slice moves on. Committed one by
one, every write would cost a transaction and a flush of the write-ahead log; here the
writes that arrive while a commit is in flight (or within ``window`` seconds of an idle
committer) go into the next transaction together. Each caller is released only when the
transaction holding its write has committed, so the durability each write promises is
unchanged; only the fsyncs are shared.

The transactions run on one connection (on the event loop through an async driver, or
in a thread of their own), so the loop never waits on the database and a process holds
a bounded number of connections however many jobs it runs.

A write is a function of a :class:`~sqlalchemy.Connection` that runs its statements and
returns a value. It may be run a second time (see below), so it must not mutate state
outside the database: callers prepare everything before submitting it.

Failures:

* A write that raises one of ``clean_errors`` (e.g. a fenced write whose lease is gone:
  it matched no row, so it changed nothing) fails alone; the rest of its group commits.
* A statement error (bad data, a constraint) aborts the transaction before anything was
  committed: every write of the group is then run again in a transaction of its own, so
  one bad write cannot fail its neighbours.
* A failure of the COMMIT itself (the connection dropped) leaves the outcome unknown:
  every write of the group fails with that error, and their callers must recover as
  after a crash (the job is claimed again and reads its journal back), never by writing
  again blindly.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ponder import metrics, telemetry

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Connection], Any]
# runs many items of one kind in the caller's transaction: one (ok, value or error) each
Batcher = Callable[[Connection, list[Any]], list[tuple[bool, Any]]]

# Groups larger than this are split: a huge transaction holds row locks longer and makes
# every caller in it wait for the slowest statement.
MAX_GROUP = 512


@dataclass
class _Pending:
    write: Write
    key: str
    future: asyncio.Future[Any]
    outcome: tuple[bool, Any] = field(default=(False, None))
    group_size: int = 0  # writes in the group it was committed with


@dataclass
class CommitStats:
    """What the committer has done (for benchmarks and logs)."""

    groups: int = 0
    writes: int = 0
    largest_group: int = 0
    solo_retries: int = 0
    failed_commits: int = 0
    busy_seconds: float = 0.0  # time spent running groups

    def as_dict(self) -> dict[str, float]:
        return {
            "groups": self.groups,
            "writes": self.writes,
            "largest_group": self.largest_group,
            "solo_retries": self.solo_retries,
            "failed_commits": self.failed_commits,
            "busy_seconds": round(self.busy_seconds, 3),
        }


class GroupCommitter:
    """Commits writes submitted from one event loop in shared transactions.

    With an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (Postgres through psycopg's
    async driver) the transactions run on the loop itself: every round trip to the
    database yields to the other jobs, and no thread competes with the loop for the
    interpreter (a committer thread waited up to a switch interval for the lock after
    each statement, which made a busy process's writes several times slower). With a
    plain :class:`~sqlalchemy.Engine` (SQLite, the embedded mode) they run in one thread
    of their own.

    ``window`` is how long an idle committer waits for more writes before it starts a
    transaction (writes that arrive while a transaction is in flight need no window:
    they form the next group). ``clean_errors`` are exceptions a write raises without
    having changed anything."""

    def __init__(
        self,
        engine: Engine | AsyncEngine,
        *,
        window: float = 0.001,
        clean_errors: tuple[type[BaseException], ...] = (),
        batchers: dict[type[Any], Batcher] | None = None,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._engine = engine
        self._batchers = dict(batchers or {})
        self._window = window
        self._clean = clean_errors
        self._max_group = max_group
        self._queue: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        if isinstance(engine, Engine):
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="ponder-commit")
        self._conn: Connection | None = None
        self._aconn: AsyncConnection | None = None
        self._closed = False
        self.stats = CommitStats()

    async def run(
        self,
        write: Callable[[Connection], T],
        *,
        key: str = "",
        span: telemetry.SpanLike = telemetry.NO_SPAN,
    ) -> T:
        """Run ``write`` in the next group and return its value once that group has
        committed. ``key`` orders writes within a group (writes to one job carry the job's
        id, so every group locks rows in the same order); writes with equal keys keep
        their submission order. ``span`` (the caller's, for this write) learns how many
        writes shared the transaction (``ponder.commit.group_size``)."""
        if self._closed:
            raise RuntimeError("the group committer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = _Pending(write, key, future)
        self._queue.append(pending)
        if self._runner is None or self._runner.done():
            self._wakeup = asyncio.Event()
            # a context of its own: the runner serves every caller, so it must not carry
            # the first one's log fields or span
            self._runner = loop.create_task(
                self._run_groups(), name="ponder-group-commit", context=contextvars.Context()
            )
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            with metrics.JOURNAL_WRITE_SECONDS.time():
                return await future
        finally:
            if pending.group_size and span.is_recording():
                span.set_attribute("ponder.commit.group_size", pending.group_size)

    async def submit(
        self, item: Any, *, key: str = "", span: telemetry.SpanLike = telemetry.NO_SPAN
    ) -> Any:
        """Like :meth:`run`, for an item one of the ``batchers`` runs: all the items of a
        kind in a group go to their batcher at once (a handful of statements for the
        whole group instead of a few per item)."""
        if type(item) not in self._batchers:
            raise TypeError(f"no batcher for {type(item).__name__}")
        return await self.run(item, key=key, span=span)

    async def aclose(self) -> None:
        """Commit what is queued, then stop."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._runner is not None:
            await self._runner
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
            self._executor.shutdown(wait=True)
        else:
            await self._aclose_conn()

    async def _run_groups(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                if not self._queue:
                    continue
                if self._window > 0:  # an idle committer: let concurrent writers join
                    await asyncio.sleep(self._window)
            group = self._queue[: self._max_group]
            del self._queue[: self._max_group]
            started = time.monotonic()
            self.stats.groups += 1
            self.stats.writes += len(group)
            self.stats.largest_group = max(self.stats.largest_group, len(group))
            metrics.JOURNAL_GROUP_WRITES.observe(len(group))
            try:
                if self._executor is not None:
                    await loop.run_in_executor(self._executor, self._commit_group, group)
                else:
                    await self._acommit_group(group)
            finally:
                self.stats.busy_seconds += time.monotonic() - started
            for p in group:
                p.group_size = len(group)
                if p.future.done():  # its caller was cancelled; nothing to hand back
                    continue
                ok, value = p.outcome
                if ok:
                    p.future.set_result(value)
                else:
                    p.future.set_exception(value)

    # -- the writes of a group, on a connection in a transaction -------------------------

    def _run_writes(self, conn: Connection, group: list[_Pending]) -> None:
        batched: dict[type[Any], list[_Pending]] = {}
        single: list[_Pending] = []
        for p in sorted(group, key=lambda p: p.key):
            if type(p.write) in self._batchers:
                batched.setdefault(type(p.write), []).append(p)
            else:
                single.append(p)
        for kind, items in batched.items():
            outcomes = self._batchers[kind](conn, [p.write for p in items])
            for p, outcome in zip(items, outcomes, strict=True):
                p.outcome = outcome
        for p in single:
            try:
                p.outcome = (True, p.write(conn))
            except self._clean as exc:
                p.outcome = (False, exc)

    def _failed(self, group: list[_Pending], exc: Exception, *, committing: bool) -> bool:
        """Record a group's failure. Returns whether each write should be run alone."""
        if committing:
            # The COMMIT failed: whether it took effect is unknown. Nobody may assume
            # either way, so every write of the group fails.
            self.stats.failed_commits += 1
            metrics.JOURNAL_COMMIT_FAILURES.inc()
            log.warning("a group commit of %d writes failed: %s", len(group), exc)
            for p in group:
                p.outcome = (False, exc)
            return False
        # Nothing was committed: run each write alone, so a bad one fails by itself.
        self.stats.solo_retries += 1
        if len(group) == 1:
            group[0].outcome = (False, exc)
            return False
        return True

    # -- on the loop (AsyncEngine) ----------------------------------------------------

    async def _aconnection(self) -> AsyncConnection:
        if self._aconn is None or self._aconn.closed or self._aconn.invalidated:
            await self._aclose_conn()
            assert isinstance(self._engine, AsyncEngine)
            self._aconn = await self._engine.connect()
        return self._aconn

    async def _aclose_conn(self) -> None:
        if self._aconn is not None:
            try:
                await self._aconn.close()
            except Exception:  # a dead connection: nothing to release
                log.debug("closing the committer's connection failed", exc_info=True)
            self._aconn = None

    async def _acommit_group(self, group: list[_Pending]) -> None:
        committing = False
        try:
            conn = await self._aconnection()
            async with conn.begin():
                await conn.run_sync(self._run_writes, group)
                committing = True
        except Exception as exc:
            await self._aclose_conn()
            if self._failed(group, exc, committing=committing):
                for p in sorted(group, key=lambda p: p.key):
                    await self._acommit_alone(p)

    async def _acommit_alone(self, p: _Pending) -> None:
        try:
            conn = await self._aconnection()
            async with conn.begin():
                await conn.run_sync(self._run_writes, [p])
        except Exception as exc:
            await self._aclose_conn()
            p.outcome = (False, exc)

    # -- in the committer's thread (Engine) -------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._close_conn()
            assert isinstance(self._engine, Engine)
            self._conn = self._engine.connect()
        return self._conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a dead connection: nothing to release
                log.debug("closing the committer's connection failed", exc_info=True)
            self._conn = None

    def _commit_group(self, group: list[_Pending]) -> None:
        committing = False
        try:
            conn = self._connection()
            with conn.begin():
                self._run_writes(conn, group)
                committing = True
        except Exception as exc:
            self._close_conn()
            if self._failed(group, exc, committing=committing):
                for p in sorted(group, key=lambda p: p.key):
                    self._commit_alone(p)

    def _commit_alone(self, p: _Pending) -> None:
        try:
            conn = self._connection()
            with conn.begin():
                self._run_writes(conn, [p])
        except Exception as exc:
            self._close_conn()
            p.outcome = (False, exc)
