"""All database access for running jobs: claiming leases, the fenced journal, heartbeats,
hand-offs between slices, finalization with its outbox rows, and what the reaper needs.

Fencing: every write a worker makes is an ``UPDATE jobs ... WHERE id = :id AND attempt =
:attempt AND lease_owner = :owner`` in the same transaction as the rest of the write. Once
another worker claims the job (bumping ``attempt``), the old worker's writes match no row
and raise :class:`LeaseLost` — a zombie cannot write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics, telemetry
from ponder.budget import Spend, SpendLimitReached
from ponder.notify import notify_job_finished
from ponder.outcome import Spent, public_usage
from ponder.quotas import reserve_spend, seconds_to_next_day, settle_spend, utc_day
from ponder.runtime import Cancelled, LeaseLost, StepRecord
from ponder.tables import (
    Job,
    JobEvent,
    JobStatus,
    JobStep,
    UTCDateTime,
    job_from_row,
    utcnow,
)
from ponder.webhooks.outbox import add_delivery


@dataclass(frozen=True)
class Claim:
    """A lease on a job: the snapshot the worker runs from and its fencing number."""

    job: Job
    attempt: int
    owner: str
    steps: dict[int, StepRecord]
    lost_calls: int  # in flight when the previous worker died


# The hot path (claim, the fenced journal writes) runs prebuilt Core statements on the
# tables: no ORM unit of work, and each statement's SQL is compiled once per process.
_jobs = cast(Table, Job.__table__)
_steps = cast(Table, JobStep.__table__)
_events = cast(Table, JobEvent.__table__)

_T = TypeVar("_T")

Db = Engine | Connection  # an engine (a connection per transaction) or one held connection


@contextmanager
def _transaction(db: Db) -> Iterator[Connection]:
    if isinstance(db, Connection):
        with db.begin():
            yield db
    else:
        with db.begin() as conn:
            yield conn


_CLAIM = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("f_id"),
        _jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        or_(_jobs.c.lease_owner.is_(None), _jobs.c.lease_expires_at < bindparam("f_now")),
    )
    .values(
        attempt=_jobs.c.attempt + 1,
        recoveries=_jobs.c.recoveries + case((_jobs.c.lease_owner.is_not(None), 1), else_=0),
        lease_owner=bindparam("v_owner"),
        lease_expires_at=bindparam("v_expires"),
        status=JobStatus.RUNNING,
        started_at=func.coalesce(_jobs.c.started_at, bindparam("f_now")),
        updated_at=bindparam("f_now"),
    )
    .returning(*_jobs.c)
)


# what a claim reads back of a job's journal: results to replay, reservations left pending
_JOURNAL_COLUMNS = (
    _steps.c.key,
    _steps.c.kind,
    _steps.c.status,
    _steps.c.digest,
    _steps.c.result,
    _steps.c.reserved_tokens,
    _steps.c.reserved_calls,
    _steps.c.reserved_cost_usd,
)
_JOURNAL = select(*_JOURNAL_COLUMNS).where(_steps.c.job_id == bindparam("f_id"))
_JOURNAL_OF_MANY = select(_steps.c.job_id, *_JOURNAL_COLUMNS).where(
    _steps.c.job_id.in_(bindparam("ids", expanding=True))
)


def _read_journal(conn: Connection, job_id: str) -> tuple[dict[int, StepRecord], int, Spend]:
    """One query for the whole journal: done results to replay, and the reservations a
    dead worker left pending (how many, and their total: counted as spent, since their
    real usage is unknown)."""
    steps: dict[int, StepRecord] = {}
    lost, n_lost = Spend(), 0
    for r in conn.execute(_JOURNAL, {"f_id": job_id}):
        if r.status == "done":
            steps[int(r.key)] = StepRecord(int(r.key), r.kind, r.digest, r.result or {})
        else:
            lost = lost + Spend(r.reserved_tokens, r.reserved_calls, r.reserved_cost_usd)
            n_lost += 1
    return steps, n_lost, lost


def claim(db: Db, job_id: str, owner: str, lease_seconds: float) -> Claim | None:
    """Take the job's lease if it is runnable and nobody holds a live lease (in a
    transaction of its own). See :func:`claim_in`."""
    with _transaction(db) as conn:
        return claim_in(conn, job_id, owner, lease_seconds)


def claim_in(conn: Connection, job_id: str, owner: str, lease_seconds: float) -> Claim | None:
    """:func:`claim` inside the caller's transaction (a group commit). Reservations left
    pending by a dead worker are counted as spent (their usage is unknown)."""
    now = utcnow()
    row = conn.execute(
        _CLAIM,
        {
            "f_id": job_id,
            "f_now": now,
            "v_owner": owner,
            "v_expires": now + timedelta(seconds=lease_seconds),
        },
    ).first()
    if row is None:
        return None
    job = job_from_row(row)
    attempt = job.attempt
    steps: dict[int, StepRecord] = {}
    n_lost = 0
    if attempt > 1:  # only an earlier slice or attempt can have journaled anything
        steps, n_lost, lost = _read_journal(conn, job_id)
        if n_lost:
            job = _count_lost(conn, job_id, n_lost, lost)
    return Claim(job=job, attempt=attempt, owner=owner, steps=steps, lost_calls=n_lost)


def _count_lost(conn: Connection, job_id: str, n_lost: int, lost: Spend) -> Job:
    """The reservations a dead worker left pending: dropped from the journal and counted
    as spent (their real usage is unknown). Returns the job as it is now."""
    conn.execute(delete(_steps).where(_steps.c.job_id == job_id, _steps.c.status == "pending"))
    row = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id)
        .values(
            usage_tokens=_jobs.c.usage_tokens + lost.tokens,
            usage_calls=_jobs.c.usage_calls + lost.calls,
            usage_cost_usd=_jobs.c.usage_cost_usd + lost.cost_usd,
            lost_calls=_jobs.c.lost_calls + n_lost,
        )
        .returning(*_jobs.c)
    ).one()
    return job_from_row(row)


@dataclass(frozen=True)
class ClaimRequest:
    """A slice asking for its job's lease, as the group committer batches it
    (:func:`claim_jobs`)."""

    job_id: str
    owner: str
    lease_seconds: float


# Postgres: the claims of a whole group in one statement (each job's owner from the
# JSON rows; the id list for the primary key). Two requests for one job: one wins. The
# columns come back in the model's order (a migrated table's own order may differ).
_BATCH_CLAIM = (
    text(
        """
        UPDATE jobs SET
          attempt = jobs.attempt + 1,
          recoveries = jobs.recoveries
            + CASE WHEN jobs.lease_owner IS NOT NULL THEN 1 ELSE 0 END,
          lease_owner = v.owner,
          lease_expires_at = v.expires,
          status = :running,
          started_at = COALESCE(jobs.started_at, :now),
          updated_at = :now
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(id varchar, owner varchar,
          expires timestamptz)
        WHERE jobs.id = ANY(CAST(:ids AS varchar[])) AND jobs.id = v.id
          AND jobs.status IN (:queued, :running)
          AND (jobs.lease_owner IS NULL OR jobs.lease_expires_at < :now)
        RETURNING {returning}
        """.format(returning=", ".join(f'jobs."{c.name}"' for c in _jobs.c))
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(*_jobs.c)
)


def claim_jobs(conn: Connection, requests: list[ClaimRequest]) -> list[tuple[bool, Any]]:
    """:func:`claim_in` for many jobs in the caller's transaction: one ``(True, Claim or
    None)`` per request. On Postgres, a handful of statements for the whole group."""
    if conn.dialect.name != "postgresql":
        return [(True, claim_in(conn, r.job_id, r.owner, r.lease_seconds)) for r in requests]
    now = utcnow()
    rows = [
        {
            "id": r.job_id,
            "owner": r.owner,
            "expires": (now + timedelta(seconds=r.lease_seconds)).isoformat(),
        }
        for r in requests
    ]
    claimed = {
        (str(row.id), str(row.lease_owner)): job_from_row(row)
        for row in conn.execute(
            _BATCH_CLAIM,
            {
                "now": now,
                "rows": json.dumps(rows),
                "ids": sorted({r.job_id for r in requests}),
                "queued": JobStatus.QUEUED,
                "running": JobStatus.RUNNING,
            },
        )
    }
    # only an earlier slice or attempt can have journaled anything
    again = [job.id for job in claimed.values() if job.attempt > 1]
    steps: dict[str, dict[int, StepRecord]] = {job_id: {} for job_id in again}
    lost: dict[str, tuple[int, Spend]] = {}
    if again:
        for r in conn.execute(_JOURNAL_OF_MANY, {"ids": again}):
            if r.status == "done":
                steps[r.job_id][int(r.key)] = StepRecord(
                    int(r.key), r.kind, r.digest, r.result or {}
                )
            else:
                n, spend = lost.get(r.job_id, (0, Spend()))
                lost[r.job_id] = (
                    n + 1,
                    spend + Spend(r.reserved_tokens, r.reserved_calls, r.reserved_cost_usd),
                )
    for job_id, (n_lost, spend) in lost.items():
        recounted = _count_lost(conn, job_id, n_lost, spend)
        claimed[(job_id, str(recounted.lease_owner))] = recounted
    out: list[tuple[bool, Any]] = []
    for req in requests:
        won = claimed.get((req.job_id, req.owner))
        if won is None:
            out.append((True, None))
            continue
        out.append(
            (
                True,
                Claim(
                    job=won,
                    attempt=won.attempt,
                    owner=req.owner,
                    steps=steps.get(req.job_id, {}),
                    lost_calls=lost.get(req.job_id, (0, Spend()))[0],
                ),
            )
        )
    return out


@dataclass(frozen=True)
class LeaseRenewal:
    """One lease a worker process holds, as its heartbeat renews it."""

    job_id: str
    attempt: int
    owner: str
    seconds_used: float


# Postgres: every lease of a process in one statement, each under its own fence (a
# CASE over hundreds of ids is quadratic; a join on the JSON rows is not).
_RENEW_LEASES = text(
    """
    UPDATE jobs SET lease_expires_at = :expires, usage_seconds = v.seconds
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
      AS v(id varchar, attempt int, owner varchar, seconds float8)
    WHERE jobs.id = ANY(CAST(:ids AS varchar[]))
      AND jobs.id = v.id AND jobs.attempt = v.attempt AND jobs.lease_owner = v.owner
    RETURNING jobs.id, jobs.cancel_requested
    """
).bindparams(bindparam("expires", type_=UTCDateTime()))


def renew_leases(
    conn: Connection, leases: list[LeaseRenewal], lease_seconds: float
) -> dict[str, bool]:
    """Extend every lease in ``leases`` in one statement, each checked against its
    fencing number and owner, and record each job's running time. Returns the cancel
    flag of each job whose lease was renewed; a job missing from the answer has lost its
    lease (another worker took it over, or it ended)."""
    if not leases:
        return {}
    now = utcnow()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            _RENEW_LEASES,
            {
                "expires": now + timedelta(seconds=lease_seconds),
                "ids": sorted({lease.job_id for lease in leases}),
                "rows": json.dumps(
                    [
                        {
                            "id": lease.job_id,
                            "attempt": lease.attempt,
                            "owner": lease.owner,
                            "seconds": lease.seconds_used,
                        }
                        for lease in leases
                    ]
                ),
            },
        ).all()
        return {str(job_id): bool(cancel) for job_id, cancel in rows}
    seconds = {lease.job_id: lease.seconds_used for lease in leases}
    rows = conn.execute(
        update(_jobs)
        .where(
            tuple_(_jobs.c.id, _jobs.c.attempt, _jobs.c.lease_owner).in_(
                [(lease.job_id, lease.attempt, lease.owner) for lease in leases]
            )
        )
        .values(
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            usage_seconds=case(seconds, value=_jobs.c.id, else_=_jobs.c.usage_seconds),
        )
        .returning(_jobs.c.id, _jobs.c.cancel_requested)
    ).all()
    return {str(job_id): bool(cancel) for job_id, cancel in rows}


class _JobSummary(Spent, Protocol):
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def stop_reason(self) -> str | None: ...
    @property
    def result(self) -> dict[str, Any] | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def batch_id(self) -> str | None: ...
    @property
    def meta(self) -> dict[str, Any]: ...


def job_public_summary(job: _JobSummary) -> dict[str, Any]:
    """The job fields webhooks and terminal events carry."""
    return {
        "id": job.id,
        "status": job.status,
        "stop_reason": job.stop_reason,
        "result": job.result,
        "usage": public_usage(job),
        "error": job.error,
        "batch_id": job.batch_id,
        "metadata": job.meta,
    }


@dataclass(frozen=True)
class _Summary:
    """A finished job as finalize's UPDATE returned it (what webhooks carry)."""

    id: str
    tenant_id: str
    webhook_url: str | None
    status: str
    stop_reason: str | None
    result: dict[str, Any] | None
    usage_tokens: int
    usage_calls: int
    usage_cost_usd: float
    usage_seconds: float
    error: str | None
    batch_id: str | None
    meta: dict[str, Any]
    webhook_format: str | None


