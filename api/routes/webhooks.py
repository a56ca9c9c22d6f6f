"""Webhook signing secrets, and the deliveries (with their attempt log) of a job.
Adapters over :mod:`ponder.webhooks.service`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from api.deps import AdminTenant, ContextDep, OptionalJson, ReadTenant, SessionDep, SubmitTenant
from api.webhook_schemas import (
    DeliveryList,
    DeliveryPublic,
    RotateSecret,
    SecretList,
    SecretPublic,
)
from ponder.tables import WebhookSecret
from ponder.webhooks import service
from ponder.webhooks.service import DeliveryLog

router = APIRouter(tags=["webhooks"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such resource for this API key's tenant."}
}


def _secrets(rows: list[WebhookSecret]) -> SecretList:
    return SecretList(secrets=[SecretPublic.from_row(r) for r in rows])


def _public(log: DeliveryLog) -> DeliveryPublic:
    return DeliveryPublic.from_row(log.delivery, log.attempts)


@router.get("/v1/webhook-secrets", summary="The secrets that sign your webhooks")
def list_secrets(tenant: AdminTenant, context: ContextDep) -> SecretList:
    """Every secret that currently signs deliveries, newest first (one is created on
    first use). Verify each delivery's `webhook-signature` with any of them."""
    return _secrets(service.list_secrets(context.sessions, tenant.id))


@router.post("/v1/webhook-secrets/rotate", summary="Rotate the webhook signing secret")
def rotate(
    tenant: AdminTenant,
    context: ContextDep,
    _: OptionalJson,
    body: Annotated[RotateSecret | None, Body()] = None,
) -> SecretList:
    """Creates a new secret. The current ones keep signing for `grace_seconds` (default
    24 h) — each delivery then carries both signatures — so receivers can switch over
    without dropping a delivery."""
    rows = service.rotate_secrets(
        context.sessions,
        tenant.id,
        grace_seconds=body.grace_seconds if body is not None else None,
        settings=context.settings,
    )
    return _secrets(rows)


@router.get(
    "/v1/jobs/{job_id}/deliveries",
    summary="The webhook deliveries of a job, with every attempt",
    responses=_NOT_FOUND,
)
def job_deliveries(job_id: str, tenant: ReadTenant, session: SessionDep) -> DeliveryList:
    """Each event sent (or to be sent) to the job's `webhook_url`, its status and its
    attempt log: status code, latency and error of each attempt. Empty when the job has
    no `webhook_url` or has not ended."""
    logs = service.job_deliveries(session, tenant.id, job_id)
    return DeliveryList(deliveries=[_public(log) for log in logs])


@router.get("/v1/deliveries/{delivery_id}", summary="One webhook delivery", responses=_NOT_FOUND)
def read_delivery(delivery_id: str, tenant: ReadTenant, session: SessionDep) -> DeliveryPublic:
    """One delivery: its event, status, next attempt and the log of every attempt."""
    return _public(service.get_delivery(session, tenant.id, delivery_id))


@router.post(
    "/v1/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a webhook delivery again",
    responses=_NOT_FOUND,
)
def redeliver_one(
    delivery_id: str, tenant: SubmitTenant, session: SessionDep, context: ContextDep
) -> DeliveryPublic:
    """Sends the event again now, with the same `webhook-id` (receivers that already
    have it can drop it) and a fresh retry schedule, whatever its status. If its URL was
    disabled by a `410 Gone`, this re-enables the URL."""
    log = service.send_again(
        session, context.sessions, tenant.id, delivery_id, queue=context.dispatcher
    )
    return _public(log)
