"""The schedule use cases: create, list, read, change, delete, trigger, backfill and list
runs (``/v1/schedules`` is a thin adapter over them).

The use cases that check a template or start runs are methods of
:class:`ScheduleService`, which holds what they need; the others are plain functions of a
session. All of them raise :class:`ponder.errors.NotFound` for a schedule the tenant does
not have, :class:`ponder.errors.Conflict` for a name already taken and
:class:`ponder.field_errors.Invalid` for a request that cannot be carried out (field
locations as the API reports them: ``body``, ``query``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ponder.batches.feeder import feed
from ponder.batches.spec import BatchTemplate
from ponder.config import Settings
from ponder.errors import Conflict, NotFound
from ponder.field_errors import Invalid, invalid
from ponder.jobspec import JobValidator
from ponder.pagination import Cursor, Page, newest_first, parse_cursor
from ponder.queue import JobQueue
from ponder.quotas import check_room, load_limits
from ponder.schedules.cron import CronError
from ponder.schedules.launch import TemplateInvalid, TemplateLauncher
from ponder.schedules.spec import BackfillRequest, ScheduleCreate, ScheduleUpdate, check_order
from ponder.schedules.store import (
    backfill_runs,
    cron_of,
    restart_next_fire,
    start_schedule_runs,
    trigger_run,
    window_of,
)
from ponder.tables import Schedule, ScheduleRun, ScheduleRunStatus, canonical_id, utcnow

# how many upcoming fire times a schedule shows
NEXT_FIRE_TIMES = 5
# how many of its latest runs a schedule's overview holds
RECENT_RUNS = 10

_TIMING_FIELDS = ("cron", "timezone", "start_time", "end_time")


@dataclass(frozen=True)
class ScheduleOverview:
    """A schedule and the state of its runs."""

    schedule: Schedule
    pending_runs: int  # waiting for a free slot under max_active_runs
    active_runs: int  # their batch has not finished
    recent_runs: list[ScheduleRun]  # the RECENT_RUNS most recently created, newest first


@dataclass(frozen=True)
class Backfill:
    """The runs of a backfill's fire times, oldest first, and how many it created (the
    others already existed: a fire time runs at most once)."""

    runs: list[ScheduleRun]
    created: int

    @property
    def existing(self) -> int:
        return len(self.runs) - self.created


@dataclass(frozen=True)
class ScheduleService:
    """The schedule use cases that check templates or start runs. ``validator`` checks
    each item of a template exactly as ``POST /v1/jobs`` would
    (``ponder.submission.job_validator``); runs that may start are started at once in
    their own transactions (``sessions``), and their batches' first items handed to
    ``queue`` (the beat tick and the reaper's feeder would, a few seconds later)."""

    sessions: sessionmaker[Session]
    settings: Settings
    validator: JobValidator
    queue: JobQueue

    @property
    def launcher(self) -> TemplateLauncher:
        return TemplateLauncher(self.settings, self.validator)

    def create(self, session: Session, tenant_id: str, spec: ScheduleCreate) -> ScheduleOverview:
        """Create a schedule, committed. The cron expression must fire after now (and
        after ``start_time``); the template is checked as a batch would be."""
        now = utcnow()
        _refuse_taken_name(session, tenant_id, spec.name, other_than=None)
        schedule = Schedule(
            tenant_id=tenant_id,
            name=spec.name,
            cron=spec.cron,
            timezone=spec.timezone,
            template=spec.template.model_dump(mode="json"),
            catchup=spec.catchup,
            max_active_runs=spec.max_active_runs,
            enabled=spec.enabled,
            start_time=spec.start_time,
            end_time=spec.end_time,
            created_at=now,
            updated_at=now,
        )
        restart_next_fire(schedule, now)
        if schedule.next_fire_time is None:
            raise _never_fires(schedule)
        self._check_template(session, tenant_id, spec.template)
        check_room(session, load_limits(session, tenant_id, self.settings), "schedules")
        session.add(schedule)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # a concurrent request took the name
            raise _name_conflict(spec.name, None) from None
        return self.overview(session, schedule)

    def read(self, session: Session, tenant_id: str, schedule_id: str) -> ScheduleOverview:
        """The tenant's schedule with the state of its runs."""
        return self.overview(session, get_schedule(session, tenant_id, schedule_id))

    def overview(self, session: Session, schedule: Schedule) -> ScheduleOverview:
        runs = session.scalars(
            select(ScheduleRun)
            .where(ScheduleRun.schedule_id == schedule.id)
            .order_by(ScheduleRun.created_at.desc(), ScheduleRun.fire_time.desc())
            .limit(RECENT_RUNS)
        ).all()
        pending = session.scalar(
            select(func.count())
            .select_from(ScheduleRun)
            .where(
                ScheduleRun.schedule_id == schedule.id,
                ScheduleRun.status == ScheduleRunStatus.PENDING,
            )
        )
        return ScheduleOverview(
            schedule=schedule,
            pending_runs=int(pending or 0),
            active_runs=self.launcher.active_runs(session, schedule.id),
            recent_runs=list(runs),
        )

    def update(
        self, session: Session, tenant_id: str, schedule_id: str, changes: ScheduleUpdate
    ) -> ScheduleOverview:
        """Change the fields set in ``changes``, committed. Changing the timing, or
        re-enabling the schedule, restarts it from the next fire time after now; raising
        ``max_active_runs`` starts waiting runs at once."""
        now = utcnow()
        schedule = get_schedule(session, tenant_id, schedule_id)
        fields = changes.model_dump(exclude_unset=True, exclude={"template"})
        if changes.name is not None and changes.name != schedule.name:
            _refuse_taken_name(session, tenant_id, changes.name, other_than=schedule.id)
        if changes.template is not None:
            self._check_template(session, tenant_id, changes.template)
            schedule.template = changes.template.model_dump(mode="json")
        restart = any(
            field in fields and fields[field] != getattr(schedule, field)
            for field in _TIMING_FIELDS
        ) or (fields.get("enabled") is True and not schedule.enabled)
        for field, value in fields.items():
            setattr(schedule, field, value)
        try:
            check_order(schedule.start_time, schedule.end_time)
        except ValueError as exc:
            raise invalid(("body",), str(exc)) from None
        if restart:
            restart_next_fire(schedule, now)
            if schedule.next_fire_time is None:
                raise _never_fires(schedule)
        schedule.updated_at = now
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raise _name_conflict(str(changes.name), None) from None
        if "max_active_runs" in fields:
            self.start_runs(schedule, now)
            session.expire_all()
        return self.overview(session, schedule)

    def trigger(self, session: Session, tenant_id: str, schedule_id: str) -> ScheduleRun:
        """A ``manual`` run now (also for a paused or ended schedule), committed and
        started at once unless ``max_active_runs`` batches are unfinished."""
        now = utcnow()
        schedule = get_schedule(session, tenant_id, schedule_id)
        run = trigger_run(session, schedule, now=now)
        session.commit()
        self.start_runs(schedule, now)
        session.refresh(run)
        return run

    def backfill(
        self, session: Session, tenant_id: str, schedule_id: str, window: BackfillRequest
    ) -> Backfill:
        """A ``backfill`` run for every fire time of the schedule's cron in
        [``window.start``, ``window.end``] (at most the server's
        ``schedule_max_backfill_runs``), committed; those that may start start at once."""
        now = utcnow()
        if window.end > now:
            raise invalid(
                ("body", "end"),
                f"is in the future ({window.end.isoformat()}); a backfill covers past fire "
                "times (the schedule runs the future ones itself)",
            )
        schedule = get_schedule(session, tenant_id, schedule_id)
        try:
            cron = cron_of(schedule)
        except CronError as exc:
            raise Conflict(f"the schedule cannot be evaluated: {exc}") from None
        most = self.settings.schedule_max_backfill_runs
        fire_times = list(islice(cron.between(window.start, window.end), most + 1))
        span = f"between {window.start.isoformat()} and {window.end.isoformat()}"
        if len(fire_times) > most:
            raise invalid(
                ("body",),
                f"{schedule.cron!r} ({schedule.timezone}) fires more than {most} times {span}; "
                f"a backfill covers at most {most} fire times, so split the range",
            )
        if not fire_times:
            raise invalid(
                ("body",), f"{schedule.cron!r} ({schedule.timezone}) has no fire time {span}"
            )
        runs, inserted = backfill_runs(session, schedule, fire_times, now=now)
        session.commit()
        self.start_runs(schedule, now)
        for run in runs:
            session.refresh(run)
        return Backfill(runs=runs, created=len(inserted))

    def start_runs(self, schedule: Schedule, now: datetime) -> None:
        """Start what may start at once (the beat tick would, a few seconds later), and
        queue the first items of the batches started (the reaper's feeder would, too)."""
        report = start_schedule_runs(self.sessions, schedule.id, self.launcher, now=now)
        if report.started:
            feed(self.sessions, self.queue.publish, self.settings, tenant_id=schedule.tenant_id)

    def _check_template(self, session: Session, tenant_id: str, template: BatchTemplate) -> None:
        try:
            self.launcher.check(session, tenant_id, template)
        except TemplateInvalid as exc:
            errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors]
            raise Invalid(f"template: {exc.detail}", errors) from None


