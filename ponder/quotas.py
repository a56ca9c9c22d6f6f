"""Per-tenant limits, written once and checked on every path that makes work.

What a tenant may do is the server's defaults (``PONDER_TENANT_*``,
``PONDER_LIMIT_MAX_*``) overridden by its own row in ``tenant_limits`` (a null column
keeps the default); :func:`load_limits` merges them into a :class:`TenantLimits`.

Two kinds of refusal:

* **a request that can never pass** — a priority above the tenant's maximum, a budget
  above its per-job ceilings, a batch bigger than its daily allowance — is a field
  error (a 422), found by :mod:`ponder.submission` and the batch code with the
  :class:`TenantLimits` they are given;
* **a request over a limit for now** raises :class:`ponder.errors.QuotaExceeded` (a
  429 with ``Retry-After``), naming the limit.

Where each limit is enforced:

================================  ===============================================
``max_priority``, per-job ceilings  ``ponder.submission.job_values`` (jobs, batch items,
                                    schedule templates), the batch feeder (an item's
                                    share of a batch cap is clamped to the ceilings)
``jobs_per_minute`` / ``_burst``   :meth:`Quotas.admit_job` (``JobService.submit``): a
                                    token bucket in Postgres (below)
``max_active_jobs``                 :meth:`Quotas.admit_job`, :meth:`Quotas.admit_batch`
``batch_items_per_day``             :meth:`Quotas.admit_batch` (batches, uploads,
                                    schedule runs)
``max_schedules``, ``max_datasets``  :func:`check_room` (creating a schedule, uploading
                                    a dataset)
``spend_per_day_usd``               new jobs and batches (:meth:`Quotas.check_spend`),
                                    the batch feeder, and every billed model call: the
                                    worker reserves the call's worst-case cost against
                                    the tenant's day (:func:`reserve_spend`, in the
                                    journal write that reserves the call) and settles it
================================  ===============================================

**The token bucket lives in Postgres** (``tenant_counters``, one row per tenant and
counter): taking a token is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE level >= 1
RETURNING`` on the tenant's row, so it holds across any number of API processes, needs
nothing besides the database every submission already writes to (also in the embedded
SQLite mode, where there is no Redis), and runs inside the submission's transaction: a
job that is not stored (an error, a lost idempotency race) gives its token back. Only
the tenant's own row is locked, so one tenant's flood never waits on another's. A
refusal is remembered in the process until the bucket can have refilled (the level can
only rise at the refill rate), so a flood of refused requests costs no database work.
Time is Unix seconds from the API hosts' clocks (keep them in sync; skew only shifts
the refill by the skew).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Float, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ponder.config import Settings
from ponder.errors import NotFound, QuotaExceeded
from ponder.field_errors import Invalid, describe_validation_errors
from ponder.tables import (
    Dataset,
    Job,
    JobStatus,
    Schedule,
    Tenant,
    TenantCounter,
    TenantLimit,
)

# the counters of tenant_counters.name
JOBS_BUCKET = "jobs_bucket"
BATCH_ITEMS = "batch_items"
SPEND_USD = "spend_usd"

# how long to suggest waiting when the tenant has too many jobs queued or running (no
# one knows when they finish)
ACTIVE_RETRY_SECONDS = 5.0
# how long a count of a tenant's active jobs is trusted before it is made again
ACTIVE_COUNT_TTL = 1.0

_RAISE = (
    "an operator can raise it (`ponder tenants limits set TENANT --{flag} N`, or "
    "PATCH /v1/admin/tenants/TENANT/limits)"
)

# budget field -> the TenantLimits field that is its ceiling, and the server's setting
_CEILINGS = {
    "max_tokens": ("max_job_tokens", "limit_max_tokens"),
    "max_calls": ("max_job_calls", "limit_max_calls"),
    "max_cost_usd": ("max_job_cost_usd", "limit_max_cost_usd"),
    "max_seconds": ("max_job_seconds", "limit_max_seconds"),
}
# TenantLimits field -> the server's default (a Settings field)
_DEFAULTS = {
    "max_priority": "tenant_max_priority",
    "jobs_per_minute": "tenant_jobs_per_minute",
    "jobs_burst": "tenant_jobs_burst",
    "max_active_jobs": "tenant_max_active_jobs",
    "batch_items_per_day": "tenant_batch_items_per_day",
    "spend_per_day_usd": "tenant_spend_per_day_usd",
    "max_schedules": "tenant_max_schedules",
    "max_datasets": "tenant_max_datasets",
    **{own: server for own, server in _CEILINGS.values()},
}
LIMIT_FIELDS = tuple(_DEFAULTS)


@dataclass(frozen=True)
class TenantLimits:
    """What one tenant may do: its own limits where it has them, else the server's.
    None means no limit. The per-job ceilings are never above the server's."""

    tenant_id: str
    max_priority: int
    jobs_per_minute: float | None
    jobs_burst: int
    max_active_jobs: int | None
    batch_items_per_day: int | None
    max_job_tokens: int
    max_job_calls: int
    max_job_cost_usd: float
    max_job_seconds: float
    spend_per_day_usd: float | None
    max_schedules: int | None
    max_datasets: int | None
    # the fields the tenant's own row sets (the others are the server's defaults)
    own: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: Settings, tenant_id: str, row: TenantLimit | None = None) -> TenantLimits:
        """The limits of a tenant whose ``tenant_limits`` row is ``row`` (None: none)."""
        values: dict[str, Any] = {}
        own = set()
        for name, setting in _DEFAULTS.items():
            server = getattr(settings, setting)
            mine = None if row is None else getattr(row, name)
            if mine is not None:
                own.add(name)
            if name in ("max_job_tokens", "max_job_calls", "max_job_cost_usd", "max_job_seconds"):
                values[name] = server if mine is None else min(mine, server)
            else:
                values[name] = server if mine is None else mine
        return cls(tenant_id=tenant_id, own=frozenset(own), **values)

    def ceilings(self) -> dict[str, float]:
        """The most each budget field of one job may be, by budget field name."""
        return {field: getattr(self, own) for field, (own, _server) in _CEILINGS.items()}

    def whose(self, field: str) -> str:
        """``"this tenant"`` if ``field`` (a TenantLimits field) is the tenant's own
        limit, else ``"this server"``: how a refusal names who set it."""
        return "this tenant" if field in self.own else "this server"

    def ceiling_owner(self, budget_field: str, settings: Settings) -> str:
        own, server = _CEILINGS[budget_field]
        if own in self.own and getattr(self, own) < getattr(settings, server):
            return "this tenant"
        return "this server"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in _DEFAULTS}


