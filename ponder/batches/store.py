"""Batch state changes on the database: finishing items nobody runs (cancel, batch budget
used up), cancelling a batch, and completing it — with its ``batch.completed`` outbox row
— exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics
from ponder.db import retry_conflicts
from ponder.jobstore import job_public_summary
from ponder.notify import CHANNEL
from ponder.outcome import public_result, public_usage
from ponder.pagination import Cursor, Page, newest_first
from ponder.tables import (
    Batch,
    BatchStatus,
    Job,
    JobEvent,
    JobStatus,
    StopReason,
    WebhookDelivery,
    canonical_id,
    utcnow,
)
from ponder.webhooks.outbox import BATCH_COMPLETED, delivery_row


def held_items(batch_id: str) -> ColumnElement[bool]:
    """Items still waiting for the feeder (matches the partial index ix_jobs_batch_held)."""
    return and_(Job.batch_id == batch_id, Job.held, Job.status == JobStatus.QUEUED)


def in_flight_items() -> ColumnElement[bool]:
    """Batch items fed to the queue and not finished (matches ix_jobs_batch_in_flight;
    callers add ``tenant_id`` and ``batch_id`` conditions)."""
    return and_(
        Job.batch_id.is_not(None),
        ~Job.held,
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
    )


def finish_unclaimed_items(
    session: Session,
    batch_id: str,
    *,
    status: JobStatus,
    stop_reason: str,
    error: str | None,
    only_held: bool,
) -> tuple[int, list[str]]:
    """End the batch's queued items that no worker holds (only the held ones if
    ``only_held``) with ``status``, in the caller's transaction and in bulk: each gets its
    terminal event, its best-so-far as result, and (if it has a ``webhook_url``) its
    ``job.*`` outbox row. Returns the outbox row ids."""
    now = utcnow()
    where = and_(
        Job.batch_id == batch_id, Job.status == JobStatus.QUEUED, Job.lease_owner.is_(None)
    )
    if only_held:
        where = and_(where, Job.held)
    jobs = list(
        session.execute(
            update(Job)
            .where(where)
            .values(
                status=status,
                stop_reason=stop_reason,
                error=error,
                result=Job.best,
                held=False,
                finished_at=now,
                updated_at=now,
                event_seq=Job.event_seq + 1,
            )
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        ).scalars()
    )
    if not jobs:
        return 0, []
    session.execute(
        insert(JobEvent),
        [
            {
                "job_id": job.id,
                "seq": job.event_seq,
                "kind": status,
                "data": {"stop_reason": stop_reason, "result": job.result, "error": error},
                "created_at": now,
            }
            for job in jobs
        ],
    )
    event_type = {JobStatus.CANCELLED: "job.cancelled", JobStatus.FAILED: "job.failed"}[status]
    deliveries = [
        delivery_row(
            tenant_id=job.tenant_id,
            url=job.webhook_url,
            event_type=event_type,
            data=job_public_summary(job),
            job_id=job.id,
            webhook_format=job.webhook_format,
        )
        for job in jobs
        if job.webhook_url
    ]
    if deliveries:
        session.execute(insert(WebhookDelivery), deliveries)
    if session.get_bind().dialect.name == "postgresql":
        # wake long-polls of these jobs (one statement for all)
        session.execute(
            text("SELECT pg_notify(:channel, id) FROM unnest(CAST(:ids AS text[])) AS id"),
            {"channel": CHANNEL, "ids": [job.id for job in jobs]},
        )
    return len(jobs), [str(d["id"]) for d in deliveries]


def cancel_batch(sessions: sessionmaker[Session], batch_id: str) -> list[str]:
    """Cancel a batch: items nobody runs end ``cancelled`` at once; running items are
    flagged and stop before their next model call (keeping their best answer). The batch
    is ``cancelled`` from now on; it finishes (``batch.completed``) once its last running
    item has stopped. Returns the outbox row ids written."""
    deliveries = retry_conflicts(lambda: _cancel(sessions, batch_id))
    done = complete_if_done(sessions, batch_id)
    return deliveries + (done.deliveries if done else [])


def _cancel(sessions: sessionmaker[Session], batch_id: str) -> list[str]:
    now = utcnow()
    with sessions() as s, s.begin():
        # items first, then the batch row: the same lock order as the feeder and the
        # item finalizers, so cancelling never deadlocks with them (workers' heartbeats
        # lock the running items in their own order: a deadlock with one is retried)
        finished, deliveries = finish_unclaimed_items(
            s,
            batch_id,
            status=JobStatus.CANCELLED,
            stop_reason=StopReason.CANCELLED,
            error=None,
            only_held=False,
        )
        s.execute(
            update(Job)
            .where(
                Job.batch_id == batch_id,
                Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
            )
            .values(cancel_requested=True, updated_at=now)
        )
        s.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status.in_(BatchStatus.ACTIVE))
            .values(status=BatchStatus.CANCELLED, cancelled_at=now, updated_at=now)
        )
    metrics.job_finished(JobStatus.CANCELLED, StopReason.CANCELLED, finished)
    return deliveries


@dataclass(frozen=True)
class Completion:
    """A batch that just finished, and the outbox row announcing it (if it has a
    ``webhook_url``)."""

    batch_id: str
    status: str
    deliveries: list[str]


def complete_if_done(sessions: sessionmaker[Session], batch_id: str) -> Completion | None:
    """Mark the batch finished if every item has reached a final status, and write its
    ``batch.completed`` outbox row in the same transaction. A conditional UPDATE (``WHERE
    finished_at IS NULL`` and no unfinished item) makes this happen exactly once however
    many workers and reapers call it at the same time. None if the batch is not finished
    (or was already)."""
    now = utcnow()
    with sessions() as s, s.begin():
        # two probes, each answered by its partial index without reading finished items
        held = exists().where(held_items(batch_id))
        fed = exists().where(
            Job.tenant_id == Batch.tenant_id, Job.batch_id == batch_id, in_flight_items()
        )
        row = s.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.finished_at.is_(None), ~held, ~fed)
            .values(
                finished_at=now,
                updated_at=now,
                status=case(
                    (Batch.status == BatchStatus.CANCELLED, BatchStatus.CANCELLED),
                    else_=BatchStatus.COMPLETED,
                ),
            )
            .returning(Batch.tenant_id, Batch.webhook_url, Batch.status)
        ).first()
        if row is None:
            return None
        if not row.webhook_url:
            return Completion(batch_id, row.status, [])
        data = {"id": batch_id, "status": row.status, **batch_totals(s, batch_id)}
        row_values = delivery_row(
            tenant_id=row.tenant_id, url=row.webhook_url, event_type=BATCH_COMPLETED, data=data
        )
        s.execute(insert(WebhookDelivery).values(**row_values))
        return Completion(batch_id, row.status, [str(row_values["id"])])


def batch_totals(s: Session, batch_id: str) -> dict[str, Any]:
    """Item counts by status and total usage of a batch."""
    totals = totals_for(s, [batch_id])[batch_id]
    usage = totals["usage"]
    usage["cost_usd"] = round(usage["cost_usd"], 8)
    usage["seconds"] = round(usage["seconds"], 3)
    return totals


def unfinished_batch_ids(sessions: sessionmaker[Session], limit: int = 1000) -> list[str]:
    """Batches not yet finished, least recently updated first."""
    with sessions() as s:
        return list(
            s.execute(
                select(Batch.id)
                .where(Batch.finished_at.is_(None))
                .order_by(Batch.updated_at)
                .limit(limit)
            ).scalars()
        )


# ---------------------------------------------------------------- reads (tenant-scoped)


def get_batch(session: Session, tenant_id: str, batch_id: str) -> Batch | None:
    """The tenant's batch, or None (also for another tenant's: a 404, never a 403)."""
    wanted = canonical_id(batch_id)
    if wanted is None:
        return None
    return session.execute(
        select(Batch).where(Batch.id == wanted, Batch.tenant_id == tenant_id)
    ).scalar_one_or_none()


def list_batches(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    after: Cursor | None = None,
    status: str | None = None,
    schedule_id: str | None = None,
) -> Page[Batch]:
    """One page of the tenant's batches, newest first."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Batch.status == status)
    if schedule_id is not None:
        query = query.where(Batch.schedule_id == schedule_id)
    return newest_first(
        session,
        query,
        time_column=Batch.created_at,
        id_column=Batch.id,
        limit=limit,
        after=after,
        position=lambda batch: Cursor(batch.created_at, batch.id),
    )


