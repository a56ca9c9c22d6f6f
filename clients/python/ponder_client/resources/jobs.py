"""``client.jobs``: submit jobs, read them, wait for them, follow their events, cancel
them, trace them."""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, TypeAlias

import httpx

from .._base_client import (
    Call,
    RequestOptions,
    as_timeout,
    model,
    new_idempotency_key,
)
from .._errors import (
    APIConnectionError,
    APIStatusError,
    ConflictError,
    PonderError,
    UnprocessableEntityError,
    WaitTimeoutError,
)
from .._pagination import AsyncPage, SyncPage
from .._retry import RETRY_STATUSES
from .._sse import SSEDecoder
from .._utils import body, params, segment
from ..types import (
    TERMINAL_JOB_STATUSES,
    BudgetLimits,
    DeliveryList,
    Job,
    JobEvent,
    JobList,
    JobStatus,
    JobTrace,
    Problem,
    StrategyChoice,
)
from ..types._models import Delivery
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncJobs", "Jobs"]

ProblemParam: TypeAlias = Problem | Mapping[str, Any]
StrategyParam: TypeAlias = StrategyChoice | Mapping[str, Any]
BudgetParam: TypeAlias = BudgetLimits | Mapping[str, Any]
Timeout: TypeAlias = float | httpx.Timeout | None
# Called when a followed event stream's connection is lost (with the error and the id of
# the last event received), and when it is back.
OnDisconnect: TypeAlias = Callable[[PonderError, int | None], None]
OnReconnect: TypeAlias = Callable[[], None]

# How long one long-poll of jobs.wait asks the server to hold the request.
WAIT_STEP_SECONDS = 20.0
# A followed event stream is reconnected after this much silence (the API sends a
# keep-alive every 15 s).
STREAM_READ_TIMEOUT_SECONDS = 60.0
# how long a followed stream keeps reconnecting while the API is unreachable
MAX_OUTAGE_SECONDS = 300.0


def _path(job_id: str, *rest: str) -> str:
    return "/".join(("/v1/jobs", segment(job_id), *rest))


def _create(
    fields: dict[str, Any],
    idempotency_key: str | None,
    extra_body: Mapping[str, Any] | None,
    timeout: Timeout,
) -> Call[Job]:
    return Call(
        RequestOptions(
            "POST",
            "/v1/jobs",
            json=body(fields, extra_body),
            timeout=timeout,
            # the server answers a repeated key with the job it created: safe to retry
            idempotent=True,
            idempotency_key=idempotency_key or new_idempotency_key(),
        ),
        model(Job),
    )


def _get(job_id: str, wait: float | None, timeout: Timeout, default: httpx.Timeout) -> Call[Job]:
    if wait is not None and wait > 0:
        # the answer may take the whole wait: read for that long and then some
        base = as_timeout(timeout, default)
        read = max(base.read or 0.0, wait + 30.0)
        timeout = httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)
    return Call(
        RequestOptions("GET", _path(job_id), params=params(wait=wait), timeout=timeout),
        model(Job),
    )


def _list(
    status: JobStatus | None,
    strategy: str | None,
    model_name: str | None,
    batch_id: str | None,
    limit: int | None,
    cursor: str | None,
    timeout: Timeout,
) -> Call[JobList]:
    query = params(
        status=status,
        strategy=strategy,
        model=model_name,
        batch_id=batch_id,
        limit=limit,
        cursor=cursor,
    )
    return Call(RequestOptions("GET", "/v1/jobs", params=query, timeout=timeout), model(JobList))


def _cancel(job_id: str, timeout: Timeout) -> Call[Job]:
    # a repeated cancel is answered below (an already cancelled job is returned)
    options = RequestOptions("POST", _path(job_id, "cancel"), timeout=timeout, idempotent=True)
    return Call(options, model(Job))


def _already_cancelled(error: ConflictError) -> bool:
    return (error.body or {}).get("job_status") == "cancelled"


def _trace(job_id: str, timeout: Timeout) -> Call[JobTrace]:
    return Call(RequestOptions("GET", _path(job_id, "trace"), timeout=timeout), model(JobTrace))


