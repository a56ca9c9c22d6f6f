"""``/openai/v1/responses``: create (``background: true`` answers at once with a queued
response; otherwise the request waits for the job), retrieve (also as a stream, resumed
with ``starting_after``) and cancel. Every Ponder job can be read as a response: its id
is ``resp_`` + the job's id without dashes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import AppContext, ContextDep
from api.openai import follow
from api.openai.common import (
    SSE_HEADERS,
    JsonBody,
    ReadKey,
    SubmitKey,
    sse,
    submit,
    surface_router,
)
from api.openai.errors import JOB_HEADER, error_body
from ponder import openai_ids
from ponder.jobs import service as jobs_service
from ponder.openai_compat import responses
from ponder.openai_compat.errors import OpenAIRequestError
from ponder.openai_compat.progress import describe, is_progress
from ponder.openai_compat.reads import best_answer, progress_lines, tokens_of
from ponder.tables import MAX_INT, Job, JobStatus
from ponder.webhooks.openai_events import response_status

router = surface_router("openai")

# how long a cancel waits for a running job to stop before answering
CANCEL_WAIT_SECONDS = 10.0


def not_found(shown: str) -> OpenAIRequestError:
    text = shown if len(shown) <= 80 else shown[:80] + "..."
    return OpenAIRequestError(
        f"No response found with id '{text}' for this API key's tenant.",
        param="response_id",
        status=404,
    )


def _job_id(shown: str) -> str:
    found = openai_ids.row_id(openai_ids.RESPONSE, shown)
    if found is None:
        raise not_found(shown)
    return found


def _object(context: AppContext, tenant_id: str, job_id: str) -> dict[str, Any]:
    with context.sessions() as session:
        job = jobs_service.find(session, tenant_id, job_id)
        if job is None:
            raise not_found(openai_ids.public_id(openai_ids.RESPONSE, job_id))
        finished = job.status in JobStatus.TERMINAL
        return responses.response_object(
            job,
            answer=best_answer(job) if finished else None,
            tokens=tokens_of(session, job) if finished else None,
            progress=progress_lines(session, job.id) if finished else [],
        )


async def _answer(context: AppContext, tenant_id: str, job_id: str) -> JSONResponse:
    body = await anyio.to_thread.run_sync(
        _object, context, tenant_id, job_id, limiter=context.db_threads
    )
    return JSONResponse(body, headers={JOB_HEADER: job_id})


@router.post("/responses")
async def create_response(
    key: SubmitKey, body: JsonBody, context: ContextDep, request: Request
) -> Any:
    """Run the input as a Ponder job. ``background: true``: answer at once (``queued``).
    ``stream: true``: stream its events. Otherwise wait for it (at most
    ``PONDER_OPENAI_MAX_WAIT_SECONDS``; a response still ``in_progress`` then)."""
    parsed = responses.parse_request(body)
    plan = responses.plan(parsed, context.models, context.strategies)
    tenant_id = key.tenant.id
    submitted = await submit(context, tenant_id, plan, request)
    job_id = submitted.job.id
    if parsed.stream:
        return _streaming(request, context, tenant_id, key.key_hash, job_id, after=-1)
    if not parsed.background:
        await follow.wait_until_done(
            request, context, tenant_id, job_id, context.settings.openai_max_wait_seconds
        )
    return await _answer(context, tenant_id, job_id)


@router.get("/responses/{response_id}")
async def retrieve_response(
    response_id: str,
    key: ReadKey,
    context: ContextDep,
    request: Request,
    stream: Annotated[bool, Query()] = False,
    starting_after: Annotated[int | None, Query(ge=-1, le=MAX_INT)] = None,
) -> Any:
    """The response; with ``stream=true`` its events (from the first, or after
    ``starting_after``), live until the job ends."""
    job_id = _job_id(response_id)
    if not stream:
        return await _answer(context, key.tenant.id, job_id)
    await anyio.to_thread.run_sync(
        _object, context, key.tenant.id, job_id, limiter=context.db_threads
    )  # a 404 before the stream starts
    after = -1 if starting_after is None else starting_after
    return _streaming(request, context, key.tenant.id, key.key_hash, job_id, after=after)


@router.post("/responses/{response_id}/cancel")
async def cancel_response(
    response_id: str, key: SubmitKey, context: ContextDep, request: Request
) -> Any:
    """Cancel the job: a queued one at once, a running one before its next model call
    (this waits a few seconds for it to stop). Cancelling a cancelled response returns it;
    a finished one is a 400."""
    job_id = _job_id(response_id)
    tenant_id = key.tenant.id
    job = await anyio.to_thread.run_sync(
        _cancel, context, tenant_id, job_id, limiter=context.db_threads
    )
    if not jobs_service.is_terminal(job):
        await follow.wait_until_done(request, context, tenant_id, job_id, CANCEL_WAIT_SECONDS)
    return await _answer(context, tenant_id, job_id)


def _cancel(context: AppContext, tenant_id: str, job_id: str) -> Job:
    with context.sessions() as session:
        job = jobs_service.find(session, tenant_id, job_id)
        if job is None:
            raise not_found(openai_ids.public_id(openai_ids.RESPONSE, job_id))
        if job.status == JobStatus.CANCELLED:
            return job
        if jobs_service.is_terminal(job):
            raise OpenAIRequestError(
                f"Cannot cancel a response that has already finished (status "
                f"{response_status(job.status, job.stop_reason)!r}).",
                param="response_id",
            )
    return context.jobs.cancel(context.sessions, tenant_id, job_id)


def _streaming(
    request: Request, context: AppContext, tenant_id: str, key_hash: str, job_id: str, *, after: int
) -> StreamingResponse:
    return StreamingResponse(
        _events(request, context, tenant_id, key_hash, job_id, after),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, JOB_HEADER: job_id},
    )


def _closing_parts(context: AppContext, tenant_id: str, job_id: str) -> tuple[Job, Any, Any]:
    with context.sessions() as session:
        job = jobs_service.get(session, tenant_id, job_id)
        return job, best_answer(job), tokens_of(session, job)


async def _events(
    request: Request,
    context: AppContext,
    tenant_id: str,
    key_hash: str,
    job_id: str,
    after: int,
) -> AsyncIterator[str]:
    """The response's events with ``sequence_number`` above ``after``."""
    state = responses.ResponseStream()

    def send(events: list[dict[str, Any]]) -> list[str]:
        return [sse(e, event=e["type"]) for e in events if e["sequence_number"] > after]

    opened = False
    final: Job | None = None
    async for step in follow.follow(
        request,
        context,
        tenant_id,
        key_hash,
        job_id,
        seconds=context.settings.openai_max_wait_seconds,
    ):
        final = step.job
        if not opened:
            opened = True
            for text in send(state.opening(step.job)):
                yield text
        if step.stopped == "deadline":
            message = (
                f"the stream ends after {context.settings.openai_max_wait_seconds:g} seconds "
                f"(PONDER_OPENAI_MAX_WAIT_SECONDS) and the job goes on; resume it with GET "
                f"/openai/v1/responses/{responses.response_id(final.id)}?stream=true"
                f"&starting_after={state.seq}"
            )
            body = error_body(message, status=504, code="timeout")["error"]
            yield sse({"type": "error", **body, "sequence_number": state.seq + 1}, event="error")
            return
        if step.stopped is not None:
            return
        if step.keepalive:
            yield ": keep-alive\n\n"
        for event in step.events:
            if is_progress(event.kind):
                for text in send(state.progress(step.job, describe(event.kind, event.data))):
                    yield text
    assert final is not None
    job, answer, tokens = await anyio.to_thread.run_sync(
        _closing_parts, context, tenant_id, final.id, limiter=context.db_threads
    )
    for text in send(state.closing(job, answer, tokens)):
        yield text
