"""``/openai/v1/batches``: the Batch API on native Ponder batches (see
:mod:`ponder.openai_compat.batches`): create from an uploaded input file, retrieve,
list and cancel. Reading a batch that has ended writes its output and error files
first (once)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import Query
from fastapi.responses import JSONResponse

from api.deps import AppContext, ContextDep
from api.openai.common import JsonBody, ReadKey, SubmitKey, surface_router
from api.openai.errors import BATCH_HEADER
from ponder.openai_compat import batches

router = surface_router("openai")


def _shown(context: AppContext, tenant_id: str, shown: str) -> dict[str, Any]:
    with context.sessions() as session:
        record = batches.get(session, tenant_id, shown)
        session.expunge(record)
    batches.finalize(context.sessions, record)
    with context.sessions() as session:
        return batches.batch_object(session, batches.get(session, tenant_id, shown))


def _answer(body: dict[str, Any]) -> JSONResponse:
    native = body["ponder"]["batch_id"]
    return JSONResponse(body, headers={BATCH_HEADER: native} if native else None)


@router.post("/batches")
async def create_batch(key: SubmitKey, body: JsonBody, context: ContextDep) -> Any:
    """Run every valid line of the input file as one item of a native batch."""
    request, extras = batches.parse_request(body)

    def create() -> dict[str, Any]:
        record_id = batches.create(
            context.sessions, context.batches, key.tenant.id, request, extras
        )
        return _shown(context, key.tenant.id, record_id)

    return _answer(await anyio.to_thread.run_sync(create, limiter=context.db_threads))


@router.get("/batches")
def list_batches(
    key: ReadKey,
    context: ContextDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    with context.sessions() as session:
        rows, has_more = batches.page(session, key.tenant.id, limit=limit, after=after)
        ids = [r.id for r in rows]
    data = [_shown(context, key.tenant.id, row_id) for row_id in ids]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


@router.get("/batches/{batch_id}")
def retrieve_batch(batch_id: str, key: ReadKey, context: ContextDep) -> Any:
    return _answer(_shown(context, key.tenant.id, batch_id))


@router.post("/batches/{batch_id}/cancel")
def cancel_batch(batch_id: str, key: SubmitKey, context: ContextDep) -> Any:
    """Items not started end at once; running ones stop before their next call."""
    batches.cancel(context.sessions, context.batches, key.tenant.id, batch_id)
    return _answer(_shown(context, key.tenant.id, batch_id))
