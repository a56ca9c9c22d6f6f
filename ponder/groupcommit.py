"""Group commit: the database writes of many concurrent jobs, committed together.

A worker process runs hundreds of job slices on one event loop. Each slice journals as it
goes (a reservation before a model call, the result after it, events, the final state),
and each of those writes must be durable before the slice moves on. Committed one by
one, every write would cost a transaction and a flush of the write-ahead log; here the
writes that arrive while a commit is in flight (or within ``window`` seconds of an idle
committer) go into the next transaction together. Each caller is released only when the
transaction holding its write has committed, so the durability each write promises is
unchanged; only the fsyncs are shared.

The transactions run on one connection in one thread, off the event loop, so the loop
never waits on the database and a process holds a bounded number of connections however
many jobs it runs.

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
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Connection], Any]

# Groups larger than this are split: a huge transaction holds row locks longer and makes
# every caller in it wait for the slowest statement.
MAX_GROUP = 512


@dataclass
class _Pending:
    write: Write
    key: str
    future: asyncio.Future[Any]
    outcome: tuple[bool, Any] = field(default=(False, None))


@dataclass
class CommitStats:
    """What the committer has done (for benchmarks and logs)."""

    groups: int = 0
    writes: int = 0
    largest_group: int = 0
    solo_retries: int = 0
    failed_commits: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "groups": self.groups,
            "writes": self.writes,
            "largest_group": self.largest_group,
            "solo_retries": self.solo_retries,
            "failed_commits": self.failed_commits,
        }


class GroupCommitter:
    """Commits writes submitted from one event loop in shared transactions.

    ``window`` is how long an idle committer waits for more writes before it starts a
    transaction (writes that arrive while a transaction is in flight need no window:
    they form the next group). ``clean_errors`` are exceptions a write raises without
    having changed anything."""

    def __init__(
        self,
        engine: Engine,
        *,
        window: float = 0.001,
        clean_errors: tuple[type[BaseException], ...] = (),
        max_group: int = MAX_GROUP,
    ) -> None:
        self._engine = engine
        self._window = window
        self._clean = clean_errors
        self._max_group = max_group
        self._queue: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ponder-commit")
        self._conn: Connection | None = None
        self._closed = False
        self.stats = CommitStats()

    async def run(self, write: Callable[[Connection], T], *, key: str = "") -> T:
        """Run ``write`` in the next group and return its value once that group has
        committed. ``key`` orders writes within a group (writes to one job carry the job's
        id, so every group locks rows in the same order); writes with equal keys keep
        their submission order."""
        if self._closed:
            raise RuntimeError("the group committer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Pending(write, key, future))
        if self._runner is None or self._runner.done():
            self._wakeup = asyncio.Event()
            self._runner = loop.create_task(self._run_groups(), name="ponder-group-commit")
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def aclose(self) -> None:
        """Commit what is queued, then stop."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._runner is not None:
            await self._runner
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=True)

    # -- on the loop ---------------------------------------------------------------

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
            await loop.run_in_executor(self._executor, self._commit_group, group)
            for p in group:
                if p.future.done():  # its caller was cancelled; nothing to hand back
                    continue
                ok, value = p.outcome
                if ok:
                    p.future.set_result(value)
                else:
                    p.future.set_exception(value)

    # -- in the committer's thread ---------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._close_conn()
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
        self.stats.groups += 1
        self.stats.writes += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        order = sorted(range(len(group)), key=lambda i: group[i].key)
        committing = False
        try:
            conn = self._connection()
            with conn.begin():
                for i in order:
                    p = group[i]
                    try:
                        p.outcome = (True, p.write(conn))
                    except self._clean as exc:
                        p.outcome = (False, exc)
                committing = True
        except Exception as exc:
            self._close_conn()
            if committing:
                # The COMMIT failed: whether it took effect is unknown. Nobody may assume
                # either way, so every write of the group fails.
                self.stats.failed_commits += 1
                log.warning("a group commit of %d writes failed: %s", len(group), exc)
                for p in group:
                    p.outcome = (False, exc)
                return
            # Nothing was committed: run each write alone, so a bad one fails by itself.
            self.stats.solo_retries += 1
            if len(group) == 1:
                group[0].outcome = (False, exc)
                return
            for i in order:
                self._commit_alone(group[i])

    def _commit_alone(self, p: _Pending) -> None:
        try:
            conn = self._connection()
            with conn.begin():
                try:
                    value = p.write(conn)
                except self._clean as exc:
                    p.outcome = (False, exc)
                    return
            p.outcome = (True, value)
        except Exception as exc:
            self._close_conn()
            p.outcome = (False, exc)