def totals_for(session: Session, batch_ids: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`batch_totals` of several batches in one query."""
    out = {batch_id: _empty_totals() for batch_id in batch_ids}
    if not batch_ids:
        return out
    rows = session.execute(
        select(
            Job.batch_id,
            Job.status,
            func.count(),
            func.coalesce(func.sum(Job.usage_tokens), 0),
            func.coalesce(func.sum(Job.usage_calls), 0),
            func.coalesce(func.sum(Job.usage_cost_usd), 0.0),
            func.coalesce(func.sum(Job.usage_seconds), 0.0),
        )
        .where(Job.batch_id.in_(batch_ids))
        .group_by(Job.batch_id, Job.status)
    ).all()
    for batch_id, status, n, tokens, calls, cost, seconds in rows:
        totals = out[str(batch_id)]
        totals["counts"][str(status)] = int(n)
        totals["counts"]["total"] += int(n)
        usage = totals["usage"]
        usage["tokens"] += int(tokens)
        usage["calls"] += int(calls)
        usage["cost_usd"] += float(cost)
        usage["seconds"] += float(seconds)
    return out


def _empty_totals() -> dict[str, Any]:
    counts: dict[str, int] = dict.fromkeys(JobStatus.ALL, 0)
    counts["total"] = 0
    return {"counts": counts, "usage": {"tokens": 0, "calls": 0, "cost_usd": 0.0, "seconds": 0.0}}


RESULTS_PAGE = 500


def result_lines(sessions: sessionmaker[Session], batch_id: str) -> Iterator[str]:
    """The batch's results as JSON Lines, one line per accepted item in item order, read
    a page at a time (each page in its own short transaction)."""
    last = -1
    while True:
        with sessions() as s:
            jobs = list(
                s.execute(
                    select(Job)
                    .where(Job.batch_id == batch_id, Job.item_index > last)
                    .order_by(Job.item_index)
                    .limit(RESULTS_PAGE)
                ).scalars()
            )
        for job in jobs:
            yield json.dumps(result_line(job), ensure_ascii=False, separators=(",", ":")) + "\n"
        if len(jobs) < RESULTS_PAGE:
            return
        last = int(jobs[-1].item_index or 0)


def result_line(job: Job) -> dict[str, Any]:
    """One item of ``GET /v1/batches/{id}/results``."""
    return {
        "custom_id": job.custom_id,
        "index": job.item_index,
        "job_id": job.id,
        "status": job.status,
        "stop_reason": job.stop_reason,
        "result": public_result(job.result),
        "usage": public_usage(job),
        "error": job.error,
        "original_job_id": job.original_job_id,
    }
