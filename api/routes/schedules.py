"""``/v1/schedules``: cron schedules that create a batch from a template at each fire
time, plus manual triggers, backfills and the runs they made."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import ContextDep, CurrentTenant, RequireJson, SessionDep
from api.errors import ApiProblem, invalid
from ponder.batches.feeder import feed
from ponder.batches.spec import BatchTemplate
from ponder.schedules.cron import CronError, CronSchedule, parse_cron, parse_timezone
from ponder.schedules.launch import TemplateInvalid, TemplateLauncher
from ponder.schedules.store import (
    backfill_runs,
    cron_of,
    restart_next_fire,
    start_schedule_runs,
    trigger_run,
    window_of,
)
from ponder.submission import job_validator
from ponder.tables import Schedule, ScheduleRun, ScheduleRunStatus, canonical_id, utcnow

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

MAX_ACTIVE_RUNS = 100
NEXT_FIRE_TIMES = 5
RECENT_RUNS = 10
# datetimes outside these years are refused (fire times are computed up to 2999)
_FIRST_YEAR, _LAST_YEAR = 1970, 2999

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such schedule for this API key's tenant."}
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The tenant already has a schedule with this name."},
    413: {"description": "The body is larger than the server accepts."},
    415: {"description": "The body is not JSON."},
}

EXAMPLE: dict[str, Any] = {
    "name": "nightly-game24",
    "cron": "30 2 * * *",
    "timezone": "Europe/Paris",
    "template": {
        "dataset": "game24-easy",
        "defaults": {
            "strategy": {"name": "best_of_n", "params": {"n": 8}},
            "model": "sim",
            "budget": {"max_tokens": 20000},
        },
    },
    "catchup": False,
    "max_active_runs": 1,
}

_CRON_HELP = (
    "Five fields `minute hour day-of-month month day-of-week` (e.g. `30 2 * * *` is 02:30 "
    "every day, `*/15 9-17 * * mon-fri` every quarter hour in office hours), or an alias "
    "(`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). Matched against local time "
    "in `timezone`. On a daylight-saving day a local time that is skipped fires at the "
    "moment the clocks jump forward, and a local time that happens twice fires once, at "
    "its first occurrence."
)
_TIMEZONE_HELP = (
    "The IANA time zone the cron expression is read in, e.g. `Europe/Paris` or "
    "`America/New_York`. Default `UTC`. Fire times are always reported in UTC."
)
_TEMPLATE_HELP = (
    "The batch each run creates: a `dataset` (uploaded or built-in) or `from_jobs` (re-run "
    "past jobs), plus `defaults` (strategy, model, budget, ...), an optional total "
    "`budget` cap, `webhook_url` and `metadata` — the fields of `POST /v1/batches` "
    "without `items`. It is checked now exactly as a batch would be."
)
_CATCHUP_HELP = (
    "What happens to fire times missed while the service was down: `true` runs every one "
    "of them (oldest first); `false` (default) runs only the newest."
)
_MAX_ACTIVE_HELP = (
    f"How many of this schedule's batches may be unfinished at once (1 to {MAX_ACTIVE_RUNS}; "
    "default 1). A run due beyond it waits as `pending` and starts when an earlier batch "
    "finishes."
)
_START_HELP = (
    "No fire time before this instant (ISO 8601 with a UTC offset). Default: fire times "
    "from now on."
)
_END_HELP = "No fire time after this instant (ISO 8601 with a UTC offset); null: no end."


# ---------------------------------------------------------------- request bodies


def _check_name(name: str) -> str:
    if not name.strip():
        raise ValueError("must not be blank")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError("must not contain control characters")
    return name


def _check_cron(expression: str) -> str:
    try:
        parse_cron(expression)
        CronSchedule(expression)  # also: does it name any real date?
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return " ".join(expression.split())


def _check_timezone(name: str) -> str:
    try:
        parse_timezone(name)
    except CronError as exc:
        raise ValueError(str(exc)) from None
    return name


def _check_instant(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give a UTC offset, e.g. 2026-01-31T12:00:00Z")
    if not _FIRST_YEAR <= value.astimezone(UTC).year <= _LAST_YEAR:
        raise ValueError(f"must be between the years {_FIRST_YEAR} and {_LAST_YEAR}")
    return value.astimezone(UTC)


class ScheduleCreate(BaseModel):
    """A schedule: every time `cron` fires in `timezone`, a batch is created from
    `template`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    name: str = Field(
        min_length=1,
        max_length=200,
        description="A name unique among the tenant's schedules, e.g. `nightly-eval`.",
    )
    cron: str = Field(max_length=200, description=_CRON_HELP)
    timezone: str = Field(default="UTC", max_length=64, description=_TIMEZONE_HELP)
    template: BatchTemplate = Field(description=_TEMPLATE_HELP)
    catchup: bool = Field(default=False, strict=True, description=_CATCHUP_HELP)
    max_active_runs: int = Field(
        default=1, ge=1, le=MAX_ACTIVE_RUNS, strict=True, description=_MAX_ACTIVE_HELP
    )
    enabled: bool = Field(
        default=True,
        strict=True,
        description="`false` pauses the schedule: no fire time runs until it is enabled "
        "again (fire times in between are not caught up). Triggers and backfills still work.",
    )
    start_time: datetime | None = Field(default=None, description=_START_HELP)
    end_time: datetime | None = Field(default=None, description=_END_HELP)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("start_time", "end_time")
    @classmethod
    def _instant(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _check_instant(value)

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleCreate:
        _check_order(self.start_time, self.end_time)
        return self


class ScheduleUpdate(BaseModel):
    """The fields to change; those left out keep their value. `start_time` and
    `end_time` may be set to null to remove them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    name: str | None = Field(default=None, min_length=1, max_length=200, description="New name.")
    cron: str | None = Field(default=None, max_length=200, description=_CRON_HELP)
    timezone: str | None = Field(default=None, max_length=64, description=_TIMEZONE_HELP)
    template: BatchTemplate | None = Field(default=None, description=_TEMPLATE_HELP)
    catchup: bool | None = Field(default=None, strict=True, description=_CATCHUP_HELP)
    max_active_runs: int | None = Field(
        default=None, ge=1, le=MAX_ACTIVE_RUNS, strict=True, description=_MAX_ACTIVE_HELP
    )
    enabled: bool | None = Field(
        default=None,
        strict=True,
        description="Pause (`false`) or resume (`true`). Resuming starts from the next fire "
        "time after now: fire times while paused are not caught up (backfill them).",
    )
    start_time: datetime | None = Field(default=None, description=_START_HELP)
    end_time: datetime | None = Field(default=None, description=_END_HELP)

    # These run only for fields actually sent: an explicit null is refused.
    @field_validator("template", "catchup", "max_active_runs", "enabled")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        return _present(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str:
        return _check_name(_present(value))

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str:
        return _check_cron(_present(value))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str:
        return _check_timezone(_present(value))

    @field_validator("start_time", "end_time")
    @classmethod
    def _instant(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _check_instant(value)


def _present(value: Any) -> Any:
    if value is None:
        raise ValueError("cannot be null; leave the field out to keep its current value")
    return value


def _check_order(start_time: datetime | None, end_time: datetime | None) -> None:
    if start_time is not None and end_time is not None and start_time > end_time:
        raise ValueError("start_time must not be later than end_time")


class BackfillRequest(BaseModel):
    """A past time range whose fire times should run now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"start": "2026-01-01T00:00:00Z", "end": "2026-01-07T23:59:59Z"}]
        },
    )

    start: datetime = Field(
        description="The range's first instant (ISO 8601 with a UTC offset), included."
    )
    end: datetime = Field(
        description="The range's last instant, included; not in the future (the schedule "
        "itself runs future fire times)."
    )

    @field_validator("start", "end")
    @classmethod
    def _instant(cls, value: datetime) -> datetime:
        return _check_instant(value)

    @model_validator(mode="after")
    def _ordered(self) -> BackfillRequest:
        if self.start > self.end:
            raise ValueError("start must not be later than end")
        return self


