"""The API's reads and writes of job rows, always scoped to one tenant."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

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


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first job listing: the last job of the previous page."""

    created_at: datetime
    job_id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.job_id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor ``text`` encodes, or None if it is not one this API issued."""
        if not text or len(text) > 200:
            return None
        try:
            raw: Any = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            created_text, job_id = raw
            created_at = datetime.fromisoformat(created_text)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            return None
        if created_at.tzinfo is None or not isinstance(job_id, str):
            return None
        canonical = canonical_id(job_id)
        return None if canonical is None else cls(created_at, canonical)


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    after: Cursor | None = None,
    status: str | None = None,
    batch_id: str | None = None,
) -> tuple[list[Job], Cursor | None]:
    """One page of the tenant's jobs, newest first, and the cursor of the next page."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    if after is not None:
        query = query.where(
            or_(
                Job.created_at < after.created_at,
                and_(Job.created_at == after.created_at, Job.id < after.job_id),
            )
        )
    rows = list(
        session.execute(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
        .scalars()
        .all()
    )
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = Cursor(page[-1].created_at, page[-1].id) if more and page else None
    return page, next_cursor
