"""``client.batches``: many jobs at once, from inline items, a JSON Lines file, a dataset
or past jobs; their figures and results."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import httpx
from pydantic import BaseModel

from .._base_client import Call, RequestOptions, model, new_idempotency_key
from .._errors import APIConnectionError, WaitTimeoutError
from .._pagination import AsyncPage, SyncPage
from .._utils import FileInput, body, jsonl, params, read_file, segment
from ..types import (
    Batch,
    BatchBudget,
    BatchCreated,
    BatchList,
    BatchResult,
    BatchStatus,
    BatchSummary,
    JobDefaults,
    JobFilter,
)
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncBatches", "Batches"]

Timeout: TypeAlias = float | httpx.Timeout | None
ItemParam: TypeAlias = Mapping[str, Any] | BaseModel
JSONL = "application/x-ndjson"
# batches.wait reads the batch this often at first, then less often, up to the most
POLL_FIRST_SECONDS = 0.5
POLL_MOST_SECONDS = 5.0


def _items(items: Iterable[ItemParam] | None) -> list[ItemParam] | None:
    return items if items is None or isinstance(items, list) else [*items]


def _path(batch_id: str, *rest: str) -> str:
    return "/".join(("/v1/batches", segment(batch_id), *rest))


def _create(
    *,
    sources: dict[str, Any],
    file: FileInput | None,
    settings: dict[str, Any],
    idempotency_key: str | None,
    extra_body: Mapping[str, Any] | None,
    timeout: Timeout,
) -> Call[BatchCreated]:
    options = RequestOptions(
        "POST",
        "/v1/batches",
        timeout=timeout,
        # the server makes a new batch for every request: retried only when it cannot
        # have made one (no connection, or a 429)
        idempotent=False,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )
    if file is None:
        options.json = body({**sources, **settings}, extra_body)
        return Call(options, model(BatchCreated))
    given = [name for name, value in sources.items() if value is not None]
    if given:
        raise ValueError(f"give `file` or {' / '.join(given)}, not both")
    header = body(settings, extra_body)
    content = read_file(file)
    # the settings go in the upload's first line, as the server reads them
    options.content = (jsonl([{"batch": header}]) if header else b"") + content
    options.headers = {"Content-Type": JSONL}
    return Call(options, model(BatchCreated))


def _list(
    status: BatchStatus | None,
    schedule_id: str | None,
    limit: int | None,
    cursor: str | None,
    timeout: Timeout,
) -> Call[BatchList]:
    query = params(status=status, schedule_id=schedule_id, limit=limit, cursor=cursor)
    options = RequestOptions("GET", "/v1/batches", params=query, timeout=timeout)
    return Call(options, model(BatchList))


def _get(batch_id: str, timeout: Timeout) -> Call[Batch]:
    return Call(RequestOptions("GET", _path(batch_id), timeout=timeout), model(Batch))


def _cancel(batch_id: str, timeout: Timeout) -> Call[BatchSummary]:
    # cancelling a cancelled batch changes nothing: safe to retry
    options = RequestOptions("POST", _path(batch_id, "cancel"), timeout=timeout, idempotent=True)
    return Call(options, model(BatchSummary))


def _results(batch_id: str, timeout: Timeout) -> RequestOptions:
    return RequestOptions(
        "GET", _path(batch_id, "results"), headers={"Accept": JSONL}, timeout=timeout
    )


def _wait_timeout(batch: Batch, timeout: float | None) -> WaitTimeoutError:
    return WaitTimeoutError(
        f"batch {batch.id} is still {batch.status} after {timeout:g} s "
        f"({batch.counts.total - batch.counts.queued - batch.counts.running} of "
        f"{batch.counts.total} items finished)",
        batch,
    )


class Batches(SyncResource):
    """Batches: many jobs run a few at a time, with figures and results."""

    def create(
        self,
        *,
        items: Iterable[ItemParam] | None = None,
        dataset: str | None = None,
        from_jobs: JobFilter | Mapping[str, Any] | None = None,
        file: FileInput | None = None,
        defaults: JobDefaults | Mapping[str, Any] | None = None,
        budget: BatchBudget | Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        strict: bool | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> BatchCreated:
        """Create a batch (``POST /v1/batches``) from exactly one source:

        - ``items``: job bodies (each as :meth:`Jobs.create` takes them, plus an optional
          ``custom_id``), fields they leave out taken from ``defaults``;
        - ``file``: a JSON Lines file of such items (its bytes, its path or an open
          binary file), uploaded as is; the settings given here go first, as its header;
        - ``dataset``: an uploaded or built-in dataset, by id or name;
        - ``from_jobs``: past jobs matching a filter, re-run with what ``defaults``
          changes.

        Invalid items are listed in ``item_errors`` and the others run, unless
        ``strict=True`` (then any invalid item refuses the batch)."""
        sources = {
            "items": _items(items),
            "dataset": dataset,
            "from_jobs": from_jobs,
        }
        settings = {
            "defaults": defaults,
            "budget": budget,
            "webhook_url": webhook_url,
            "metadata": metadata,
            "strict": strict,
        }
        call = _create(
            sources=sources,
            file=file,
            settings=settings,
            idempotency_key=idempotency_key,
            extra_body=extra_body,
            timeout=timeout,
        )
        return self._call(call)

    def get(self, batch_id: str, *, timeout: Timeout = None) -> Batch:
        """The batch with its figures: counts, usage, accuracy, latency, per strategy."""
        return self._call(_get(batch_id, timeout))

    def list(
        self,
        *,
        status: BatchStatus | None = None,
        schedule_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> SyncPage[BatchSummary]:
        """Your batches, newest first, a page at a time (iterating goes through all)."""
        page = self._call(_list(status, schedule_id, limit, cursor, timeout))

        def fetch(next_cursor: str) -> SyncPage[BatchSummary]:
            return self.list(
                status=status,
                schedule_id=schedule_id,
                limit=limit,
                cursor=next_cursor,
                timeout=timeout,
            )

        return SyncPage(page.data, page.next_cursor, fetch)

    def cancel(self, batch_id: str, *, timeout: Timeout = None) -> BatchSummary:
        """Cancel the batch: items not started end at once, running ones stop soon."""
        return self._call(_cancel(batch_id, timeout))

    def results(self, batch_id: str, *, timeout: Timeout = None) -> Iterator[BatchResult]:
        """Every accepted item's outcome, in item order, read as the server streams them
        (items still running appear with their current status). A connection lost
        midway is resumed after the last item received."""
        last = -1
        attempt = 0
        while True:
            try:
                with self._client._stream(_results(batch_id, timeout)) as response:
                    for line in response.iter_lines():
                        if not line.strip():
                            continue
                        result = BatchResult.model_validate_json(line)
                        if result.index <= last:
                            continue  # sent before the connection was lost
                        last = result.index
                        yield result
                return
            except APIConnectionError as exc:
                delay = self._client.retry.after_error(attempt, exc, idempotent=True)
                if delay is None:
                    raise
                self._client._sleep(delay)
                attempt += 1

    def wait(self, batch_id: str, *, timeout: float | None = None) -> Batch:
        """Wait until every item of the batch has finished and return it (with its
        figures). After ``timeout`` seconds (None: no limit) :class:`WaitTimeoutError` is
        raised, holding the batch as last seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_FIRST_SECONDS
        while True:
            batch = self.get(batch_id)
            if batch.finished_at is not None:
                return batch
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _wait_timeout(batch, timeout)
                pause = min(pause, remaining)
            self._client._sleep(pause)
            pause = min(pause * 2, POLL_MOST_SECONDS)


