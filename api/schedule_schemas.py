"""Response bodies of ``/v1/schedules`` (requests are :mod:`ponder.schedules.spec`),
built field by field from the tables and :mod:`ponder.schedules.service`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field

from api.schemas import StoredObject
from ponder.schedules.service import (
    NEXT_FIRE_TIMES,
    RECENT_RUNS,
    Backfill,
    ScheduleOverview,
    next_fire_times,
)
from ponder.tables import Schedule, ScheduleRun

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
    template: StoredObject = Field(description="The batch template each run creates.")
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
            "next_fire_times": next_fire_times(schedule, now),
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

    @classmethod
    def from_overview(cls, overview: ScheduleOverview, now: datetime) -> ScheduleDetail:
        return cls(
            **SchedulePublic.fields_of(overview.schedule, now),
            pending_runs=overview.pending_runs,
            active_runs=overview.active_runs,
            recent_runs=[ScheduleRunPublic.from_row(run) for run in overview.recent_runs],
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

    @classmethod
    def from_backfill(cls, backfill: Backfill) -> BackfillPublic:
        return cls(
            created=backfill.created,
            existing=backfill.existing,
            runs=[ScheduleRunPublic.from_row(run) for run in backfill.runs],
        )
