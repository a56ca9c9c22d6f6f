"""``client.datasets``: lists of problems to run as batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import httpx
from pydantic import BaseModel

from .._base_client import Call, RequestOptions, model, new_idempotency_key, no_content
from .._pagination import AsyncPage, SyncPage
from .._utils import FileInput, jsonl, params, read_file, segment
from ..types import Dataset, DatasetDetail, DatasetList
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncDatasets", "Datasets"]

Timeout: TypeAlias = float | httpx.Timeout | None
ProblemLine: TypeAlias = Mapping[str, Any] | BaseModel


def _path(dataset_id: str) -> str:
    return f"/v1/datasets/{segment(dataset_id)}"


def _create(
    name: str,
    description: str | None,
    file: FileInput | None,
    problems: Iterable[ProblemLine] | None,
    idempotency_key: str | None,
    timeout: Timeout,
) -> Call[Dataset]:
    if (file is None) == (problems is None):
        raise ValueError("give the problems as `file` (JSON Lines) or as `problems`, one of them")
    content = read_file(file) if file is not None else jsonl(problems or [])
    options = RequestOptions(
        "POST",
        "/v1/datasets",
        params=params(name=name, description=description),
        content=content,
        headers={"Content-Type": "application/x-ndjson"},
        timeout=timeout,
        # a name is taken once: a repeated upload is refused, never stored twice, but a
        # lost answer cannot be told apart, so only what cannot have been stored is retried
        idempotent=False,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )
    return Call(options, model(Dataset))


def _list(limit: int | None, cursor: str | None, timeout: Timeout) -> Call[DatasetList]:
    query = params(limit=limit, cursor=cursor)
    return Call(
        RequestOptions("GET", "/v1/datasets", params=query, timeout=timeout), model(DatasetList)
    )


def _get(
    dataset_id: str, offset: int | None, limit: int | None, timeout: Timeout
) -> Call[DatasetDetail]:
    query = params(offset=offset, limit=limit)
    options = RequestOptions("GET", _path(dataset_id), params=query, timeout=timeout)
    return Call(options, model(DatasetDetail))


def _delete(dataset_id: str, timeout: Timeout) -> Call[None]:
    # a retry finding it gone means the first attempt deleted it
    options = RequestOptions(
        "DELETE", _path(dataset_id), timeout=timeout, ok_on_retry=frozenset({404})
    )
    return Call(options, no_content)


class Datasets(SyncResource):
    """Datasets: problems to run as batches (``batches.create(dataset=...)``)."""

    def create(
        self,
        *,
        name: str,
        file: FileInput | None = None,
        problems: Iterable[ProblemLine] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Dataset:
        """Upload a dataset: ``file`` (JSON Lines: its bytes, its path or an open binary
        file) or ``problems`` (one object per problem, written as JSON Lines). A line is
        ``{"problem": {...}, "expected": ..., "id": "..."}`` or the problem itself with an
        optional ``id``. Any bad line refuses the upload (the 422 lists
        them: ``body["items"]``). ``name`` must be new among your datasets."""
        return self._call(_create(name, description, file, problems, idempotency_key, timeout))

    def list(
        self, *, limit: int | None = None, cursor: str | None = None, timeout: Timeout = None
    ) -> SyncPage[Dataset]:
        """Your datasets, newest first, then (on the first page) the built-in ones."""
        page = self._call(_list(limit, cursor, timeout))

        def fetch(next_cursor: str) -> SyncPage[Dataset]:
            return self.list(limit=limit, cursor=next_cursor, timeout=timeout)

        return SyncPage(page.data, page.next_cursor, fetch)

    def get(
        self,
        dataset_id: str,
        *,
        offset: int | None = None,
        limit: int | None = None,
        timeout: Timeout = None,
    ) -> DatasetDetail:
        """A dataset (yours by id or name, a built-in one by name) with a page of its
        problems from ``offset`` (``next_offset`` continues)."""
        return self._call(_get(dataset_id, offset, limit, timeout))

    def delete(self, dataset_id: str, *, timeout: Timeout = None) -> None:
        """Delete one of your datasets (batches made from it keep their items)."""
        self._call(_delete(dataset_id, timeout))


class AsyncDatasets(AsyncResource):
    """Datasets: problems to run as batches (``batches.create(dataset=...)``)."""

    async def create(
        self,
        *,
        name: str,
        file: FileInput | None = None,
        problems: Iterable[ProblemLine] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
        timeout: Timeout = None,
    ) -> Dataset:
        """As :meth:`Datasets.create`."""
        call = _create(name, description, file, problems, idempotency_key, timeout)
        return await self._call(call)

    async def list(
        self, *, limit: int | None = None, cursor: str | None = None, timeout: Timeout = None
    ) -> AsyncPage[Dataset]:
        """As :meth:`Datasets.list`."""
        page = await self._call(_list(limit, cursor, timeout))

        async def fetch(next_cursor: str) -> AsyncPage[Dataset]:
            return await self.list(limit=limit, cursor=next_cursor, timeout=timeout)

        return AsyncPage(page.data, page.next_cursor, fetch)

    async def get(
        self,
        dataset_id: str,
        *,
        offset: int | None = None,
        limit: int | None = None,
        timeout: Timeout = None,
    ) -> DatasetDetail:
        """As :meth:`Datasets.get`."""
        return await self._call(_get(dataset_id, offset, limit, timeout))

    async def delete(self, dataset_id: str, *, timeout: Timeout = None) -> None:
        """As :meth:`Datasets.delete`."""
        await self._call(_delete(dataset_id, timeout))
