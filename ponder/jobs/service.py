"""The job use cases, each written once for every caller (the API's routes, the command
line). Reads and writes are scoped to one tenant: another tenant's job is "not found",
never "forbidden". Errors are :class:`ponder.field_errors.Invalid` (a bad field),
:class:`ponder.errors.NotFound` and :class:`ponder.errors.Conflict`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, false, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics, telemetry
from ponder.catalog import StrategyCatalog
from ponder.config import Settings
from ponder.errors import Conflict, NotFound
from ponder.fairness import QueueGauge
from ponder.jobspec import JobCreate
from ponder.jobstore import request_cancel
from ponder.jsonlimits import storable_text
from ponder.llm.profiles import ModelProfile
from ponder.logs import log_context
from ponder.pagination import Cursor, Page, newest_first
from ponder.queue import JobQueue
from ponder.quotas import Quotas
from ponder.submission import job_values, request_hash
from ponder.tables import Job, JobEvent, JobStatus, JobStep, canonical_id, job_from_row, job_row
from ponder.tables import utcnow as _utcnow
from ponder.webhooks.delivery import take_unsent

_JOBS = cast(Table, Job.__table__)
_INSERT_JOB = insert(_JOBS).returning(*_JOBS.c)

# A trace beyond this many rows of either kind is cut (and says so).
MAX_TRACE_ROWS = 20_000


def not_found(job_id: str) -> NotFound:
    shown = job_id if len(job_id) <= 64 else job_id[:64] + "..."
    return NotFound(f"no job with id {shown!r} belongs to this API key's tenant")


def find(session: Session, tenant_id: str, job_id: str) -> Job | None:
    """The tenant's job, or None, also for another tenant's job."""
    wanted = canonical_id(job_id)
    if wanted is None:
        return None
    return session.execute(
        select(Job).where(Job.id == wanted, Job.tenant_id == tenant_id)
    ).scalar_one_or_none()


def get(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; :class:`NotFound` if it has none with that id."""
    job = find(session, tenant_id, job_id)
    if job is None:
        raise not_found(job_id)
    return job


