"""``/v1/datasets``: upload lists of problems (JSON Lines) to run as batches, and browse
the built-in ones."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from api.batch_schemas import (
    DatasetDetail,
    DatasetItemPublic,
    DatasetPublic,
    DatasetsPublic,
    ItemError,
)
from api.deps import ContextDep, CurrentTenant, SessionDep
from api.errors import ApiProblem, invalid
from api.routes.batches import JSONL_TYPES
from ponder.batches.service import MAX_REPORTED_ERRORS
from ponder.datasets import catalog as datasets
from ponder.pagination import Cursor, newest_first, parse_cursor
from ponder.tables import Dataset, DatasetItem

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such dataset for this API key's tenant (nor built-in)."}
}

_UPLOAD_DOC = """\
JSON Lines, one problem per line, either `{"problem": {...}, "expected": ..., "id": "..."}`
or the problem itself with optional `id`, e.g.
`{"id": "q1", "task": "arithmetic", "input": {"question": "..."}, "expected": 42}` (the
format `ponder datasets show NAME` prints). `expected` and `id` are optional; ids must be
unique. Blank lines are ignored."""


def _not_found(dataset_id: str) -> ApiProblem:
    shown = dataset_id if len(dataset_id) <= 64 else dataset_id[:64] + "..."
    return ApiProblem(
        404, f"no dataset {shown!r} belongs to this API key's tenant, and no built-in has that name"
    )


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
    },
)
async def upload(
    request: Request,
    tenant: CurrentTenant,
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
    if not _NAME.match(name):
        raise invalid(
            ("query", "name"),
            "use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
        )
    if datasets.builtin(name) is not None:
        raise invalid(("query", "name"), f"{name!r} is a built-in dataset's name; pick another")
    if _is_uuid(name):
        raise invalid(("query", "name"), "must not look like a dataset id (a UUID)")
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiProblem(
            422, f"the upload is not UTF-8 text (byte {exc.start}); send JSON Lines in UTF-8"
        ) from None
    settings = context.settings
    entries, errors = datasets.parse_upload(
        text, max_line_bytes=settings.batch_max_line_bytes, max_items=settings.batch_max_items
    )
    if errors:
        shown = "; ".join(
            f"{'line ' + str(e.line) if e.line else 'upload'}: {e.detail}" for e in errors[:5]
        )
        more = f"; and {len(errors) - 5} more (see `items`)" if len(errors) > 5 else ""
        raise ApiProblem(
            422,
            f"{len(errors)} bad line(s); nothing was stored: {shown}{more}",
            extra={
                "items": [
                    ItemError.from_error(e).model_dump(mode="json")
                    for e in errors[:MAX_REPORTED_ERRORS]
                ]
            },
        )
    if not entries:
        raise ApiProblem(422, "the upload holds no problems; send one JSON object per line")
    with context.sessions() as session:
        try:
            dataset = datasets.create_dataset(
                session, tenant_id=tenant.id, name=name, description=description, entries=entries
            )
            session.commit()
        except IntegrityError:
            session.rollback()
            raise ApiProblem(
                409,
                f"you already have a dataset named {name!r}; delete it first or pick another name",
            ) from None
        response.headers["Location"] = f"{router.prefix}/{dataset.id}"
        return DatasetPublic.from_row(dataset)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@router.get("", summary="List datasets")
def list_all(
    tenant: CurrentTenant,
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=200, description="Your datasets per page, 1 to 200.")
    ] = 50,
    cursor: Annotated[
        str | None,
        Query(description="The `next_cursor` of the previous page; omit for the first page."),
    ] = None,
) -> DatasetsPublic:
    """Your uploaded datasets, newest first, and on the first page also the built-in
    ones (`game24`, `game24-easy`, `arithmetic-d1`, ...)."""
    page = newest_first(
        session,
        select(Dataset).where(Dataset.tenant_id == tenant.id),
        time_column=Dataset.created_at,
        id_column=Dataset.id,
        limit=limit,
        after=parse_cursor(cursor),
        position=lambda dataset: Cursor(dataset.created_at, dataset.id),
    )
    data = [DatasetPublic.from_row(d) for d in page.rows]
    if cursor is None:
        data.extend(DatasetPublic.from_builtin(d) for d in datasets.builtin_datasets())
    return DatasetsPublic(data=data, next_cursor=page.next_cursor)


@router.get("/{dataset_id}", summary="Get a dataset and its problems", responses=_NOT_FOUND)
def read(
    dataset_id: str,
    tenant: CurrentTenant,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, description="Skip this many problems.")] = 0,
    limit: Annotated[
        int, Query(ge=0, le=1000, description="Return at most this many problems (0 to 1000).")
    ] = 100,
) -> DatasetDetail:
    """A dataset (yours, by id or name, or a built-in one by name) with a page of its
    problems."""
    own = datasets.get_dataset(session, tenant.id, dataset_id)
    if own is not None:
        rows = session.execute(
            select(DatasetItem.item_key, DatasetItem.problem)
            .where(DatasetItem.dataset_id == own.id, DatasetItem.position >= offset)
            .order_by(DatasetItem.position)
            .limit(limit)
        ).all()
        items = [DatasetItemPublic(id=r[0], problem=r[1]) for r in rows]
        base = DatasetPublic.from_row(own)
    else:
        found = datasets.builtin(dataset_id)
        entries = datasets.builtin_entries(dataset_id) if found else None
        if found is None or entries is None:
            raise _not_found(dataset_id)
        items = [
            DatasetItemPublic(id=e.key, problem=e.problem) for e in entries[offset : offset + limit]
        ]
        base = DatasetPublic.from_builtin(found)
    end = offset + len(items)
    return DatasetDetail(
        **base.model_dump(),
        items=items,
        next_offset=end if end < base.size and limit > 0 else None,
    )


@router.delete(
    "/{dataset_id}",
    status_code=204,
    summary="Delete a dataset",
    responses={**_NOT_FOUND, 403: {"description": "Built-in datasets cannot be deleted."}},
)
def remove(dataset_id: str, tenant: CurrentTenant, session: SessionDep) -> Response:
    """Delete one of your datasets and its problems. Batches already created from it keep
    their items (each item holds its own copy of the problem)."""
    own = datasets.get_dataset(session, tenant.id, dataset_id)
    if own is None:
        if datasets.builtin(dataset_id) is not None:
            raise ApiProblem(403, f"{dataset_id!r} is a built-in dataset; it cannot be deleted")
        raise _not_found(dataset_id)
    session.execute(delete(DatasetItem).where(DatasetItem.dataset_id == own.id))
    session.execute(delete(Dataset).where(Dataset.id == own.id))
    session.commit()
    return Response(status_code=204)
