"""Schedule runs in the database: materialising due fire times, starting pending runs,
manual triggers and backfills. Used by the beat tick (``worker/schedules.py``) and the
API.

Two guarantees, whatever beat does (restarts, two beat processes at once, downtime):

- **a fire time runs at most once**: runs are inserted with ``ON CONFLICT DO NOTHING``
  against the unique (schedule, fire time) constraint, so a second insert of the same
  fire time is a no-op. Row locks (``FOR UPDATE SKIP LOCKED`` on Postgres) only keep two
  beats from doing the same work twice; the constraint is what makes it safe;
- **a run starts at most once**: its batch is created in the same transaction that
  flips the run from ``pending`` to ``started`` with a conditional UPDATE, under a lock
  on the schedule row that also makes ``max_active_runs`` exact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ponder import metrics
from ponder.db import transaction
from ponder.errors import ErrorCode, PonderError
from ponder.schedules.cron import CronError, CronSchedule
from ponder.schedules.timing import Window, plan_due
from ponder.tables import Schedule, ScheduleRun, ScheduleRunKind, ScheduleRunStatus, new_id

log = logging.getLogger(__name__)

# Runs one schedule materialises per transaction at most (after a long downtime with
# catchup the rest follow in the next transactions, oldest first).
MAX_RUNS_PER_TRANSACTION = 1000
# Schedules locked and planned per transaction.
_SCHEDULES_PER_TRANSACTION = 100
# Passes over the due schedules per tick (each pass moves every schedule's cursor).
_MAX_PASSES = 20
_INSERT_CHUNK = 500
_MAX_DETAIL_CHARS = 2000


class RunRejected(PonderError):
    """The schedule's template cannot make a batch at this fire time (e.g. its dataset
    was deleted); the run is marked ``skipped`` with this message."""

    code = ErrorCode.INVALID


@dataclass(frozen=True)
class Launched:
    """The batch a run started, and anything worth telling about it (e.g. items the
    batch refused)."""

    batch_id: str
    note: str | None = None
    items: int = 0  # items the batch accepted (0: the batch existed already)


class BatchLauncher(Protocol):
    """Creates a run's batch and counts a schedule's unfinished batches: the seam to
    :mod:`ponder.batches`."""

    def active_runs(self, session: Session, schedule_id: str) -> int:
        """Batches of the schedule that have not reached a final status."""
        ...

    def launch(self, session: Session, schedule: Schedule, run: ScheduleRun) -> Launched:
        """Create the batch for ``run`` in ``session``'s transaction. Raises
        :class:`RunRejected` when the template cannot make one now."""
        ...


def cron_of(schedule: Schedule) -> CronSchedule:
    return CronSchedule(schedule.cron, schedule.timezone)


def window_of(schedule: Schedule) -> Window:
    return Window(schedule.start_time, schedule.end_time)


def restart_next_fire(schedule: Schedule, now: datetime) -> None:
    """Point the schedule at its first fire time after ``now``: fire times before a
    change of timing (or while disabled) are never materialised."""
    schedule.next_fire_time = window_of(schedule).first_after(cron_of(schedule), now)


def lock_schedule(session: Session, schedule_id: str, *, skip_locked: bool) -> Schedule | None:
    """The schedule, locked for this transaction; None if it does not exist or (with
    ``skip_locked``) another transaction holds it."""
    _claim_sqlite_writer(session)
    query = select(Schedule).where(Schedule.id == schedule_id)
    return session.scalars(
        query.with_for_update(skip_locked=skip_locked).execution_options(populate_existing=True)
    ).one_or_none()


def _claim_sqlite_writer(session: Session) -> None:
    """SQLite has no row locks: take the database's write lock before reading, so two
    processes serialise here instead of both acting on the same read (and the second
    failing with a stale snapshot). A no-op on Postgres."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE schedules SET id = id WHERE 0 = 1"))


def insert_runs(
    session: Session,
    schedule_id: str,
    runs: Sequence[tuple[datetime, str]],
    *,
    now: datetime,
) -> set[datetime]:
    """Insert ``(fire_time, kind)`` runs as ``pending``, skipping fire times the schedule
    already has a run for. The fire times actually inserted."""
    inserted: set[datetime] = set()
    for start in range(0, len(runs), _INSERT_CHUNK):
        rows = [
            {
                "id": new_id(),
                "schedule_id": schedule_id,
                "fire_time": fire_time,
                "kind": kind,
                "status": ScheduleRunStatus.PENDING,
                "created_at": now,
            }
            for fire_time, kind in runs[start : start + _INSERT_CHUNK]
        ]
        statement = _insert_ignoring_duplicates(session, rows)
        inserted.update(session.scalars(statement.returning(ScheduleRun.fire_time)).all())
    return inserted


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return (
            postgresql.insert(ScheduleRun)
            .values(rows)
            .on_conflict_do_nothing(constraint="uq_schedule_runs_fire_time")
        )
    if dialect == "sqlite":
        return (
            sqlite.insert(ScheduleRun)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
        )
    raise NotImplementedError(f"schedules need Postgres or SQLite, not {dialect}")