# ---------------------------------------------------------------- responses

RunKind = Literal["scheduled", "catchup", "manual", "backfill"]
RunStatus = Literal["pending", "started", "skipped"]


class ScheduleRunPublic(BaseModel):
    """One fire time of a schedule and the batch it made."""

    id: str = Field(description="The run's id (a UUID).")
    schedule_id: str = Field(description="The schedule it belongs to.")
    fire_time: datetime = Field(
        description="The fire time it stands for (UTC). For a `manual` run: when it was "
        "triggered. A schedule has at most one run per fire time."
    )
    kind: RunKind = Field(
        description="`scheduled` (fired on time), `catchup` (a fire time missed while the "
        "service was down, run late), `manual` (a trigger) or `backfill`."
    )
    status: RunStatus = Field(
        description="`pending` (waiting for a free slot under `max_active_runs`), `started` "
        "(its batch exists: follow it with `GET /v1/batches/{batch_id}`) or `skipped` (no "
        "batch could be made; `detail` says why)."
    )
    batch_id: str | None = Field(description="The batch the run created, once started.")
    detail: str | None = Field(
        description="Why the run was skipped, or for a started run which items its batch "
        "refused; null otherwise."
    )
    created_at: datetime = Field(description="When the run was created (UTC).")
    started_at: datetime | None = Field(
        description="When it started (or was skipped); null while pending."
    )

    @classmethod
    def from_row(cls, run: ScheduleRun) -> ScheduleRunPublic:
        return cls(
            id=run.id,
            schedule_id=run.schedule_id,
            fire_time=run.fire_time,
            kind=cast(RunKind, run.kind),
            status=cast(RunStatus, run.status),
            batch_id=run.batch_id,
            detail=run.detail,
            created_at=run.created_at,
            started_at=run.started_at,
        )


