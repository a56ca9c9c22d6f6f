"""Helpers shared by the schedule tests (this module holds no tests itself): a tenant with
a tiny dataset to make batches from, schedules inserted with a chosen cursor, and reads
of what the tick made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.datasets.catalog import DatasetEntry, create_dataset
from ponder.llm.profiles import load_models_file
from ponder.schedules.launch import TemplateLauncher
from ponder.schedules.store import restart_next_fire
from ponder.submission import job_validator
from ponder.tables import Batch, Schedule, ScheduleRun, Tenant, utcnow
from strategies.registry import CATALOG

DATASET = "tiny"
TEMPLATE: dict[str, Any] = {
    "dataset": DATASET,
    "defaults": {"strategy": {"name": "best_of_n", "params": {"n": 1}}, "model": "sim"},
}
PROBLEMS = [
    {"task": "game24", "input": {"numbers": [4, 9, 10, 13]}},
    {"task": "game24", "input": {"numbers": [1, 2, 3, 4]}},
]


def tenant_with_dataset(sessions: sessionmaker[Session], name: str = "acme") -> str:
    """The id of tenant ``name`` (created if missing), which owns the dataset ``tiny``
    (two Game of 24 problems)."""
    with sessions() as s, s.begin():
        tenant = s.scalars(select(Tenant).where(Tenant.name == name)).first()
        if tenant is None:
            tenant = Tenant(name=name)
            s.add(tenant)
            s.flush()
        create_dataset(
            s,
            tenant_id=tenant.id,
            name=DATASET,
            description="two puzzles",
            entries=[DatasetEntry(None, p) for p in PROBLEMS],
        )
        return tenant.id


def add_schedule(
    sessions: sessionmaker[Session],
    tenant_id: str,
    *,
    created: datetime,
    cron: str = "* * * * *",
    timezone: str = "UTC",
    catchup: bool = False,
    max_active_runs: int = 1,
    enabled: bool = True,
    template: dict[str, Any] | None = None,
    end_time: datetime | None = None,
    name: str | None = None,
) -> str:
    """A schedule as ``POST /v1/schedules`` would store it at ``created``."""
    with sessions() as s, s.begin():
        schedule = Schedule(
            tenant_id=tenant_id,
            name=name or f"schedule-{created.timestamp()}-{cron}",
            cron=cron,
            timezone=timezone,
            template=template or TEMPLATE,
            catchup=catchup,
            max_active_runs=max_active_runs,
            enabled=enabled,
            end_time=end_time,
            created_at=created,
            updated_at=created,
        )
        restart_next_fire(schedule, created)
        s.add(schedule)
        s.flush()
        return schedule.id


def launcher(settings: Settings) -> TemplateLauncher:
    """What the beat tick uses to create batches."""
    return TemplateLauncher(
        settings, job_validator(settings, load_models_file(settings.models_file), CATALOG)
    )


def runs_of(sessions: sessionmaker[Session], schedule_id: str) -> list[ScheduleRun]:
    """The schedule's runs, oldest fire time first."""
    with sessions() as s:
        return list(
            s.scalars(
                select(ScheduleRun)
                .where(ScheduleRun.schedule_id == schedule_id)
                .order_by(ScheduleRun.fire_time)
            )
        )


def batches_of(sessions: sessionmaker[Session], schedule_id: str) -> list[Batch]:
    with sessions() as s:
        return list(
            s.scalars(
                select(Batch).where(Batch.schedule_id == schedule_id).order_by(Batch.fire_time)
            )
        )


def finish_batches(sessions: sessionmaker[Session], batch_ids: list[str | None]) -> None:
    """Mark batches finished, as the batch feeder does once every item has ended."""
    with sessions() as s, s.begin():
        s.execute(
            update(Batch)
            .where(Batch.id.in_([b for b in batch_ids if b is not None]))
            .values(finished_at=utcnow(), status="completed")
        )


def set_cursor(sessions: sessionmaker[Session], schedule_id: str, next_fire_time: datetime) -> None:
    """Move a schedule's cursor back, as if beat had been down since ``next_fire_time``."""
    with sessions() as s, s.begin():
        s.execute(
            update(Schedule).where(Schedule.id == schedule_id).values(next_fire_time=next_fire_time)
        )
