"""The schedules tick on SQLite (the embedded mode): the same catch-up, dedup and
max_active_runs behaviour without Postgres row locks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.schedules.store import tick
from tests.schedule_helpers import (
    add_schedule,
    batches_of,
    launcher,
    runs_of,
    tenant_with_dataset,
)

T0 = datetime(2026, 1, 10, 12, 0, 10, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0.replace(second=0) + timedelta(minutes=n)


@pytest.fixture
def sessions(sqlite_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_catchup_and_repeated_ticks_on_sqlite(
    sessions: sessionmaker[Session], sqlite_settings: Settings
) -> None:
    tenant = tenant_with_dataset(sessions)
    schedule = add_schedule(sessions, tenant, created=T0, catchup=True, max_active_runs=2)
    report = tick(sessions, launcher(sqlite_settings), now=minute(4.5))
    assert report.created == 4
    runs = runs_of(sessions, schedule)
    assert [r.fire_time for r in runs] == [minute(n) for n in range(1, 5)]
    assert [r.status for r in runs] == ["started", "started", "pending", "pending"]
    assert [b.fire_time for b in batches_of(sessions, schedule)] == [minute(1), minute(2)]
    assert tick(sessions, launcher(sqlite_settings), now=minute(4.5)).created == 0


def test_concurrent_ticks_on_sqlite_never_double_fire(sqlite_settings: Settings) -> None:
    engine = make_engine(sqlite_settings.database_url)
    sessions = make_sessionmaker(engine)
    tenant = tenant_with_dataset(sessions)
    schedule = add_schedule(sessions, tenant, created=T0, catchup=True, max_active_runs=2)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def beat() -> None:
        own = make_engine(sqlite_settings.database_url)
        try:
            barrier.wait(timeout=30)
            tick(make_sessionmaker(own), launcher(sqlite_settings), now=minute(8.5))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    runs = runs_of(sessions, schedule)
    assert [r.fire_time for r in runs] == [minute(n) for n in range(1, 9)]
    assert [r.status for r in runs].count("started") == 2
    assert len(batches_of(sessions, schedule)) == 2
    engine.dispose()
