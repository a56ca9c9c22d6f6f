"""Fair shares between tenants: one tenant's flood must not hold every place.

Two rules keep a tenant that submits thousands of jobs from starving the others:

* **A short queue per tenant.** At most ``tenant_max_queued`` of a tenant's jobs wait in
  the broker at once. Jobs submitted beyond that are stored *held* in Postgres (never
  published, never touched by the reaper) and published, highest priority first, as the
  tenant's queued ones start: each claim of one of its jobs publishes one held job, so
  its queue stays topped up. Another tenant's job is therefore never behind more than
  that many of the flooding tenant's messages.
* **A share of each worker process.** A tenant may run at most ``max_jobs - reserve``
  slices in one worker process (see ``worker.jobloop.TenantSlots``). A slice beyond its
  tenant's share is *parked*: its job goes back to held, its message is acknowledged,
  and it is published again when a slice of that tenant ends (a place it may use just
  freed up). So a process always has places for other tenants.

Held jobs of a tenant with none left in the queue are published by the reaper too (a
few a tick), which covers a publish lost while the broker was away.

Batch items have their own feeder (``ponder.batches.feeder``) and are never touched
here: the held jobs this module publishes are those without a batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.tables import Job, JobStatus, utcnow

_WAITING = (JobStatus.QUEUED, JobStatus.RUNNING)


def waiting_count(conn: Connection, tenant_id: str, limit: int) -> int:
    """How many of ``tenant_id``'s jobs wait in the broker (queued, published, not
    claimed), counting at most ``limit``."""
    waiting = (
        select(Job.id)
        .where(
            Job.tenant_id == tenant_id,
            Job.status == JobStatus.QUEUED,
            ~Job.held,
            Job.lease_owner.is_(None),
        )
        .limit(limit)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(waiting)).scalar_one())


def release_held(conn: Connection, tenant_id: str, n: int = 1) -> list[tuple[str, int]]:
    """Take up to ``n`` of the tenant's held jobs (not batch items) out of hold, highest
    priority first, oldest first; returns ``(id, priority)`` pairs to publish. Rows
    another releaser holds are skipped (SKIP LOCKED on Postgres)."""
    if n <= 0:
        return []
    chosen = (
        select(Job.id)
        .where(
            Job.tenant_id == tenant_id,
            Job.held,
            Job.batch_id.is_(None),
            Job.status.in_(_WAITING),
            Job.lease_owner.is_(None),
        )
        .order_by(Job.priority.desc(), Job.created_at, Job.id)
        .limit(n)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        update(Job)
        .where(Job.id.in_(chosen.scalar_subquery()))
        .values(held=False, enqueued_at=utcnow())
        .returning(Job.id, Job.priority)
    ).all()
    return sorted(((str(i), int(p)) for i, p in rows), key=lambda r: -r[1])


def release_idle(sessions: sessionmaker[Session], per_tenant: int) -> list[tuple[str, int]]:
    """For every tenant with held jobs and none waiting in the broker, take up to
    ``per_tenant`` out of hold (the reaper's fallback); returns what to publish."""
    released: list[tuple[str, int]] = []
    with sessions() as s, s.begin():
        holding = set(
            s.execute(
                select(Job.tenant_id)
                .where(
                    Job.held,
                    Job.batch_id.is_(None),
                    Job.status.in_(_WAITING),
                    Job.lease_owner.is_(None),
                )
                .distinct()
            ).scalars()
        )
        if not holding:
            return []
        waiting = set(
            s.execute(
                select(Job.tenant_id)
                .where(
                    Job.tenant_id.in_(holding),
                    Job.status == JobStatus.QUEUED,
                    ~Job.held,
                    Job.lease_owner.is_(None),
                )
                .distinct()
            ).scalars()
        )
        for tenant_id in sorted(holding - waiting):
            released += release_held(s.connection(), tenant_id, per_tenant)
    return released


@dataclass(frozen=True)
class ReleaseRequest:
    """A worker asking to publish one more held job of ``tenant_id`` if its queue has
    room (fewer than ``limit`` waiting), as the group committer batches it."""

    tenant_id: str
    limit: int


def release_for(
    conn: Connection, requests: list[ReleaseRequest]
) -> list[tuple[bool, list[tuple[str, int]]]]:
    """:func:`release_held` for a group's requests at once: per tenant, one count of its
    waiting jobs and one release of as many held jobs as its queue has room for (at most
    one per request). Each request gets the jobs to publish that fell to it."""
    wanted: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        wanted.setdefault(r.tenant_id, []).append(i)
    waiting = dict(
        conn.execute(
            select(Job.tenant_id, func.count())
            .where(
                Job.tenant_id.in_(sorted(wanted)),
                Job.status == JobStatus.QUEUED,
                ~Job.held,
                Job.lease_owner.is_(None),
            )
            .group_by(Job.tenant_id)
        ).all()
    )
    out: list[tuple[bool, list[tuple[str, int]]]] = [(True, []) for _ in requests]
    for tenant_id, indexes in sorted(wanted.items()):
        limit = requests[indexes[0]].limit
        room = min(len(indexes), limit - int(waiting.get(tenant_id, 0)))
        for i, job in zip(indexes, release_held(conn, tenant_id, room), strict=False):
            out[i] = (True, [job])
    return out


class QueueGauge:
    """Whether a tenant's queue of waiting jobs is full (:func:`waiting_count` reaches
    the limit), for the API's submissions, without a count on every one.

    A tenant whose last count (at most ``ttl`` seconds ago) plus the jobs admitted since
    is under half its limit is admitted without asking the database again; otherwise the
    database is asked. Several API processes may each admit up to half a limit before
    they look again, so a queue may briefly hold a little more than its limit, never a
    flood. Thread-safe."""

    def __init__(self, ttl: float = 1.0) -> None:
        self._ttl = ttl
        self._seen: dict[str, tuple[float, int]] = {}  # tenant -> (when counted, count)
        self._lock = threading.Lock()

    def is_full(self, conn: Connection, tenant_id: str, limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(tenant_id)
            if seen is not None and now - seen[0] < self._ttl and seen[1] < limit // 2:
                self._seen[tenant_id] = (seen[0], seen[1] + 1)
                return False
        waiting = waiting_count(conn, tenant_id, limit)
        full = waiting >= limit
        with self._lock:
            self._seen[tenant_id] = (now, waiting + (0 if full else 1))
            if len(self._seen) > 10_000:  # forget tenants not seen lately
                self._seen = {t: v for t, v in self._seen.items() if now - v[0] < self._ttl}
        return full
