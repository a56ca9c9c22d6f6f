"""What follows once a worker has written a job's final state: its webhook deliveries
go out, and if it was a batch item, its batch is fed its next items (and completed if
that was the last one). Written once here for every way a job ends on a worker."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from ponder.batches.feeder import on_item_finished
from ponder.config import Settings
from ponder.queue import JobQueue
from ponder.webhooks.delivery import take_unsent


def after_finished(
    sessions: sessionmaker[Session],
    queue: JobQueue,
    settings: Settings,
    job_id: str,
    *,
    deliveries: Sequence[str],
    batch_id: str | None,
    tenant_id: str | None,
) -> None:
    """Hand on the outbox rows the finalize wrote (``deliveries``) and, for a batch item,
    feed its batch; every delivery written is published once (a delivery already
    published by someone else is left to them)."""
    written = list(deliveries)
    if batch_id is not None and tenant_id is not None:
        # a place in flight freed up: queue the batch's next items, complete it if last
        written += on_item_finished(
            sessions, queue.publish, settings, job_id, batch_id=batch_id, tenant_id=tenant_id
        )
    for delivery_id in take_unsent(sessions, ids=written):
        queue.enqueue_delivery(delivery_id)
