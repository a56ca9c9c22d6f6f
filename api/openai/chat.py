"""``POST /openai/v1/chat/completions``: a durable Ponder job, answered when it ends (or
streamed as ``chat.completion.chunk`` events while it searches)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import AppContext, ContextDep
from api.openai import follow
from api.openai.common import SSE_HEADERS, JsonBody, SubmitKey, sse, submit, surface_router
from api.openai.errors import JOB_HEADER, NO_RETRY, error_body, error_response
from ponder.jobs import service as jobs_service
from ponder.openai_compat import chat
from ponder.openai_compat.progress import describe, is_progress
from ponder.openai_compat.reads import Answer, Tokens, ranked_answers, tokens_of
from ponder.tables import Job, JobStatus

router = surface_router("openai")


def _finished(
    context: AppContext, tenant_id: str, job_id: str, n: int
) -> tuple[Job, list[Answer], Tokens]:
    with context.sessions() as session:
        job = jobs_service.get(session, tenant_id, job_id)
        return job, ranked_answers(session, job, n), tokens_of(session, job)


@router.post("/chat/completions")
async def create_chat_completion(
    key: SubmitKey, body: JsonBody, context: ContextDep, request: Request
) -> Any:
    """Run the conversation as a Ponder job and answer with its result: the job's best
    answer as the message (up to ``n`` distinct answers), its real spend as ``usage``,
    its id in the ``Ponder-Job-Id`` header."""
    parsed = chat.parse_request(body)
    plan = chat.plan(parsed, context.models, context.strategies)
    tenant_id = key.tenant.id
    submitted = await submit(context, tenant_id, plan, request)
    job_id = submitted.job.id
    headers = {JOB_HEADER: job_id}
    if parsed.stream:
        return StreamingResponse(
            _stream(request, context, tenant_id, key.key_hash, submitted.job, parsed),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **headers},
        )
    waited = context.settings.openai_max_wait_seconds
    job = await follow.wait_until_done(request, context, tenant_id, job_id, waited)
    if not jobs_service.is_terminal(job):
        return error_response(
            chat.unfinished_message(job, waited),
            status=504,
            code="timeout",
            kind="timeout",
            headers={**headers, **NO_RETRY},
            extra={"job_id": job_id},
        )
    if job.status != JobStatus.COMPLETED:
        return _job_error(job, headers)
    job, answers, tokens = await anyio.to_thread.run_sync(
        _finished, context, tenant_id, job_id, parsed.n, limiter=context.db_threads
    )
    return JSONResponse(chat.completion(job, answers, tokens, plan.model.name), headers=headers)


def _job_error(job: Job, headers: dict[str, str]) -> JSONResponse:
    cancelled = job.status == JobStatus.CANCELLED
    return error_response(
        chat.failed_message(job),
        status=409 if cancelled else 500,
        code="job_cancelled" if cancelled else "job_failed",
        headers={**headers, **NO_RETRY},
        extra={"job_id": job.id},
    )


async def _stream(
    request: Request,
    context: AppContext,
    tenant_id: str,
    key_hash: str,
    job: Job,
    parsed: chat.ChatRequest,
) -> AsyncIterator[str]:
    usage_chunk = chat.include_usage(parsed)
    model = parsed.model
    yield sse(chat.chunk(job, model, chat.first_delta(), with_usage_member=usage_chunk))
    waited = context.settings.openai_max_wait_seconds
    final = job
    async for step in follow.follow(request, context, tenant_id, key_hash, job.id, seconds=waited):
        final = step.job
        if step.stopped == "deadline":
            yield sse(
                error_body(
                    chat.unfinished_message(final, waited),
                    status=504,
                    code="timeout",
                    kind="timeout",
                    extra={"job_id": final.id},
                )
            )
            return
        if step.stopped is not None:
            if step.stopped == "revoked":
                yield ": the API key was revoked; the stream ends\n\n"
            return
        if step.keepalive:
            yield ": keep-alive\n\n"
        for event in step.events:
            if not is_progress(event.kind):
                continue
            progress = {"seq": event.seq, "kind": event.kind, "data": event.data}
            yield sse(
                chat.chunk(
                    final,
                    model,
                    chat.progress_delta(describe(event.kind, event.data)),
                    with_usage_member=usage_chunk,
                    extra={"ponder": {"event": progress}},
                )
            )
    if final.status != JobStatus.COMPLETED:
        cancelled = final.status == JobStatus.CANCELLED
        yield sse(
            error_body(
                chat.failed_message(final),
                status=409 if cancelled else 500,
                code="job_cancelled" if cancelled else "job_failed",
                extra={"job_id": final.id},
            )
        )
        return
    final, answers, tokens = await anyio.to_thread.run_sync(
        _finished, context, tenant_id, final.id, parsed.n, limiter=context.db_threads
    )
    for body in chat.answer_chunks(final, answers, tokens, model, usage_chunk=usage_chunk):
        yield sse(body)
    yield "data: [DONE]\n\n"