def _deliveries(job_id: str, timeout: Timeout) -> Call[DeliveryList]:
    options = RequestOptions("GET", _path(job_id, "deliveries"), timeout=timeout)
    return Call(options, model(DeliveryList))


def _events(job_id: str, last_event_id: int | None) -> RequestOptions:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return RequestOptions(
        "GET",
        _path(job_id, "events"),
        headers=headers,
        timeout=httpx.Timeout(10.0, read=STREAM_READ_TIMEOUT_SECONDS),
        # the stream's own loop reconnects (and resumes) instead
        max_retries=0,
    )


def _lost(error: PonderError) -> bool:
    """Whether following a stream should reconnect after ``error``."""
    if isinstance(error, APIStatusError):
        return error.status_code in RETRY_STATUSES
    return isinstance(error, APIConnectionError)


def _wait_refused(error: UnprocessableEntityError) -> bool:
    """Whether a 422 says that the server does not hold a request for that long."""
    return any(tuple(e.loc) == ("query", "wait") for e in error.errors)


def _wait_timeout(job: Job, timeout: float | None) -> WaitTimeoutError:
    return WaitTimeoutError(
        f"job {job.id} is still {job.status} after {timeout:g} s; wait again, or follow it "
        f"with jobs.stream({job.id!r})",
        job,
    )