def _announce(db: Session | Connection, job: Job | _Summary, event_type: str) -> list[str]:
    """The outbox row of a job's final event, if it has a webhook (ids written)."""
    if not job.webhook_url:
        return []
    return [
        add_delivery(
            db,
            tenant_id=job.tenant_id,
            url=job.webhook_url,
            event_type=event_type,
            data=job_public_summary(job),
            job_id=job.id,
            webhook_format=job.webhook_format,
        )
    ]


# what finalize reads back for the webhook's payload (the job as it ends)
_SUMMARY_COLUMNS = (
    "id",
    "tenant_id",
    "webhook_url",
    "status",
    "stop_reason",
    "result",
    "usage_tokens",
    "usage_calls",
    "usage_cost_usd",
    "usage_seconds",
    "error",
    "batch_id",
    "metadata",
    "webhook_format",
)


@lru_cache(maxsize=128)
def _fenced_update(sets: tuple[str, ...], adds: tuple[str, ...], summary: bool) -> Update:
    """``UPDATE jobs SET ... WHERE id AND attempt AND lease_owner (the fence) RETURNING
    cancel_requested, event_seq`` for one shape of write; built once per shape."""
    values: dict[str, Any] = {k: bindparam(f"v_{k}", type_=_jobs.c[k].type) for k in sets}
    for k in adds:
        values[k] = _jobs.c[k] + bindparam(f"d_{k}", type_=_jobs.c[k].type)
    returning = [_jobs.c.cancel_requested, _jobs.c.event_seq]
    if summary:
        returning += [_jobs.c[k] for k in _SUMMARY_COLUMNS]
    return (
        update(_jobs)
        .where(
            _jobs.c.id == bindparam("f_id"),
            _jobs.c.attempt == bindparam("f_attempt"),
            _jobs.c.lease_owner == bindparam("f_owner"),
        )
        .values(values)
        .returning(*returning)
    )


