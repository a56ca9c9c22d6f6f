"""The requests of the schedule use cases (``ScheduleCreate``, ``ScheduleUpdate``,
``BackfillRequest``): shape checks, including the cron expression, the time zone and the
instants. The template is checked against the server's configuration by
:mod:`ponder.schedules.service`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ponder.batches.spec import BatchTemplate
from ponder.jsonlimits import check_storable
from ponder.schedules.cron import CronError, CronSchedule, parse_cron, parse_timezone

MAX_ACTIVE_RUNS = 100
# datetimes outside these years (as written) are refused (fire times are computed up to
# 2999); the API document says so with a pattern on the instants
_FIRST_YEAR, _LAST_YEAR = 1970, 2999
_YEARS: dict[str, Any] = {"pattern": r"^(19[7-9][0-9]|2[0-9]{3})-"}

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
    if not _FIRST_YEAR <= value.year <= _LAST_YEAR:
        raise ValueError(f"must be between the years {_FIRST_YEAR} and {_LAST_YEAR}")
    return value.astimezone(UTC)


def check_order(start_time: datetime | None, end_time: datetime | None) -> None:
    """ValueError unless ``start_time`` (if any) is no later than ``end_time`` (if any)."""
    if start_time is not None and end_time is not None and start_time > end_time:
        raise ValueError("start_time must not be later than end_time")


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
    start_time: datetime | None = Field(
        default=None, description=_START_HELP, json_schema_extra=_YEARS
    )
    end_time: datetime | None = Field(default=None, description=_END_HELP, json_schema_extra=_YEARS)

    @field_validator("name", "cron", "timezone", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        return check_storable(value, where=info.field_name or "")

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
        check_order(self.start_time, self.end_time)
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
    start_time: datetime | None = Field(
        default=None, description=_START_HELP, json_schema_extra=_YEARS
    )
    end_time: datetime | None = Field(default=None, description=_END_HELP, json_schema_extra=_YEARS)

    @field_validator("name", "cron", "timezone", mode="before")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        return check_storable(value, where=info.field_name or "")

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


class BackfillRequest(BaseModel):
    """A past time range whose fire times should run now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"start": "2026-01-01T00:00:00Z", "end": "2026-01-07T23:59:59Z"}]
        },
    )

    start: datetime = Field(
        description="The range's first instant (ISO 8601 with a UTC offset), included.",
        json_schema_extra=_YEARS,
    )
    end: datetime = Field(
        description="The range's last instant, included; not in the future (the schedule "
        "itself runs future fire times).",
        json_schema_extra=_YEARS,
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
