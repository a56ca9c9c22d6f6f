"""The schedules tick, run by beat every ``schedule_tick_seconds``: materialise the fire
times that have come (with catch-up after downtime), then start pending runs under each
schedule's ``max_active_runs``, creating their batches. Everything it decides is read
from and written to Postgres, so a restarted beat, two beats at once or a tick that
runs twice never fire a time twice (see :mod:`ponder.schedules.store`)."""

from __future__ import annotations

from datetime import datetime

from ponder.batches.feeder import feed
from ponder.schedules.launch import TemplateLauncher
from ponder.schedules.store import TickReport, tick
from ponder.submission import job_validator
from ponder.tables import utcnow
from strategies.registry import CATALOG
from worker.celery_app import Dispatcher
from worker.runner import WorkerServices


def schedule_tick(
    svc: WorkerServices, dispatcher: Dispatcher, *, now: datetime | None = None
) -> TickReport:
    """One tick at ``now`` (the clock unless given), then the first items of the batches
    it started are queued at once (the reaper's feeder would within seconds)."""
    # Runs' items are checked exactly as POST /v1/jobs checks a job.
    launcher = TemplateLauncher(svc.settings, job_validator(svc.settings, svc.profiles, CATALOG))
    report = tick(svc.sessions, launcher, now=utcnow() if now is None else now)
    if report.started:
        feed(svc.sessions, dispatcher.publish, svc.settings)
    return report
