"""What the surface's routes share: its router, reading a JSON body, submitting a
planned job, the keys it authenticates with, and Server-Sent Events."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request, Security

from api.deps import AppContext, authenticated_key
from api.openai.errors import OpenAIRoute
from ponder.auth import KeyGrant, Scope
from ponder.field_errors import Invalid
from ponder.jobs.service import Submitted
from ponder.openai_compat.errors import OpenAIRequestError, from_field_errors
from ponder.openai_compat.request import Plan

PREFIX = "/openai/v1"


def surface_router(tag: str) -> APIRouter:
    """A router of the surface: OpenAI-shaped errors, left out of Ponder's API document."""
    return APIRouter(tags=[tag], route_class=OpenAIRoute, include_in_schema=False)


SubmitKey = Annotated[KeyGrant, Security(authenticated_key, scopes=[Scope.SUBMIT.value])]
ReadKey = Annotated[KeyGrant, Security(authenticated_key, scopes=[Scope.READ.value])]


async def json_body(request: Request) -> Any:
    """The request's JSON body; a 400 if it is not JSON."""
    raw = await request.body()
    if not raw.strip():
        raise OpenAIRequestError("the request needs a JSON body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise OpenAIRequestError(
            f"the request body is not valid JSON ({exc}); send a JSON object with "
            "Content-Type: application/json"
        ) from None


JsonBody = Annotated[Any, Depends(json_body)]


def _submit(
    context: AppContext, tenant_id: str, plan: Plan, idempotency_key: str | None
) -> Submitted:
    with context.sessions() as session:
        try:
            return context.jobs.submit(
                session,
                tenant_id,
                plan.job,
                idempotency_key=idempotency_key,
                webhook_format=plan.webhook_format,
                openai=plan.openai,
            )
        except Invalid as exc:
            raise from_field_errors(exc.errors, exc.detail, plan.origins) from None


async def submit(context: AppContext, tenant_id: str, plan: Plan, request: Request) -> Submitted:
    """Store and queue the planned job (in a worker thread), with the request's
    ``Idempotency-Key`` if it has one; Ponder's field errors renamed to the request's."""
    context.jobs.refuse_at_once(tenant_id, idempotency_key=request.headers.get("idempotency-key"))
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > 255:
        raise OpenAIRequestError("Idempotency-Key: at most 255 characters", param="Idempotency-Key")
    return await anyio.to_thread.run_sync(
        _submit, context, tenant_id, plan, key, limiter=context.db_threads
    )


def sse(data: Any, *, event: str | None = None) -> str:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
