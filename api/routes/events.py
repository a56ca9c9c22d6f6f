"""``/v1/jobs/{id}/events``: the job's events live, as Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from api.deps import ContextDep, ReadKey, key_still_valid
from api.keyring import Keyring
from ponder.jobs import service as jobs_service
from ponder.notify import JobNotifier
from ponder.tables import MAX_INT, Job, JobEvent

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# how often a live stream looks for new events, and sends a keep-alive comment
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
BATCH = 500
# a stream re-checks its API key at least this often (the auth cache's time, at least this)
MIN_RECHECK_SECONDS = 1.0


def _read(
    sessions: sessionmaker[Session], tenant_id: str, job_id: str, after: int
) -> tuple[Job | None, list[JobEvent]]:
    with sessions() as session:
        job = jobs_service.find(session, tenant_id, job_id)
        if job is None:
            return None, []
        return job, jobs_service.events_after(session, job.id, after, limit=BATCH)


def _frame(event: JobEvent) -> str:
    data: dict[str, Any] = {
        "seq": event.seq,
        "kind": event.kind,
        "data": event.data,
        "at": event.created_at.isoformat(),
    }
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"


@router.get(
    "/{job_id}/events",
    summary="Follow a job's events live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One SSE message per event; the stream ends with the job.",
        },
        404: {"description": "No such job for this API key's tenant."},
    },
)
async def stream_events(
    job_id: str,
    key: ReadKey,
    context: ContextDep,
    request: Request,
    last_event_id: Annotated[
        int | None,
        Header(
            ge=0,
            le=MAX_INT,
            description="Resume after this event id (browsers send it on reconnect).",
        ),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT, description="Resume after this event id (as a query)."),
    ] = None,
) -> StreamingResponse:
    """Every event of the job in order (`started`, `candidate`, `best`, `node`, `round`,
    `vote`, …, then `completed`, `failed` or `cancelled`), each as an SSE message whose
    `id` is the event's sequence number and whose `data` is JSON. Already-written events
    come first; the stream then follows the job live and ends when it has ended.
    Reconnect with `Last-Event-ID` (or `?after=`) to resume without repeats."""
    start = max(after or 0, last_event_id or 0)
    tenant_id = key.tenant.id
    job, first = await anyio.to_thread.run_sync(_read, context.sessions, tenant_id, job_id, start)
    if job is None:
        raise jobs_service.not_found(job_id)
    notifier: JobNotifier = request.app.state.job_notifier
    keyring: Keyring = request.app.state.keyring
    # the fallback when revocations cannot be heard (Redis down): re-check the key as
    # often as the auth cache would
    recheck_seconds = max(context.settings.auth_cache_seconds, MIN_RECHECK_SECONDS)

    async def body() -> AsyncIterator[str]:
        last, events, current = start, first, job
        quiet = 0.0
        next_check = time.monotonic() + recheck_seconds
        async with notifier.subscribe(current.id) as wake:
            # a revocation of the key sets ``watch.revoked`` and wakes the loop
            with keyring.watch(key.key_hash, wake) as watch:
                while not watch.revoked:
                    for event in events:
                        yield _frame(event)
                        last = event.seq
                    if events:
                        quiet = 0.0
                    elif jobs_service.is_terminal(current):
                        return  # the terminal event is written with the status change
                    if len(events) < BATCH:
                        if await request.is_disconnected():
                            return
                        with anyio.move_on_after(POLL_SECONDS):
                            await wake.wait()
                        wake.clear()
                        quiet += POLL_SECONDS
                        if quiet >= KEEPALIVE_SECONDS:
                            quiet = 0.0
                            yield ": keep-alive\n\n"
                    if watch.recheck or time.monotonic() >= next_check:
                        watch.recheck = False
                        next_check = time.monotonic() + recheck_seconds
                        if not await key_still_valid(request, context.sessions, key.key_hash):
                            watch.revoked = True
                    if watch.revoked:
                        break
                    found, events = await anyio.to_thread.run_sync(
                        _read, context.sessions, tenant_id, current.id, last
                    )
                    if found is None:
                        return
                    current = found
        # the key was revoked: end the stream (a reconnect gets a 401)
        yield ": the API key was revoked; the stream ends\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