def get_schedule(session: Session, tenant_id: str, schedule_id: str) -> Schedule:
    """The tenant's schedule; :class:`NotFound` also for another tenant's."""
    wanted = canonical_id(schedule_id)
    schedule = None
    if wanted is not None:
        schedule = session.scalars(
            select(Schedule).where(Schedule.id == wanted, Schedule.tenant_id == tenant_id)
        ).one_or_none()
    if schedule is None:
        shown = schedule_id if len(schedule_id) <= 64 else schedule_id[:64] + "..."
        raise NotFound(f"no schedule with id {shown!r} belongs to this API key's tenant")
    return schedule


def list_schedules(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    enabled: bool | None = None,
) -> Page[Schedule]:
    """A page of the tenant's schedules, newest first (``enabled``: only enabled or only
    paused ones). ``cursor`` is a previous page's ``next_cursor``; None for the first."""
    after = parse_cursor(cursor)
    query = select(Schedule).where(Schedule.tenant_id == tenant_id)
    if enabled is not None:
        query = query.where(Schedule.enabled.is_(enabled))
    return newest_first(
        session,
        query,
        time_column=Schedule.created_at,
        id_column=Schedule.id,
        limit=limit,
        after=after,
        position=lambda schedule: Cursor(schedule.created_at, schedule.id),
    )


