"""Waiting for a job: until it ends (a chat completion, a response without
``background``), or following its events as they are written (streams). Woken at once by
the job's notification when it ends (``ponder.notify``) and re-reading its events a few
times a second while it runs, like ``GET /v1/jobs/{id}/events``; no database connection
is held while waiting."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from api.deps import AppContext, key_still_valid
from api.keyring import Keyring
from ponder.jobs import service as jobs_service
from ponder.notify import JobNotifier
from ponder.tables import Job, JobEvent

# how often a stream looks for new events; a keep-alive after this long without any
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
BATCH = 500
# with notifications on, re-check this often anyway (to notice client disconnects)
RECHECK_SECONDS = 2.0
MIN_KEY_RECHECK_SECONDS = 1.0


def _load(sessions: sessionmaker[Session], tenant_id: str, job_id: str) -> Job:
    with sessions() as session:
        return jobs_service.get(session, tenant_id, job_id)


async def wait_until_done(
    request: Request, context: AppContext, tenant_id: str, job_id: str, seconds: float
) -> Job:
    """The job once it has ended, or as it is after ``seconds`` (or when the client went
    away)."""
    deadline = time.monotonic() + seconds
    notifier: JobNotifier = request.app.state.job_notifier
    async with notifier.subscribe(job_id) as finished:
        while True:
            job = await anyio.to_thread.run_sync(
                _load, context.reads, tenant_id, job_id, limiter=context.db_threads
            )
            remaining = deadline - time.monotonic()
            if jobs_service.is_terminal(job) or remaining <= 0 or await request.is_disconnected():
                return job
            interval = (
                RECHECK_SECONDS if notifier.connected else context.settings.poll_interval_seconds
            )
            with anyio.move_on_after(min(interval, remaining)):
                await finished.wait()
            finished.clear()


@dataclass(frozen=True)
class Step:
    """What following a job found since the last step: the job as it is now, its new
    events, whether the reader should send a keep-alive, and why following stopped
    early (``deadline``, ``revoked`` or ``disconnected``) on the last step if it did."""

    job: Job
    events: list[JobEvent]
    keepalive: bool = False
    stopped: str | None = None


def _read(
    sessions: sessionmaker[Session], tenant_id: str, job_id: str, after: int
) -> tuple[Job, list[JobEvent]]:
    with sessions() as session:
        job = jobs_service.get(session, tenant_id, job_id)
        return job, jobs_service.events_after(session, job.id, after, limit=BATCH)


async def follow(
    request: Request,
    context: AppContext,
    tenant_id: str,
    key_hash: str,
    job_id: str,
    *,
    seconds: float,
) -> AsyncIterator[Step]:
    """The job's events in order, from the first, in steps, until it has ended and every
    event was given (the last step's job is final). When ``seconds`` pass first, the
    API key is revoked or the client disconnects, the last step says so (``stopped``)."""
    notifier: JobNotifier = request.app.state.job_notifier
    keyring: Keyring = request.app.state.keyring
    recheck = max(context.settings.auth_cache_seconds, MIN_KEY_RECHECK_SECONDS)
    deadline = time.monotonic() + seconds
    next_check = time.monotonic() + recheck
    last, quiet = 0, 0.0
    async with notifier.subscribe(job_id) as wake:
        with keyring.watch(key_hash, wake) as watch:
            while True:
                job, events = await anyio.to_thread.run_sync(
                    _read, context.sessions, tenant_id, job_id, last, limiter=context.db_threads
                )
                if events:
                    last = events[-1].seq
                    quiet = 0.0
                    yield Step(job, events)
                    if len(events) == BATCH:
                        continue
                if jobs_service.is_terminal(job) and not events:
                    yield Step(job, [])
                    return
                if jobs_service.is_terminal(job):
                    continue  # the terminal event is written with the status: read it
                if time.monotonic() >= deadline:
                    yield Step(job, [], stopped="deadline")
                    return
                if await request.is_disconnected():
                    yield Step(job, [], stopped="disconnected")
                    return
                with anyio.move_on_after(POLL_SECONDS):
                    await wake.wait()
                wake.clear()
                quiet += POLL_SECONDS
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield Step(job, [], keepalive=True)
                if watch.recheck or time.monotonic() >= next_check:
                    watch.recheck = False
                    next_check = time.monotonic() + recheck
                    if not await key_still_valid(request, context.sessions, key_hash):
                        watch.revoked = True
                if watch.revoked:
                    yield Step(job, [], stopped="revoked")
                    return
