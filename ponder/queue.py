"""The job queue as the core sees it: a place to publish a job's next slice or a webhook
delivery's next attempt.

Postgres is the source of truth; the queue only carries wake-up messages. Every method
returns False instead of raising when the broker is down: the row is already committed,
and the reaper publishes it again later. The Celery implementation lives in
``worker.celery_app.Dispatcher``; the API is handed one when it is built."""

from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    def enqueue(self, job_id: str, *, priority: int = 0, countdown: float | None = None) -> bool:
        """Publish a slice of ``job_id`` at ``priority`` (0..9, 9 most urgent), after
        ``countdown`` seconds if given."""
        ...

    def publish(self, job_id: str, priority: int) -> bool:
        """:meth:`enqueue` without a countdown, as the batch feeder and the fair-share
        release call it (``ponder.batches.feeder.Publish``)."""
        ...

    def enqueue_delivery(self, delivery_id: str, *, countdown: float | None = None) -> bool:
        """Publish one attempt of a webhook delivery, ahead of job slices."""
        ...
