"""The Celery tasks: adapters that take a message, call the core (a job's slice, a
webhook delivery's attempt, the reaper's and the schedules' ticks) and publish what it
says comes next. No decision about jobs, batches or webhooks is made here."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import httpx
from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from sqlalchemy.exc import DBAPIError

from ponder.config import Settings
from ponder.jobs.finished import after_finished
from ponder.webhooks.delivery import attempt
from ponder.webhooks.ssrf import guarded_client
from ponder.workers import slice_owner
from worker.celery_app import DELIVER, REAP, RUN_JOB, SCHEDULE_TICK, Dispatcher, create_celery
from worker.runner import ProviderFactory, WorkerServices, run_slice
from worker.shutdown import ShutdownFlag

log = logging.getLogger(__name__)


class _LazyServices:
    """Built on first use inside each worker process (after any fork), once: the pool's
    threads all share it (and its event loop)."""

    def __init__(
        self,
        settings: Settings,
        provider_factory: ProviderFactory | None,
        publish: Callable[[str, int], bool] | None = None,
    ) -> None:
        self._settings = settings
        self._factory = provider_factory
        self._publish = publish
        self._svc: WorkerServices | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> WorkerServices:
        svc = self._svc
        if svc is not None and self._pid == os.getpid():
            return svc
        with self._lock:
            if self._svc is None or self._pid != os.getpid():
                self._svc = WorkerServices(self._settings, provider_factory=self._factory)
                self._svc.publish = self._publish
                self._pid = os.getpid()
            return self._svc

    def close(self) -> None:
        with self._lock:
            if self._svc is not None and self._pid == os.getpid():
                self._svc.close()
            self._svc = None


class _WebhookClient:
    """The guarded HTTP client webhook deliveries go out on, one per worker process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: httpx.Client | None = None
        self._pid = 0

    def get(self) -> httpx.Client:
        if self._client is None or self._pid != os.getpid():
            self._client = guarded_client(
                allow_private=self._settings.webhook_allow_private,
                timeout=self._settings.webhook_timeout_seconds,
            )
            self._pid = os.getpid()
        return self._client


def message_priority(request: Any) -> int:
    """The job priority (0..9) a task's message was published with."""
    info = getattr(request, "delivery_info", None) or {}
    celery_prio = info.get("priority")
    if not isinstance(celery_prio, int):
        return 0
    return 9 - max(0, min(9, celery_prio))


def create_worker_app(
    settings: Settings, *, provider_factory: ProviderFactory | None = None
) -> Celery:
    """The Celery app with Ponder's tasks registered, for workers and beat."""
    app = create_celery(settings)
    # one INFO line per model request (httpx's default) costs more CPU than the request
    # itself when a process runs hundreds of jobs; failures are still logged as warnings
    logging.getLogger("httpx").setLevel(logging.WARNING)
    dispatcher = Dispatcher(app, settings.queue)
    services = _LazyServices(settings, provider_factory, dispatcher.publish)
    app.ponder_services = services  # type: ignore[attr-defined]
    webhooks = _WebhookClient(settings)
    # created here, before any pool fork, so every pool process shares it
    shutdown = ShutdownFlag().set_on_worker_shutdown()

    @worker_ready.connect(weak=False)
    def warm_up(sender: Any = None, **_: Any) -> None:
        # Build the services and load every registry now, in the consumer's thread, not
        # on the event loop under the first jobs (imports of every strategy, task and
        # verifier module held the loop for hundreds of milliseconds).
        if getattr(sender, "app", app) is not app:
            return
        import aiohttp  # noqa: F401 - the model clients' HTTP library

        from ponder.families import all_tasks
        from ponder.verifiers import verifier_types
        from strategies.registry import all_strategies

        # the event loop and its heartbeat thread, so this worker is seen while idle
        services.get().jobloop.start()
        all_strategies()
        all_tasks()
        verifier_types()

    @worker_shutdown.connect(weak=False)
    def close_services(sender: Any = None, **_: Any) -> None:
        # the loop's last group commit, its lag summary, the model clients
        if getattr(sender, "app", app) is app:
            services.close()

    @app.task(name=RUN_JOB, shared=False, acks_late=True, reject_on_worker_lost=True, bind=True)
    def run_job(self: Any, job_id: str) -> str:
        owner = slice_owner()
        outcome = run_slice(services.get(), job_id, owner, stopping=shutdown.is_set)
        if outcome.requeue:
            # the next slice goes back at the priority this one came with
            dispatcher.enqueue(
                job_id, priority=message_priority(self.request), countdown=outcome.countdown
            )
        elif outcome.kind == "finished":
            after_finished(
                services.get().sessions,
                dispatcher,
                settings,
                job_id,
                deliveries=outcome.deliveries,
                batch_id=outcome.batch_id,
                tenant_id=outcome.tenant_id,
            )
        return outcome.kind

    @app.task(name=DELIVER, shared=False, acks_late=True, reject_on_worker_lost=True)
    def deliver_webhook(delivery_id: str) -> str:
        sessions = services.get().sessions
        client = webhooks.get()
        return attempt(sessions, dispatcher, delivery_id, settings=settings, client=client).status

    @app.task(name=REAP, shared=False)
    def reap() -> dict[str, Any]:
        from worker.reaper import reap_once

        try:
            return reap_once(services.get(), dispatcher)
        except DBAPIError as exc:  # one line per tick while Postgres is away, not a traceback
            log.warning("reaper: database unavailable, will retry next tick: %s", exc.orig)
            return {"error": "database unavailable"}

    @app.task(name=SCHEDULE_TICK, shared=False)
    def schedule_tick() -> dict[str, int]:
        from worker.schedules import schedule_tick as tick_once

        return tick_once(services.get(), dispatcher).summary()

    return app