class SchedulePublic(BaseModel):
    """A schedule as the API shows it."""

    id: str = Field(description="The schedule's id (a UUID).")
    name: str = Field(description="Its name, unique among the tenant's schedules.")
    cron: str = Field(description="The cron expression, as given.")
    timezone: str = Field(description="The IANA time zone the expression is read in.")
    template: dict[str, Any] = Field(description="The batch template each run creates.")
    catchup: bool = Field(description="Whether fire times missed during downtime all run.")
    max_active_runs: int = Field(description="Unfinished batches allowed at once.")
    enabled: bool = Field(description="Whether the schedule fires (false: paused).")
    start_time: datetime | None = Field(description="No fire time before this (UTC).")
    end_time: datetime | None = Field(description="No fire time after this (UTC).")
    last_fire_time: datetime | None = Field(
        description="The newest fire time that has a run from the cron (not counting "
        "triggers and backfills), UTC."
    )
    next_fire_times: list[datetime] = Field(
        description=f"The next (up to {NEXT_FIRE_TIMES}) fire times after now, UTC; empty "
        "when the schedule is paused or has ended."
    )
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When it last changed (UTC).")

    @classmethod
    def fields_of(cls, schedule: Schedule, now: datetime) -> dict[str, Any]:
        upcoming: list[datetime] = []
        if schedule.enabled:
            try:
                upcoming = window_of(schedule).upcoming(cron_of(schedule), now, NEXT_FIRE_TIMES)
            except CronError:
                upcoming = []  # the time zone database changed under it; see its runs
        return {
            "id": schedule.id,
            "name": schedule.name,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "template": schedule.template,
            "catchup": schedule.catchup,
            "max_active_runs": schedule.max_active_runs,
            "enabled": schedule.enabled,
            "start_time": schedule.start_time,
            "end_time": schedule.end_time,
            "last_fire_time": schedule.last_fire_time,
            "next_fire_times": upcoming,
            "created_at": schedule.created_at,
            "updated_at": schedule.updated_at,
        }

    @classmethod
    def from_row(cls, schedule: Schedule, now: datetime) -> SchedulePublic:
        return cls(**cls.fields_of(schedule, now))


class ScheduleDetail(SchedulePublic):
    """A schedule with its latest runs."""

    pending_runs: int = Field(description="Runs waiting for a free slot.")
    active_runs: int = Field(description="Runs whose batch has not finished yet.")
    recent_runs: list[ScheduleRunPublic] = Field(
        description=f"The {RECENT_RUNS} most recently created runs, newest first "
        "(`GET /v1/schedules/{id}/runs` lists them all)."
    )


