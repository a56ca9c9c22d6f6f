"""All database access for running jobs: claiming leases, the fenced journal, heartbeats,
hand-offs between slices, finalization with its outbox rows, and what the reaper needs.

Fencing: every write a worker makes is an ``UPDATE jobs ... WHERE id = :id AND attempt =
:attempt AND lease_owner = :owner`` in the same transaction as the rest of the write. Once
another worker claims the job (bumping ``attempt``), the old worker's writes match no row
and raise :class:`LeaseLost` — a zombie cannot write.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.budget import Spend
from ponder.models import (
    Job,
    JobEvent,
    JobStatus,
    JobStep,
    utcnow,
)
from ponder.notify import notify_job_finished
from ponder.runtime import Cancelled, LeaseLost, StepRecord
from ponder.webhooks.outbox import add_delivery


@dataclass(frozen=True)
class Claim:
    """A lease on a job: the snapshot the worker runs from and its fencing number."""

    job: Job
    attempt: int
    owner: str
    steps: dict[int, StepRecord]
    lost_calls: int  # in flight when the previous worker died


def claim(
    sessions: sessionmaker[Session], job_id: str, owner: str, lease_seconds: float
) -> Claim | None:
    """Take the job's lease if it is runnable and nobody holds a live lease. Reservations
    left pending by a dead worker are counted as spent (their usage is unknown)."""
    now = utcnow()
    with sessions() as s, s.begin():
        row = s.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
            )
            .values(
                attempt=Job.attempt + 1,
                recoveries=Job.recoveries + case((Job.lease_owner.is_not(None), 1), else_=0),
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                status=JobStatus.RUNNING,
                started_at=func.coalesce(Job.started_at, now),
                updated_at=now,
            )
            .returning(Job.attempt)
        ).first()
        if row is None:
            return None
        attempt = int(row[0])
        # One query for the whole journal: done results to replay, and reservations a
        # dead worker left pending (counted as spent: their real usage is unknown).
        rows = s.execute(
            select(
                JobStep.key,
                JobStep.kind,
                JobStep.status,
                JobStep.digest,
                JobStep.result,
                JobStep.reserved_tokens,
                JobStep.reserved_calls,
                JobStep.reserved_cost_usd,
            ).where(JobStep.job_id == job_id)
        ).all()
        steps: dict[int, StepRecord] = {}
        lost, n_lost = Spend(), 0
        for r in rows:
            if r.status == "done":
                steps[int(r.key)] = StepRecord(int(r.key), r.kind, r.digest, r.result or {})
            else:
                lost = lost + Spend(r.reserved_tokens, r.reserved_calls, r.reserved_cost_usd)
                n_lost += 1
        if n_lost:
            s.execute(delete(JobStep).where(JobStep.job_id == job_id, JobStep.status == "pending"))
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    usage_tokens=Job.usage_tokens + lost.tokens,
                    usage_calls=Job.usage_calls + lost.calls,
                    usage_cost_usd=Job.usage_cost_usd + lost.cost_usd,
                    lost_calls=Job.lost_calls + n_lost,
                )
            )
        job = s.execute(
            select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
        ).scalar_one()
        s.expunge(job)
        return Claim(job=job, attempt=attempt, owner=owner, steps=steps, lost_calls=n_lost)


def renew_lease(
    sessions: sessionmaker[Session],
    job_id: str,
    attempt: int,
    owner: str,
    lease_seconds: float,
    seconds_used: float,
) -> bool | None:
    """Extend a lease. Returns the job's cancel flag, or None if the lease is gone."""
    now = utcnow()
    with sessions() as s, s.begin():
        row = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempt == attempt, Job.lease_owner == owner)
            .values(
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                usage_seconds=seconds_used,
            )
            .returning(Job.cancel_requested)
        ).first()
    return None if row is None else bool(row[0])