def load_limits(db: Session | Connection, tenant_id: str, settings: Settings) -> TenantLimits:
    """The tenant's limits, read now."""
    conn = db.connection() if isinstance(db, Session) else db
    row = conn.execute(select(TenantLimit).where(TenantLimit.tenant_id == tenant_id)).first()
    stored = None if row is None else TenantLimit(**row._mapping)
    return TenantLimits.of(settings, tenant_id, stored)


# ---------------------------------------------------------------- time and the UTC day


def utc_day(now: float) -> str:
    """The UTC day of Unix time ``now``, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def seconds_to_next_day(now: float) -> float:
    """Seconds from Unix time ``now`` to the next 00:00 UTC."""
    moment = datetime.fromtimestamp(now, UTC)
    midnight = datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
    return max(1.0, (midnight - moment).total_seconds())


# ---------------------------------------------------------------- the token bucket


def bucket_level(tokens: float, stamp: float, now: float, rate: float, burst: float) -> float:
    """Tokens in a bucket that held ``tokens`` at ``stamp`` and refills at ``rate`` per
    second up to ``burst``, at ``now`` (a clock that went back refills nothing)."""
    return min(burst, tokens + max(0.0, now - stamp) * rate)


def bucket_wait(level: float, rate: float, need: float = 1.0) -> float:
    """Seconds until a bucket at ``level`` refilling at ``rate`` per second holds
    ``need`` tokens."""
    return max(0.0, (need - level) / rate)


def _insert(conn: Connection) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(TenantCounter)
    if dialect == "sqlite":
        return sqlite.insert(TenantCounter)
    raise NotImplementedError(f"tenant quotas need Postgres or SQLite, not {dialect}")


def take_token(conn: Connection, tenant_id: str, *, rate: float, burst: int, now: float) -> float:
    """Take one token from the tenant's job bucket (``rate`` tokens a second, at most
    ``burst``), in the caller's transaction; returns 0.0, or when the bucket is empty
    the seconds until it holds a token again (nothing is taken then). One statement:
    the row lock makes concurrent takers from any process queue up on it."""
    c = TenantCounter.__table__.c
    at = literal(now, Float)
    refilled = c.value + case((at > c.stamp, at - c.stamp), else_=0.0) * rate
    level = case((refilled > burst, float(burst)), else_=refilled)
    statement = (
        _insert(conn)
        .values(tenant_id=tenant_id, name=JOBS_BUCKET, value=float(burst) - 1.0, stamp=now)
        .on_conflict_do_update(
            index_elements=[c.tenant_id, c.name],
            set_={"value": level - 1.0, "stamp": case((at > c.stamp, at), else_=c.stamp)},
            where=level >= 1.0,
        )
        .returning(c.value)
    )
    if conn.execute(statement).first() is not None:
        return 0.0
    row = conn.execute(
        select(c.value, c.stamp).where(c.tenant_id == tenant_id, c.name == JOBS_BUCKET)
    ).one()
    return max(1e-3, bucket_wait(bucket_level(row.value, row.stamp, now, rate, burst), rate))


# ---------------------------------------------------------------- daily counters


def used_today(db: Session | Connection, tenant_id: str, counter: str, *, now: float) -> float:
    """How much of ``counter`` the tenant has used on the UTC day of ``now``."""
    conn = db.connection() if isinstance(db, Session) else db
    c = TenantCounter.__table__.c
    value = conn.execute(
        select(c.value).where(c.tenant_id == tenant_id, c.name == counter, c.day == utc_day(now))
    ).scalar()
    return float(value or 0.0)


def add_today(
    conn: Connection, tenant_id: str, counter: str, amount: float, *, limit: float, now: float
) -> float | None:
    """Add ``amount`` to the tenant's ``counter`` for the UTC day of ``now`` if the total
    stays within ``limit`` (a new day starts from zero), in the caller's transaction;
    the new total, or None (nothing added) if it would go over. The row stays locked
    until the transaction ends, so concurrent adders queue up on it."""
    if amount > limit:
        return None
    c = TenantCounter.__table__.c
    day = utc_day(now)
    total = case((c.day == day, c.value + amount), else_=amount)
    statement = (
        _insert(conn)
        .values(tenant_id=tenant_id, name=counter, value=amount, stamp=now, day=day)
        .on_conflict_do_update(
            index_elements=[c.tenant_id, c.name],
            set_={"value": total, "day": day, "stamp": now},
            where=total <= limit,
        )
        .returning(c.value)
    )
    found = conn.execute(statement).scalar()
    return None if found is None else float(found)


def adjust_today(conn: Connection, tenant_id: str, counter: str, delta: float, *, day: str) -> None:
    """Add ``delta`` (usually negative: a reservation settled lower) to the tenant's
    ``counter`` if it still counts ``day`` (after midnight the old day's reservation
    stays as it was); never below zero."""
    c = TenantCounter.__table__.c
    total = c.value + delta
    conn.execute(
        update(TenantCounter)
        .where(c.tenant_id == tenant_id, c.name == counter, c.day == day)
        .values(value=case((total > 0.0, total), else_=0.0))
    )


# ---------------------------------------------------------------- spend per day (worker)


def reserve_spend(
    conn: Connection, tenant_id: str, cost_usd: float, *, limit: float, now: float
) -> str | None:
    """Reserve a billed call's worst-case cost against the tenant's daily spend limit, in
    the transaction that journals the call's reservation. The UTC day it was counted
    on (to settle it against with :func:`settle_spend`), or None if it does not fit."""
    if add_today(conn, tenant_id, SPEND_USD, cost_usd, limit=limit, now=now) is None:
        return None
    return utc_day(now)


def settle_spend(conn: Connection, tenant_id: str, delta_usd: float, *, day: str) -> None:
    """Correct a reservation made on ``day`` by ``delta_usd`` (what the call cost minus
    what was reserved; minus all of it for a call that was never billed)."""
    if delta_usd:
        adjust_today(conn, tenant_id, SPEND_USD, delta_usd, day=day)


def spend_refusal(limits: TenantLimits, used: float, *, now: float) -> QuotaExceeded:
    limit = limits.spend_per_day_usd
    assert limit is not None
    wait = seconds_to_next_day(now)
    return QuotaExceeded(
        "spend_per_day_usd",
        f"this tenant's model calls have cost ${used:.4f} today (UTC), and "
        f"{limits.whose('spend_per_day_usd')} allows ${limit:g} a day "
        f"(spend_per_day_usd): new jobs and new model calls wait until 00:00 UTC, in "
        f"{wait:.0f} s; " + _RAISE.format(flag="spend-per-day-usd"),
        value=limit,
        retry_after=wait,
    )


# ---------------------------------------------------------------- active jobs


def count_active(conn: Connection, tenant_id: str, *, at_most: int) -> int:
    """How many of the tenant's jobs are queued or running (batch items included),
    counting at most ``at_most`` (the partial index ix_jobs_tenant_active)."""
    active = (
        select(Job.id)
        .where(Job.tenant_id == tenant_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .limit(at_most)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(active)).scalar_one())


def _active_refusal(limits: TenantLimits, count: int, adding: int) -> QuotaExceeded:
    cap = limits.max_active_jobs
    what = "a job" if adding == 1 else f"{adding} more jobs"
    return QuotaExceeded(
        "max_active_jobs",
        f"this tenant has {count} jobs queued or running and {limits.whose('max_active_jobs')} "
        f"allows {cap} at once (max_active_jobs), so {what} cannot be added now: wait for some "
        f"to finish (or cancel some) and retry; " + _RAISE.format(flag="max-active-jobs"),
        value=cap,
        retry_after=ACTIVE_RETRY_SECONDS,
    )


# ---------------------------------------------------------------- the per-process gate


class Quotas:
    """The checks of one API process (or CLI command), with what it may remember
    between requests: each tenant's limits for ``tenant_limits_cache_seconds``, a
    refused bucket until it can have refilled, and a recent count of active jobs.
    Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._limits: dict[str, tuple[float, TenantLimits]] = {}
        # tenant -> (rate, burst, Unix time before which its bucket cannot hold a token)
        self._empty: dict[str, tuple[float, int, float]] = {}
        # tenant -> (monotonic time of the count, count + jobs admitted since)
        self._active: dict[str, tuple[float, int]] = {}

    def now(self) -> float:
        return self._clock()

    def limits(self, db: Session | Connection, tenant_id: str, settings: Settings) -> TenantLimits:
        """The tenant's limits, read at most every ``tenant_limits_cache_seconds``."""
        ttl = settings.tenant_limits_cache_seconds
        now = time.monotonic()
        hit = self.cached(tenant_id, settings)
        if hit is not None:
            return hit
        limits = load_limits(db, tenant_id, settings)
        if ttl > 0:
            with self._lock:
                if len(self._limits) > 10_000:
                    self._limits.clear()
                self._limits[tenant_id] = (now, limits)
        return limits

    def cached(self, tenant_id: str, settings: Settings) -> TenantLimits | None:
        """The tenant's limits if read less than ``tenant_limits_cache_seconds`` ago."""
        with self._lock:
            hit = self._limits.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < settings.tenant_limits_cache_seconds:
            return hit[1]
        return None

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop what is remembered (of one tenant, or of all): after a change of limits."""
        with self._lock:
            for memo in (self._limits, self._empty, self._active):
                if tenant_id is None:
                    memo.clear()
                else:
                    memo.pop(tenant_id, None)

    # -- single jobs ---------------------------------------------------------------

    def refuse_early(self, limits: TenantLimits) -> None:
        """Raise :class:`QuotaExceeded` at once, without the database, if this process
        saw the tenant's bucket empty and it cannot have refilled yet."""
        with self._lock:
            seen = self._empty.get(limits.tenant_id)
        if seen is None or limits.jobs_per_minute is None:
            return
        rate, burst, until = seen
        wait = until - self.now()
        if (rate, burst) == (limits.jobs_per_minute, limits.jobs_burst) and wait > 0:
            raise _rate_refusal(limits, wait)

    def admit_job(self, session: Session, limits: TenantLimits) -> None:
        """Check one more job of the tenant against its limits for now, in the
        submission's transaction (which must insert the job and commit next): its daily
        spend, its job bucket (a token is taken; the rollback of a job not stored gives
        it back) and its jobs queued or running. Raises :class:`QuotaExceeded`."""
        now = self.now()
        self.check_spend(session, limits, now=now)
        if limits.jobs_per_minute is not None:
            rate = limits.jobs_per_minute / 60.0
            wait = take_token(
                session.connection(), limits.tenant_id, rate=rate, burst=limits.jobs_burst, now=now
            )
            if wait > 0:
                with self._lock:
                    self._empty[limits.tenant_id] = (
                        limits.jobs_per_minute,
                        limits.jobs_burst,
                        now + wait,
                    )
                raise _rate_refusal(limits, wait)
        if limits.max_active_jobs is not None:
            self._admit_active(session.connection(), limits)

    def _admit_active(self, conn: Connection, limits: TenantLimits) -> None:
        """One more active job, against a count made at most ``ACTIVE_COUNT_TTL`` ago
        plus the jobs this process admitted since; counted again before any refusal.
        Other API processes' admissions within that second can go past the cap by what
        the tenant's job bucket lets through in a second."""
        cap = limits.max_active_jobs
        assert cap is not None
        tenant = limits.tenant_id
        now = time.monotonic()
        with self._lock:
            seen = self._active.get(tenant)
            if seen is not None and now - seen[0] < ACTIVE_COUNT_TTL and seen[1] < cap:
                self._active[tenant] = (seen[0], seen[1] + 1)
                return
        count = count_active(conn, tenant, at_most=cap)
        with self._lock:
            self._active[tenant] = (now, count + (1 if count < cap else 0))
            if len(self._active) > 10_000:
                self._active = {t: v for t, v in self._active.items() if now - v[0] < 1}
        if count >= cap:
            raise _active_refusal(limits, count, 1)

    def check_spend(self, db: Session | Connection, limits: TenantLimits, *, now: float) -> None:
        """:class:`QuotaExceeded` if the tenant has used up its spend for today."""
        if limits.spend_per_day_usd is None:
            return
        used = used_today(db, limits.tenant_id, SPEND_USD, now=now)
        if used >= limits.spend_per_day_usd:
            raise spend_refusal(limits, used, now=now)

    # -- batches -------------------------------------------------------------------

    def admit_batch(self, session: Session, limits: TenantLimits, items: int) -> None:
        """Count a batch of ``items`` items against the tenant's limits for now, in the
        transaction that inserts it (which must commit next): its daily spend, its
        batch items today (added; the counter's row lock serializes the tenant's batch
        creations until the commit, so the next batch counts this one's items and jobs)
        and its jobs queued or running. Raises :class:`QuotaExceeded`; a batch that
        could never pass is refused earlier by :func:`batch_never_fits`."""
        now = self.now()
        conn = session.connection()
        self.check_spend(conn, limits, now=now)
        per_day = limits.batch_items_per_day
        if per_day is not None:
            total = add_today(conn, limits.tenant_id, BATCH_ITEMS, items, limit=per_day, now=now)
            if total is None:
                used = used_today(conn, limits.tenant_id, BATCH_ITEMS, now=now)
                wait = seconds_to_next_day(now)
                raise QuotaExceeded(
                    "batch_items_per_day",
                    f"this batch's {items} items would take this tenant past the "
                    f"{per_day} batch items a UTC day {limits.whose('batch_items_per_day')} "
                    f"allows (batch_items_per_day; {used:.0f} used today): retry after "
                    f"00:00 UTC, in {wait:.0f} s, or send fewer items; "
                    + _RAISE.format(flag="batch-items-per-day"),
                    value=per_day,
                    retry_after=wait,
                )
        cap = limits.max_active_jobs
        if cap is not None:
            count = count_active(conn, limits.tenant_id, at_most=cap)
            if count + items > cap:
                raise _active_refusal(limits, count, items)
            with self._lock:
                self._active.pop(limits.tenant_id, None)

    def pre_check_batch(self, db: Session | Connection, limits: TenantLimits, items: int) -> None:
        """The checks of :meth:`admit_batch` that only read (no counter is changed, no
        lock taken), to refuse a batch before its items are validated."""
        now = self.now()
        self.check_spend(db, limits, now=now)
        per_day = limits.batch_items_per_day
        if per_day is not None:
            used = used_today(db, limits.tenant_id, BATCH_ITEMS, now=now)
            if used + items > per_day:
                wait = seconds_to_next_day(now)
                raise QuotaExceeded(
                    "batch_items_per_day",
                    f"this batch's {items} items would take this tenant past the "
                    f"{per_day} batch items a UTC day {limits.whose('batch_items_per_day')} "
                    f"allows (batch_items_per_day; {used:.0f} used today): retry after "
                    f"00:00 UTC, in {wait:.0f} s, or send fewer items; "
                    + _RAISE.format(flag="batch-items-per-day"),
                    value=per_day,
                    retry_after=wait,
                )


