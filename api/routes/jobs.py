"""``/v1/jobs``: submit, read (with long-polling), list and cancel jobs."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from api.deps import AppContext, ContextDep, ReadTenant, RequireJson, SessionDep, SubmitTenant
from api.errors import MAXIMUM_SETTING, invalid
from api.schemas import MAX_IDEMPOTENCY_KEY_CHARS, JobCreate, JobPublic, JobsPublic
from ponder.jobs import service as jobs_service
from ponder.notify import JobNotifier
from ponder.pagination import parse_cursor
from ponder.tables import Job, Tenant

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such job for this API key's tenant."}
}
_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "The Idempotency-Key was used before with a different body."},
    413: {"description": "The body is larger than the server accepts."},
    415: {"description": "The body is not JSON."},
    429: {
        "description": "Over one of the tenant's limits for now (its job rate, its jobs "
        "queued or running, its spend today): `limit` names it; retry after `Retry-After` "
        "seconds."
    },
}
_CANCEL_ERRORS: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {"description": "The job has already finished."},
}

# with notifications on, re-check this often anyway (to notice client disconnects)
_NOTIFIED_RECHECK_SECONDS = 2.0

JobStatusName = Literal["queued", "running", "completed", "failed", "cancelled"]


async def refuse_known_flood(request: Request, tenant: SubmitTenant, context: ContextDep) -> None:
    """A tenant this process knows to be over its job rate gets its 429 from memory,
    before its body is validated and without a thread or the database: a flood of
    refused submissions costs the API as little as it can. (A request with an
    Idempotency-Key is let through: it may replay a job already accepted.)"""
    context.jobs.refuse_at_once(tenant.id, idempotency_key=request.headers.get("idempotency-key"))


RefuseKnownFlood = Annotated[None, Depends(refuse_known_flood)]


@router.post(
    "",
    status_code=202,
    summary="Submit a job",
    responses=_SUBMIT_ERRORS,
    response_description="The accepted job, queued for a worker.",
)
async def submit_job(
    tenant: SubmitTenant,
    _: RequireJson,
    _rate: RefuseKnownFlood,
    body: JobCreate,
    context: ContextDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_CHARS,
            description=(
                "Makes retries safe: a second request with the same key and the same body "
                "returns the first job (with `Idempotent-Replayed: true`); the same key "
                "with a different body is a 409."
            ),
        ),
    ] = None,
) -> JobPublic:
    """Validate the job, store it and queue it. Returns 202 with the job (`queued`);
    poll `GET /v1/jobs/{id}?wait=30` or give a `webhook_url` to learn when it ends.

    Everything is checked here, so a job that is accepted can run: the strategy and its
    parameters, the task input, the model name, the verifier and the budget."""
    return await anyio.to_thread.run_sync(
        _submit_in_thread,
        tenant,
        body,
        context,
        response,
        idempotency_key,
        limiter=context.db_threads,
    )


def _submit_in_thread(
    tenant: Tenant,
    body: JobCreate,
    context: AppContext,
    response: Response,
    idempotency_key: str | None,
) -> JobPublic:
    with context.sessions() as session:
        submitted = context.jobs.submit(session, tenant.id, body, idempotency_key=idempotency_key)
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"{router.prefix}/{submitted.job.id}"
    return JobPublic.from_row(submitted.job)


@router.get("", summary="List jobs")
def list_jobs(
    tenant: ReadTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The `next_cursor` of the previous page; omit it (or leave it empty) "
            "for the first page."
        ),
    ] = None,
    status: Annotated[
        JobStatusName | None, Query(description="Only jobs with this status.")
    ] = None,
    batch_id: Annotated[UUID | None, Query(description="Only jobs of this batch.")] = None,
    strategy: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="Only jobs running this strategy (a name from `GET /v1/strategies`).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Only jobs on this model profile (a name from `GET /v1/models`).",
        ),
    ] = None,
) -> JobsPublic:
    """The tenant's jobs, newest first, a page at a time."""
    page = jobs_service.list_jobs(
        session,
        tenant.id,
        limit=limit,
        after=parse_cursor(cursor),
        status=status,
        batch_id=None if batch_id is None else str(batch_id),
        strategy=strategy,
        model=model,
    )
    return JobsPublic(
        data=[JobPublic.from_row(job) for job in page.rows], next_cursor=page.next_cursor
    )


def _load(sessions: sessionmaker[Session], tenant_id: str, job_id: str) -> Job:
    with sessions() as session:
        return jobs_service.get(session, tenant_id, job_id)


@router.get(
    "/{job_id}",
    summary="Get a job (optionally waiting for it to finish)",
    responses=_NOT_FOUND,
)
async def read_job(
    job_id: str,
    tenant: ReadTenant,
    context: ContextDep,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0,
            allow_inf_nan=False,
            description=(
                "Long-poll: wait up to this many seconds for the job to reach a final "
                "status (`completed`, `failed`, `cancelled`) before answering. "
                "0 (default) answers at once; the most is the server's "
                "`PONDER_MAX_WAIT_SECONDS`."
            ),
            # the schema's maximum is that setting (see api.main)
            json_schema_extra={MAXIMUM_SETTING: "max_wait_seconds"},
        ),
    ] = 0,
) -> JobPublic:
    """The job's status, spend, progress and (once finished) result."""
    limit = context.settings.max_wait_seconds
    if wait > limit:
        raise invalid(("query", "wait"), f"must be at most {limit:g} seconds on this server")
    deadline = time.monotonic() + wait
    notifier: JobNotifier = request.app.state.job_notifier
    async with notifier.subscribe(job_id) as finished:
        while True:
            # the read runs in a worker thread with its own short session: no connection
            # is held while this request sleeps
            job = await anyio.to_thread.run_sync(
                _load, context.reads, tenant.id, job_id, limiter=context.db_threads
            )
            remaining = deadline - time.monotonic()
            if jobs_service.is_terminal(job) or remaining <= 0 or await request.is_disconnected():
                return JobPublic.from_row(job)
            # Woken at once by the job's notification; the timeout is a safety net (and
            # the polling interval where notifications are unavailable, e.g. SQLite).
            interval = (
                _NOTIFIED_RECHECK_SECONDS
                if notifier.connected
                else context.settings.poll_interval_seconds
            )
            with anyio.move_on_after(min(interval, remaining)):
                await finished.wait()
            finished.clear()


@router.post("/{job_id}/cancel", summary="Cancel a job", responses=_CANCEL_ERRORS)
def cancel_job(job_id: str, tenant: SubmitTenant, context: ContextDep) -> JobPublic:
    """A queued job is cancelled at once. A running job is flagged
    (`cancel_requested: true`) and stops before its next model call, keeping its best
    answer so far. Cancelling a job that has already finished is a 409."""
    return JobPublic.from_row(context.jobs.cancel(context.sessions, tenant.id, job_id))
