"""``/v1/batches``: create a batch (inline items, a JSON Lines upload, a dataset or a re-run
of past jobs), follow it, fetch its results, cancel it."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from api.batch_schemas import (
    BatchCreated,
    BatchesPublic,
    BatchPublic,
    BatchSummary,
    ItemError,
    inline_schema,
)
from api.deps import AppContext, ContextDep, ReadTenant, SessionDep, SubmitTenant
from api.errors import ApiProblem
from ponder.batches import service as batch_service
from ponder.batches.service import (
    MAX_REPORTED_ERRORS,
    BatchRejected,
    CreatedBatch,
)
from ponder.batches.spec import BatchSpec
from ponder.batches.store import (
    batch_totals,
    list_batches,
    result_lines,
    totals_for,
)
from ponder.field_errors import describe_validation_errors
from ponder.pagination import parse_cursor
from ponder.report import batch_figures

router = APIRouter(prefix="/v1/batches", tags=["batches"])

JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
BatchStatusName = Literal["queued", "running", "completed", "cancelled"]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such batch for this API key's tenant."}
}

_UPLOAD_DOC = """\
JSON Lines: one job body per line (as `POST /v1/jobs` takes, e.g.
`{"custom_id": "q1", "problem": {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}}}`);
blank lines are ignored. The first line may be a header with the batch's settings:
`{"batch": {"defaults": {"strategy": {"name": "best_of_n"}}, "budget": {...},
"webhook_url": "...", "metadata": {...}, "strict": false}}`. Errors name line numbers."""

_CREATE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": inline_schema(BatchSpec),
                "examples": {
                    "inline": {
                        "summary": "Inline items with shared defaults",
                        "value": {
                            "items": [
                                {
                                    "custom_id": "a",
                                    "problem": {
                                        "task": "game24",
                                        "input": {"numbers": [4, 9, 10, 13]},
                                    },
                                },
                                {
                                    "custom_id": "b",
                                    "problem": {
                                        "task": "game24",
                                        "input": {"numbers": [1, 2, 3, 4]},
                                    },
                                },
                            ],
                            "defaults": {
                                "strategy": {"name": "best_of_n", "params": {"n": 8}},
                                "model": "sim",
                                "budget": {"max_tokens": 20000},
                            },
                            "budget": {"max_tokens": 100000},
                        },
                    },
                    "dataset": {
                        "summary": "A built-in dataset",
                        "value": {
                            "dataset": "game24-easy",
                            "defaults": {"strategy": {"name": "self_consistency"}},
                        },
                    },
                    "from_jobs": {
                        "summary": "Re-run past jobs with a bigger budget",
                        "value": {
                            "from_jobs": {"status": ["completed"], "metadata": {"run": "a"}},
                            "defaults": {"budget": {"max_tokens": 50000}},
                        },
                    },
                },
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": _UPLOAD_DOC},
            },
        },
    }
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@router.post(
    "",
    status_code=202,
    summary="Create a batch",
    response_description="The batch, with how many items were accepted and why others were not.",
    openapi_extra=_CREATE_OPENAPI,
    responses={
        413: {"description": "The body is larger than the server accepts."},
        415: {"description": "The body is neither JSON nor JSON Lines."},
        429: {
            "description": "The batch does not fit the tenant's limits now (its batch items "
            "today, its jobs queued or running, its spend today): `limit` names it; retry "
            "after `Retry-After` seconds."
        },
        422: {
            "description": "The batch is invalid as a whole (no valid item, strict mode with "
            "invalid items — listed in `items` —, an unknown dataset, ...)."
        },
    },
)
async def create(request: Request, tenant: SubmitTenant, context: ContextDep) -> BatchCreated:
    """Submit many jobs at once. The items come from exactly one of:

    - **`items`**: job bodies (`application/json`), merged over `defaults`;
    - a **JSON Lines upload** (`Content-Type: application/x-ndjson`): one job body per
      line, with an optional first header line `{"batch": {...settings...}}`;
    - **`dataset`**: an uploaded dataset (id or name) or a built-in one (`game24`, ...);
    - **`from_jobs`**: past jobs matching a filter, re-run with what `defaults` changes.

    Every item is checked exactly like `POST /v1/jobs`. Without `strict`, invalid items
    are listed in `item_errors` (by line or position) and the valid ones run; with
    `strict: true` any invalid item refuses the batch (422 listing them in `items`).

    Items run a few at a time (the server's `batch_max_in_flight` per batch), highest
    priority first then in order, so a big batch never holds up other work. Follow it
    with `GET /v1/batches/{id}`, fetch `GET /v1/batches/{id}/results` (JSON Lines, in
    item order), or give a `webhook_url` for one `batch.completed` event."""
    media_type = _media_type(request)
    raw = await request.body()
    if media_type in JSONL_TYPES:
        text = _utf8(raw)
        created = await anyio.to_thread.run_sync(_create, context, tenant.id, text)
    elif media_type == "application/json" or media_type.endswith("+json"):
        spec = _parse_spec(raw)
        created = await anyio.to_thread.run_sync(_create, context, tenant.id, spec)
    else:
        got = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
        raise ApiProblem(
            415,
            "send the batch as JSON (Content-Type: application/json) or its items as JSON "
            f"Lines (Content-Type: application/x-ndjson); got {got}",
        )
    return await anyio.to_thread.run_sync(_created_body, context, tenant.id, created)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiProblem(
            422, f"the upload is not UTF-8 text (byte {exc.start}); send JSON Lines in UTF-8"
        ) from None


def _parse_spec(raw: bytes) -> BatchSpec:
    if not raw.strip():
        raise ApiProblem(
            422,
            "request body is required: send a JSON object with `items`, `dataset` or "
            "`from_jobs` (Content-Type: application/json)",
        )
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiProblem(
            422,
            f"request body is not valid JSON ({exc}); send a JSON object with "
            "Content-Type: application/json",
        ) from None
    if not isinstance(data, dict):
        raise ApiProblem(422, "request body must be a JSON object ({...})")
    try:
        return BatchSpec.model_validate(data)
    except ValidationError as exc:
        detail, errors = describe_validation_errors(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in exc.errors(include_url=False, include_input=False)
            ]
        )
        raise ApiProblem(422, detail, errors=errors) from None


def _rejected(exc: BatchRejected) -> ApiProblem:
    extra: dict[str, Any] = {}
    if exc.items:
        extra["items"] = [
            ItemError.from_error(e).model_dump(mode="json") for e in exc.items[:MAX_REPORTED_ERRORS]
        ]
    return ApiProblem(422, exc.detail, errors=exc.errors or None, extra=extra)


def _create(context: AppContext, tenant_id: str, source: BatchSpec | str) -> CreatedBatch:
    """Validate, insert and start a batch; a refused batch is a 422."""
    try:
        return context.batches.create(context.sessions, tenant_id, source)
    except BatchRejected as exc:
        raise _rejected(exc) from None


def _created_body(context: AppContext, tenant_id: str, created: CreatedBatch) -> BatchCreated:
    with context.sessions() as session:
        batch = batch_service.get(session, tenant_id, created.batch_id)
        return BatchCreated(
            **BatchSummary.fields_from(batch, batch_totals(session, batch.id)),
            accepted=created.accepted,
            rejected=len(created.errors),
            item_errors=[ItemError.from_error(e) for e in created.errors[:MAX_REPORTED_ERRORS]],
        )


@router.get("", summary="List batches")
def list_all(
    tenant: ReadTenant,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Batches per page, 1 to 200.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The `next_cursor` of the previous page; omit it (or leave it empty) "
            "for the first page."
        ),
    ] = None,
    status: Annotated[
        BatchStatusName | None, Query(description="Only batches with this status.")
    ] = None,
    schedule_id: Annotated[
        UUID | None, Query(description="Only the batches this schedule created.")
    ] = None,
) -> BatchesPublic:
    """The tenant's batches, newest first, a page at a time (counts and usage; `GET
    /v1/batches/{id}` adds accuracy, latency and per-strategy figures)."""
    page = list_batches(
        session,
        tenant.id,
        limit=limit,
        after=parse_cursor(cursor),
        status=status,
        schedule_id=None if schedule_id is None else str(schedule_id),
    )
    totals = totals_for(session, [b.id for b in page.rows])
    return BatchesPublic(
        data=[BatchSummary.from_row(b, totals[b.id]) for b in page.rows],
        next_cursor=page.next_cursor,
    )


@router.get("/{batch_id}", summary="Get a batch and its figures", responses=_NOT_FOUND)
def read(batch_id: str, tenant: ReadTenant, session: SessionDep) -> BatchPublic:
    """Counts by status, total usage, accuracy (share of scored items whose answer was
    verified), latency percentiles, the same per strategy and model, and — for a
    `from_jobs` batch — solved and tokens before vs after."""
    batch = batch_service.get(session, tenant.id, batch_id)
    return BatchPublic.build(batch, batch_figures(session, batch.id))


@router.get(
    "/{batch_id}/results",
    summary="Get a batch's results (JSON Lines)",
    responses={
        **_NOT_FOUND,
        200: {
            "description": "One JSON object per line, one line per accepted item, in item "
            "order: `custom_id`, `index`, `job_id`, `status`, `stop_reason`, `result` "
            "(`answer`, `score`, `verified`, or null), `usage`, `error`, "
            "`original_job_id` (from_jobs batches). Items still running appear with "
            "their current status.",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
    },
    response_class=StreamingResponse,
)
def results(
    batch_id: str, tenant: ReadTenant, session: SessionDep, context: ContextDep
) -> StreamingResponse:
    """Stream every item's outcome as JSON Lines, in item order."""
    found = batch_service.get(session, tenant.id, batch_id).id
    session.close()  # the stream reads page by page in its own short sessions
    return StreamingResponse(
        result_lines(context.sessions, found),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'inline; filename="batch-{found}.jsonl"'},
    )


@router.post(
    "/{batch_id}/cancel",
    summary="Cancel a batch",
    responses={
        **_NOT_FOUND,
        409: {"description": "The batch has already finished."},
    },
)
def cancel(batch_id: str, tenant: SubmitTenant, context: ContextDep) -> BatchSummary:
    """Items not started are cancelled at once; running items are flagged and stop before
    their next model call, keeping their best answer so far. The batch's status becomes
    `cancelled`; `finished_at` is set (and `batch.completed` sent) once its last running
    item has stopped. Cancelling a cancelled batch again changes nothing; cancelling a
    completed one is a 409."""
    batch = context.batches.cancel(context.sessions, tenant.id, batch_id)
    with context.sessions() as session:
        return BatchSummary.from_row(batch, batch_totals(session, batch.id))
