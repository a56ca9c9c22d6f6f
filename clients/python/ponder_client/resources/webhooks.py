"""``client.webhook_secrets`` (the secrets that sign your webhooks) and
``client.deliveries`` (each delivery of an event, with its attempts)."""

from __future__ import annotations

import builtins
from typing import TypeAlias

import httpx

from .._base_client import Call, RequestOptions, model
from .._utils import body, segment
from ..types import Delivery, WebhookSecret, WebhookSecretList
from ._resource import AsyncResource, SyncResource

__all__ = ["AsyncDeliveries", "AsyncWebhookSecrets", "Deliveries", "WebhookSecrets"]

Timeout: TypeAlias = float | httpx.Timeout | None


def _secrets(timeout: Timeout) -> Call[WebhookSecretList]:
    options = RequestOptions("GET", "/v1/webhook-secrets", timeout=timeout)
    return Call(options, model(WebhookSecretList))


def _rotate(grace_seconds: float | None, timeout: Timeout) -> Call[WebhookSecretList]:
    # every rotation makes a secret: retried only when it cannot have made one
    options = RequestOptions(
        "POST",
        "/v1/webhook-secrets/rotate",
        json=body({"grace_seconds": grace_seconds}),
        timeout=timeout,
    )
    return Call(options, model(WebhookSecretList))


def _delivery(delivery_id: str, timeout: Timeout) -> Call[Delivery]:
    options = RequestOptions("GET", f"/v1/deliveries/{segment(delivery_id)}", timeout=timeout)
    return Call(options, model(Delivery))


def _redeliver(delivery_id: str, timeout: Timeout) -> Call[Delivery]:
    # each request sends the event once more: retried only when it cannot have been sent
    path = f"/v1/deliveries/{segment(delivery_id)}/redeliver"
    return Call(RequestOptions("POST", path, timeout=timeout), model(Delivery))


class WebhookSecrets(SyncResource):
    """The secrets that sign your tenant's webhooks (an ``admin`` key's)."""

    def list(self, *, timeout: Timeout = None) -> builtins.list[WebhookSecret]:
        """Every secret that signs deliveries now, newest first: verify a delivery with
        any of them (:func:`ponder_client.webhooks.verify` takes them all)."""
        return self._call(_secrets(timeout)).secrets

    def rotate(
        self, *, grace_seconds: float | None = None, timeout: Timeout = None
    ) -> builtins.list[WebhookSecret]:
        """Make a new secret. The current ones keep signing beside it for
        ``grace_seconds`` (default: the server's, 24 h), so receivers can switch over."""
        return self._call(_rotate(grace_seconds, timeout)).secrets


class AsyncWebhookSecrets(AsyncResource):
    """The secrets that sign your tenant's webhooks (an ``admin`` key's)."""

    async def list(self, *, timeout: Timeout = None) -> builtins.list[WebhookSecret]:
        """As :meth:`WebhookSecrets.list`."""
        return (await self._call(_secrets(timeout))).secrets

    async def rotate(
        self, *, grace_seconds: float | None = None, timeout: Timeout = None
    ) -> builtins.list[WebhookSecret]:
        """As :meth:`WebhookSecrets.rotate`."""
        return (await self._call(_rotate(grace_seconds, timeout))).secrets


class Deliveries(SyncResource):
    """Webhook deliveries (``jobs.deliveries(job_id)`` lists a job's)."""

    def get(self, delivery_id: str, *, timeout: Timeout = None) -> Delivery:
        """One delivery: its event, status, next attempt and every attempt."""
        return self._call(_delivery(delivery_id, timeout))

    def redeliver(self, delivery_id: str, *, timeout: Timeout = None) -> Delivery:
        """Send the event again now, with the same ``webhook-id``."""
        return self._call(_redeliver(delivery_id, timeout))


class AsyncDeliveries(AsyncResource):
    """Webhook deliveries (``jobs.deliveries(job_id)`` lists a job's)."""

    async def get(self, delivery_id: str, *, timeout: Timeout = None) -> Delivery:
        """As :meth:`Deliveries.get`."""
        return await self._call(_delivery(delivery_id, timeout))

    async def redeliver(self, delivery_id: str, *, timeout: Timeout = None) -> Delivery:
        """As :meth:`Deliveries.redeliver`."""
        return await self._call(_redeliver(delivery_id, timeout))