class Jobs(SyncResource):
    """Jobs: one problem attacked by a test-time-compute strategy under a budget."""

    def create(
        self,
        *,
        problem: ProblemParam,
        strategy: StrategyParam,
        verifier: Mapping[str, Any] | None = None,
        model: str | None = None,
        budget: BudgetParam | None = None,
        webhook_url: str | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        seed: int | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> Job:
        """Submit a job (``POST /v1/jobs``); it comes back ``queued``.

        Fields left out take the server's defaults. Every call sends an
        ``Idempotency-Key`` (``idempotency_key``, else a new random one) and its retries
        send the same, so a retry after a lost answer returns the job the first attempt
        created instead of making a second one. Pass your own key to extend that across
        processes."""
        fields = {
            "problem": problem,
            "strategy": strategy,
            "verifier": verifier,
            "model": model,
            "budget": budget,
            "webhook_url": webhook_url,
            "priority": priority,
            "metadata": metadata,
            "seed": seed,
        }
        return self._call(_create(fields, idempotency_key, extra_body, timeout))

    def get(self, job_id: str, *, wait: float | None = None, timeout: Timeout = None) -> Job:
        """The job. With ``wait``, the server holds the request up to that many seconds
        (at most its ``PONDER_MAX_WAIT_SECONDS``) until the job finishes."""
        return self._call(_get(job_id, wait, timeout, self._client.timeout))

    def list(
        self,
        *,
        status: JobStatus | None = None,
        strategy: str | None = None,
        model: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> SyncPage[Job]:
        """Your jobs, newest first, a page (``limit``, 1 to 200) at a time, optionally only
        those with one ``status``, ``strategy`` or ``model``. Iterating
        over the page goes on through the following pages."""
        page = self._call(_list(status, strategy, model, batch_id, limit, cursor, timeout))

        def fetch(next_cursor: str) -> SyncPage[Job]:
            return self.list(
                status=status,
                strategy=strategy,
                model=model,
                batch_id=batch_id,
                limit=limit,
                cursor=next_cursor,
                timeout=timeout,
            )

        return SyncPage(page.data, page.next_cursor, fetch)

    def cancel(self, job_id: str, *, timeout: Timeout = None) -> Job:
        """Cancel a queued or running job: a queued one ends at once, a running one
        stops before its next model call and keeps its best answer. A job that is
        already cancelled is returned as it is; one that finished otherwise is a
        :class:`ConflictError`."""
        try:
            return self._call(_cancel(job_id, timeout))
        except ConflictError as exc:
            if _already_cancelled(exc):
                return self.get(job_id, timeout=timeout)
            raise

    def wait(
        self, job_id: str, *, timeout: float | None = None, poll_seconds: float = WAIT_STEP_SECONDS
    ) -> Job:
        """Wait until the job has finished (``completed``, ``failed`` or ``cancelled``)
        and return it. Each request long-polls the server for up to ``poll_seconds``, so
        the job is returned as soon as it ends. After ``timeout`` seconds (None: no
        limit) :class:`WaitTimeoutError` is raised, holding the job as last seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        step = poll_seconds
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            ask = step if remaining is None else max(0.0, min(step, remaining))
            try:
                job = self.get(job_id, wait=ask)
            except UnprocessableEntityError as exc:
                if ask > 0 and _wait_refused(exc):
                    step = ask / 2 if ask >= 2 else 0.0  # the server holds requests less long
                    continue
                raise
            if job.status in TERMINAL_JOB_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _wait_timeout(job, timeout)
            if ask == 0:
                self._client._sleep(1.0 if remaining is None else min(1.0, remaining))

    def stream(
        self,
        job_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_outage: float = MAX_OUTAGE_SECONDS,
        on_disconnect: OnDisconnect | None = None,
        on_reconnect: OnReconnect | None = None,
    ) -> Iterator[JobEvent]:
        """The job's events as they happen (``GET /v1/jobs/{id}/events``): those already
        written first, then live ones, ending with the job's last (``completed``,
        ``failed`` or ``cancelled``). Start after ``last_event_id`` to skip events seen
        before.

        If the connection drops, the stream reconnects with ``Last-Event-ID`` and goes
        on where it stopped, with no event lost or repeated; ``on_disconnect`` and
        ``on_reconnect`` are told. After ``max_outage`` seconds without the API it raises
        :class:`APIConnectionError`. With ``reconnect=False`` it raises at the first
        break instead."""
        last = last_event_id
        outage_since: float | None = None
        attempt = 0
        while True:
            try:
                with self._client._stream(_events(job_id, last)) as response:
                    if outage_since is not None:
                        outage_since, attempt = None, 0
                        if on_reconnect is not None:
                            on_reconnect()
                    decoder = SSEDecoder()
                    received = False
                    for line in response.iter_lines():
                        message = decoder.feed(line)
                        if message is None:
                            continue
                        event = JobEvent.model_validate_json(message.data)
                        last, received = event.seq, True
                        yield event
                        if event.kind in TERMINAL_JOB_STATUSES:
                            return
                # The stream ended before the job's last event: the API may be shutting
                # down, or the job ended before the events asked for. Its status decides.
                if not reconnect or self.get(job_id).status in TERMINAL_JOB_STATUSES:
                    return
            except (APIConnectionError, APIStatusError) as exc:
                if not reconnect or not _lost(exc):
                    raise
                now = time.monotonic()
                if outage_since is None:
                    outage_since = now
                    if on_disconnect is not None:
                        on_disconnect(exc, last)
                elif now - outage_since > max_outage:
                    raise
                self._client._sleep(self._client.retry.backoff(attempt))
                attempt += 1
                continue
            if received:
                attempt = 0
            else:  # not straight back to a server that ends streams at once
                self._client._sleep(self._client.retry.backoff(attempt))
                attempt += 1

    def trace(self, job_id: str, *, timeout: Timeout = None) -> JobTrace:
        """Everything the job did: each journaled call, each event and its spend."""
        return self._call(_trace(job_id, timeout))

    def deliveries(self, job_id: str, *, timeout: Timeout = None) -> builtins.list[Delivery]:
        """The webhook deliveries of the job's final event, with every attempt."""
        return self._call(_deliveries(job_id, timeout)).deliveries


class AsyncJobs(AsyncResource):
    """Jobs: one problem attacked by a test-time-compute strategy under a budget."""

    async def create(
        self,
        *,
        problem: ProblemParam,
        strategy: StrategyParam,
        verifier: Mapping[str, Any] | None = None,
        model: str | None = None,
        budget: BudgetParam | None = None,
        webhook_url: str | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        seed: int | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> Job:
        """As :meth:`Jobs.create`."""
        fields = {
            "problem": problem,
            "strategy": strategy,
            "verifier": verifier,
            "model": model,
            "budget": budget,
            "webhook_url": webhook_url,
            "priority": priority,
            "metadata": metadata,
            "seed": seed,
        }
        return await self._call(_create(fields, idempotency_key, extra_body, timeout))

    async def get(self, job_id: str, *, wait: float | None = None, timeout: Timeout = None) -> Job:
        """As :meth:`Jobs.get`."""
        return await self._call(_get(job_id, wait, timeout, self._client.timeout))

    async def list(
        self,
        *,
        status: JobStatus | None = None,
        strategy: str | None = None,
        model: str | None = None,
        batch_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> AsyncPage[Job]:
        """As :meth:`Jobs.list`; ``async for`` over the page goes through every page."""
        page = await self._call(_list(status, strategy, model, batch_id, limit, cursor, timeout))

        async def fetch(next_cursor: str) -> AsyncPage[Job]:
            return await self.list(
                status=status,
                strategy=strategy,
                model=model,
                batch_id=batch_id,
                limit=limit,
                cursor=next_cursor,
                timeout=timeout,
            )

        return AsyncPage(page.data, page.next_cursor, fetch)

    async def cancel(self, job_id: str, *, timeout: Timeout = None) -> Job:
        """As :meth:`Jobs.cancel`."""
        try:
            return await self._call(_cancel(job_id, timeout))
        except ConflictError as exc:
            if _already_cancelled(exc):
                return await self.get(job_id, timeout=timeout)
            raise

    async def wait(
        self, job_id: str, *, timeout: float | None = None, poll_seconds: float = WAIT_STEP_SECONDS
    ) -> Job:
        """As :meth:`Jobs.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        step = poll_seconds
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            ask = step if remaining is None else max(0.0, min(step, remaining))
            try:
                job = await self.get(job_id, wait=ask)
            except UnprocessableEntityError as exc:
                if ask > 0 and _wait_refused(exc):
                    step = ask / 2 if ask >= 2 else 0.0
                    continue
                raise
            if job.status in TERMINAL_JOB_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise _wait_timeout(job, timeout)
            if ask == 0:
                await self._client._sleep(1.0 if remaining is None else min(1.0, remaining))

    async def stream(
        self,
        job_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_outage: float = MAX_OUTAGE_SECONDS,
        on_disconnect: OnDisconnect | None = None,
        on_reconnect: OnReconnect | None = None,
    ) -> AsyncIterator[JobEvent]:
        """As :meth:`Jobs.stream`: ``async for event in client.jobs.stream(id)``."""
        last = last_event_id
        outage_since: float | None = None
        attempt = 0
        while True:
            try:
                async with self._client._stream(_events(job_id, last)) as response:
                    if outage_since is not None:
                        outage_since, attempt = None, 0
                        if on_reconnect is not None:
                            on_reconnect()
                    decoder = SSEDecoder()
                    received = False
                    async for line in response.aiter_lines():
                        message = decoder.feed(line)
                        if message is None:
                            continue
                        event = JobEvent.model_validate_json(message.data)
                        last, received = event.seq, True
                        yield event
                        if event.kind in TERMINAL_JOB_STATUSES:
                            return
                # The stream ended before the job's last event: the API may be shutting
                # down, or the job ended before the events asked for. Its status decides.
                if not reconnect or (await self.get(job_id)).status in TERMINAL_JOB_STATUSES:
                    return
            except (APIConnectionError, APIStatusError) as exc:
                if not reconnect or not _lost(exc):
                    raise
                now = time.monotonic()
                if outage_since is None:
                    outage_since = now
                    if on_disconnect is not None:
                        on_disconnect(exc, last)
                elif now - outage_since > max_outage:
                    raise
                await self._client._sleep(self._client.retry.backoff(attempt))
                attempt += 1
                continue
            if received:
                attempt = 0
            else:
                await self._client._sleep(self._client.retry.backoff(attempt))
                attempt += 1

    async def trace(self, job_id: str, *, timeout: Timeout = None) -> JobTrace:
        """As :meth:`Jobs.trace`."""
        return await self._call(_trace(job_id, timeout))

    async def deliveries(self, job_id: str, *, timeout: Timeout = None) -> builtins.list[Delivery]:
        """As :meth:`Jobs.deliveries`."""
        return (await self._call(_deliveries(job_id, timeout))).deliveries