# ---------------------------------------------------------------- beat: materialise


def materialise_due(
    sessions: sessionmaker[Session], *, now: datetime, limit: int = MAX_RUNS_PER_TRANSACTION
) -> int:
    """Create the runs of every enabled schedule whose next fire time has come; move each
    schedule's next fire time past ``now``. The number of runs created. A schedule that fails is
    logged and left for the next tick; the others go on."""
    created = 0
    failed: set[str] = set()
    for _ in range(_MAX_PASSES):
        with transaction(sessions) as session:
            _claim_sqlite_writer(session)
            query = select(Schedule).where(
                Schedule.enabled.is_(True), Schedule.next_fire_time <= now
            )
            if failed:
                query = query.where(Schedule.id.not_in(failed))
            due = session.scalars(
                query.order_by(Schedule.next_fire_time, Schedule.id)
                .limit(_SCHEDULES_PER_TRANSACTION)
                .with_for_update(skip_locked=True)
            ).all()
            for schedule in due:
                try:
                    with session.begin_nested():
                        created += _materialise_one(session, schedule, now=now, limit=limit)
                except Exception:
                    log.exception("schedule %s: could not materialise its fire times", schedule.id)
                    failed.add(schedule.id)
        if len(due) < _SCHEDULES_PER_TRANSACTION and all(
            s.id in failed or s.next_fire_time is None or s.next_fire_time > now for s in due
        ):
            break
    return created


def _materialise_one(session: Session, schedule: Schedule, *, now: datetime, limit: int) -> int:
    try:
        cron = cron_of(schedule)
    except CronError as exc:
        # Stored when it was valid; the time zone database may have changed since.
        # Record why it stopped (on its due fire time) rather than failing every tick.
        assert schedule.next_fire_time is not None
        log.error("schedule %s can no longer be evaluated: %s", schedule.id, exc)
        fire_time = schedule.next_fire_time
        if insert_runs(session, schedule.id, [(fire_time, ScheduleRunKind.SCHEDULED)], now=now):
            session.execute(
                update(ScheduleRun)
                .where(ScheduleRun.schedule_id == schedule.id, ScheduleRun.fire_time == fire_time)
                .values(
                    status=ScheduleRunStatus.SKIPPED,
                    detail=f"the schedule stopped: {exc}; update its cron or timezone",
                )
            )
        schedule.next_fire_time = None
        return 0
    plan = plan_due(
        cron,
        window_of(schedule),
        next_fire=schedule.next_fire_time,
        now=now,
        catchup=schedule.catchup,
        limit=limit,
    )
    inserted = insert_runs(session, schedule.id, plan.runs, now=now)
    if plan.last_fire_time is not None and (
        schedule.last_fire_time is None or plan.last_fire_time > schedule.last_fire_time
    ):
        schedule.last_fire_time = plan.last_fire_time
    schedule.next_fire_time = plan.next_fire_time
    if len(inserted) < len(plan.runs):
        log.info(
            "schedule %s: %d of %d due fire times already had a run",
            schedule.id,
            len(plan.runs) - len(inserted),
            len(plan.runs),
        )
    return len(inserted)


# ---------------------------------------------------------------- starting runs


@dataclass(frozen=True)
class StartReport:
    started: list[ScheduleRun]
    skipped: list[ScheduleRun]
    items: int = 0  # items of the batches started


class _RunTakenElsewhere(Exception):
    """The run stopped being pending under us: roll the whole transaction back."""