def _rate_refusal(limits: TenantLimits, wait: float) -> QuotaExceeded:
    rate = limits.jobs_per_minute
    return QuotaExceeded(
        "jobs_per_minute",
        f"this tenant has submitted jobs faster than {limits.whose('jobs_per_minute')} "
        f"allows: {rate:g} jobs a minute, in bursts of at most {limits.jobs_burst} "
        f"(jobs_per_minute, jobs_burst); retry in {math.ceil(wait)} s, spread submissions "
        "out, or send many jobs as one batch (POST /v1/batches); "
        + _RAISE.format(flag="jobs-per-minute"),
        value=rate,
        retry_after=wait,
    )


def check_room(session: Session, limits: TenantLimits, what: str) -> None:
    """:class:`QuotaExceeded` if the tenant already has as many ``what`` (``schedules``
    or ``datasets``) as it may. Counted when one is created, in its transaction: two
    made at the same instant may both pass."""
    if what == "schedules":
        cap = limits.max_schedules
        owned = select(Schedule.id).where(Schedule.tenant_id == limits.tenant_id)
    else:
        cap = limits.max_datasets
        owned = select(Dataset.id).where(Dataset.tenant_id == limits.tenant_id)
    if cap is None:
        return
    have = session.execute(select(func.count()).select_from(owned.subquery())).scalar_one()
    if have >= cap:
        name = f"max_{what}"
        raise QuotaExceeded(
            name,
            f"this tenant has {have} {what} and {limits.whose(name)} allows {cap} ({name}): "
            f"delete one you no longer need first; " + _RAISE.format(flag=name.replace("_", "-")),
            value=cap,
            retry_after=None,
        )


