"""``/v1/datasets``: upload lists of problems (JSON Lines) to run as batches, and browse
the built-in ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.batch_schemas import (
    DatasetDetail,
    DatasetItemPublic,
    DatasetPublic,
    DatasetsPublic,
    ItemError,
)
from api.deps import ContextDep, ReadTenant, SessionDep, SubmitTenant
from api.errors import ApiProblem
from api.routes.batches import JSONL_TYPES
from ponder.batches.service import MAX_REPORTED_ERRORS
from ponder.datasets import service
from ponder.datasets.service import UploadRejected
from ponder.tables import MAX_INT, Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such dataset for this API key's tenant (nor built-in)."}
}

_UPLOAD_DOC = """\
JSON Lines, one problem per line, either `{"problem": {...}, "expected": ..., "id": "..."}`
or the problem itself with optional `id`, e.g.
`{"id": "q1", "task": "arithmetic", "input": {"question": "..."}, "expected": 42}` (the
format `ponder datasets show NAME` prints). `expected` and `id` are optional; ids must be
unique. Blank lines are ignored."""


@router.post(
    "",
    status_code=201,
    summary="Upload a dataset",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string", "description": _UPLOAD_DOC}}
            },
        }
    },
    responses={
        409: {"description": "You already have a dataset with this name."},
        413: {"description": "The upload is larger than the server accepts."},
        415: {"description": "The body is not JSON Lines."},
        422: {"description": "Bad lines (listed in `items`) or a bad name."},
        429: {"description": "The tenant has as many datasets as it may (`max_datasets`)."},
    },
)
async def upload(
    request: Request,
    tenant: SubmitTenant,
    context: ContextDep,
    response: Response,
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="The dataset's name: letters, digits, `.`, `_`, `-` (unique among "
            "your datasets; batches may name it instead of its id).",
        ),
    ],
    description: Annotated[
        str, Query(max_length=2000, description="What the dataset holds (optional).")
    ] = "",
) -> DatasetPublic:
    """Store a list of problems to run as batches (`POST /v1/batches` with
    `"dataset": "<id or name>"`). Every line is checked; any bad line refuses the upload
    (422 listing each by line number) so a dataset is always clean."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSONL_TYPES:
        got = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
        raise ApiProblem(
            415,
            f"upload the problems as JSON Lines (Content-Type: application/x-ndjson); got {got}",
        )
    # before reading what may be a large upload
    service.check_new_name(name)
    service.check_description(description)
    raw = await request.body()
    try:
        dataset = service.upload_dataset(
            context.sessions,
            tenant.id,
            name=name,
            description=description,
            upload=raw,
            settings=context.settings,
        )
    except UploadRejected as exc:
        raise _rejected(exc) from None
    response.headers["Location"] = f"{router.prefix}/{dataset.id}"
    return DatasetPublic.from_row(dataset)


def _rejected(exc: UploadRejected) -> ApiProblem:
    extra: dict[str, Any] = {}
    if exc.items:
        extra["items"] = [
            ItemError.from_error(e).model_dump(mode="json") for e in exc.items[:MAX_REPORTED_ERRORS]
        ]
    return ApiProblem(422, exc.detail, extra=extra or None)


@router.get("", summary="List datasets")
def list_all(
    tenant: ReadTenant,
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=200, description="Your datasets per page, 1 to 200.")
    ] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="The `next_cursor` of the previous page; omit it (or leave it empty) "
            "for the first page."
        ),
    ] = None,
) -> DatasetsPublic:
    """Your uploaded datasets, newest first, and on the first page also the built-in
    ones (`game24`, `game24-easy`, `arithmetic-d1`, ...)."""
    listing = service.list_datasets(session, tenant.id, limit=limit, cursor=cursor)
    data = [DatasetPublic.from_row(d) for d in listing.uploaded.rows]
    data.extend(DatasetPublic.from_builtin(d) for d in listing.builtin)
    return DatasetsPublic(data=data, next_cursor=listing.uploaded.next_cursor)


@router.get("/{dataset_id}", summary="Get a dataset and its problems", responses=_NOT_FOUND)
def read(
    dataset_id: str,
    tenant: ReadTenant,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=MAX_INT, description="Skip this many problems.")] = 0,
    limit: Annotated[
        int, Query(ge=0, le=1000, description="Return at most this many problems (0 to 1000).")
    ] = 100,
) -> DatasetDetail:
    """A dataset (yours, by id or name, or a built-in one by name) with a page of its
    problems."""
    page = service.read_dataset(session, tenant.id, dataset_id, offset=offset, limit=limit)
    if isinstance(page.dataset, Dataset):
        base = DatasetPublic.from_row(page.dataset)
    else:
        base = DatasetPublic.from_builtin(page.dataset)
    return DatasetDetail(
        **base.model_dump(),
        items=[DatasetItemPublic(id=e.key, problem=e.problem) for e in page.items],
        next_offset=page.next_offset,
    )


@router.delete(
    "/{dataset_id}",
    status_code=204,
    summary="Delete a dataset",
    responses={**_NOT_FOUND, 403: {"description": "Built-in datasets cannot be deleted."}},
)
def remove(dataset_id: str, tenant: SubmitTenant, session: SessionDep) -> Response:
    """Delete one of your datasets and its problems. Batches already created from it keep
    their items (each item holds its own copy of the problem)."""
    service.delete_dataset(session, tenant.id, dataset_id)
    return Response(status_code=204)