def job_public_summary(job: Job) -> dict[str, Any]:
    """The job fields webhooks and terminal events carry."""
    return {
        "id": job.id,
        "status": job.status,
        "stop_reason": job.stop_reason,
        "result": job.result,
        "usage": {
            "tokens": job.usage_tokens,
            "calls": job.usage_calls,
            "cost_usd": round(job.usage_cost_usd, 8),
            "seconds": round(job.usage_seconds, 3),
        },
        "error": job.error,
        "batch_id": job.batch_id,
        "metadata": job.meta,
    }


def _announce(s: Session, job: Job, event_type: str) -> list[str]:
    """The outbox row of a job's final event, if it has a webhook (ids written)."""
    if not job.webhook_url:
        return []
    return [
        add_delivery(
            s,
            tenant_id=job.tenant_id,
            url=job.webhook_url,
            event_type=event_type,
            data=job_public_summary(job),
            job_id=job.id,
        )
    ]


class SqlJournal:
    """The :class:`ponder.runtime.Journal` of one claimed slice, on the database.

    Billed calls are written at once (a reservation before, the result after). Unbilled
    results (local verifiers), events, the best-so-far and progress are buffered and go
    out with the next write, so a crash loses only work that replays for free."""

    def __init__(self, sessions: sessionmaker[Session], claim: Claim) -> None:
        self._sessions = sessions
        self.job_id = claim.job.id
        self.attempt = claim.attempt
        self.owner = claim.owner
        self.webhook_url = claim.job.webhook_url
        self.deliveries: list[str] = []  # outbox rows written by finalize, to send now
        self.steps: dict[int, StepRecord] = claim.steps
        self.strategy_events = claim.job.strategy_events
        self._cancel = bool(claim.job.cancel_requested)
        self._lease_lost = False
        self._lock = threading.Lock()
        self._free_steps: list[dict[str, Any]] = []
        self._events: list[tuple[str, dict[str, Any], bool]] = []
        self._best: dict[str, Any] | None = None
        self._progress: dict[str, Any] | None = None

    # -- flags (also fed by the heartbeat thread) --
    @property
    def cancel_requested(self) -> bool:
        return self._cancel

    @property
    def lease_lost(self) -> bool:
        return self._lease_lost

    def note_heartbeat(self, cancel: bool | None) -> None:
        if cancel is None:
            self._lease_lost = True
        else:
            self._cancel = self._cancel or cancel

    # -- buffered --
    def record_free_step(self, key: int, kind: str, digest: str, result: dict[str, Any]) -> None:
        now = utcnow()
        self._free_steps.append(
            {
                "job_id": self.job_id,
                "key": key,
                "kind": kind,
                "status": "done",
                "digest": digest,
                "attempt": self.attempt,
                "result": result,
                "created_at": now,
                "completed_at": now,
            }
        )

    def add_event(self, kind: str, data: dict[str, Any], *, strategy: bool) -> None:
        self._events.append((kind, data, strategy))

    def set_best(self, best: dict[str, Any]) -> None:
        self._best = best

    def set_progress(self, progress: dict[str, Any]) -> None:
        self._progress = progress

    # -- writes --
    def _fenced(self, s: Session, values: dict[str, Any]) -> Row[bool, int]:
        """Update the job row under our fence and write everything buffered."""
        events, self._events = self._events, []
        free, self._free_steps = self._free_steps, []
        values = dict(values)
        values["updated_at"] = utcnow()
        if events:
            values["event_seq"] = Job.event_seq + len(events)
            n_strategy = sum(1 for e in events if e[2])
            if n_strategy:
                values["strategy_events"] = Job.strategy_events + n_strategy
        if self._best is not None:
            values["best"] = self._best
            self._best = None
        if self._progress is not None and "progress" not in values:
            values["progress"] = self._progress
            self._progress = None
        row = s.execute(
            update(Job)
            .where(
                Job.id == self.job_id, Job.attempt == self.attempt, Job.lease_owner == self.owner
            )
            .values(**values)
            .returning(Job.cancel_requested, Job.event_seq)
        ).first()
        if row is None:
            self._lease_lost = True
            raise LeaseLost(f"job {self.job_id}: lease lost (attempt {self.attempt})")
        self._cancel = self._cancel or bool(row[0])
        if free:
            s.execute(insert(JobStep), free)
        if events:
            first = int(row[1]) - len(events) + 1
            now = utcnow()
            s.execute(
                insert(JobEvent),
                [
                    {
                        "job_id": self.job_id,
                        "seq": first + i,
                        "kind": kind,
                        "data": data,
                        "created_at": now,
                    }
                    for i, (kind, data, _) in enumerate(events)
                ],
            )
        return row

    def _write(self, values: dict[str, Any], extra: Any = None) -> Row[bool, int]:
        with self._lock, self._sessions() as s, s.begin():
            row = self._fenced(s, values)
            if extra is not None:
                extra(s)
            return row

    def begin_paid_step(self, key: int, kind: str, digest: str, reserved: Spend) -> None:
        if self._cancel:
            raise Cancelled("the job was cancelled")

        def add_pending(s: Session) -> None:
            if self._cancel:
                return
            s.execute(
                insert(JobStep).values(
                    job_id=self.job_id,
                    key=key,
                    kind=kind,
                    status="pending",
                    digest=digest,
                    attempt=self.attempt,
                    reserved_tokens=reserved.tokens,
                    reserved_calls=reserved.calls,
                    reserved_cost_usd=reserved.cost_usd,
                    created_at=utcnow(),
                )
            )

        self._write({}, add_pending)
        if self._cancel:
            raise Cancelled("the job was cancelled")

    def complete_paid_step(
        self, key: int, kind: str, digest: str, result: dict[str, Any], charged: Spend
    ) -> None:
        def mark_done(s: Session) -> None:
            s.execute(
                update(JobStep)
                .where(JobStep.job_id == self.job_id, JobStep.key == key)
                .values(
                    status="done",
                    result=result,
                    tokens=charged.tokens,
                    calls=charged.calls,
                    cost_usd=charged.cost_usd,
                    completed_at=utcnow(),
                )
            )

        self._write(
            {
                "usage_tokens": Job.usage_tokens + charged.tokens,
                "usage_calls": Job.usage_calls + charged.calls,
                "usage_cost_usd": Job.usage_cost_usd + charged.cost_usd,
            },
            mark_done,
        )

    def abandon_step(self, key: int, forfeited: Spend | None) -> None:
        values: dict[str, Any] = {}
        if forfeited is not None:
            values = {
                "usage_tokens": Job.usage_tokens + forfeited.tokens,
                "usage_calls": Job.usage_calls + forfeited.calls,
                "usage_cost_usd": Job.usage_cost_usd + forfeited.cost_usd,
                "lost_calls": Job.lost_calls + 1,
            }

        def drop(s: Session) -> None:
            s.execute(delete(JobStep).where(JobStep.job_id == self.job_id, JobStep.key == key))

        self._write(values, drop)

    def flush(self) -> None:
        self._write({})

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """A runner event (not replayed)."""
        self._events.append((kind, data, False))

    def handoff(self, seconds_used: float) -> None:
        """End this slice cleanly: release the lease so the next slice starts at once."""
        self._write(
            {
                "lease_owner": None,
                "lease_expires_at": None,
                "slices": Job.slices + 1,
                "usage_seconds": seconds_used,
                "enqueued_at": utcnow(),
            }
        )

    def finalize(
        self,
        *,
        status: str,
        stop_reason: str,
        result: dict[str, Any] | None,
        error: str | None,
        seconds_used: float,
        progress: dict[str, Any],
    ) -> None:
        """Terminal state, terminal event and webhook outbox row in one transaction."""
        now = utcnow()
        event_type = {
            JobStatus.COMPLETED: "job.completed",
            JobStatus.FAILED: "job.failed",
            JobStatus.CANCELLED: "job.cancelled",
        }[status]

        def outbox(s: Session) -> None:
            if not self.webhook_url:
                return
            job = s.execute(
                select(Job).where(Job.id == self.job_id).execution_options(populate_existing=True)
            ).scalar_one()
            self.deliveries.extend(_announce(s, job, event_type))

        def finish(s: Session) -> None:
            outbox(s)
            notify_job_finished(s, self.job_id)

        self._events.append(
            (status, {"stop_reason": stop_reason, "result": result, "error": error}, False)
        )
        self._write(
            {
                "status": status,
                "stop_reason": stop_reason,
                "result": result,
                "error": error,
                "usage_seconds": seconds_used,
                "progress": progress,
                "lease_owner": None,
                "lease_expires_at": None,
                "finished_at": now,
                "slices": Job.slices + 1,
            },
            finish,
        )


