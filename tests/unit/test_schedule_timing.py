"""Which fire times are due at a tick (pure, explicit ``now``): catch-up on and off, the
per-transaction cap, start and end times, and where the next fire time goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ponder.schedules.cron import CronSchedule
from ponder.schedules.timing import Window, plan_due

EVERY_MINUTE = CronSchedule("* * * * *")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_nothing_is_due_before_the_next_fire_time() -> None:
    plan = plan_due(
        EVERY_MINUTE, Window(), next_fire=minute(1), now=minute(0.5), catchup=True, limit=100
    )
    assert plan.runs == []
    assert plan.next_fire_time == minute(1)


def test_no_next_fire_time_means_no_fire_time_left() -> None:
    plan = plan_due(EVERY_MINUTE, Window(), next_fire=None, now=minute(5), catchup=True, limit=100)
    assert plan.runs == [] and plan.next_fire_time is None


def test_on_time_tick_makes_one_scheduled_run() -> None:
    plan = plan_due(
        EVERY_MINUTE, Window(), next_fire=minute(1), now=minute(1.1), catchup=False, limit=100
    )
    assert plan.runs == [(minute(1), "scheduled")]
    assert plan.next_fire_time == minute(2)
    assert plan.last_fire_time == minute(1)


def test_catchup_runs_every_missed_fire_time_oldest_first() -> None:
    # beat was down from minute 1 to minute 10.5
    plan = plan_due(
        EVERY_MINUTE, Window(), next_fire=minute(1), now=minute(10.5), catchup=True, limit=100
    )
    assert plan.runs == [(minute(n), "catchup") for n in range(1, 10)] + [(minute(10), "scheduled")]
    assert plan.next_fire_time == minute(11)


def test_without_catchup_only_the_newest_missed_fire_time_runs() -> None:
    plan = plan_due(
        EVERY_MINUTE, Window(), next_fire=minute(1), now=minute(10.5), catchup=False, limit=100
    )
    assert plan.runs == [(minute(10), "scheduled")]
    assert plan.next_fire_time == minute(11)


def test_without_catchup_after_a_very_long_downtime() -> None:
    # a year of missed minutes: found by walking back, not by listing half a million
    now = T0 + timedelta(days=365, seconds=30)
    plan = plan_due(EVERY_MINUTE, Window(), next_fire=minute(1), now=now, catchup=False, limit=100)
    assert plan.runs == [(now.replace(second=0), "scheduled")]


def test_a_long_catchup_is_spread_over_several_transactions() -> None:
    plan = plan_due(
        EVERY_MINUTE, Window(), next_fire=minute(1), now=minute(250.5), catchup=True, limit=100
    )
    assert plan.runs == [(minute(n), "catchup") for n in range(1, 101)]
    assert plan.next_fire_time == minute(101)  # still due: the next transaction goes on
    plan = plan_due(
        EVERY_MINUTE, Window(), next_fire=minute(201), now=minute(250.5), catchup=True, limit=100
    )
    assert plan.runs[-1] == (minute(250), "scheduled")
    assert len(plan.runs) == 50


def test_end_time_stops_the_schedule() -> None:
    window = Window(end_time=minute(3))
    plan = plan_due(
        EVERY_MINUTE, window, next_fire=minute(1), now=minute(10), catchup=True, limit=100
    )
    assert [fire for fire, _ in plan.runs] == [minute(1), minute(2), minute(3)]
    assert plan.next_fire_time is None
    plan = plan_due(
        EVERY_MINUTE, window, next_fire=minute(1), now=minute(10), catchup=False, limit=100
    )
    assert plan.runs == [(minute(3), "scheduled")]
    assert plan.next_fire_time is None


def test_end_time_already_passed_makes_nothing() -> None:
    window = Window(end_time=minute(0.5))
    plan = plan_due(
        EVERY_MINUTE, window, next_fire=minute(1), now=minute(5), catchup=True, limit=100
    )
    assert plan.runs == [] and plan.next_fire_time is None


def test_start_time_holds_fire_times_back() -> None:
    window = Window(start_time=minute(5))
    assert window.first_after(EVERY_MINUTE, minute(0)) == minute(5)  # included
    assert window.first_after(EVERY_MINUTE, minute(5)) == minute(6)
    plan = plan_due(
        EVERY_MINUTE, window, next_fire=minute(1), now=minute(7), catchup=True, limit=100
    )
    assert [fire for fire, _ in plan.runs] == [minute(5), minute(6), minute(7)]


def test_upcoming_fire_times_stay_inside_the_window() -> None:
    window = Window(start_time=minute(10), end_time=minute(12))
    assert window.upcoming(EVERY_MINUTE, minute(0), 5) == [minute(10), minute(11), minute(12)]
    assert Window().upcoming(EVERY_MINUTE, minute(0), 2) == [minute(1), minute(2)]
    assert window.upcoming(EVERY_MINUTE, minute(12), 5) == []