def start_pending(
    session: Session,
    schedule: Schedule,
    launcher: BatchLauncher,
    *,
    now: datetime,
) -> StartReport:
    """Start the schedule's pending runs, oldest fire time first, while fewer than
    ``max_active_runs`` of its batches are unfinished. Call with the schedule row locked
    (:func:`lock_schedule`), in the transaction that will commit the starts."""
    started: list[ScheduleRun] = []
    skipped: list[ScheduleRun] = []
    items = 0
    free = schedule.max_active_runs - launcher.active_runs(session, schedule.id)
    while free > 0:
        run = session.scalars(
            select(ScheduleRun)
            .where(
                ScheduleRun.schedule_id == schedule.id,
                ScheduleRun.status == ScheduleRunStatus.PENDING,
            )
            .order_by(ScheduleRun.fire_time, ScheduleRun.created_at)
            .limit(1)
        ).first()
        if run is None:
            break
        batch_id: str | None = None
        try:
            with session.begin_nested():
                launched = launcher.launch(session, schedule, run)
            batch_id, status, detail = launched.batch_id, ScheduleRunStatus.STARTED, launched.note
            items += launched.items
        except RunRejected as exc:
            status, detail = ScheduleRunStatus.SKIPPED, str(exc)
        result = session.execute(
            update(ScheduleRun)
            .where(ScheduleRun.id == run.id, ScheduleRun.status == ScheduleRunStatus.PENDING)
            .values(
                status=status,
                batch_id=batch_id,
                detail=None if detail is None else detail[:_MAX_DETAIL_CHARS],
                started_at=now,
            )
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            raise _RunTakenElsewhere(run.id)
        session.refresh(run)
        if status == ScheduleRunStatus.STARTED:
            started.append(run)
            free -= 1
        else:
            log.warning("schedule %s: run at %s skipped: %s", schedule.id, run.fire_time, detail)
            skipped.append(run)
    return StartReport(started, skipped, items)


def start_schedule_runs(
    sessions: sessionmaker[Session],
    schedule_id: str,
    launcher: BatchLauncher,
    *,
    now: datetime,
) -> StartReport:
    """:func:`start_pending` for one schedule in its own transaction. If another process
    holds the schedule (it is starting runs right now), nothing happens here: that
    process, or the next tick, starts them."""
    try:
        with transaction(sessions) as session:
            schedule = lock_schedule(session, schedule_id, skip_locked=True)
            if schedule is None:
                return StartReport([], [])
            report = start_pending(session, schedule, launcher, now=now)
    except _RunTakenElsewhere as exc:
        log.info("schedule %s: run %s was started elsewhere; rolled back", schedule_id, exc)
        return StartReport([], [])
    metrics.schedule_runs([r.kind for r in report.started], [r.kind for r in report.skipped])
    metrics.job_submitted("batch_item", report.items)
    return report


def start_due_runs(
    sessions: sessionmaker[Session], launcher: BatchLauncher, *, now: datetime
) -> StartReport:
    """Start pending runs of every schedule that has some (each schedule in its own
    transaction; a failing one is logged and retried at the next tick)."""
    with sessions() as session:
        schedule_ids = session.scalars(
            select(ScheduleRun.schedule_id)
            .where(ScheduleRun.status == ScheduleRunStatus.PENDING)
            .distinct()
        ).all()
    started: list[ScheduleRun] = []
    skipped: list[ScheduleRun] = []
    items = 0
    for schedule_id in schedule_ids:
        try:
            report = start_schedule_runs(sessions, schedule_id, launcher, now=now)
        except Exception:
            log.exception("schedule %s: could not start its pending runs", schedule_id)
            continue
        started.extend(report.started)
        skipped.extend(report.skipped)
        items += report.items
    return StartReport(started, skipped, items)


@dataclass(frozen=True)
class TickReport:
    created: int
    started: list[ScheduleRun]
    skipped: list[ScheduleRun]

    def summary(self) -> dict[str, int]:
        return {"created": self.created, "started": len(self.started), "skipped": len(self.skipped)}


def tick(sessions: sessionmaker[Session], launcher: BatchLauncher, *, now: datetime) -> TickReport:
    """One beat tick: materialise due fire times, then start what may start."""
    created = materialise_due(sessions, now=now)
    report = start_due_runs(sessions, launcher, now=now)
    return TickReport(created, report.started, report.skipped)


# ---------------------------------------------------------------- API: trigger, backfill


def trigger_run(session: Session, schedule: Schedule, *, now: datetime) -> ScheduleRun:
    """A ``manual`` run at ``now`` (pending; start it with :func:`start_schedule_runs`).

    Its fire time is the trigger time, moved off whole seconds: cron fire times are
    whole seconds, so a manual run never takes a cron fire time's place, and two
    triggers in the same microsecond get neighbouring microseconds."""
    fire_time = now if now.microsecond else now + timedelta(microseconds=1)
    while not insert_runs(session, schedule.id, [(fire_time, ScheduleRunKind.MANUAL)], now=now):
        fire_time += timedelta(microseconds=1)
    return session.scalars(
        select(ScheduleRun).where(
            ScheduleRun.schedule_id == schedule.id, ScheduleRun.fire_time == fire_time
        )
    ).one()


def backfill_runs(
    session: Session, schedule: Schedule, fire_times: Sequence[datetime], *, now: datetime
) -> tuple[list[ScheduleRun], set[datetime]]:
    """``backfill`` runs for ``fire_times`` (fire times that already have a run keep it:
    a fire time runs at most once). Every run of those fire times, oldest first, and the
    fire times newly inserted."""
    inserted = insert_runs(
        session, schedule.id, [(fire, ScheduleRunKind.BACKFILL) for fire in fire_times], now=now
    )
    runs: list[ScheduleRun] = []
    for start in range(0, len(fire_times), _INSERT_CHUNK):
        chunk = fire_times[start : start + _INSERT_CHUNK]
        runs.extend(
            session.scalars(
                select(ScheduleRun).where(
                    ScheduleRun.schedule_id == schedule.id, ScheduleRun.fire_time.in_(chunk)
                )
            ).all()
        )
    runs.sort(key=lambda run: run.fire_time)
    return runs, inserted
