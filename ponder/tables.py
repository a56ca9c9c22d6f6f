"""Database tables (SQLAlchemy 2.0 typed ORM). Postgres is the only source of truth."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum, nonmember
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Row,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# JSONB on Postgres, JSON (text) on SQLite.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# BIGSERIAL on Postgres; SQLite only auto-increments INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
# the largest value an Integer column holds (Postgres' int4): bounds the integers a
# client may send to compare with one (event ids, dataset offsets)
MAX_INT = 2**31 - 1


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def canonical_id(value: str) -> str | None:
    """``value`` as the lowercase UUID string ids are stored as, or None if it is not one."""
    if len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class Base(DeclarativeBase):
    pass


class StoredValue(StrEnum):
    """Base of the closed sets of values stored in ``String`` columns (statuses, stop
    reasons, kinds). A member *is* its string: it compares, hashes, formats and serializes
    (JSON, pydantic) as the plain value, so the database and the API see the same text as
    before these were enums. Helper collections are ``nonmember`` tuples or frozensets of
    the plain values, e.g. ``JobStatus.TERMINAL``."""

    # SQLAlchemy types a literal by its Python type and knows none for an enum: this makes
    # it bind a member where no column gives the type (e.g. ``case(..., else_=member)``)
    # as a String, exactly like the plain string, so statements compile as before.
    __sa_type_engine__ = String()


class JobStatus(StoredValue):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINAL = nonmember(frozenset({COMPLETED, FAILED, CANCELLED}))
    ALL = nonmember((QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED))


class StopReason(StoredValue):
    VERIFIED = "verified"
    BUDGET_EXHAUSTED = "budget_exhausted"
    DEADLINE = "deadline"
    SEARCH_EXHAUSTED = "search_exhausted"
    CANCELLED = "cancelled"
    ERROR = "error"
    # the tenant's daily spend limit was reached (ponder.quotas): no new model call today
    DAILY_SPEND_LIMIT = "daily_spend_limit"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TenantLimit(Base):
    """One tenant's own limits (``ponder tenants limits set``). A null column means the
    server's default (``PONDER_TENANT_*``, ``PONDER_LIMIT_MAX_*``); a tenant without a
    row has every default. :mod:`ponder.quotas` reads and enforces them."""

    __tablename__ = "tenant_limits"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    max_priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    jobs_per_minute: Mapped[float | None] = mapped_column(Float, nullable=True)
    jobs_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    batch_items_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # per-job budget ceilings, at most the server's
    max_job_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_job_calls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_job_cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_job_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    spend_per_day_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_schedules: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_datasets: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class TenantCounter(Base):
    """What a tenant has used of a limit that counts: the job submission token bucket
    (``value`` tokens left at ``stamp``, Unix seconds) and the daily counters (``value``
    used on the UTC ``day``; a new day starts from zero). One row per tenant and
    counter, so the counters never wait on each other's row locks."""

    __tablename__ = "tenant_counters"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # CounterName
    value: Mapped[float] = mapped_column(Float, default=0.0)
    stamp: Mapped[float] = mapped_column(Float, default=0.0)
    day: Mapped[str | None] = mapped_column(String(10), nullable=True)  # YYYY-MM-DD, UTC


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # what the key may do, space-separated (``ponder.auth.Scope``); keys made before
    # scopes existed have all three
    scopes: Mapped[str] = mapped_column(String(64), server_default=text("'admin submit read'"))
    # a label its owner chose, e.g. "ci" or "dashboard"
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # when a request last used it, to about a minute (``ponder.auth.LAST_USED_RESOLUTION``)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
        Index("uq_jobs_batch_item", "batch_id", "item_index", unique=True),
        # batch items waiting for the feeder, in feeding order (see ponder.batches.feeder)
        Index(
            "ix_jobs_batch_held",
            "batch_id",
            "priority",
            "item_index",
            postgresql_where=text("held AND status = 'queued'"),
            sqlite_where=text("held AND status = 'queued'"),
        ),
        # a tenant's jobs waiting in the broker, and its held jobs outside batches in
        # publishing order (see ponder.fairness)
        Index(
            "ix_jobs_tenant_waiting",
            "tenant_id",
            postgresql_where=text("status = 'queued' AND NOT held AND lease_owner IS NULL"),
            sqlite_where=text("status = 'queued' AND NOT held AND lease_owner IS NULL"),
        ),
        # a tenant's jobs queued or running, batch items included (ponder.quotas)
        Index(
            "ix_jobs_tenant_active",
            "tenant_id",
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
        Index(
            "ix_jobs_tenant_held",
            "tenant_id",
            "priority",
            "created_at",
            postgresql_where=text("held AND batch_id IS NULL"),
            sqlite_where=text("held AND batch_id IS NULL"),
        ),
        # batch items fed to the queue and not finished: what counts against the
        # feeder's in-flight limits
        Index(
            "ix_jobs_batch_in_flight",
            "tenant_id",
            "batch_id",
            postgresql_where=text(
                "batch_id IS NOT NULL AND NOT held AND status IN ('queued', 'running')"
            ),
            sqlite_where=text(
                "batch_id IS NOT NULL AND NOT held AND status IN ('queued', 'running')"
            ),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    # the request, as accepted
    problem: Mapped[dict[str, Any]] = mapped_column(JSONType)
    strategy: Mapped[dict[str, Any]] = mapped_column(JSONType)
    verifier: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    budget: Mapped[dict[str, Any]] = mapped_column(JSONType)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # batch items: position in the batch (results come back in this order), the
    # client's id for the item, the job a from_jobs batch re-runs, and whether the item
    # still waits for the batch feeder (held items are never enqueued by the reaper)
    item_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    custom_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    original_job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # the shape of the job's webhook events: null (Ponder's ``job.*``) or ``openai``
    # (OpenAI's ``response.*`` events, see ponder.webhooks.openai_events)
    webhook_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # a job made through the OpenAI-compatible surface: what its request said that the
    # job's own columns do not (the model name as given, reasoning effort, background)
    openai: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    # outcome and progress
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    best: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    # spend: settled usage plus reservations lost to crashes
    usage_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    usage_calls: Mapped[int] = mapped_column(Integer, default=0)
    usage_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    usage_seconds: Mapped[float] = mapped_column(Float, default=0.0)

    # durable execution
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # fencing number
    recoveries: Mapped[int] = mapped_column(Integer, default=0)
    slices: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)  # last job_events.seq written
    strategy_events: Mapped[int] = mapped_column(Integer, default=0)  # replay skips these
    lost_calls: Mapped[int] = mapped_column(Integer, default=0)  # in flight at a crash
    # the W3C trace context of the submission (ponder.telemetry), so every slice joins its
    # trace; None when tracing was off
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobStep(Base):
    """The journal: one row per model or verifier call, keyed in program order."""

    __tablename__ = "job_steps"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # sample | verify
    status: Mapped[str] = mapped_column(String(16))  # pending | done
    digest: Mapped[str] = mapped_column(String(32))  # of the request, to catch non-determinism
    attempt: Mapped[int] = mapped_column(Integer)
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_calls: Mapped[int] = mapped_column(Integer, default=0)
    reserved_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """The outbox: written in the same transaction as the status change it announces."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # a tenant's recent deliveries by status (GET /v1/system, ponder.system)
        Index("ix_webhook_deliveries_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # DeliveryStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # all attempts; fences sends
    # failed attempts since the last (re)delivery: the index into the retry schedule
    retries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryStatus(StoredValue):
    PENDING = "pending"  # waiting for its next attempt (or being sent)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # retries used up
    DISABLED = "disabled"  # the target answered 410 Gone: nothing more is sent to it
    ALL = nonmember((PENDING, DELIVERED, FAILED, DISABLED))


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the log behind ``GET /v1/jobs/{id}/deliveries``."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_number"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # when the next attempt was scheduled for, after this one (None: no more attempts)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookSecret(Base):
    """A tenant's signing secret (``whsec_`` + base64). Every secret not yet expired signs
    each delivery, so a rotation sends both signatures until the old secret expires. The
    secret is stored as is: the service must be able to sign with it."""

    __tablename__ = "webhook_secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DisabledWebhookTarget(Base):
    """A URL that answered 410 Gone: deliveries to it stop until a redelivery re-enables it."""

    __tablename__ = "webhook_disabled_targets"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the URL
    url: Mapped[str] = mapped_column(Text)
    disabled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(Text)


class BatchStatus(StoredValue):
    QUEUED = "queued"  # no item fed to the queue yet
    RUNNING = "running"  # items are being fed and run
    COMPLETED = "completed"  # every item reached a final status
    CANCELLED = "cancelled"  # cancelled by the client (items still running may finish)
    ACTIVE = nonmember((QUEUED, RUNNING))
    ALL = nonmember((QUEUED, RUNNING, COMPLETED, CANCELLED))


class BatchSource(StoredValue):
    INLINE = "inline"
    UPLOAD = "upload"
    DATASET = "dataset"
    FROM_JOBS = "from_jobs"
    ALL = nonmember((INLINE, UPLOAD, DATASET, FROM_JOBS))


class Batch(Base):
    """Many jobs submitted together. Its items are ``jobs`` rows with ``batch_id`` set (and
    ``item_index``, ``custom_id``); they wait ``held`` until the batch feeder queues them.
    ``finished_at`` is set (once, by a conditional UPDATE that also writes the
    ``batch.completed`` outbox row) when every item has reached a final status."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_batches_status", "status"),
        # a schedule's fire time runs at most once
        UniqueConstraint("schedule_id", "fire_time", name="uq_batches_schedule_fire_time"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.QUEUED)
    source: Mapped[str] = mapped_column(String(16))  # BatchSource
    dataset: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_filter: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    defaults: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)  # the cap
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    schedule_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    fire_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_fed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Dataset(Base):
    """A tenant's uploaded list of problems, to run as batches."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_datasets_tenant_name"),
        Index("ix_datasets_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetItem(Base):
    """One problem of a dataset, at its position."""

    __tablename__ = "dataset_items"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_key: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the line's "id"
    problem: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ScheduleRunKind(StoredValue):
    SCHEDULED = "scheduled"  # the newest fire time due when beat looked
    CATCHUP = "catchup"  # an older fire time that beat missed (downtime) and ran late
    MANUAL = "manual"  # POST /v1/schedules/{id}/trigger; its fire time is the trigger time
    BACKFILL = "backfill"  # POST /v1/schedules/{id}/backfill
    ALL = nonmember((SCHEDULED, CATCHUP, MANUAL, BACKFILL))


class ScheduleRunStatus(StoredValue):
    PENDING = "pending"  # waiting for a free slot under the schedule's max_active_runs
    STARTED = "started"  # its batch was created (in the same transaction)
    SKIPPED = "skipped"  # its batch could not be created (see ``detail``)
    ALL = nonmember((PENDING, STARTED, SKIPPED))


class Schedule(Base):
    """A cron expression that creates a batch from ``template`` at each fire time.

    ``next_fire_time`` is the earliest fire time beat has not dealt with yet (null when
    none is left, past ``end_time``): beat materialises every fire time from it up to
    now (only the newest unless ``catchup``) and moves it past now. Changing the timing
    or re-enabling restarts it from the moment of the change."""

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_schedules_tenant_name"),
        Index("ix_schedules_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_schedules_due", "enabled", "next_fire_time"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))  # an IANA name
    template: Mapped[dict[str, Any]] = mapped_column(JSONType)  # a BatchTemplate
    catchup: Mapped[bool] = mapped_column(Boolean, default=False)
    max_active_runs: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # the newest fire time beat has materialised (a run exists for it)
    last_fire_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_fire_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ScheduleRun(Base):
    """One fire time of a schedule. The unique (schedule, fire time) pair is what makes a
    fire time run at most once, whatever beat does; a manual run's fire time is its
    trigger time (never a whole second, so it never equals a cron fire time)."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule_id", "fire_time", name="uq_schedule_runs_fire_time"),
        Index("ix_schedule_runs_status", "status", "schedule_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))  # ScheduleRunKind
    status: Mapped[str] = mapped_column(String(16), default=ScheduleRunStatus.PENDING)
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), nullable=True
    )
    # why the run was skipped; for a started run, what its batch refused (if anything)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Worker(Base):
    """A worker process's heartbeat (``ponder.workers``): written when it starts and every
    third of a lease while it runs, deleted when it stops cleanly. A row not renewed for
    a lease length belongs to a process that died; the reaper drops such rows after
    ``ponder.workers.FORGET_AFTER``."""

    __tablename__ = "workers"

    # ``host:pid``; the lease owner of each job slice it runs starts with it
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(200))
    max_jobs: Mapped[int] = mapped_column(Integer)  # slices it runs at once at most
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Job attribute name for each column (they differ where a column name is reserved: meta)
_JOB_ATTRS = [(prop.key, prop.columns[0].key) for prop in sa_inspect(Job).column_attrs]
_JOB_COLUMN = dict(_JOB_ATTRS)


