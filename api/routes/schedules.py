"""``/v1/schedules``: cron schedules that create a batch from a template at each fire
time, plus manual triggers, backfills and the runs they made. Adapters over
:mod:`ponder.schedules.service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import ContextDep, ReadTenant, RequireJson, SessionDep, SubmitTenant
from api.schedule_schemas import (
    BackfillPublic,
    RunStatus,
    ScheduleDetail,
    SchedulePublic,
    ScheduleRunPublic,
    ScheduleRunsPublic,
    SchedulesPublic,
)
from ponder.schedules import service
from ponder.schedules.service import ScheduleService
from ponder.schedules.spec import BackfillRequest, ScheduleCreate, ScheduleUpdate
from ponder.submission import job_validator
from ponder.tables import utcnow

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such schedule for this API key's tenant."}
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The tenant already has a schedule with this name."},
    413: {"description": "The body is larger than the server accepts."},
    415: {"description": "The body is not JSON."},
}


def _service(context: ContextDep) -> ScheduleService:
    return ScheduleService(
        sessions=context.sessions,
        settings=context.settings,
        validator=job_validator(context.settings, context.models, context.strategies),
        queue=context.dispatcher,
    )


# ---------------------------------------------------------------- routes


@router.post(
    "",
    status_code=201,
    summary="Create a schedule",
    responses={
        **_WRITE_ERRORS,
        429: {"description": "The tenant has as many schedules as it may (`max_schedules`)."},
    },
    response_description="The new schedule, with its next fire times.",
)
def create_schedule(
    tenant: SubmitTenant,
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
    overview = _service(context).create(session, tenant.id, body)
    response.headers["Location"] = f"{router.prefix}/{overview.schedule.id}"
    return ScheduleDetail.from_overview(overview, utcnow())


@router.get("", summary="List schedules")
def list_schedules(
    tenant: ReadTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Schedules per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The `next_cursor` of the previous page; omit it (or leave it empty) "
            "for the first page."
        ),
    ] = None,
    enabled: Annotated[
        bool | None, Query(description="Only enabled (`true`) or paused (`false`) schedules.")
    ] = None,
) -> SchedulesPublic:
    """The tenant's schedules, newest first, a page at a time."""
    page = service.list_schedules(session, tenant.id, limit=limit, cursor=cursor, enabled=enabled)
    now = utcnow()
    return SchedulesPublic(
        data=[SchedulePublic.from_row(s, now) for s in page.rows], next_cursor=page.next_cursor
    )


@router.get("/{schedule_id}", summary="Get a schedule", responses=_NOT_FOUND)
def read_schedule(
    schedule_id: str, tenant: ReadTenant, session: SessionDep, context: ContextDep
) -> ScheduleDetail:
    """The schedule, its next fire times and its most recent runs."""
    overview = _service(context).read(session, tenant.id, schedule_id)
    return ScheduleDetail.from_overview(overview, utcnow())


@router.patch(
    "/{schedule_id}",
    summary="Change a schedule",
    responses={**_NOT_FOUND, **_WRITE_ERRORS},
)
def update_schedule(
    schedule_id: str,
    tenant: SubmitTenant,
    _: RequireJson,
    body: ScheduleUpdate,
    session: SessionDep,
    context: ContextDep,
) -> ScheduleDetail:
    """Change some of the schedule's fields. Changing `cron`, `timezone`, `start_time` or
    `end_time`, or re-enabling it, restarts it from the next fire time after now (fire
    times before the change are not caught up). Runs already made are kept; raising
    `max_active_runs` lets waiting runs start at once."""
    overview = _service(context).update(session, tenant.id, schedule_id, body)
    return ScheduleDetail.from_overview(overview, utcnow())


@router.delete("/{schedule_id}", status_code=204, summary="Delete a schedule", responses=_NOT_FOUND)
def delete_schedule(schedule_id: str, tenant: SubmitTenant, session: SessionDep) -> Response:
    """Delete the schedule and its runs. Pending runs never start; batches already
    started keep running (they are ordinary batches)."""
    service.delete_schedule(session, tenant.id, schedule_id)
    return Response(status_code=204)


@router.post(
    "/{schedule_id}/trigger",
    status_code=202,
    summary="Run a schedule now",
    responses=_NOT_FOUND,
    response_description="The new `manual` run: `started` with its batch, or `pending`.",
)
def trigger_schedule(
    schedule_id: str, tenant: SubmitTenant, session: SessionDep, context: ContextDep
) -> ScheduleRunPublic:
    """Create one run now, outside the cron (also for a paused or ended schedule). It
    starts at once unless `max_active_runs` batches are unfinished; then it waits as
    `pending` and starts as they finish."""
    run = _service(context).trigger(session, tenant.id, schedule_id)
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
    tenant: SubmitTenant,
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
    backfill = _service(context).backfill(session, tenant.id, schedule_id, body)
    return BackfillPublic.from_backfill(backfill)


@router.get("/{schedule_id}/runs", summary="List a schedule's runs", responses=_NOT_FOUND)
def list_runs(
    schedule_id: str,
    tenant: ReadTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Runs per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The `next_cursor` of the previous page; omit it (or leave it empty) "
            "for the first page."
        ),
    ] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs with this status.")] = None,
) -> ScheduleRunsPublic:
    """Every run of the schedule (scheduled, catch-up, manual and backfill), newest fire
    time first, a page at a time."""
    page = service.list_runs(
        session, tenant.id, schedule_id, limit=limit, cursor=cursor, status=status
    )
    return ScheduleRunsPublic(
        data=[ScheduleRunPublic.from_row(run) for run in page.rows], next_cursor=page.next_cursor
    )
