"""Worker processes' heartbeats: which workers run, so the System page can show them even
while they are idle (a lease shows only a worker that runs a job).

Each worker process is ``host:pid``. Its lease heartbeat thread (``worker.jobloop``)
writes a ``workers`` row when the process starts and renews ``last_seen_at`` every third
of a lease; a clean stop deletes the row. Every slice the process runs takes its job's
lease as ``host:pid:<random>`` (:func:`slice_owner`), so a job's ``lease_owner`` names
the worker running it (:func:`worker_of`).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, delete, insert, update

from ponder.tables import Worker, utcnow

_workers = cast(Table, Worker.__table__)

# a worker whose heartbeat stopped this long ago is forgotten (the reaper deletes it)
FORGET_AFTER = timedelta(hours=1)


def worker_id() -> str:
    """This process's worker id: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def slice_owner() -> str:
    """A lease owner for one slice run by this process: ``host:pid:<random>``."""
    return f"{worker_id()}:{uuid.uuid4().hex[:8]}"


def worker_of(owner: str) -> str:
    """The worker id in a lease owner (``host:pid:<random>`` -> ``host:pid``); an owner of
    another form (written by a test or an older worker) is its own worker."""
    head, sep, _ = owner.rpartition(":")
    return head if sep and ":" in head else owner


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker process says about itself in its heartbeat."""

    id: str
    hostname: str
    pid: int
    queue: str
    max_jobs: int
    started_at: datetime

    @classmethod
    def of_this_process(cls, queue: str, max_jobs: int) -> WorkerInfo:
        return cls(
            id=worker_id(),
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queue=queue,
            max_jobs=max_jobs,
            started_at=utcnow(),
        )


def beat(conn: Connection, info: WorkerInfo, now: datetime | None = None) -> None:
    """Say that the worker ``info`` is alive now (insert its row, or renew it)."""
    now = now or utcnow()
    renewed = conn.execute(
        update(_workers)
        .where(_workers.c.id == info.id)
        .values(last_seen_at=now, queue=info.queue, max_jobs=info.max_jobs)
    ).rowcount
    if not renewed:
        conn.execute(
            insert(_workers).values(
                id=info.id,
                hostname=info.hostname,
                pid=info.pid,
                queue=info.queue,
                max_jobs=info.max_jobs,
                started_at=info.started_at,
                last_seen_at=now,
            )
        )


def leave(conn: Connection, worker: str) -> None:
    """The worker stops cleanly: drop its row."""
    conn.execute(delete(_workers).where(_workers.c.id == worker))


def forget_gone(conn: Connection, now: datetime | None = None) -> int:
    """Delete the rows of workers silent for :data:`FORGET_AFTER`; returns how many."""
    before = (now or utcnow()) - FORGET_AFTER
    return conn.execute(delete(_workers).where(_workers.c.last_seen_at < before)).rowcount
