"""The base of the resources (``client.jobs``, ``client.batches``, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from .._base_client import Call

if TYPE_CHECKING:
    from .._client import AsyncPonder, Ponder

T = TypeVar("T")


class SyncResource:
    def __init__(self, client: Ponder) -> None:
        self._client = client

    def _call(self, call: Call[T]) -> T:
        return self._client._call(call)


class AsyncResource:
    def __init__(self, client: AsyncPonder) -> None:
        self._client = client

    async def _call(self, call: Call[T]) -> T:
        return await self._client._call(call)