def finalize_unclaimed(
    sessions: sessionmaker[Session],
    job_id: str,
    *,
    status: str,
    stop_reason: str,
    error: str | None,
    only_if: Any = None,
    deliveries: list[str] | None = None,
) -> bool:
    """Terminate a job nobody is running (cancel while queued, reaper giving up), with its
    best-so-far as the result and its outbox row, atomically. ``only_if`` adds a condition
    that must still hold (checked in the same UPDATE). Returns whether it applied; the ids
    of outbox rows written are appended to ``deliveries``."""
    if deliveries is None:
        deliveries = []
    now = utcnow()
    event_type = {JobStatus.FAILED: "job.failed", JobStatus.CANCELLED: "job.cancelled"}[status]
    cond = and_(Job.id == job_id, Job.status.not_in(list(JobStatus.TERMINAL)))
    if only_if is not None:
        cond = and_(cond, only_if)
    with sessions() as s, s.begin():
        row = s.execute(
            update(Job)
            .where(cond)
            .values(
                status=status,
                stop_reason=stop_reason,
                error=error,
                result=Job.best,
                lease_owner=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
                event_seq=Job.event_seq + 1,
            )
            .returning(Job.event_seq)
        ).first()
        if row is None:
            return False
        job = s.execute(select(Job).where(Job.id == job_id)).scalar_one()
        s.refresh(job)
        s.execute(
            insert(JobEvent).values(
                job_id=job_id,
                seq=int(row[0]),
                kind=status,
                created_at=now,
                data={"stop_reason": stop_reason, "result": job.result, "error": error},
            )
        )
        deliveries.extend(_announce(s, job, event_type))
        notify_job_finished(s, job_id)
        return True