_INSERT_STEP = insert(_steps)
_INSERT_EVENT = insert(_events)
_COMPLETE_STEP = (
    update(_steps)
    .where(_steps.c.job_id == bindparam("f_job"), _steps.c.key == bindparam("f_key"))
    .values(
        status="done",
        result=bindparam("v_result", type_=_steps.c.result.type),
        tokens=bindparam("v_tokens"),
        calls=bindparam("v_calls"),
        cost_usd=bindparam("v_cost"),
        completed_at=bindparam("v_at"),
    )
)


_SUMMARY_FIELDS = [f.name for f in fields(_Summary)]


@dataclass(frozen=True)
class SpendCharge:
    """A billed call's worst-case cost, reserved against its tenant's daily spend limit
    in the write that journals the call's reservation (:mod:`ponder.quotas`)."""

    tenant_id: str
    cost_usd: float
    limit_usd: float
    at: float  # Unix time of the reservation: its UTC day is the day it counts on


@dataclass(frozen=True)
class SpendSettle:
    """What a call reserved by a :class:`SpendCharge` on ``day`` really cost, minus what
    was reserved (the whole reservation back for a call that was never billed)."""

    tenant_id: str
    delta_usd: float
    day: str


@dataclass
class JournalWrite:
    """One fenced journal write around a billed call (its reservation, its result, its
    loss) with what was buffered since the last write. Prepared on the event loop, so
    the group committer can run many of them together (:func:`write_journal`), and
    again if it has to."""

    job_id: str
    attempt: int
    owner: str
    adds: dict[str, float]  # usage_tokens, usage_calls, usage_cost_usd, lost_calls
    best: dict[str, Any] | None
    progress: dict[str, Any] | None
    events: list[tuple[str, dict[str, Any]]]
    strategy_events: int
    free_steps: list[dict[str, Any]]
    pending_step: dict[str, Any] | None = None  # reserved before a call, unless cancelled
    done_step: dict[str, Any] | None = None  # a call's result: key, result, tokens...
    drop_step: int | None = None  # a failed call's reservation, by key
    # the pending call's cost against the tenant's daily spend, or its settlement after
    spend_charge: SpendCharge | None = None
    spend_settle: SpendSettle | None = None