class SchedulesPublic(BaseModel):
    """One page of schedules, newest first."""

    data: list[SchedulePublic] = Field(description="The schedules on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ScheduleRunsPublic(BaseModel):
    """One page of a schedule's runs, newest fire time first."""

    data: list[ScheduleRunPublic] = Field(description="The runs on this page.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class BackfillPublic(BaseModel):
    """The runs of a backfill's fire times, oldest first."""

    created: int = Field(description="Runs created by this request.")
    existing: int = Field(
        description="Fire times in the range that already had a run (a fire time runs at "
        "most once); their runs are listed too."
    )
    runs: list[ScheduleRunPublic] = Field(
        description="One run per fire time in the range, oldest first. Those beyond "
        "`max_active_runs` are `pending` and start as earlier batches finish."
    )


# ---------------------------------------------------------------- helpers


def _launcher(context: ContextDep) -> TemplateLauncher:
    return TemplateLauncher(
        context.settings, job_validator(context.settings, context.models, context.strategies)
    )


def _not_found(schedule_id: str) -> ApiProblem:
    shown = schedule_id if len(schedule_id) <= 64 else schedule_id[:64] + "..."
    return ApiProblem(404, f"no schedule with id {shown!r} belongs to this API key's tenant")


def _get(session: Session, tenant_id: str, schedule_id: str) -> Schedule:
    wanted = canonical_id(schedule_id)
    schedule = None
    if wanted is not None:
        schedule = session.scalars(
            select(Schedule).where(Schedule.id == wanted, Schedule.tenant_id == tenant_id)
        ).one_or_none()
    if schedule is None:
        raise _not_found(schedule_id)
    return schedule


def _name_taken(session: Session, tenant_id: str, name: str, *, other_than: str | None) -> None:
    query = select(Schedule.id).where(Schedule.tenant_id == tenant_id, Schedule.name == name)
    if other_than is not None:
        query = query.where(Schedule.id != other_than)
    existing = session.scalars(query).first()
    if existing is not None:
        raise _name_conflict(name, existing)


def _name_conflict(name: str, existing: str | None) -> ApiProblem:
    which = f" (id {existing})" if existing else ""
    return ApiProblem(
        409,
        f"a schedule named {name!r} already exists{which}; choose another name, or change "
        "that schedule with PATCH",
    )


def _check_template(
    session: Session, tenant_id: str, template: BatchTemplate, context: ContextDep
) -> None:
    try:
        _launcher(context).check(session, tenant_id, template)
    except TemplateInvalid as exc:
        errors = [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors]
        raise ApiProblem(422, f"template: {exc.detail}", errors=errors or None) from None


def _never_fires(schedule: Schedule) -> ApiProblem:
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


def _detail(session: Session, schedule: Schedule, context: ContextDep) -> ScheduleDetail:
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
    return ScheduleDetail(
        **SchedulePublic.fields_of(schedule, utcnow()),
        pending_runs=int(pending or 0),
        active_runs=_launcher(context).active_runs(session, schedule.id),
        recent_runs=[ScheduleRunPublic.from_row(run) for run in runs],
    )


def _start(context: ContextDep, schedule: Schedule, now: datetime) -> None:
    """Start what may start at once (the beat tick would, a few seconds later), and queue
    the first items of the batches started (the reaper's feeder would, too)."""
    report = start_schedule_runs(context.sessions, schedule.id, _launcher(context), now=now)
    if report.started:
        feed(
            context.sessions,
            context.dispatcher.publish,
            context.settings,
            tenant_id=schedule.tenant_id,
        )


def _encode_cursor(at: datetime, row_id: str) -> str:
    raw = json.dumps([at.isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(text: str | None) -> tuple[datetime, str] | None:
    if text is None:
        return None
    decoded = _parse_cursor(text) if len(text) <= 200 else None
    if decoded is None:
        raise invalid(
            ("query", "cursor"),
            "not a valid cursor; pass the `next_cursor` of a previous page unchanged, "
            "or omit it for the first page",
        )
    return decoded


def _parse_cursor(text: str) -> tuple[datetime, str] | None:
    try:
        raw: Any = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        at_text, row_id = raw
        at = datetime.fromisoformat(at_text)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    canonical = canonical_id(row_id) if isinstance(row_id, str) else None
    if canonical is None or at.tzinfo is None:
        return None
    return at, canonical


# ---------------------------------------------------------------- routes


@router.post(
    "",
    status_code=201,
    summary="Create a schedule",
    responses=_WRITE_ERRORS,
    response_description="The new schedule, with its next fire times.",
)
def create_schedule(
    tenant: CurrentTenant,
    _: RequireJson,
    body: ScheduleCreate,
    session: SessionDep,
    context: ContextDep,
    response: Response,
) -> ScheduleDetail:
    """Create a schedule. From its first fire time after now (or after `start_time`),
    each fire time creates one batch from `template`. The cron expression, the time zone
    and the template are all checked here (the template exactly as `POST /v1/batches`
    would check it), so an accepted schedule can run."""
    now = utcnow()
    _name_taken(session, tenant.id, body.name, other_than=None)
    schedule = Schedule(
        tenant_id=tenant.id,
        name=body.name,
        cron=body.cron,
        timezone=body.timezone,
        template=body.template.model_dump(mode="json"),
        catchup=body.catchup,
        max_active_runs=body.max_active_runs,
        enabled=body.enabled,
        start_time=body.start_time,
        end_time=body.end_time,
        created_at=now,
        updated_at=now,
    )
    restart_next_fire(schedule, now)
    if schedule.next_fire_time is None:
        raise _never_fires(schedule)
    _check_template(session, tenant.id, body.template, context)
    session.add(schedule)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # a concurrent request took the name
        raise _name_conflict(body.name, None) from None
    response.headers["Location"] = f"{router.prefix}/{schedule.id}"
    return _detail(session, schedule, context)


@router.get("", summary="List schedules")
def list_schedules(
    tenant: CurrentTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Schedules per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(description="The `next_cursor` of the previous page; omit for the first page."),
    ] = None,
    enabled: Annotated[
        bool | None, Query(description="Only enabled (`true`) or paused (`false`) schedules.")
    ] = None,
) -> SchedulesPublic:
    """The tenant's schedules, newest first, a page at a time."""
    after = _decode_cursor(cursor)
    query = select(Schedule).where(Schedule.tenant_id == tenant.id)
    if enabled is not None:
        query = query.where(Schedule.enabled.is_(enabled))
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(Schedule.created_at < at, and_(Schedule.created_at == at, Schedule.id < last_id))
        )
    rows = session.scalars(
        query.order_by(Schedule.created_at.desc(), Schedule.id.desc()).limit(limit + 1)
    ).all()
    now = utcnow()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = _encode_cursor(page[-1].created_at, page[-1].id)
    return SchedulesPublic(
        data=[SchedulePublic.from_row(s, now) for s in page], next_cursor=next_cursor
    )


@router.get("/{schedule_id}", summary="Get a schedule", responses=_NOT_FOUND)
def read_schedule(
    schedule_id: str, tenant: CurrentTenant, session: SessionDep, context: ContextDep
) -> ScheduleDetail:
    """The schedule, its next fire times and its most recent runs."""
    return _detail(session, _get(session, tenant.id, schedule_id), context)


@router.patch(
    "/{schedule_id}",
    summary="Change a schedule",
    responses={**_NOT_FOUND, **_WRITE_ERRORS},
)
def update_schedule(
    schedule_id: str,
    tenant: CurrentTenant,
    _: RequireJson,
    body: ScheduleUpdate,
    session: SessionDep,
    context: ContextDep,
) -> ScheduleDetail:
    """Change some of the schedule's fields. Changing `cron`, `timezone`, `start_time` or
    `end_time`, or re-enabling it, restarts it from the next fire time after now (fire
    times before the change are not caught up). Runs already made are kept; raising
    `max_active_runs` lets waiting runs start at once."""
    now = utcnow()
    schedule = _get(session, tenant.id, schedule_id)
    changes = body.model_dump(exclude_unset=True, exclude={"template"})
    if body.name is not None and body.name != schedule.name:
        _name_taken(session, tenant.id, body.name, other_than=schedule.id)
    if body.template is not None:
        _check_template(session, tenant.id, body.template, context)
        schedule.template = body.template.model_dump(mode="json")
    timing = {"cron", "timezone", "start_time", "end_time"}
    restart = any(
        field in changes and changes[field] != getattr(schedule, field) for field in timing
    ) or (changes.get("enabled") is True and not schedule.enabled)
    for field, value in changes.items():
        setattr(schedule, field, value)
    try:
        _check_order(schedule.start_time, schedule.end_time)
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
        raise _name_conflict(str(body.name), None) from None
    if "max_active_runs" in changes:
        _start(context, schedule, now)
        session.expire_all()
    return _detail(session, schedule, context)


@router.delete("/{schedule_id}", status_code=204, summary="Delete a schedule", responses=_NOT_FOUND)
def delete_schedule(schedule_id: str, tenant: CurrentTenant, session: SessionDep) -> Response:
    """Delete the schedule and its runs. Pending runs never start; batches already
    started keep running (they are ordinary batches)."""
    session.delete(_get(session, tenant.id, schedule_id))
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{schedule_id}/trigger",
    status_code=202,
    summary="Run a schedule now",
    responses=_NOT_FOUND,
    response_description="The new `manual` run: `started` with its batch, or `pending`.",
)
def trigger_schedule(
    schedule_id: str, tenant: CurrentTenant, session: SessionDep, context: ContextDep
) -> ScheduleRunPublic:
    """Create one run now, outside the cron (also for a paused or ended schedule). It
    starts at once unless `max_active_runs` batches are unfinished; then it waits as
    `pending` and starts as they finish."""
    now = utcnow()
    schedule = _get(session, tenant.id, schedule_id)
    run = trigger_run(session, schedule, now=now)
    session.commit()
    _start(context, schedule, now)
    session.refresh(run)
    return ScheduleRunPublic.from_row(run)


@router.post(
    "/{schedule_id}/backfill",
    status_code=202,
    summary="Run a schedule's past fire times",
    responses=_NOT_FOUND,
    response_description="One run per fire time in the range, oldest first.",
)
def backfill_schedule(
    schedule_id: str,
    tenant: CurrentTenant,
    _: RequireJson,
    body: BackfillRequest,
    session: SessionDep,
    context: ContextDep,
) -> BackfillPublic:
    """Create one `backfill` run for every fire time of the schedule's cron in
    [`start`, `end`] (both included), e.g. to run the days before the schedule existed or
    while it was paused. They start oldest first, at most `max_active_runs` at a time;
    the others wait as `pending`. A fire time that already has a run keeps it (a fire
    time runs at most once). `start_time`/`end_time`/`enabled` do not apply."""
    now = utcnow()
    if body.end > now:
        raise invalid(
            ("body", "end"),
            f"is in the future ({body.end.isoformat()}); a backfill covers past fire times "
            "(the schedule runs the future ones itself)",
        )
    schedule = _get(session, tenant.id, schedule_id)
    try:
        cron = cron_of(schedule)
    except CronError as exc:
        raise ApiProblem(409, f"the schedule cannot be evaluated: {exc}") from None
    most = context.settings.schedule_max_backfill_runs
    fire_times = list(islice(cron.between(body.start, body.end), most + 1))
    span = f"between {body.start.isoformat()} and {body.end.isoformat()}"
    if len(fire_times) > most:
        raise invalid(
            ("body",),
            f"{schedule.cron!r} ({schedule.timezone}) fires more than {most} times {span}; "
            f"a backfill covers at most {most} fire times, so split the range",
        )
    if not fire_times:
        raise invalid(("body",), f"{schedule.cron!r} ({schedule.timezone}) has no fire time {span}")
    runs, inserted = backfill_runs(session, schedule, fire_times, now=now)
    session.commit()
    _start(context, schedule, now)
    for run in runs:
        session.refresh(run)
    return BackfillPublic(
        created=len(inserted),
        existing=len(runs) - len(inserted),
        runs=[ScheduleRunPublic.from_row(run) for run in runs],
    )


@router.get("/{schedule_id}/runs", summary="List a schedule's runs", responses=_NOT_FOUND)
def list_runs(
    schedule_id: str,
    tenant: CurrentTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Runs per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(description="The `next_cursor` of the previous page; omit for the first page."),
    ] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
) -> ScheduleRunsPublic:
    """Every run of the schedule (scheduled, catch-up, manual and backfill), newest fire
    time first, a page at a time."""
    schedule = _get(session, tenant.id, schedule_id)
    after = _decode_cursor(cursor)
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id)
    if status is not None:
        query = query.where(ScheduleRun.status == status)
    if after is not None:
        query = query.where(ScheduleRun.fire_time < after[0])
    rows = session.scalars(query.order_by(ScheduleRun.fire_time.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = _encode_cursor(page[-1].fire_time, page[-1].id)
    return ScheduleRunsPublic(
        data=[ScheduleRunPublic.from_row(run) for run in page], next_cursor=next_cursor
    )