def request_cancel(sessions: sessionmaker[Session], job_id: str) -> list[str]:
    """Cancel a job: at once if nobody runs it, else flag it for its worker, which stops
    before its next model call. Returns the ids of webhook deliveries to send now."""
    deliveries: list[str] = []
    if finalize_unclaimed(
        sessions,
        job_id,
        status=JobStatus.CANCELLED,
        stop_reason="cancelled",
        error=None,
        only_if=and_(Job.status == JobStatus.QUEUED, Job.lease_owner.is_(None)),
        deliveries=deliveries,
    ):
        return deliveries
    with sessions() as s, s.begin():
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.not_in(list(JobStatus.TERMINAL)))
            .values(cancel_requested=True, updated_at=utcnow())
        )
    return deliveries


def jobs_to_requeue(
    sessions: sessionmaker[Session], *, stale_before: datetime, now: datetime, limit: int = 500
) -> list[tuple[str, int]]:
    """Queued jobs whose task has not started since ``stale_before``, running jobs between
    slices likewise, and running jobs whose lease expired. Marks them enqueued now; rows
    locked by another reaper are skipped (SKIP LOCKED on Postgres). Batch items still
    ``held`` for the batch feeder are left alone (the feeder queues them); once fed they
    are ordinary queued jobs and recovered like any other. Returns ``(id, priority)``
    pairs, so the jobs go back to the queue at their priority."""
    with sessions() as s, s.begin():
        rows = s.execute(
            select(Job.id, Job.priority)
            .where(
                or_(
                    and_(
                        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                        Job.lease_owner.is_(None),
                        ~Job.held,
                        or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale_before),
                    ),
                    and_(
                        Job.status == JobStatus.RUNNING,
                        Job.lease_owner.is_not(None),
                        Job.lease_expires_at < now,
                    ),
                )
            )
            .order_by(Job.priority.desc(), Job.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            ids = [job_id for job_id, _ in rows]
            s.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=now))
        return [(job_id, int(priority)) for job_id, priority in rows]
