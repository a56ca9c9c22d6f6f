"""Outbox rows: a delivery is written in the same transaction as the status change it
announces, and sent afterwards (by a delivery task, or by the reaper if that task is lost).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from ponder.tables import DeliveryStatus, WebhookDelivery, new_id, utcnow
from ponder.webhooks import openai_events

JOB_EVENTS = {
    "completed": "job.completed",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}
BATCH_COMPLETED = "batch.completed"


def new_message_id() -> str:
    """A Standard Webhooks message id: kept on every attempt so receivers can de-duplicate."""
    return "msg_" + new_id().replace("-", "")


def delivery_row(
    *,
    tenant_id: str,
    url: str,
    event_type: str,
    data: dict[str, Any],
    job_id: str | None = None,
    webhook_format: str | None = None,
) -> dict[str, Any]:
    """The values of a new ``webhook_deliveries`` row, due now. A job's event in the
    ``openai`` format (:mod:`ponder.webhooks.openai_events`) gets OpenAI's event type and
    body instead of Ponder's; ``data`` is then the job's summary it is made from."""
    now = utcnow()
    message_id = new_message_id()
    payload: dict[str, Any] = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    if webhook_format == openai_events.OPENAI and job_id is not None:
        event_type = openai_events.event_type(str(data["status"]), data.get("stop_reason"))
        payload = openai_events.payload(message_id, job_id, kind=event_type, at=now)
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "job_id": job_id,
        "event_type": event_type,
        "webhook_id": message_id,
        "url": url,
        "payload": payload,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "retries": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def add_delivery(
    s: Session | Connection,
    *,
    tenant_id: str,
    url: str,
    event_type: str,
    data: dict[str, Any],
    job_id: str | None = None,
    webhook_format: str | None = None,
) -> str:
    """Insert a delivery inside the caller's transaction; returns its id. The reaper sends
    it even if the caller never hands it to a delivery task."""
    row = delivery_row(
        tenant_id=tenant_id,
        url=url,
        event_type=event_type,
        data=data,
        job_id=job_id,
        webhook_format=webhook_format,
    )
    s.execute(insert(WebhookDelivery).values(**row))
    return str(row["id"])
