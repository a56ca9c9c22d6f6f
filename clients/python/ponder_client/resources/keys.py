"""``client.keys``: your tenant's API keys (an ``admin`` key's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import httpx

from .._base_client import Call, RequestOptions, model, no_content
from .._pagination import AsyncPage, SyncPage
from .._utils import body, params, segment
from ..types import APIKey, APIKeyCreated, APIKeyList, Scope
from ._resource import AsyncResource, SyncResource

__all__ = ["APIKeys", "AsyncAPIKeys"]

Timeout: TypeAlias = float | httpx.Timeout | None


def _create(scopes: Sequence[Scope], name: str | None, timeout: Timeout) -> Call[APIKeyCreated]:
    # every request makes a key: retried only when it cannot have made one
    options = RequestOptions(
        "POST",
        "/v1/keys",
        json=body({"scopes": list(scopes), "name": name}),
        timeout=timeout,
        idempotent=False,
    )
    return Call(options, model(APIKeyCreated))


def _list(
    include_revoked: bool | None, limit: int | None, cursor: str | None, timeout: Timeout
) -> Call[APIKeyList]:
    query = params(include_revoked=include_revoked, limit=limit, cursor=cursor)
    return Call(RequestOptions("GET", "/v1/keys", params=query, timeout=timeout), model(APIKeyList))


def _get(key_id: str, timeout: Timeout) -> Call[APIKey]:
    return Call(
        RequestOptions("GET", f"/v1/keys/{segment(key_id)}", timeout=timeout), model(APIKey)
    )


def _revoke(key_id: str, timeout: Timeout) -> Call[None]:
    options = RequestOptions(
        "DELETE", f"/v1/keys/{segment(key_id)}", timeout=timeout, ok_on_retry=frozenset({404})
    )
    return Call(options, no_content)


class APIKeys(SyncResource):
    """API keys of your tenant."""

    def create(
        self, *, scopes: Sequence[Scope], name: str | None = None, timeout: Timeout = None
    ) -> APIKeyCreated:
        """A new key holding ``scopes`` (only scopes this client's key holds). Its
        ``key`` is shown this once."""
        return self._call(_create(scopes, name, timeout))

    def list(
        self,
        *,
        include_revoked: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> SyncPage[APIKey]:
        """Your tenant's keys (never the keys themselves), newest first."""
        page = self._call(_list(include_revoked, limit, cursor, timeout))

        def fetch(next_cursor: str) -> SyncPage[APIKey]:
            return self.list(
                include_revoked=include_revoked, limit=limit, cursor=next_cursor, timeout=timeout
            )

        return SyncPage(page.data, page.next_cursor, fetch)

    def get(self, key_id: str, *, timeout: Timeout = None) -> APIKey:
        return self._call(_get(key_id, timeout))

    def revoke(self, key_id: str, *, timeout: Timeout = None) -> None:
        """Revoke a key: every API process refuses it within a second."""
        self._call(_revoke(key_id, timeout))


class AsyncAPIKeys(AsyncResource):
    """API keys of your tenant."""

    async def create(
        self, *, scopes: Sequence[Scope], name: str | None = None, timeout: Timeout = None
    ) -> APIKeyCreated:
        """As :meth:`APIKeys.create`."""
        return await self._call(_create(scopes, name, timeout))

    async def list(
        self,
        *,
        include_revoked: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        timeout: Timeout = None,
    ) -> AsyncPage[APIKey]:
        """As :meth:`APIKeys.list`."""
        page = await self._call(_list(include_revoked, limit, cursor, timeout))

        async def fetch(next_cursor: str) -> AsyncPage[APIKey]:
            return await self.list(
                include_revoked=include_revoked, limit=limit, cursor=next_cursor, timeout=timeout
            )

        return AsyncPage(page.data, page.next_cursor, fetch)

    async def get(self, key_id: str, *, timeout: Timeout = None) -> APIKey:
        return await self._call(_get(key_id, timeout))

    async def revoke(self, key_id: str, *, timeout: Timeout = None) -> None:
        """As :meth:`APIKeys.revoke`."""
        await self._call(_revoke(key_id, timeout))