def find_by_idempotency_key(session: Session, tenant_id: str, key: str) -> Job | None:
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
    strategy: str | None = None,
    model: str | None = None,
) -> Page[Job]:
    """One page of the tenant's jobs, newest first; only those with ``status``, of batch
    ``batch_id``, running strategy ``strategy`` or on model ``model`` when given."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    for wanted, column in ((strategy, Job.strategy["name"].as_string()), (model, Job.model)):
        if wanted is None:
            continue
        # a name no job can have (the database cannot even compare it): nothing matches
        query = query.where(false() if storable_text(wanted) else column == wanted)
    return newest_first(
        session,
        query,
        time_column=Job.created_at,
        id_column=Job.id,
        limit=limit,
        after=after,
        position=lambda job: Cursor(job.created_at, job.id),
    )


@dataclass(frozen=True)
class Submitted:
    job: Job
    # True when the Idempotency-Key had been used with the same body: ``job`` is the
    # job that request created, and nothing new was stored or queued
    replayed: bool


@dataclass(frozen=True)
class JobService:
    """The job use cases that need the server's configuration and its queue."""

    settings: Settings
    models: dict[str, ModelProfile]
    strategies: StrategyCatalog
    queue: JobQueue
    # whether a tenant's queue of waiting jobs is full (ponder.fairness)
    gauge: QueueGauge
    # the tenants' limits and what this process remembers of them (ponder.quotas)
    quotas: Quotas = field(default_factory=Quotas)

    def submit(
        self,
        session: Session,
        tenant_id: str,
        body: JobCreate,
        *,
        idempotency_key: str | None = None,
        webhook_format: str | None = None,
        openai: dict[str, Any] | None = None,
    ) -> Submitted:
        """Check the job, store it and queue it. With an ``idempotency_key`` already
        used, the job it created (the same body) or a :class:`Conflict` (another body).
        ``webhook_format`` and ``openai`` are stored with the job for the OpenAI-compatible
        surface (its webhook events' shape; what its request said beyond ``body``).

        The tenant's limits apply (:mod:`ponder.quotas`): its maximum priority and
        per-job budget ceilings (:class:`ponder.field_errors.Invalid`), and for now its
        job rate, its jobs queued or running and its daily spend
        (:class:`ponder.errors.QuotaExceeded`).

        With tracing on this is the ``ponder.submit`` span, whose context the job keeps
        (``trace_context``) for its slices to join."""
        attributes = _submit_attributes(tenant_id, body) if telemetry.enabled() else None
        with (
            log_context(tenant_id=tenant_id),
            telemetry.span("ponder.submit", attributes) as span,
        ):
            submitted = self._submit(
                session, tenant_id, body, idempotency_key, webhook_format, openai
            )
            if span.is_recording():
                span.set_attribute("ponder.job.id", submitted.job.id)
                span.set_attribute("ponder.idempotent_replay", submitted.replayed)
                for key, value in telemetry.budget_limits(submitted.job.budget).items():
                    span.set_attribute(key, value)
            return submitted

    def _submit(
        self,
        session: Session,
        tenant_id: str,
        body: JobCreate,
        idempotency_key: str | None,
        webhook_format: str | None,
        openai: dict[str, Any] | None,
    ) -> Submitted:
        digest = request_hash(body)
        if idempotency_key is not None:
            existing = find_by_idempotency_key(session, tenant_id, idempotency_key)
            if existing is not None:
                return _replay(existing, digest)

        limits = self.quotas.limits(session, tenant_id, self.settings)
        # a tenant whose bucket this process saw empty is refused without more work
        self.quotas.refuse_early(limits)
        values = job_values(body, self.settings, self.models, self.strategies, limits)
        # in this transaction: a job that is not stored gives its token back
        self.quotas.admit_job(session, limits)
        now = _utcnow()
        # beyond the tenant's queue of waiting jobs, the job waits held in Postgres and
        # is published as the tenant's queued jobs start (ponder.fairness)
        held = self.gauge.is_full(session.connection(), tenant_id, self.settings.tenant_max_queued)
        row = job_row(
            {
                "tenant_id": tenant_id,
                "status": JobStatus.QUEUED,
                "held": held,
                "idempotency_key": idempotency_key,
                "request_hash": digest,
                "created_at": now,
                "updated_at": now,
                "enqueued_at": now,
                "trace_context": telemetry.carrier(),
                "webhook_format": webhook_format,
                "openai": openai,
                **values,
            }
        )
        try:
            # Core INSERT ... RETURNING: the stored row back in one statement
            job = job_from_row(session.connection().execute(_INSERT_JOB, row).one())
            session.commit()
        except IntegrityError:
            # a concurrent request with the same Idempotency-Key won the insert
            session.rollback()
            if idempotency_key is None:
                raise
            existing = find_by_idempotency_key(session, tenant_id, idempotency_key)
            if existing is None:
                raise
            return _replay(existing, digest)
        metrics.job_submitted("job")

        # The row is committed: if the broker is down the job stays queued and the reaper
        # enqueues it later, so the client still learns its job was accepted.
        if not held:
            self.queue.enqueue(job.id, priority=job.priority)
        return Submitted(job, replayed=False)

    def refuse_at_once(self, tenant_id: str, *, idempotency_key: str | None = None) -> None:
        """Raise :class:`ponder.errors.QuotaExceeded` now, from memory alone (no
        database, no thread), if this process saw the tenant's job bucket empty and it
        cannot have refilled yet; otherwise do nothing (:meth:`submit` checks it all).
        A request with an ``idempotency_key`` is never refused here: it may be the
        replay of a job already accepted."""
        if idempotency_key is not None:
            return
        limits = self.quotas.cached(tenant_id, self.settings)
        if limits is not None:
            self.quotas.refuse_early(limits)

    def cancel(self, sessions: sessionmaker[Session], tenant_id: str, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one is flagged and stops before
        its next model call. :class:`Conflict` if it has already finished."""
        with sessions() as session:
            found = get(session, tenant_id, job_id)
            if is_terminal(found):
                raise _already_finished(found)
            found_id = found.id
        for delivery_id in take_unsent(sessions, ids=request_cancel(sessions, found_id)):
            self.queue.enqueue_delivery(delivery_id)
        with sessions() as session:
            job = get(session, tenant_id, found_id)
            if is_terminal(job) and job.status != JobStatus.CANCELLED:
                raise _already_finished(job)  # it finished while we were cancelling it
            return job


def _submit_attributes(tenant_id: str, body: JobCreate) -> telemetry.Attributes:
    attributes: dict[str, telemetry.AttrValue] = {
        "ponder.tenant.id": tenant_id,
        "ponder.strategy": body.strategy.name,
        "ponder.model": body.model,
        "ponder.job.priority": body.priority,
    }
    return attributes


def _replay(existing: Job, digest: str) -> Submitted:
    if existing.request_hash != digest:
        raise Conflict(
            "this Idempotency-Key was already used with a different request body "
            f"(job {existing.id}); use a new key for a new job, or resend the "
            "original body unchanged"
        )
    return Submitted(existing, replayed=True)


def _already_finished(job: Job) -> Conflict:
    return Conflict(
        f"job {job.id} has already finished with status {job.status!r}; "
        "only queued or running jobs can be cancelled",
        extra={"job_status": job.status},
    )


def events_after(session: Session, job_id: str, after: int, *, limit: int) -> list[JobEvent]:
    """Up to ``limit`` of the job's events with a sequence number above ``after``."""
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class SpendAt:
    """The job's cumulative spend after one completed billed call."""

    at: datetime
    step: int
    tokens: int
    calls: int
    cost_usd: float


@dataclass(frozen=True)
class Trace:
    job: Job
    steps: Sequence[JobStep]
    events: Sequence[JobEvent]
    spend: list[SpendAt]
    truncated: bool


def replayed(job: Job, step: JobStep) -> bool:
    """Whether a later slice of ``job`` replayed ``step`` from the journal (instead of
    making the call again): it was done before the job's current attempt began. (Every
    slice runs the strategy from the top; calls already journaled replay for free.)"""
    return step.status == "done" and step.attempt < job.attempt


def trace(session: Session, tenant_id: str, job_id: str) -> Trace:
    """Every journaled call of the job in the order it was issued, every event its
    strategy emitted, and its spend over time (at most :data:`MAX_TRACE_ROWS` of each)."""
    job = get(session, tenant_id, job_id)
    steps = session.scalars(
        select(JobStep)
        .where(JobStep.job_id == job.id)
        .order_by(JobStep.key)
        .limit(MAX_TRACE_ROWS + 1)
    ).all()
    events = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_id == job.id)
        .order_by(JobEvent.seq)
        .limit(MAX_TRACE_ROWS + 1)
    ).all()
    truncated = len(steps) > MAX_TRACE_ROWS or len(events) > MAX_TRACE_ROWS
    steps, events = steps[:MAX_TRACE_ROWS], events[:MAX_TRACE_ROWS]
    spend: list[SpendAt] = []
    tokens = calls = 0
    cost = 0.0
    billed = sorted(
        (s for s in steps if s.status == "done" and s.kind == "sample" and s.completed_at),
        key=lambda s: (s.completed_at, s.key),
    )
    for s in billed:
        tokens, calls, cost = tokens + s.tokens, calls + s.calls, cost + s.cost_usd
        assert s.completed_at is not None
        spend.append(SpendAt(s.completed_at, s.key, tokens, calls, round(cost, 8)))
    return Trace(job, steps, events, spend, truncated)