def batch_never_fits(limits: TenantLimits, items: int) -> str | None:
    """Why a batch of ``items`` items can never be accepted for this tenant (more than
    its batch items a day, or than its jobs queued or running at once), or None."""
    per_day = limits.batch_items_per_day
    if per_day is not None and items > per_day:
        return (
            f"the batch has {items} items but {limits.whose('batch_items_per_day')} allows "
            f"{per_day} batch items a day (batch_items_per_day); split it over several days, "
            "or " + _RAISE.format(flag="batch-items-per-day")
        )
    cap = limits.max_active_jobs
    if cap is not None and items > cap:
        return (
            f"the batch has {items} items but {limits.whose('max_active_jobs')} allows {cap} "
            "jobs queued or running at once (max_active_jobs); split it into smaller batches, "
            "or " + _RAISE.format(flag="max-active-jobs")
        )
    return None


# ---------------------------------------------------------------- management


def tenant_by_name(session: Session, name: str) -> Tenant | None:
    return session.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none()


def get_tenant(session: Session, name: str) -> Tenant:
    """The tenant named ``name``; :class:`ponder.errors.NotFound` if there is none."""
    tenant = tenant_by_name(session, name)
    if tenant is None:
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise NotFound(f"no tenant named {shown!r}; `ponder keys create --tenant NAME` creates one")
    return tenant


