"""Outbox rows: a delivery is written in the same transaction as the status change it
announces, and sent afterwards (by a delivery task, or by the reaper if that task is lost).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from ponder.tables import DeliveryStatus, WebhookDelivery, new_id, utcnow

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
) -> dict[str, Any]:
    """The values of a new ``webhook_deliveries`` row, due now."""
    now = utcnow()
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "job_id": job_id,
        "event_type": event_type,
        "webhook_id": new_message_id(),
        "url": url,
        "payload": {"type": event_type, "timestamp": now.isoformat(), "data": data},
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
) -> str:
    """Insert a delivery inside the caller's transaction; returns its id. The reaper sends
    it even if the caller never hands it to a delivery task."""
    row = delivery_row(
        tenant_id=tenant_id, url=url, event_type=event_type, data=data, job_id=job_id
    )
    s.execute(insert(WebhookDelivery).values(**row))
    return str(row["id"])
