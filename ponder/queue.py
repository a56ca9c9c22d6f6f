"""The job queue as the service layer sees it: what it hands work to once the database
says so. The API and the worker pass theirs (``worker.celery_app.Dispatcher``); tests
may pass a fake. Every method returns False when the broker is down, in which case the
reaper sends the work later: the database, not the queue, is the record."""

from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    """Publishes job slices and webhook deliveries to the workers."""

    def enqueue(self, job_id: str, *, priority: int = 0, countdown: float | None = None) -> bool:
        """Publish a slice of ``job_id`` (after ``countdown`` seconds, if given)."""
        ...

    def publish(self, job_id: str, priority: int) -> bool:
        """:meth:`enqueue` as the batch feeder calls it (``ponder.batches.feeder.Publish``)."""
        ...

    def enqueue_delivery(self, delivery_id: str, *, countdown: float | None = None) -> bool:
        """Publish one attempt of a webhook delivery."""
        ...
