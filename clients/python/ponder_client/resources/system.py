"""``client.system``: what the service is doing now."""

from __future__ import annotations

from typing import TypeAlias

import httpx

from .._base_client import Call, RequestOptions, model
from ..types import SystemStatus
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncSystem", "System"]

Timeout: TypeAlias = float | httpx.Timeout | None


def _get(timeout: Timeout) -> Call[SystemStatus]:
    return Call(RequestOptions("GET", "/v1/system", timeout=timeout), model(SystemStatus))


class System(SyncResource):
    def get(self, *, timeout: Timeout = None) -> SystemStatus:
        """The worker processes and the job slices they run, the jobs waiting by priority,
        each model's calls in flight against its limit, and your webhook deliveries'
        health. Other tenants appear only as numbers."""
        return self._call(_get(timeout))


class AsyncSystem(AsyncResource):
    async def get(self, *, timeout: Timeout = None) -> SystemStatus:
        """As :meth:`System.get`."""
        return await self._call(_get(timeout))