class AsyncBatches(AsyncResource):
    """Batches: many jobs run a few at a time, with figures and results."""

    async def create(
        self,
        *,
        items: Iterable[ItemParam] | None = None,
        dataset: str | None = None,
        from_jobs: JobFilter | Mapping[str, Any] | None = None,
        file: FileInput | None = None,
        defaults: JobDefaults | Mapping[str, Any] | None = None,
        budget: BatchBudget | Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        strict: bool | None = None,
        idempotency_key: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        timeout: Timeout = None,
    ) -> BatchCreated:
        """As :meth:`Batches.create`."""
        sources = {
            "items": _items(items),
            "dataset": dataset,
            "from_jobs": from_jobs,
        }
        settings = {
            "defaults": defaults,
            "budget": budget,
            "webhook_url": webhook_url,
            "metadata": metadata,
            "strict": strict,
        }
        call = _create(
            sources=sources,
            file=file,
            settings=settings,
            idempotency_key=idempotency_key,
            extra_body=extra_body,
            timeout=timeout,
        )
        return await self._call(call)

    async def get(self, batch_id: str, *, timeout: Timeout = None) -> Batch:
        """As :meth:`Batches.get`."""
        return await self._call(_get(batch_id, timeout))

    async def list(
        self,
        *,
        status: BatchStatus | None = None,
        schedule_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> AsyncPage[BatchSummary]:
        """As :meth:`Batches.list`."""
        page = await self._call(_list(status, schedule_id, limit, cursor, timeout))

        async def fetch(next_cursor: str) -> AsyncPage[BatchSummary]:
            return await self.list(
                status=status,
                schedule_id=schedule_id,
                limit=limit,
                cursor=next_cursor,
                timeout=timeout,
            )

        return AsyncPage(page.data, page.next_cursor, fetch)

    async def cancel(self, batch_id: str, *, timeout: Timeout = None) -> BatchSummary:
        """As :meth:`Batches.cancel`."""
        return await self._call(_cancel(batch_id, timeout))

    async def results(
        self, batch_id: str, *, timeout: Timeout = None
    ) -> AsyncIterator[BatchResult]:
        """As :meth:`Batches.results`: ``async for result in client.batches.results(id)``."""
        last = -1
        attempt = 0
        while True:
            try:
                async with self._client._stream(_results(batch_id, timeout)) as response:
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        result = BatchResult.model_validate_json(line)
                        if result.index <= last:
                            continue
                        last = result.index
                        yield result
                return
            except APIConnectionError as exc:
                delay = self._client.retry.after_error(attempt, exc, idempotent=True)
                if delay is None:
                    raise
                await self._client._sleep(delay)
                attempt += 1

    async def wait(self, batch_id: str, *, timeout: float | None = None) -> Batch:
        """As :meth:`Batches.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_FIRST_SECONDS
        while True:
            batch = await self.get(batch_id)
            if batch.finished_at is not None:
                return batch
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _wait_timeout(batch, timeout)
                pause = min(pause, remaining)
            await self._client._sleep(pause)
            pause = min(pause * 2, POLL_MOST_SECONDS)