# Outcome of one write in a batch: (True, the job's cancel flag), (True, a
# SpendLimitReached: the pending call was not journaled) or (False, LeaseLost).
WriteOutcome = tuple[bool, Any]


def _charge_spend(
    conn: Connection, charges: list[JournalWrite], settles: list[JournalWrite]
) -> set[int]:
    """Reserve the tenant spend of ``charges`` (writes journaling a call, each with a
    :class:`SpendCharge`) and apply the :class:`SpendSettle` of ``settles``, tenant by
    tenant in id order (so two groups never lock two tenants' counters in opposite
    orders). The ``id()`` of each charged write whose call did not fit."""
    refused: set[int] = set()
    by_tenant: dict[str, tuple[list[SpendCharge], list[int], list[SpendSettle]]] = {}
    for w in charges:
        assert w.spend_charge is not None
        entry = by_tenant.setdefault(w.spend_charge.tenant_id, ([], [], []))
        entry[0].append(w.spend_charge)
        entry[1].append(id(w))
    for w in settles:
        assert w.spend_settle is not None
        by_tenant.setdefault(w.spend_settle.tenant_id, ([], [], []))[2].append(w.spend_settle)
    for tenant_id in sorted(by_tenant):
        wanted, ids, settled = by_tenant[tenant_id]
        for settle in settled:  # first: a call that cost less than reserved frees room
            settle_spend(conn, tenant_id, settle.delta_usd, day=settle.day)
        for charge, write_id in zip(wanted, ids, strict=True):
            day = reserve_spend(
                conn, tenant_id, charge.cost_usd, limit=charge.limit_usd, now=charge.at
            )
            if day is None:
                refused.add(write_id)
    return refused


def _spend_refusal(charge: SpendCharge) -> SpendLimitReached:
    wait = seconds_to_next_day(charge.at)
    return SpendLimitReached(
        f"the tenant's daily spend limit of ${charge.limit_usd:g} (spend_per_day_usd) "
        f"cannot cover this call's worst case of ${charge.cost_usd:.6f}: no new model call "
        f"until 00:00 UTC, in {wait:.0f} s; the job stops with its best answer so far"
    )


_ADDED = ("usage_tokens", "usage_calls", "usage_cost_usd", "lost_calls")

# Postgres: one statement updates the row of every job with a write in the group, each
# under its own fence (id, attempt, owner); the per-job values travel as one JSON array.
# The id list lets the planner use the primary key (it cannot see into the JSON).
_BATCH_UPDATE = text(
    """
    UPDATE jobs SET
      updated_at = :now,
      usage_tokens = jobs.usage_tokens + v.usage_tokens,
      usage_calls = jobs.usage_calls + v.usage_calls,
      usage_cost_usd = jobs.usage_cost_usd + v.usage_cost_usd,
      lost_calls = jobs.lost_calls + v.lost_calls,
      event_seq = jobs.event_seq + v.n_events,
      strategy_events = jobs.strategy_events + v.n_strategy_events,
      best = CASE WHEN v.has_best THEN v.best ELSE jobs.best END,
      progress = CASE WHEN v.has_progress THEN v.progress ELSE jobs.progress END
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(
      id varchar, attempt int, owner varchar, usage_tokens bigint, usage_calls int,
      usage_cost_usd float8, lost_calls int, n_events int, n_strategy_events int,
      has_best boolean, best jsonb, has_progress boolean, progress jsonb)
    WHERE jobs.id = ANY(CAST(:ids AS varchar[]))
      AND jobs.id = v.id AND jobs.attempt = v.attempt AND jobs.lease_owner = v.owner
    RETURNING jobs.id, jobs.attempt, jobs.cancel_requested, jobs.event_seq
    """
).bindparams(bindparam("now", type_=UTCDateTime()))

