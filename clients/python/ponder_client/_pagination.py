"""Pages of a listing. A page holds its items (``data``) and the cursor of the next one;
iterating over a page goes on through every following page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["AsyncPage", "SyncPage"]


class SyncPage(Generic[T]):
    """One page of a listing, newest first. ``for item in page`` yields the items of this
    page and of every page after it (fetching them as it goes)."""

    def __init__(
        self,
        data: list[T],
        next_cursor: str | None,
        fetch: Callable[[str], SyncPage[T]],
    ) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    def next_page(self) -> SyncPage[T]:
        """The page after this one (``LookupError`` on the last page)."""
        if self.next_cursor is None:
            raise LookupError("this is the last page")
        return self._fetch(self.next_cursor)

    def iter_pages(self) -> Iterator[SyncPage[T]]:
        page: SyncPage[T] = self
        yield page
        while page.next_cursor is not None:
            page = page.next_page()
            yield page

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"SyncPage(data=<{len(self.data)} items>, next_cursor={self.next_cursor!r})"


class AsyncPage(Generic[T]):
    """One page of a listing, newest first. ``async for item in page`` yields the items
    of this page and of every page after it (fetching them as it goes)."""

    def __init__(
        self,
        data: list[T],
        next_cursor: str | None,
        fetch: Callable[[str], Awaitable[AsyncPage[T]]],
    ) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    async def next_page(self) -> AsyncPage[T]:
        """The page after this one (``LookupError`` on the last page)."""
        if self.next_cursor is None:
            raise LookupError("this is the last page")
        return await self._fetch(self.next_cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncPage[T]]:
        page: AsyncPage[T] = self
        yield page
        while page.next_cursor is not None:
            page = await page.next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __repr__(self) -> str:
        return f"AsyncPage(data=<{len(self.data)} items>, next_cursor={self.next_cursor!r})"
