"""Celery tasks (thin): each builds nothing itself and delegates to runner/reaper."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from celery import Celery

from ponder.config import Settings
from worker.celery_app import REAP, RUN_JOB, Dispatcher, create_celery
from worker.runner import ProviderFactory, WorkerServices, run_slice


class _LazyServices:
    """Built on first use inside each worker process (after the prefork fork)."""

    def __init__(self, settings: Settings, provider_factory: ProviderFactory | None) -> None:
        self._settings = settings
        self._factory = provider_factory
        self._svc: WorkerServices | None = None
        self._pid = 0

    def get(self) -> WorkerServices:
        if self._svc is None or self._pid != os.getpid():
            self._svc = WorkerServices(self._settings, provider_factory=self._factory)
            self._pid = os.getpid()
        return self._svc

    def close(self) -> None:
        if self._svc is not None and self._pid == os.getpid():
            self._svc.close()
        self._svc = None


def create_worker_app(
    settings: Settings, *, provider_factory: ProviderFactory | None = None
) -> Celery:
    """The Celery app with Ponder's tasks registered, for workers and beat."""
    app = create_celery(settings)
    services = _LazyServices(settings, provider_factory)
    dispatcher = Dispatcher(app, settings.queue)
    app.ponder_services = services  # type: ignore[attr-defined]

    @app.task(name=RUN_JOB, shared=False, acks_late=True, reject_on_worker_lost=True)
    def run_job(job_id: str) -> str:
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        outcome = run_slice(services.get(), job_id, owner)
        if outcome.requeue:
            dispatcher.enqueue(job_id, countdown=outcome.countdown)
        return outcome.kind

    @app.task(name=REAP, shared=False)
    def reap() -> dict[str, Any]:
        from worker.reaper import reap_once

        return reap_once(services.get(), dispatcher)

    return app