_BATCH_COMPLETE = text(
    """
    UPDATE job_steps SET status = 'done', result = v.result, tokens = v.tokens,
      calls = v.calls, cost_usd = v.cost_usd, completed_at = :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(
      job_id varchar, key int, result jsonb, tokens bigint, calls int, cost_usd float8)
    WHERE job_steps.job_id = ANY(CAST(:ids AS varchar[]))
      AND job_steps.job_id = v.job_id AND job_steps.key = v.key
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def write_journal(conn: Connection, writes: list[JournalWrite]) -> list[WriteOutcome]:
    """Run ``writes`` (from many jobs, in the caller's transaction) and say how each
    went. On Postgres a whole group takes a handful of statements whatever its size; on
    SQLite each write is its own statements."""
    if conn.dialect.name != "postgresql":
        return [_write_one(conn, w) for w in writes]
    now = utcnow()
    # the writes of one job (one lease) act on its row together, in order
    per_job: dict[tuple[str, int, str], list[JournalWrite]] = {}
    for w in writes:
        per_job.setdefault((w.job_id, w.attempt, w.owner), []).append(w)
    rows = []
    for (job_id, attempt, owner), ws in per_job.items():
        row: dict[str, Any] = {"id": job_id, "attempt": attempt, "owner": owner}
        for k in _ADDED:
            row[k] = sum(w.adds.get(k, 0) for w in ws)
        row["n_events"] = sum(len(w.events) for w in ws)
        row["n_strategy_events"] = sum(w.strategy_events for w in ws)
        best = [w.best for w in ws if w.best is not None]
        progress = [w.progress for w in ws if w.progress is not None]
        row.update(has_best=bool(best), best=best[-1] if best else None)
        row.update(has_progress=bool(progress), progress=progress[-1] if progress else None)
        rows.append(row)
    fenced = {
        (str(r[0]), int(r[1])): (bool(r[2]), int(r[3]))
        for r in conn.execute(
            _BATCH_UPDATE,
            {"now": now, "rows": json.dumps(rows), "ids": sorted({r["id"] for r in rows})},
        )
    }
    outcomes: list[WriteOutcome] = []
    steps: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    dropped: list[tuple[str, int]] = []
    events: list[dict[str, Any]] = []
    # tenant spend: the charges of calls about to be journaled, and settlements
    charges: list[JournalWrite] = []
    settles: list[JournalWrite] = []
    for (job_id, attempt, _owner), ws in per_job.items():
        got = fenced.get((job_id, attempt))
        if got is None:
            continue  # the lease is lost: nothing of these writes applies
        for w in ws:
            if w.spend_charge is not None and w.pending_step is not None and not got[0]:
                charges.append(w)
            if w.spend_settle is not None:
                settles.append(w)
    refused = _charge_spend(conn, charges, settles) if charges or settles else set()
    for (job_id, attempt, _owner), ws in per_job.items():
        got = fenced.get((job_id, attempt))
        if got is None:
            for _ in ws:
                outcomes.append((False, LeaseLost(f"job {job_id}: lease lost")))
            continue
        cancel, last_seq = got
        seq = last_seq - sum(len(w.events) for w in ws)
        for w in ws:
            steps.extend(w.free_steps)
            if id(w) in refused:
                assert w.spend_charge is not None
                outcomes.append((True, _spend_refusal(w.spend_charge)))
            elif w.pending_step is not None and not cancel:
                steps.append(w.pending_step)
            if w.done_step is not None:
                done.append({"job_id": job_id, **w.done_step})
            if w.drop_step is not None:
                dropped.append((job_id, w.drop_step))
            for kind, data in w.events:
                seq += 1
                events.append(
                    {"job_id": job_id, "seq": seq, "kind": kind, "data": data, "created_at": now}
                )
            if id(w) not in refused:
                outcomes.append((True, cancel))
    if steps:
        for shape in {tuple(sorted(s)) for s in steps}:
            conn.execute(_INSERT_STEP, [s for s in steps if tuple(sorted(s)) == shape])
    if done:
        conn.execute(
            _BATCH_COMPLETE,
            {"now": now, "rows": json.dumps(done), "ids": sorted({d["job_id"] for d in done})},
        )
    if dropped:
        conn.execute(delete(_steps).where(tuple_(_steps.c.job_id, _steps.c.key).in_(dropped)))
    if events:
        conn.execute(_INSERT_EVENT, events)
    # back in the order the writes came
    index = {id(w): i for i, w in enumerate(writes)}
    ordered: list[WriteOutcome] = [(False, None)] * len(writes)
    flat = [w for ws in per_job.values() for w in ws]
    for w, outcome in zip(flat, outcomes, strict=True):
        ordered[index[id(w)]] = outcome
    return ordered


def _write_one(conn: Connection, w: JournalWrite) -> WriteOutcome:
    """One journal write with portable statements (SQLite)."""
    sets: dict[str, Any] = {"updated_at": utcnow()}
    if w.best is not None:
        sets["best"] = w.best
    if w.progress is not None:
        sets["progress"] = w.progress
    adds: dict[str, Any] = {k: v for k, v in w.adds.items() if v}
    if w.events:
        adds["event_seq"] = len(w.events)
    if w.strategy_events:
        adds["strategy_events"] = w.strategy_events
    fenced = _FencedWrite.of(
        w.job_id, w.attempt, w.owner, sets, adds, free_steps=w.free_steps, events=w.events
    )
    try:
        row = fenced.execute(conn)
    except LeaseLost as exc:
        return (False, exc)
    cancel = bool(row[0])
    charge = w.spend_charge if w.pending_step is not None and not cancel else None
    if charge is not None or w.spend_settle is not None:
        refused = _charge_spend(
            conn, [w] if charge is not None else [], [w] if w.spend_settle is not None else []
        )
        if charge is not None and id(w) in refused:
            return (True, _spend_refusal(charge))
    if w.pending_step is not None and not cancel:
        conn.execute(_INSERT_STEP, w.pending_step)
    if w.done_step is not None:
        d = w.done_step
        conn.execute(
            _COMPLETE_STEP,
            {
                "f_job": w.job_id,
                "f_key": d["key"],
                "v_result": d["result"],
                "v_tokens": d["tokens"],
                "v_calls": d["calls"],
                "v_cost": d["cost_usd"],
                "v_at": utcnow(),
            },
        )
    if w.drop_step is not None:
        conn.execute(delete(_steps).where(_steps.c.job_id == w.job_id, _steps.c.key == w.drop_step))
    return (True, cancel)


class _Committer(Protocol):
    """Where a journal's writes go: :class:`ponder.groupcommit.GroupCommitter`, with
    :func:`write_journal` as the batch runner of :class:`JournalWrite`."""

    async def run(
        self,
        write: Callable[[Connection], _T],
        *,
        key: str = "",
        span: telemetry.SpanLike = telemetry.NO_SPAN,
    ) -> _T: ...

    async def submit(
        self, item: Any, *, key: str = "", span: telemetry.SpanLike = telemetry.NO_SPAN
    ) -> Any: ...


@dataclass(frozen=True)
class _FencedWrite:
    """One journal write, prepared on the event loop (buffers drained, parameters bound)
    so the committer may run it more than once: the fenced UPDATE of the job row, then
    the buffered unbilled steps and events."""

    job_id: str
    statement: Update
    params: dict[str, Any]
    free_steps: list[dict[str, Any]]
    events: list[tuple[str, dict[str, Any]]]

    @classmethod
    def of(
        cls,
        job_id: str,
        attempt: int,
        owner: str,
        sets: dict[str, Any],
        adds: dict[str, Any],
        *,
        free_steps: list[dict[str, Any]],
        events: list[tuple[str, dict[str, Any]]],
        summary: bool = False,
    ) -> _FencedWrite:
        """The write that sets ``sets`` and adds ``adds`` to the job row under the fence
        (id, attempt, owner), then inserts ``free_steps`` and ``events``."""
        stmt = _fenced_update(tuple(sorted(sets)), tuple(sorted(adds)), summary)
        params = {"f_id": job_id, "f_attempt": attempt, "f_owner": owner}
        params.update({f"v_{k}": v for k, v in sets.items()})
        params.update({f"d_{k}": v for k, v in adds.items()})
        return cls(job_id, stmt, params, free_steps, events)

    def execute(self, conn: Connection) -> Row[Any]:
        row = conn.execute(self.statement, self.params).first()
        if row is None:  # the fence: nothing was written
            raise LeaseLost(f"job {self.job_id}: lease lost")
        if self.free_steps:
            conn.execute(_INSERT_STEP, self.free_steps)
        if self.events:
            first = int(row[1]) - len(self.events) + 1
            now = utcnow()
            conn.execute(
                _INSERT_EVENT,
                [
                    {
                        "job_id": self.job_id,
                        "seq": first + i,
                        "kind": kind,
                        "data": data,
                        "created_at": now,
                    }
                    for i, (kind, data) in enumerate(self.events)
                ],
            )
        return row


class SqlJournal:
    """The :class:`ponder.runtime.Journal` of one claimed slice, on the database.

    Billed calls are written at once (a reservation before, the result after), and the
    caller goes on only once the write has committed. Unbilled results (local
    verifiers), events, the best-so-far and progress are buffered and go out with the
    next write, so a crash loses only work that replays for free.

    Every write goes through ``committer`` (a group commit shared by all the slices of a
    worker process) and is fenced by the lease: once another worker has claimed the job,
    the write matches no row and raises :class:`LeaseLost`."""

    def __init__(self, committer: _Committer, claim: Claim) -> None:
        self._committer = committer
        self.job_id = claim.job.id
        self.attempt = claim.attempt
        self.owner = claim.owner
        self.webhook_url = claim.job.webhook_url
        self.deliveries: list[str] = []  # outbox rows written by finalize, to send now
        self.steps: dict[int, StepRecord] = claim.steps
        self.strategy_events = claim.job.strategy_events
        self._cancel = bool(claim.job.cancel_requested)
        self._lease_lost = False
        self._free_steps: list[dict[str, Any]] = []
        self._events: list[tuple[str, dict[str, Any], bool]] = []
        self._best: dict[str, Any] | None = None
        self._progress: dict[str, Any] | None = None
        # the tenant's daily spend limit in US dollars (set by the runner from
        # ponder.quotas; None: no limit), and the calls reserved against it: key ->
        # (the UTC day it counts on, the cost reserved)
        self.spend_limit_usd: float | None = None
        self.tenant_id = claim.job.tenant_id
        self._charged: dict[int, tuple[str, float]] = {}
        self.clock: Callable[[], float] = time.time

    # -- flags (also fed by the process's lease heartbeat) --
    @property
    def cancel_requested(self) -> bool:
        return self._cancel

    @property
    def lease_lost(self) -> bool:
        return self._lease_lost

    def note_heartbeat(self, cancel: bool | None) -> None:
        """The heartbeat's news: the job's cancel flag, or None when the lease is gone."""
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

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """A runner event (not replayed)."""
        self._events.append((kind, data, False))

    # -- writes --
    def _prepare(self, sets: dict[str, Any], adds: dict[str, Any], summary: bool) -> _FencedWrite:
        """The next write: the job row under our fence, plus everything buffered."""
        events, self._events = self._events, []
        free, self._free_steps = self._free_steps, []
        sets = dict(sets)
        adds = dict(adds)
        sets["updated_at"] = utcnow()
        if events:
            adds["event_seq"] = len(events)
            n_strategy = sum(1 for e in events if e[2])
            if n_strategy:
                adds["strategy_events"] = n_strategy
        if self._best is not None:
            sets["best"] = self._best
            self._best = None
        if self._progress is not None and "progress" not in sets:
            sets["progress"] = self._progress
            self._progress = None
        return _FencedWrite.of(
            self.job_id,
            self.attempt,
            self.owner,
            sets,
            adds,
            free_steps=free,
            events=[(kind, data) for kind, data, _ in events],
            summary=summary,
        )

    async def _write(
        self,
        sets: dict[str, Any],
        adds: dict[str, Any] | None = None,
        extra: Callable[[Connection, Row[Any]], _T] | None = None,
        *,
        summary: bool = False,
        op: str,
    ) -> tuple[Row[Any], _T | None]:
        write = self._prepare(sets, adds or {}, summary)

        def run(conn: Connection) -> tuple[Row[Any], _T | None]:
            row = write.execute(conn)
            return row, (None if extra is None else extra(conn, row))

        try:
            with _write_span(op) as span:
                row, value = await self._committer.run(run, key=self.job_id, span=span)
        except LeaseLost:
            self._lease_lost = True
            raise LeaseLost(f"job {self.job_id}: lease lost (attempt {self.attempt})") from None
        self._cancel = self._cancel or bool(row[0])
        return row, value

    def _journal_write(self, **fields: Any) -> JournalWrite:
        """The next billed-call write, with everything buffered since the last one."""
        events, self._events = self._events, []
        free, self._free_steps = self._free_steps, []
        best, self._best = self._best, None
        progress, self._progress = self._progress, None
        return JournalWrite(
            job_id=self.job_id,
            attempt=self.attempt,
            owner=self.owner,
            adds=fields.pop("adds", {}),
            best=best,
            progress=progress,
            events=[(kind, data) for kind, data, _ in events],
            strategy_events=sum(1 for e in events if e[2]),
            free_steps=free,
            **fields,
        )

    async def _submit(self, write: JournalWrite, op: str) -> None:
        try:
            with _write_span(op) as span:
                cancel = await self._committer.submit(write, key=self.job_id, span=span)
        except LeaseLost:
            self._lease_lost = True
            raise LeaseLost(f"job {self.job_id}: lease lost (attempt {self.attempt})") from None
        if isinstance(cancel, SpendLimitReached):
            raise cancel
        self._cancel = self._cancel or bool(cancel)

    async def begin_paid_step(self, key: int, kind: str, digest: str, reserved: Spend) -> None:
        if self._cancel:
            raise Cancelled("the job was cancelled")
        pending = {
            "job_id": self.job_id,
            "key": key,
            "kind": kind,
            "status": "pending",
            "digest": digest,
            "attempt": self.attempt,
            "reserved_tokens": reserved.tokens,
            "reserved_calls": reserved.calls,
            "reserved_cost_usd": reserved.cost_usd,
            "created_at": utcnow(),
        }

        charge = None
        if self.spend_limit_usd is not None and reserved.cost_usd > 0:
            charge = SpendCharge(
                self.tenant_id, reserved.cost_usd, self.spend_limit_usd, self.clock()
            )
        # raises SpendLimitReached when the tenant's day cannot cover the call (it is not
        # journaled then; the caller releases its reservation in the job's ledger)
        await self._submit(
            self._journal_write(pending_step=pending, spend_charge=charge), "reserve"
        )
        if self._cancel:
            raise Cancelled("the job was cancelled")
        if charge is not None:
            self._charged[key] = (utc_day(charge.at), charge.cost_usd)

    async def complete_paid_step(
        self, key: int, kind: str, digest: str, result: dict[str, Any], charged: Spend
    ) -> None:
        done = {
            "key": key,
            "result": result,
            "tokens": charged.tokens,
            "calls": charged.calls,
            "cost_usd": charged.cost_usd,
        }
        adds = {
            "usage_tokens": charged.tokens,
            "usage_calls": charged.calls,
            "usage_cost_usd": charged.cost_usd,
        }
        settle = self._settle(key, charged.cost_usd)
        await self._submit(
            self._journal_write(adds=adds, done_step=done, spend_settle=settle), "result"
        )

    async def abandon_step(self, key: int, forfeited: Spend | None) -> None:
        adds: dict[str, Any] = {}
        if forfeited is not None:
            adds = {
                "usage_tokens": forfeited.tokens,
                "usage_calls": forfeited.calls,
                "usage_cost_usd": forfeited.cost_usd,
                "lost_calls": 1,
            }
        # a lost call counts its whole reservation; one never billed gives it back
        settle = self._settle(key, 0.0 if forfeited is None else forfeited.cost_usd)
        await self._submit(
            self._journal_write(adds=adds, drop_step=key, spend_settle=settle), "abandon"
        )

    def _settle(self, key: int, cost_usd: float) -> SpendSettle | None:
        """The settlement of call ``key``'s tenant spend at ``cost_usd``, if it had any."""
        charged = self._charged.pop(key, None)
        if charged is None:
            return None
        day, reserved = charged
        return SpendSettle(self.tenant_id, cost_usd - reserved, day)

    async def flush(self) -> None:
        await self._submit(self._journal_write(), "flush")

    async def handoff(self, seconds_used: float, *, interrupted: bool = False) -> None:
        """End this slice cleanly: release the lease so the next slice starts at once.
        ``interrupted`` counts the hand-off as one of the job's interruptions (its model
        server was unreachable), towards ``max_attempts``."""
        await self._write(
            {
                "lease_owner": None,
                "lease_expires_at": None,
                "usage_seconds": seconds_used,
                "enqueued_at": utcnow(),
            },
            {"slices": 1, "recoveries": 1} if interrupted else {"slices": 1},
            op="handoff",
        )

    async def park(self, *, never_ran: bool) -> None:
        """Give the job back without running it: its tenant has its share of this
        process (ponder.fairness). The job waits held until a slice of its tenant ends;
        one that never ran shows as queued again."""
        sets: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "held": True}
        if never_ran:
            sets.update(status=JobStatus.QUEUED, started_at=None)
        await self._write(sets, op="park")

    async def finalize(
        self,
        *,
        status: JobStatus,
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
        announce = bool(self.webhook_url)
        job_id = self.job_id

        def finish(conn: Connection, row: Row[Any]) -> list[str]:
            written: list[str] = []
            if announce:
                # the job as this UPDATE left it: the columns after (cancel, event_seq)
                job = _Summary(**dict(zip(_SUMMARY_FIELDS, row[2:], strict=True)))
                written = _announce(conn, job, event_type)
            notify_job_finished(conn, job_id)
            return written

        self._events.append(
            (status, {"stop_reason": stop_reason, "result": result, "error": error}, False)
        )
        _row, written = await self._write(
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
            },
            {"slices": 1},
            finish,
            summary=announce,
            op="finalize",
        )
        metrics.job_finished(status, stop_reason)
        self.deliveries.extend(written or [])


def _write_span(op: str) -> AbstractContextManager[telemetry.SpanLike]:
    """The span of one journal write, from its caller's side (its wait to be durable)."""
    if not telemetry.enabled():
        return telemetry.NOOP
    return telemetry.span("ponder.journal.write", {"ponder.journal.op": op})


def finalize_unclaimed(
    sessions: sessionmaker[Session],
    job_id: str,
    *,
    status: JobStatus,
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
    metrics.job_finished(status, stop_reason)
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
        # queued, or held waiting for its tenant's turn (ponder.fairness): nobody runs it
        only_if=and_(or_(Job.status == JobStatus.QUEUED, Job.held), Job.lease_owner.is_(None)),
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
    # a lease found expired for the first time: its job was not enqueued since it expired
    expired = and_(
        Job.lease_owner.is_not(None),
        or_(Job.enqueued_at.is_(None), Job.enqueued_at < Job.lease_expires_at),
    )
    with sessions() as s, s.begin():
        rows = s.execute(
            select(Job.id, Job.priority, expired)
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
            ids = [job_id for job_id, _, _ in rows]
            s.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=now))
    metrics.LEASE_RECOVERIES.inc(sum(1 for _, _, first_expiry in rows if first_expiry))
    return [(job_id, int(priority)) for job_id, priority, _ in rows]


# ---------------------------------------------------------------- a lost broker queue
# (worker.queue_watch finds which jobs lost their message; these read and mark them)

# jobs re-published per UPDATE when a lost queue is restored
_REPUBLISH_CHUNK = 500


def _waiting(enqueued_before: datetime) -> ColumnElement[bool]:
    """Jobs that need a message in the broker and had their last one published before
    ``enqueued_before``: queued or between slices, no lease, not held for the feeder.
    Jobs never enqueued (``enqueued_at`` NULL) are not the watch's: the reaper's regular
    pass sends those on every tick."""
    return and_(
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        Job.lease_owner.is_(None),
        ~Job.held,
        Job.enqueued_at < enqueued_before,
    )


def jobs_waiting_for_a_message(
    sessions: sessionmaker[Session], *, enqueued_before: datetime
) -> list[tuple[str, int]]:
    """``(id, priority)`` of every job waiting for a message published before
    ``enqueued_before``, most urgent first."""
    with sessions() as s:
        rows = s.execute(
            select(Job.id, Job.priority)
            .where(_waiting(enqueued_before))
            .order_by(Job.priority.desc(), Job.created_at)
        ).all()
    return [(str(job_id), int(priority)) for job_id, priority in rows]


def take_for_republish(
    sessions: sessionmaker[Session], ids: Sequence[str], *, enqueued_before: datetime
) -> set[str]:
    """Mark those of ``ids`` that still wait (and were not enqueued since) as enqueued now,
    and return them: the caller alone publishes them."""
    taken: set[str] = set()
    now = utcnow()
    for start in range(0, len(ids), _REPUBLISH_CHUNK):
        chunk = list(ids[start : start + _REPUBLISH_CHUNK])
        with sessions() as s, s.begin():
            rows = s.execute(
                update(Job)
                .where(Job.id.in_(chunk), _waiting(enqueued_before))
                .values(enqueued_at=now)
                .returning(Job.id)
            ).all()
        taken.update(str(row[0]) for row in rows)
    return taken


def release_unpublished(sessions: sessionmaker[Session], ids: Sequence[str]) -> None:
    """Jobs taken but whose publish failed: with no enqueued time the reaper's regular
    pass sends them on its next tick, instead of after ``requeue_after_seconds``."""
    if not ids:
        return
    with sessions() as s, s.begin():
        s.execute(
            update(Job).where(Job.id.in_(list(ids)), _waiting(utcnow())).values(enqueued_at=None)
        )
