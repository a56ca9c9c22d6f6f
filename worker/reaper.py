"""Re-enqueue lost work from Postgres (the source of truth): queued jobs whose task never
started, jobs between slices whose next slice was lost, and running jobs whose lease
expired (their worker died); and webhook deliveries that are due (retries) or whose task
was lost. Flushing Redis therefore loses no job and no webhook, and a lost queue is
noticed on the next tick (see :mod:`worker.queue_watch`), not after
``requeue_after_seconds``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ponder.batches.feeder import tick as batch_tick
from ponder.fairness import release_idle
from ponder.jobstore import jobs_to_requeue
from ponder.tables import utcnow
from ponder.webhooks.delivery import due_deliveries
from ponder.workers import forget_gone
from worker.celery_app import Dispatcher
from worker.queue_watch import QueueWatch, watch_for
from worker.runner import WorkerServices

# held jobs the reaper publishes per tick for a tenant with none waiting in the queue
IDLE_RELEASE = 8


def reap_once(
    svc: WorkerServices, dispatcher: Dispatcher, watch: QueueWatch | None = None
) -> dict[str, Any]:
    """One tick. ``watch`` defaults to this process's watch of the settings' queue."""
    if watch is None:
        watch = watch_for(svc.settings)
    # first: what a lost queue gets back now is no longer due for the pass below
    queue = watch.tick(svc.sessions, dispatcher.publish)
    now = utcnow()
    stale_before = now - timedelta(seconds=svc.settings.requeue_after_seconds)
    jobs = jobs_to_requeue(svc.sessions, stale_before=stale_before, now=now)
    sent = sum(1 for job_id, priority in jobs if dispatcher.enqueue(job_id, priority=priority))
    if sent < len(jobs):
        watch.suspect()  # the broker failed us: it may have lost more than these
    # batch items: queue the next ones of every batch, complete finished batches (the
    # batch.completed outbox rows they write go out with the due deliveries below)
    batches = batch_tick(svc.sessions, dispatcher.publish, svc.settings)
    # held jobs of tenants with none left in the queue (a publish lost, or every slice of
    # the tenant parked): a few go out again (ponder.fairness)
    released = release_idle(svc.sessions, per_tenant=IDLE_RELEASE)
    for job_id, priority in released:
        dispatcher.enqueue(job_id, priority=priority)
    deliveries = due_deliveries(svc.sessions, now=now, stale_before=stale_before)
    for delivery_id in deliveries:
        dispatcher.enqueue_delivery(delivery_id)
    # workers that died long ago (their heartbeat stopped): no longer worth showing
    with svc.engine.begin() as conn:
        forgotten = forget_gone(conn, now)
    return {
        "requeued": len(jobs),
        "sent": sent,
        "deliveries": len(deliveries),
        "released": len(released),
        "workers_forgotten": forgotten,
        "queue_checked": queue.checked,
        "queue_lost": queue.lost,
        "republished": queue.republished,
        **({"queue_error": queue.error} if queue.error else {}),
        **batches,
    }
