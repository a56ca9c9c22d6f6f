"""The API's reads and writes of job rows, always scoped to one tenant."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ponder.pagination import Cursor, Page, newest_first
from ponder.tables import Job, JobStatus, canonical_id


def get_job(session: Session, tenant_id: str, job_id: str) -> Job | None:
    """The tenant's job, or None, also for another tenant's job (a 404, never a 403)."""
    wanted = canonical_id(job_id)
    if wanted is None:
        return None
    return session.execute(
        select(Job).where(Job.id == wanted, Job.tenant_id == tenant_id)
    ).scalar_one_or_none()


def get_job_by_idempotency_key(session: Session, tenant_id: str, key: str) -> Job | None:
    return session.execute(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    ).scalar_one_or_none()


def is_terminal(job: Job) -> bool:
    return job.status in JobStatus.TERMINAL


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    after: Cursor | None = None,
    status: str | None = None,
    batch_id: str | None = None,
) -> Page[Job]:
    """One page of the tenant's jobs, newest first."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    return newest_first(
        session,
        query,
        time_column=Job.created_at,
        id_column=Job.id,
        limit=limit,
        after=after,
        position=lambda job: Cursor(job.created_at, job.id),
    )
