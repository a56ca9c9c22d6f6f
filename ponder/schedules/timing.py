"""When a schedule fires: pure functions of a cron schedule, the schedule's settings and
an explicit ``now`` (no clock reads, no database), so every rule is tested directly.

A schedule's ``next_fire_time`` is the earliest fire time not dealt with yet.
At each tick the fire times from the next fire time up to ``now`` are *due*: with ``catchup``
every one of them becomes a run, without it only the newest does (the older ones were
missed, e.g. while beat was down, and are dropped). It then moves past ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from ponder.schedules.cron import CronSchedule
from ponder.tables import ScheduleRunKind

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    """The part of time a schedule may fire in: ``start_time`` and ``end_time`` both
    included, either open."""

    start_time: datetime | None = None
    end_time: datetime | None = None

    def first_after(self, cron: CronSchedule, instant: datetime) -> datetime | None:
        """The first fire time strictly after ``instant`` inside the window, if any."""
        after = instant
        if self.start_time is not None and self.start_time - _TICK > after:
            after = self.start_time - _TICK
        fire = next(cron.after(after), None)
        if fire is None or (self.end_time is not None and fire > self.end_time):
            return None
        return fire

    def upcoming(self, cron: CronSchedule, now: datetime, count: int) -> list[datetime]:
        """Up to ``count`` fire times after ``now`` inside the window."""
        first = self.first_after(cron, now)
        if first is None:
            return []
        times: list[datetime] = []
        for fire in cron.after(first - _TICK):
            if len(times) >= count or (self.end_time is not None and fire > self.end_time):
                break
            times.append(fire)
        return times


@dataclass(frozen=True)
class DuePlan:
    """What one tick does for one schedule: the runs to create (fire time, kind), oldest
    first, and where the next fire time goes."""

    runs: list[tuple[datetime, ScheduleRunKind]]
    next_fire_time: datetime | None

    @property
    def last_fire_time(self) -> datetime | None:
        return self.runs[-1][0] if self.runs else None


def plan_due(
    cron: CronSchedule,
    window: Window,
    *,
    next_fire: datetime | None,
    now: datetime,
    catchup: bool,
    limit: int,
) -> DuePlan:
    """The runs due at ``now`` for a schedule whose next fire time is ``next_fire``.

    The newest due fire time is ``scheduled``; older ones (only with ``catchup``) are
    ``catchup``. At most ``limit`` runs are planned: after a long downtime the rest
    follow at the next ticks, oldest first (so every planned run is then ``catchup``)."""
    if next_fire is None or next_fire > now:
        return DuePlan([], next_fire)
    horizon = now if window.end_time is None else min(now, window.end_time)
    lowest = next_fire if window.start_time is None else max(next_fire, window.start_time)
    if lowest > horizon:
        due: list[datetime] = []
    elif catchup:
        due = list(islice(cron.between(lowest, horizon), limit + 1))
    else:
        latest = cron.latest_at_or_before(horizon, not_before=lowest)
        due = [] if latest is None else [latest]
    if len(due) > limit:
        due = due[:limit]
        runs = [(fire, ScheduleRunKind.CATCHUP) for fire in due]
        return DuePlan(runs, window.first_after(cron, due[-1]))
    runs = [(fire, ScheduleRunKind.CATCHUP) for fire in due[:-1]]
    runs.extend((fire, ScheduleRunKind.SCHEDULED) for fire in due[-1:])
    return DuePlan(runs, window.first_after(cron, now))
