"""``client.strategies`` and ``client.models``: what a job may name."""

from __future__ import annotations

import builtins
from typing import TypeAlias

import httpx

from .._base_client import Call, RequestOptions, model_list
from ..types import Model, Strategy
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncModels", "AsyncStrategies", "Models", "Strategies"]

Timeout: TypeAlias = float | httpx.Timeout | None


def _strategies(timeout: Timeout) -> Call[list[Strategy]]:
    options = RequestOptions("GET", "/v1/strategies", timeout=timeout)
    return Call(options, model_list(Strategy))


def _models(timeout: Timeout) -> Call[list[Model]]:
    return Call(RequestOptions("GET", "/v1/models", timeout=timeout), model_list(Model))


class Strategies(SyncResource):
    def list(self, *, timeout: Timeout = None) -> builtins.list[Strategy]:
        """Every strategy, with its parameters as JSON Schema (``params_schema``)."""
        return self._call(_strategies(timeout))


class AsyncStrategies(AsyncResource):
    async def list(self, *, timeout: Timeout = None) -> builtins.list[Strategy]:
        """As :meth:`Strategies.list`."""
        return await self._call(_strategies(timeout))


class Models(SyncResource):
    def list(self, *, timeout: Timeout = None) -> builtins.list[Model]:
        """The model profiles a job may name, with their capabilities and prices."""
        return self._call(_models(timeout))


class AsyncModels(AsyncResource):
    async def list(self, *, timeout: Timeout = None) -> builtins.list[Model]:
        """As :meth:`Models.list`."""
        return await self._call(_models(timeout))