class LimitsUpdate(BaseModel):
    """The limits to change for one tenant: a number sets the tenant's own limit, null
    gives it the server's default back; a limit left out keeps its value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"jobs_per_minute": 60, "jobs_burst": 20}]},
    )

    max_priority: int | None = Field(default=None, description="Highest job priority, 0 to 9.")
    jobs_per_minute: float | None = Field(
        default=None, description="Jobs submitted per minute, sustained (token bucket rate)."
    )
    jobs_burst: int | None = Field(
        default=None, description="Jobs submitted at once before the rate applies."
    )
    max_active_jobs: int | None = Field(
        default=None, description="Jobs queued or running at once, batch items included."
    )
    batch_items_per_day: int | None = Field(
        default=None, description="Batch items submitted per UTC day."
    )
    max_job_tokens: int | None = Field(
        default=None, description="Most `budget.max_tokens` of one job (≤ the server's)."
    )
    max_job_calls: int | None = Field(
        default=None, description="Most `budget.max_calls` of one job (≤ the server's)."
    )
    max_job_cost_usd: float | None = Field(
        default=None, description="Most `budget.max_cost_usd` of one job (≤ the server's)."
    )
    max_job_seconds: float | None = Field(
        default=None, description="Most `budget.max_seconds` of one job (≤ the server's)."
    )
    spend_per_day_usd: float | None = Field(
        default=None, description="US dollars the tenant's model calls may cost per UTC day."
    )
    max_schedules: int | None = Field(default=None, description="Schedules the tenant may have.")
    max_datasets: int | None = Field(
        default=None, description="Uploaded datasets the tenant may have."
    )

    def changes(self) -> dict[str, float | int | None]:
        """The limits sent, by name (None: back to the server's default)."""
        return dict(self.model_dump(exclude_unset=True))


def update_limits(
    session: Session, tenant_name: str, update: LimitsUpdate, settings: Settings
) -> dict[str, Any]:
    """Change the tenant's own limits (committed); :class:`ponder.field_errors.Invalid`
    for a value out of range. Returns :func:`describe` of the tenant after."""
    tenant = get_tenant(session, tenant_name)
    problems = []
    for name, value in update.changes().items():
        try:
            check_limit_value(name, value, settings)
        except ValueError as exc:
            problems.append({"loc": ["body", name], "msg": str(exc), "type": "value_error"})
    if problems:
        detail, errors = describe_validation_errors(problems)
        raise Invalid(detail, errors)
    set_limits(session, tenant.id, update.changes(), settings)
    session.commit()
    return describe(session, tenant, settings)


def describe(
    session: Session, tenant: Tenant, settings: Settings, *, now: float | None = None
) -> dict[str, Any]:
    """The tenant's limits (each with where it comes from: ``tenant`` or ``server``) and
    what it uses of them now: what ``ponder tenants limits show`` prints and
    ``GET /v1/admin/tenants/{name}/limits`` returns."""
    limits = load_limits(session, tenant.id, settings)
    values = limits.as_dict()
    return {
        "tenant": tenant.name,
        "tenant_id": tenant.id,
        "limits": {
            name: {"value": values[name], "source": "tenant" if name in limits.own else "server"}
            for name in LIMIT_FIELDS
        },
        "usage": usage(session, limits, now=time.time() if now is None else now),
    }


def usage(session: Session, limits: TenantLimits, *, now: float) -> dict[str, Any]:
    """What the tenant uses now of the limits that count: its job bucket's tokens, its
    batch items and spend today (UTC), its jobs queued or running."""
    c = TenantCounter.__table__.c
    bucket = session.execute(
        select(c.value, c.stamp).where(c.tenant_id == limits.tenant_id, c.name == JOBS_BUCKET)
    ).first()
    tokens: float | None = None
    if limits.jobs_per_minute is not None:
        tokens = float(limits.jobs_burst)
        if bucket is not None:
            tokens = bucket_level(
                bucket.value, bucket.stamp, now, limits.jobs_per_minute / 60.0, limits.jobs_burst
            )
    return {
        "jobs_bucket_tokens": None if tokens is None else round(tokens, 3),
        "active_jobs": count_active(session.connection(), limits.tenant_id, at_most=10**9),
        "batch_items_today": int(used_today(session, limits.tenant_id, BATCH_ITEMS, now=now)),
        "spend_today_usd": round(used_today(session, limits.tenant_id, SPEND_USD, now=now), 6),
        "day": utc_day(now),
    }


def set_limits(
    session: Session, tenant_id: str, changes: dict[str, float | int | None], settings: Settings
) -> TenantLimits:
    """Set (a number) or clear (None: back to the server's default) the tenant's own
    limits named in ``changes``, in the caller's transaction; ValueError for an unknown
    field or a value out of range (a per-job ceiling above the server's, a priority
    outside 0..9, a limit not above zero). Returns the tenant's limits after."""
    for name, value in changes.items():
        check_limit_value(name, value, settings)
    row = session.get(TenantLimit, tenant_id)
    if row is None:
        row = TenantLimit(tenant_id=tenant_id)
        session.add(row)
    for name, value in changes.items():
        setattr(row, name, value)
    session.flush()
    return TenantLimits.of(settings, tenant_id, row)


_INTEGERS = frozenset(
    {
        "max_priority",
        "jobs_burst",
        "max_active_jobs",
        "batch_items_per_day",
        "max_job_tokens",
        "max_job_calls",
        "max_schedules",
        "max_datasets",
    }
)


def check_limit_value(name: str, value: float | int | None, settings: Settings) -> None:
    """ValueError saying what is wrong with ``value`` for the limit ``name``."""
    if name not in _DEFAULTS:
        raise ValueError(f"unknown limit {name!r}; the limits are: {', '.join(LIMIT_FIELDS)}")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if name in _INTEGERS and value != int(value):
        raise ValueError(f"{name} must be a whole number")
    if name == "max_priority":
        if not 0 <= value <= 9:
            raise ValueError("max_priority must be between 0 and 9")
        return
    if value <= 0:
        raise ValueError(f"{name} must be above zero")
    for own, server in _CEILINGS.values():
        if name == own and value > getattr(settings, server):
            raise ValueError(
                f"{name} must be at most the server's {server} ({getattr(settings, server):g}); "
                f"raise PONDER_{server.upper()} first"
            )


def is_integer_limit(name: str) -> bool:
    return name in _INTEGERS
