"""Webhook signing secrets, and the deliveries (with their attempt log) of a job."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy import select

from api.deps import ContextDep, CurrentTenant, SessionDep
from api.errors import ApiProblem
from api.webhook_schemas import (
    DeliveryList,
    DeliveryPublic,
    RotateSecret,
    SecretList,
    SecretPublic,
)
from ponder.jobs import service as jobs_service
from ponder.tables import WebhookAttempt, WebhookDelivery, utcnow
from ponder.webhooks.delivery import active_secrets, redeliver, rotate_secret, take_unsent

router = APIRouter(tags=["webhooks"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such resource for this API key's tenant."}
}


@router.get("/v1/webhook-secrets", summary="The secrets that sign your webhooks")
def list_secrets(tenant: CurrentTenant, context: ContextDep) -> SecretList:
    """Every secret that currently signs deliveries, newest first (one is created on
    first use). Verify each delivery's `webhook-signature` with any of them."""
    with context.sessions() as s, s.begin():
        rows = active_secrets(s, tenant.id, utcnow())
        return SecretList(secrets=[SecretPublic.from_row(r) for r in rows])


@router.post("/v1/webhook-secrets/rotate", summary="Rotate the webhook signing secret")
def rotate(
    tenant: CurrentTenant,
    context: ContextDep,
    body: Annotated[RotateSecret | None, Body()] = None,
) -> SecretList:
    """Creates a new secret. The current ones keep signing for `grace_seconds` (default
    24 h) — each delivery then carries both signatures — so receivers can switch over
    without dropping a delivery."""
    grace = body.grace_seconds if body is not None else None
    if grace is None:
        grace = context.settings.webhook_secret_grace_seconds
    now = utcnow()
    with context.sessions() as s, s.begin():
        active_secrets(s, tenant.id, now)  # the tenant's first secret, if it had none
        rotate_secret(s, tenant.id, grace_seconds=grace, now=now)
        # a secret retired at once (grace 0) no longer signs at this instant
        rows = active_secrets(s, tenant.id, now + timedelta(microseconds=1))
        return SecretList(secrets=[SecretPublic.from_row(r) for r in rows])


def _public(session: SessionDep, deliveries: list[WebhookDelivery]) -> list[DeliveryPublic]:
    ids = [d.id for d in deliveries]
    attempts = (
        session.execute(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
        .scalars()
        .all()
        if ids
        else []
    )
    by_delivery: dict[str, list[WebhookAttempt]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(a)
    return [DeliveryPublic.from_row(d, by_delivery.get(d.id, [])) for d in deliveries]


@router.get(
    "/v1/jobs/{job_id}/deliveries",
    summary="The webhook deliveries of a job, with every attempt",
    responses=_NOT_FOUND,
)
def job_deliveries(job_id: str, tenant: CurrentTenant, session: SessionDep) -> DeliveryList:
    """Each event sent (or to be sent) to the job's `webhook_url`, its status and its
    attempt log: status code, latency and error of each attempt. Empty when the job has
    no `webhook_url` or has not ended."""
    job = jobs_service.find(session, tenant.id, job_id)
    if job is None:
        raise ApiProblem(404, f"no job with id {job_id[:64]!r} belongs to this API key's tenant")
    rows = list(
        session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job.id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        ).scalars()
    )
    return DeliveryList(deliveries=_public(session, rows))


def _get_delivery(session: SessionDep, tenant_id: str, delivery_id: str) -> WebhookDelivery:
    row = session.get(WebhookDelivery, delivery_id[:64])
    if row is None or row.tenant_id != tenant_id:
        raise ApiProblem(
            404, f"no delivery with id {delivery_id[:64]!r} belongs to this API key's tenant"
        )
    return row


@router.get("/v1/deliveries/{delivery_id}", summary="One webhook delivery", responses=_NOT_FOUND)
def read_delivery(delivery_id: str, tenant: CurrentTenant, session: SessionDep) -> DeliveryPublic:
    """One delivery: its event, status, next attempt and the log of every attempt."""
    return _public(session, [_get_delivery(session, tenant.id, delivery_id)])[0]


@router.post(
    "/v1/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a webhook delivery again",
    responses=_NOT_FOUND,
)
def redeliver_one(
    delivery_id: str, tenant: CurrentTenant, session: SessionDep, context: ContextDep
) -> DeliveryPublic:
    """Sends the event again now, with the same `webhook-id` (receivers that already
    have it can drop it) and a fresh retry schedule, whatever its status. If its URL was
    disabled by a `410 Gone`, this re-enables the URL."""
    found = _get_delivery(session, tenant.id, delivery_id)
    found_id = found.id
    session.rollback()
    with context.sessions() as s, s.begin():
        row = s.get(WebhookDelivery, found_id)
        assert row is not None
        redeliver(s, row, now=utcnow())
    for again in take_unsent(context.sessions, ids=[found_id]):
        context.dispatcher.enqueue_delivery(again)
    session.expire_all()
    return _public(session, [_get_delivery(session, tenant.id, found_id)])[0]
