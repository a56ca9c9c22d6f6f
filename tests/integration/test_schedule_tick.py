"""The schedules tick against real Postgres, driven by an injected clock: catch-up after
downtime, catch-up off, restarts, concurrent ticks, max_active_runs, end_time, paused
schedules, runs that cannot make a batch, and DST in the database path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ponder.config import Settings
from ponder.db import make_engine, make_sessionmaker
from ponder.schedules.store import insert_runs, tick, trigger_run
from ponder.tables import Batch, Schedule, ScheduleRun
from tests.schedule_helpers import (
    add_schedule,
    batches_of,
    finish_batches,
    launcher,
    runs_of,
    tenant_with_dataset,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 10, 12, 0, 10, tzinfo=UTC)  # schedules are created 10 s past 12:00


def minute(n: float) -> datetime:
    """``n`` minutes past 12:00 (a fire time of an every-minute cron when whole)."""
    return T0.replace(second=0) + timedelta(minutes=n)


@pytest.fixture
def sessions(pg_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(pg_settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def tenant(sessions: sessionmaker[Session]) -> str:
    return tenant_with_dataset(sessions)


def test_catchup_after_downtime_creates_exactly_the_missed_runs(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    schedule = add_schedule(sessions, tenant, created=T0, catchup=True, max_active_runs=1)
    # beat was down from 12:00:10 until 12:10:40: ten fire times (12:01 ... 12:10) missed
    report = tick(sessions, launcher(pg_settings), now=minute(10.5))
    runs = runs_of(sessions, schedule)
    assert [r.fire_time for r in runs] == [minute(n) for n in range(1, 11)]
    assert [r.kind for r in runs] == ["catchup"] * 9 + ["scheduled"]
    assert report.created == 10
    # max_active_runs 1: only the oldest started, with its batch; the rest wait
    assert [r.status for r in runs] == ["started"] + ["pending"] * 9
    assert [b.fire_time for b in batches_of(sessions, schedule)] == [minute(1)]
    assert runs[0].batch_id == batches_of(sessions, schedule)[0].id

    # the same tick again changes nothing
    again = tick(sessions, launcher(pg_settings), now=minute(10.5))
    assert (again.created, again.started) == (0, [])
    assert len(runs_of(sessions, schedule)) == 10

    # on time again: one more, scheduled
    tick(sessions, launcher(pg_settings), now=minute(11.1))
    runs = runs_of(sessions, schedule)
    assert [r.fire_time for r in runs] == [minute(n) for n in range(1, 12)]
    assert runs[-1].kind == "scheduled"
    with sessions() as s:
        row = s.get(Schedule, schedule)
        assert row is not None
        assert row.last_fire_time == minute(11)
        assert row.next_fire_time == minute(12)


def test_without_catchup_only_the_newest_missed_fire_time_runs(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    schedule = add_schedule(sessions, tenant, created=T0, catchup=False)
    tick(sessions, launcher(pg_settings), now=minute(10.5))
    runs = runs_of(sessions, schedule)
    assert [(r.fire_time, r.kind, r.status) for r in runs] == [(minute(10), "scheduled", "started")]
    tick(sessions, launcher(pg_settings), now=minute(12.5))  # two more missed: only 12:12
    assert [r.fire_time for r in runs_of(sessions, schedule)] == [minute(10), minute(12)]


def test_a_restarted_beat_continues_from_the_database(
    pg_settings: Settings, tenant: str, sessions: sessionmaker[Session]
) -> None:
    schedule = add_schedule(sessions, tenant, created=T0, catchup=True, max_active_runs=50)
    tick(sessions, launcher(pg_settings), now=minute(3.5))
    # a new process: its own engine, nothing remembered but what Postgres holds
    engine = make_engine(pg_settings.database_url)
    try:
        fresh = make_sessionmaker(engine)
        assert tick(fresh, launcher(pg_settings), now=minute(3.5)).created == 0
        assert tick(fresh, launcher(pg_settings), now=minute(6.5)).created == 3
    finally:
        engine.dispose()
    assert [r.fire_time for r in runs_of(sessions, schedule)] == [minute(n) for n in range(1, 7)]
    assert all(r.status == "started" for r in runs_of(sessions, schedule))
    assert len(batches_of(sessions, schedule)) == 6


def test_concurrent_ticks_never_double_fire(pg_settings: Settings, tenant: str) -> None:
    """Six ticks at once, each with its own connection pool, over five schedules 30
    minutes behind: one run per fire time, and max_active_runs holds exactly."""
    setup = make_engine(pg_settings.database_url)
    sessions = make_sessionmaker(setup)
    schedules = [
        add_schedule(sessions, tenant, created=T0, catchup=True, max_active_runs=3, name=f"s{i}")
        for i in range(5)
    ]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def beat(now: datetime) -> None:
        engine = make_engine(pg_settings.database_url)
        try:
            mine = make_sessionmaker(engine)
            barrier.wait(timeout=30)
            tick(mine, launcher(pg_settings), now=now)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    for now in (minute(30.5), minute(30.5), minute(31.5)):
        threads = [threading.Thread(target=beat, args=(now,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
    for schedule in schedules:
        runs = runs_of(sessions, schedule)
        assert [r.fire_time for r in runs] == [minute(n) for n in range(1, 32)]
        started = [r for r in runs if r.status == "started"]
        assert [r.fire_time for r in started] == [minute(1), minute(2), minute(3)]
        batches = batches_of(sessions, schedule)
        assert [(b.id, b.fire_time) for b in batches] == [
            (r.batch_id, r.fire_time) for r in started
        ]
    setup.dispose()


def test_the_unique_constraint_alone_prevents_a_second_run(
    pg_settings: Settings, tenant: str, sessions: sessionmaker[Session]
) -> None:
    """Without any row lock, two transactions inserting the same fire time at once end
    with one run: the second waits for the first and then inserts nothing."""
    schedule = add_schedule(sessions, tenant, created=T0)
    first = sessions()
    first.begin()
    assert insert_runs(first, schedule, [(minute(1), "scheduled")], now=T0) == {minute(1)}
    outcome: list[set[datetime]] = []

    def second() -> None:
        with sessions() as s, s.begin():
            outcome.append(insert_runs(s, schedule, [(minute(1), "catchup")], now=T0))

    thread = threading.Thread(target=second)
    thread.start()
    # blocked on the first transaction's row: Postgres shows it waiting for a lock held
    # by the first's backend (awaited; 30 s only ends the wait if it never blocks)
    holder = first.execute(text("select pg_backend_pid()")).scalar_one()
    deadline = time.monotonic() + 30
    with sessions() as watcher:
        while not watcher.execute(
            text("select count(*) from pg_stat_activity where :pid = any(pg_blocking_pids(pid))"),
            {"pid": holder},
        ).scalar_one():
            assert thread.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.01)
            watcher.rollback()  # a fresh snapshot of the activity each time
    assert outcome == []  # still waiting
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert outcome == [set()]
    assert [(r.fire_time, r.kind) for r in runs_of(sessions, schedule)] == [
        (minute(1), "scheduled")
    ]
    # and a plain INSERT of a duplicate is refused outright
    with pytest.raises(IntegrityError), sessions() as s, s.begin():
        s.add(ScheduleRun(schedule_id=schedule, fire_time=minute(1), kind="backfill"))


def test_pending_runs_start_oldest_first_as_batches_finish(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    schedule = add_schedule(sessions, tenant, created=T0, catchup=True, max_active_runs=2)
    tick(sessions, launcher(pg_settings), now=minute(5.5))
    runs = runs_of(sessions, schedule)
    assert [r.status for r in runs] == ["started", "started", "pending", "pending", "pending"]
    finish_batches(sessions, [runs[1].batch_id])
    tick(sessions, launcher(pg_settings), now=minute(5.6))
    runs = runs_of(sessions, schedule)
    assert [r.status for r in runs] == ["started", "started", "started", "pending", "pending"]
    finish_batches(sessions, [r.batch_id for r in runs])
    tick(sessions, launcher(pg_settings), now=minute(5.7))
    assert all(r.status == "started" for r in runs_of(sessions, schedule))
    with sessions() as s:
        total = s.scalar(select(func.count()).select_from(Batch))
    assert total == 5


def test_end_time_stops_the_schedule(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    schedule = add_schedule(
        sessions, tenant, created=T0, catchup=True, max_active_runs=10, end_time=minute(3)
    )
    tick(sessions, launcher(pg_settings), now=minute(10.5))
    assert [r.fire_time for r in runs_of(sessions, schedule)] == [minute(1), minute(2), minute(3)]
    with sessions() as s:
        row = s.get(Schedule, schedule)
        assert row is not None and row.next_fire_time is None
    assert tick(sessions, launcher(pg_settings), now=minute(20)).created == 0


def test_a_paused_schedule_makes_no_runs(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    schedule = add_schedule(sessions, tenant, created=T0, catchup=True, enabled=False)
    assert tick(sessions, launcher(pg_settings), now=minute(10.5)).created == 0
    assert runs_of(sessions, schedule) == []


def test_a_run_whose_batch_cannot_be_made_is_skipped_with_the_reason(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    schedule = add_schedule(
        sessions,
        tenant,
        created=T0,
        catchup=True,
        template={"dataset": "deleted-since", "defaults": {"strategy": {"name": "best_of_n"}}},
    )
    report = tick(sessions, launcher(pg_settings), now=minute(2.5))
    runs = runs_of(sessions, schedule)
    assert [r.status for r in runs] == ["skipped", "skipped"]  # neither holds a slot
    assert len(report.skipped) == 2
    assert runs[0].detail is not None and "unknown dataset 'deleted-since'" in runs[0].detail
    assert runs[0].batch_id is None and runs[0].started_at == minute(2.5)
    assert batches_of(sessions, schedule) == []


def test_a_manual_trigger_never_takes_a_cron_fire_time(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    schedule = add_schedule(sessions, tenant, created=T0)
    with sessions() as s, s.begin():
        row = s.get(Schedule, schedule)
        assert row is not None
        on_the_minute = minute(1)  # a trigger exactly at a cron fire time
        first = trigger_run(s, row, now=on_the_minute)
        second = trigger_run(s, row, now=on_the_minute)
        assert first.fire_time == on_the_minute + timedelta(microseconds=1)
        assert second.fire_time == on_the_minute + timedelta(microseconds=2)
        assert (first.kind, first.status) == ("manual", "pending")
        assert insert_runs(s, schedule, [(on_the_minute, "scheduled")], now=T0) == {on_the_minute}


def test_fire_times_follow_the_local_clock_across_dst(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    created = datetime(2025, 3, 8, 17, 0, tzinfo=UTC)  # 12:00 in New York
    schedule = add_schedule(
        sessions,
        tenant,
        created=created,
        cron="30 2 * * *",
        timezone="America/New_York",
        catchup=True,
        max_active_runs=5,
    )
    tick(sessions, launcher(pg_settings), now=datetime(2025, 3, 11, 12, tzinfo=UTC))
    assert [r.fire_time for r in runs_of(sessions, schedule)] == [
        datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 EDT
        datetime(2025, 3, 10, 6, 30, tzinfo=UTC),  # 02:30 EDT
        datetime(2025, 3, 11, 6, 30, tzinfo=UTC),
    ]


def test_a_schedule_that_can_no_longer_be_evaluated_stops_with_a_reason(
    sessions: sessionmaker[Session], tenant: str, pg_settings: Settings
) -> None:
    broken = add_schedule(sessions, tenant, created=T0, name="broken")
    healthy = add_schedule(sessions, tenant, created=T0, name="healthy")
    with sessions() as s, s.begin():  # e.g. its zone vanished from the tz database
        row = s.get(Schedule, broken)
        assert row is not None
        row.timezone = "Atlantis/Capital"
    tick(sessions, launcher(pg_settings), now=minute(1.5))
    runs = runs_of(sessions, broken)
    assert [(r.fire_time, r.status) for r in runs] == [(minute(1), "skipped")]
    assert runs[0].detail is not None and "unknown time zone 'Atlantis/Capital'" in runs[0].detail
    with sessions() as s:
        row = s.get(Schedule, broken)
        assert row is not None and row.next_fire_time is None
    assert [r.status for r in runs_of(sessions, healthy)] == ["started"]


def test_one_failing_schedule_does_not_hold_up_the_others(
    sessions: sessionmaker[Session],
    tenant: str,
    pg_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ponder.schedules import store

    failing = add_schedule(sessions, tenant, created=T0, cron="13 * * * *", name="failing")
    healthy = add_schedule(sessions, tenant, created=T0, name="healthy")
    real_plan = store.plan_due

    def plan_due(cron: Any, *args: Any, **kwargs: Any) -> Any:
        if cron.expression == "13 * * * *":
            raise RuntimeError("injected failure")
        return real_plan(cron, *args, **kwargs)

    monkeypatch.setattr(store, "plan_due", plan_due)
    tick(sessions, launcher(pg_settings), now=minute(20))
    assert runs_of(sessions, failing) == []
    assert [r.fire_time for r in runs_of(sessions, healthy)] == [minute(20)]
    monkeypatch.setattr(store, "plan_due", real_plan)
    tick(sessions, launcher(pg_settings), now=minute(20))  # it recovers at the next tick
    assert [r.fire_time for r in runs_of(sessions, failing)] == [minute(13)]
