"""The Celery application, built from Settings (no module-level app)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import setup_logging

from ponder import logs
from ponder.config import Settings

RUN_JOB = "ponder.run_job"
REAP = "ponder.reap"
DELIVER = "ponder.deliver_webhook"
SCHEDULE_TICK = "ponder.schedule_tick"


def broker_options(broker_url: str) -> tuple[str, dict[str, Any]]:
    """Celery broker URL and transport options. ``filesystem:///DIR`` (the embedded mode)
    keeps messages as files under DIR, so several local processes share a queue without
    any server."""
    if broker_url.startswith("filesystem://"):
        base = Path(broker_url.removeprefix("filesystem://") or ".ponder/broker")
        queue_dir = base / "queue"
        control = base / "control"
        for d in (queue_dir, control):
            d.mkdir(parents=True, exist_ok=True)
        return "filesystem://", {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(control),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    return broker_url, {
        # Slices end well within this; a message unacked for longer is redelivered.
        "visibility_timeout": 3600,
        "priority_steps": list(range(10)),
        "sep": ":",
        "queue_order_strategy": "priority",
    }


def create_celery(settings: Settings, *, name: str = "ponder") -> Celery:
    url, transport_options = broker_options(settings.broker_url)
    app = Celery(name, broker=url, set_as_current=False)
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # Publishing must not hang the API when Redis is down: the job row is already
        # committed, and the reaper enqueues it once the broker is back.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        broker_connection_timeout=2.0,
        timezone="UTC",
        beat_schedule={
            "reap": {"task": REAP, "schedule": settings.reaper_interval_seconds},
            # Ticks left waiting behind busy workers expire instead of piling up (any
            # tick does all the work due); the margin tolerates clock skew between hosts.
            "schedules": {
                "task": SCHEDULE_TICK,
                "schedule": settings.schedule_tick_seconds,
                "options": {"expires": max(10 * settings.schedule_tick_seconds, 60.0)},
            },
        },
    )
    return app


def celery_logging(fmt: logs.LogFormat, loglevel: str) -> list[str]:
    """How a worker or beat started from the command line logs in ``fmt``: ``text``
    keeps Celery's own lines; ``json`` sets up :func:`ponder.logs.configure` now (so
    warnings while Celery starts are JSON lines too), has Celery leave logging to it
    and print no banner. Returns the Celery options to start it with."""
    if fmt != "json":
        return []
    logs.configure("json", loglevel)

    @setup_logging.connect(weak=False, dispatch_uid="ponder-json-logging")
    def configure(loglevel: int | str | None = None, **_: Any) -> None:
        logs.configure("json", loglevel or "INFO")

    return ["--quiet"]


def celery_priority(job_priority: int) -> int:
    """Job priority 0..9 (9 most urgent) to the Redis transport's 0..9 (0 first)."""
    return 9 - max(0, min(9, job_priority))


class Dispatcher:
    """Sends job slices and webhook deliveries to the Celery queue: the
    :class:`ponder.queue.JobQueue` of the API, the worker and beat."""

    def __init__(self, app: Celery, queue: str) -> None:
        self.app = app
        self.queue = queue

    def enqueue(self, job_id: str, *, priority: int = 0, countdown: float | None = None) -> bool:
        """Publish a slice of ``job_id``. Returns False (and logs) if the broker is down:
        the job stays queued in Postgres and the reaper enqueues it later."""
        try:
            self.app.send_task(
                RUN_JOB,
                args=[job_id],
                queue=self.queue,
                priority=celery_priority(priority),
                countdown=countdown,
            )
        except Exception:  # kombu raises many types for a broker that is down
            import logging

            logging.getLogger(__name__).warning(
                "could not enqueue job %s; the reaper will retry", job_id, exc_info=True
            )
            return False
        return True

    def publish(self, job_id: str, priority: int) -> bool:
        """:meth:`enqueue` as the batch feeder calls it (``ponder.batches.feeder.Publish``)."""
        return self.enqueue(job_id, priority=priority)

    def enqueue_delivery(self, delivery_id: str, *, countdown: float | None = None) -> bool:
        """Publish one attempt of a webhook delivery, ahead of job slices. Returns False
        if the broker is down: the reaper sends the delivery later."""
        try:
            self.app.send_task(
                DELIVER,
                args=[delivery_id],
                queue=self.queue,
                priority=celery_priority(9),
                countdown=countdown,
            )
        except Exception:
            import logging

            logging.getLogger(__name__).warning(
                "could not enqueue webhook delivery %s; the reaper will retry",
                delivery_id,
                exc_info=True,
            )
            return False
        return True

    def close(self) -> None:
        """Release the broker connections (for a dispatcher that built its own app)."""
        self.app.close()


def dispatcher_for(settings: Settings) -> Dispatcher:
    """A dispatcher with its own Celery app for ``settings``' broker and queue (the API's;
    close it when done)."""
    return Dispatcher(create_celery(settings), settings.queue)