def delete_schedule(session: Session, tenant_id: str, schedule_id: str) -> None:
    """Delete the schedule and its runs, committed. Batches already started are
    ordinary batches and keep running."""
    session.delete(get_schedule(session, tenant_id, schedule_id))
    session.commit()


def list_runs(
    session: Session,
    tenant_id: str,
    schedule_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
) -> Page[ScheduleRun]:
    """A page of the schedule's runs (only those with ``status``, if given), newest fire
    time first. ``cursor`` is a previous page's ``next_cursor``; None for the first."""
    schedule = get_schedule(session, tenant_id, schedule_id)
    after = parse_cursor(cursor)
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id)
    if status is not None:
        query = query.where(ScheduleRun.status == status)
    return newest_first(
        session,
        query,
        time_column=ScheduleRun.fire_time,
        id_column=ScheduleRun.id,
        limit=limit,
        after=after,
        position=lambda run: Cursor(run.fire_time, run.id),
    )


def next_fire_times(
    schedule: Schedule, now: datetime, count: int = NEXT_FIRE_TIMES
) -> list[datetime]:
    """The schedule's next (up to ``count``) fire times after ``now``, UTC; none while
    it is paused or once it has ended."""
    if not schedule.enabled:
        return []
    try:
        return window_of(schedule).upcoming(cron_of(schedule), now, count)
    except CronError:
        return []  # the time zone database changed under it; see its runs


def _refuse_taken_name(
    session: Session, tenant_id: str, name: str, *, other_than: str | None
) -> None:
    query = select(Schedule.id).where(Schedule.tenant_id == tenant_id, Schedule.name == name)
    if other_than is not None:
        query = query.where(Schedule.id != other_than)
    existing = session.scalars(query).first()
    if existing is not None:
        raise _name_conflict(name, existing)


def _name_conflict(name: str, existing: str | None) -> Conflict:
    which = f" (id {existing})" if existing else ""
    return Conflict(
        f"a schedule named {name!r} already exists{which}; choose another name, or change "
        "that schedule with PATCH"
    )


def _never_fires(schedule: Schedule) -> Invalid:
    bounds = []
    if schedule.start_time is not None:
        bounds.append(f"start_time {schedule.start_time.isoformat()}")
    if schedule.end_time is not None:
        bounds.append(f"end_time {schedule.end_time.isoformat()}")
    window = f" given {' and '.join(bounds)}" if bounds else ""
    return invalid(
        ("body", "end_time" if schedule.end_time is not None else "cron"),
        f"the schedule would never fire: {schedule.cron!r} ({schedule.timezone}) has no fire "
        f"time after now{window}",
    )