def job_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` keyed by :class:`Job` attribute, re-keyed by ``jobs`` column, for a
    Core ``INSERT`` (the reverse of :func:`job_from_row`)."""
    return {_JOB_COLUMN[attr]: value for attr, value in values.items()}


def job_from_row(row: Row[Any]) -> Job:
    """A detached :class:`Job` holding a full ``jobs`` row read with Core (e.g. from
    ``INSERT/UPDATE ... RETURNING``), without a second query or an ORM session."""
    values = row._mapping
    return Job(**{attr: values[column] for attr, column in _JOB_ATTRS})


class OpenAIFile(Base):
    """A file of the OpenAI-compatible surface (``/openai/v1/files``): an uploaded batch
    input, or a batch's output or error file (written once, when the batch has ended)."""

    __tablename__ = "openai_files"
    __table_args__ = (Index("ix_openai_files_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))  # batch | batch_output
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column("bytes", BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OpenAIBatch(Base):
    """A batch made through the OpenAI-compatible Batch API: the request's own fields, the
    native batch that runs its valid lines (none when no line was valid), the lines
    refused at creation, and its output and error files once it has ended."""

    __tablename__ = "openai_batches"
    __table_args__ = (Index("ix_openai_batches_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    input_file_id: Mapped[str] = mapped_column(String(36))
    endpoint: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(16))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    # the lines refused at creation: line, custom_id, code, message, param
    line_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
