"""Cron expressions and time zones (pure functions with explicit instants): what is
accepted, what each refusal says, and when a schedule fires, across daylight-saving
time changes."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from ponder.schedules.cron import CronError, CronSchedule, parse_cron, parse_timezone

NY = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)  # type: ignore[misc]


def fires(expr: str, zone: str, after: datetime, count: int) -> list[datetime]:
    return list(islice(CronSchedule(expr, zone).after(after), count))


def walls(times: list[datetime], zone: str) -> list[str]:
    """Local wall-clock readings with their UTC offsets, e.g. ``03-09 03:00-0400``."""
    return [t.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M%z") for t in times]


# ---------------------------------------------------------------- syntax accepted


@pytest.mark.parametrize(
    ("expression", "numeric"),
    [
        ("* * * * *", "* * * * *"),
        ("30 2 * * *", "30 2 * * *"),
        ("  30   2 * *   * ", "30 2 * * *"),
        ("*/15 9-17 * * mon-fri", "*/15 9-17 * * 1-5"),
        ("0 0 1,15 * *", "0 0 1,15 * *"),
        ("0 0 * JAN-Mar *", "0 0 * 1-3 *"),
        ("0 0 * * sun", "0 0 * * 0"),
        ("0 0 * * 7", "0 0 * * 7"),
        ("0 0 * * mon-sun", "0 0 * * 1-7"),  # sun closing a range is day 7
        ("5/20 * * * *", "5-59/20 * * * *"),
        ("1-30/10 * * * *", "1-30/10 * * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # leap days exist
    ],
)
def test_accepted_expressions(expression: str, numeric: str) -> None:
    assert parse_cron(expression) == numeric
    CronSchedule(expression)


# ---------------------------------------------------------------- syntax refused


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "'61 * * * *': minute must be 0-59, got 61"),
        ("* 24 * * *", "hour must be 0-23, got 24"),
        ("0 0 0 * *", "day-of-month must be 1-31, got 0"),
        ("0 0 32 * *", "day-of-month must be 1-31, got 32"),
        ("0 0 * 13 *", "month must be 1-12, got 13"),
        ("0 0 * 0 *", "month must be 1-12, got 0"),
        ("0 0 * * 8", "day-of-week must be 0-7, got 8"),
        ("* * * *", "has 4 fields; write exactly five"),
        ("* * * * * *", "has 6 fields; write exactly five (no seconds or year field)"),
        ("0 0 1 1 * 2030", "has 6 fields"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("@reboot", "'@reboot' is not a known alias; use one of"),
        ("@every 5m", "not a known alias"),
        ("x * * * *", "minute must be a number 0-59, got 'x'"),
        ("0 0 * foo *", "month must be a number 1-12 or a name (jan, feb"),
        ("0 0 * * funday", "day-of-week must be a number 0-7 or a name (sun, mon"),
        ("mon * * * *", "minute must be a number 0-59, got 'mon'"),  # names only where they fit
        ("*/0 * * * *", "minute step '0' must be a whole number of 1 or more"),
        ("*/x * * * *", "minute step 'x' must be a whole number"),
        ("*/ * * * *", "minute step '' must be a whole number"),
        ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
        ("1, * * * *", "empty list item"),
        ("5-1 * * * *", "minute range '5-1' is reversed"),
        ("0 0 * * fri-mon", "day-of-week range 'fri-mon' is reversed"),
        ("-1 * * * *", "minute range '-1' needs a value on both sides of '-'"),
        ("1- * * * *", "needs a value on both sides"),
        ("1-2-3 * * * *", "got '2-3'"),
        ("0 0 L * *", "day-of-month must be a number 1-31, got 'L'"),
        ("0 0 ? * *", "day-of-month must be a number 1-31, got '?'"),
        ("0 0 * * 1#2", "got '1#2'"),
        ("H * * * *", "got 'H'"),
        ("0 0 30 2 *", "'0 0 30 2 *' never fires: no calendar date matches it"),
        ("0 0 31 4,6,9,11 *", "never fires"),
    ],
)
def test_refused_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        CronSchedule(expression)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
)
def test_known_time_zones(name: str) -> None:
    parse_timezone(name)
    CronSchedule("0 0 * * *", name)


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Olympus_Mons",
        "",
        "utc ",
        "europe/paris",  # IANA names are case-sensitive
        "+02:00",
        "../../etc/passwd",
        "/etc/localtime",
        "localtime",  # the server's own zone: means something else on every server
        "right/UTC",  # leap-second variants
        "posix/Europe/Paris",
        "Europe/Paris\x00",
    ],
)
def test_unknown_time_zones_are_refused(name: str) -> None:
    with pytest.raises(CronError, match=r"unknown time zone .*use an IANA name such as"):
        CronSchedule("0 0 * * *", name)


def test_naive_instants_are_refused() -> None:
    schedule = CronSchedule("* * * * *")
    with pytest.raises(ValueError, match="timezone-aware"):
        next(schedule.after(datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.latest_at_or_before(datetime(2026, 1, 1), not_before=utc(2025, 1, 1))


# ---------------------------------------------------------------- plain evaluation


def test_fire_times_are_strictly_after_and_ascending() -> None:
    assert fires("*/20 * * * *", "UTC", utc(2026, 1, 1, 10, 0), 4) == [
        utc(2026, 1, 1, 10, 20),
        utc(2026, 1, 1, 10, 40),
        utc(2026, 1, 1, 11, 0),
        utc(2026, 1, 1, 11, 20),
    ]
    # from between two fire times, and from a non-whole second
    assert fires("0 * * * *", "UTC", utc(2026, 1, 1, 10, 0, 0, 1), 1) == [utc(2026, 1, 1, 11)]


def test_between_includes_both_ends() -> None:
    schedule = CronSchedule("0 * * * *")
    assert list(schedule.between(utc(2026, 1, 1, 1), utc(2026, 1, 1, 3))) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]
    assert list(schedule.between(utc(2026, 1, 1, 1, 1), utc(2026, 1, 1, 1, 59))) == []


def test_day_of_month_and_day_of_week_are_either_or() -> None:
    # the 13th, or any Friday (every Unix cron's rule when both are restricted)
    got = fires("0 0 13 * fri", "UTC", utc(2026, 2, 1), 4)
    assert [t.date().isoformat() for t in got] == [
        "2026-02-06",
        "2026-02-13",
        "2026-02-20",
        "2026-02-27",
    ]


def test_sunday_is_both_0_and_7() -> None:
    assert fires("0 0 * * 0", "UTC", utc(2026, 1, 1), 3) == fires(
        "0 0 * * 7", "UTC", utc(2026, 1, 1), 3
    )


def test_a_leap_day_schedule_fires_every_four_years() -> None:
    assert fires("0 12 29 2 *", "UTC", utc(2025, 1, 1), 3) == [
        utc(2028, 2, 29, 12),
        utc(2032, 2, 29, 12),
        utc(2036, 2, 29, 12),
    ]


def test_local_time_in_a_zone_without_dst() -> None:
    # 09:00 in Kolkata (UTC+05:30) is 03:30 UTC
    assert fires("0 9 * * *", "Asia/Kolkata", utc(2026, 6, 1), 2) == [
        utc(2026, 6, 1, 3, 30),
        utc(2026, 6, 2, 3, 30),
    ]


def test_the_same_expression_follows_summer_and_winter_offsets() -> None:
    # 02:30 in Paris: 01:30 UTC in winter (CET), 00:30 UTC in summer (CEST)
    assert fires("30 2 * * *", "Europe/Paris", utc(2026, 1, 10), 1) == [utc(2026, 1, 10, 1, 30)]
    assert fires("30 2 * * *", "Europe/Paris", utc(2026, 7, 10), 1) == [utc(2026, 7, 10, 0, 30)]


# ---------------------------------------------------------------- daylight saving time
# America/New_York 2025: clocks jump 02:00 -> 03:00 on March 9, and go back
# 02:00 -> 01:00 on November 2 (01:00-01:59 happens twice: first EDT, then EST).


def test_spring_forward_a_skipped_time_fires_once_at_the_jump() -> None:
    got = fires("30 2 * * *", NY, local(NY, 2025, 3, 8, 12), 3)
    assert walls(got, NY) == ["03-09 03:00-0400", "03-10 02:30-0400", "03-11 02:30-0400"]
    assert got[0] == utc(2025, 3, 9, 7, 0)


def test_spring_forward_several_skipped_times_collapse_into_one() -> None:
    got = fires("*/15 * * * *", NY, local(NY, 2025, 3, 9, 1, 30), 5)
    assert walls(got, NY) == [
        "03-09 01:45-0500",
        "03-09 03:00-0400",  # 02:00, 02:15, 02:30, 02:45 and 03:00 itself: once
        "03-09 03:15-0400",
        "03-09 03:30-0400",
        "03-09 03:45-0400",
    ]


def test_spring_forward_times_outside_the_gap_are_unaffected() -> None:
    got = fires("0 * * * *", NY, local(NY, 2025, 3, 9, 0, 30), 4)
    assert walls(got, NY) == [
        "03-09 01:00-0500",
        "03-09 03:00-0400",
        "03-09 04:00-0400",
        "03-09 05:00-0400",
    ]


def test_fall_back_a_repeated_time_fires_once_at_its_first_occurrence() -> None:
    got = fires("30 1 * * *", NY, local(NY, 2025, 11, 1, 12), 3)
    assert walls(got, NY) == ["11-02 01:30-0400", "11-03 01:30-0500", "11-04 01:30-0500"]
    assert got[0] == utc(2025, 11, 2, 5, 30)


def test_fall_back_a_frequent_schedule_skips_the_second_pass_of_the_hour() -> None:
    got = fires("*/30 * * * *", NY, local(NY, 2025, 11, 2, 0, 45), 5)
    assert walls(got, NY) == [
        "11-02 01:00-0400",
        "11-02 01:30-0400",
        "11-02 02:00-0500",  # 01:00 and 01:30 EST were already fired (as EDT)
        "11-02 02:30-0500",
        "11-02 03:00-0500",
    ]


def test_fall_back_starting_inside_the_second_pass() -> None:
    # at 01:10 EST (the repeat) every 01:xx was already fired during the EDT pass
    start = local(NY, 2025, 11, 2, 1, 10, fold=1)
    assert start.utcoffset() == timedelta(hours=-5)
    assert walls(fires("*/20 * * * *", NY, start, 2), NY) == [
        "11-02 02:00-0500",
        "11-02 02:20-0500",
    ]


def test_southern_hemisphere_and_half_hour_shifts() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 -> 01:30 on 2025-04-06,
    # 02:00 -> 02:30 on 2025-10-05
    zone = "Australia/Lord_Howe"
    assert walls(fires("45 1 * * *", zone, local(zone, 2025, 4, 5, 12), 2), zone) == [
        "04-06 01:45+1100",
        "04-07 01:45+1030",
    ]
    assert walls(fires("15 2 * * *", zone, local(zone, 2025, 10, 4, 12), 2), zone) == [
        "10-05 02:30+1100",  # 02:15 does not exist that day
        "10-06 02:15+1100",
    ]


def test_a_whole_skipped_day_fires_once_when_the_day_resumes() -> None:
    # Samoa skipped 2011-12-30 entirely (UTC-10 -> UTC+14)
    zone = "Pacific/Apia"
    got = fires("30 2 * * *", zone, local(zone, 2011, 12, 29, 12), 2)
    assert walls(got, zone) == ["12-31 00:00+1400", "12-31 02:30+1400"]


# ---------------------------------------------------------------- latest_at_or_before


@pytest.mark.parametrize(
    ("expr", "zone", "instant", "expected"),
    [
        ("0 * * * *", "UTC", utc(2026, 1, 1, 10, 59), utc(2026, 1, 1, 10)),
        ("0 * * * *", "UTC", utc(2026, 1, 1, 10), utc(2026, 1, 1, 10)),  # included
        ("30 2 * * *", NY, utc(2025, 3, 9, 7, 10), utc(2025, 3, 9, 7)),  # the jump
        ("30 2 * * *", NY, utc(2025, 3, 9, 6, 59), utc(2025, 3, 8, 7, 30)),
        # 01:45 EST on fall-back day: 01:30 fired once, in EDT
        ("30 1 * * *", NY, utc(2025, 11, 2, 6, 45), utc(2025, 11, 2, 5, 30)),
        ("*/15 * * * *", NY, utc(2025, 11, 2, 6, 45), utc(2025, 11, 2, 5, 45)),
        ("*/15 * * * *", NY, utc(2025, 11, 2, 7, 0), utc(2025, 11, 2, 7, 0)),
    ],
)
def test_latest_at_or_before(expr: str, zone: str, instant: datetime, expected: datetime) -> None:
    schedule = CronSchedule(expr, zone)
    assert schedule.latest_at_or_before(instant, not_before=instant - timedelta(days=3)) == expected


def test_latest_at_or_before_respects_the_lower_bound() -> None:
    schedule = CronSchedule("0 0 * * *")
    assert schedule.latest_at_or_before(utc(2026, 1, 5, 12), not_before=utc(2026, 1, 5, 1)) is None
    assert schedule.latest_at_or_before(utc(2026, 1, 5, 12), not_before=utc(2026, 1, 5)) == utc(
        2026, 1, 5
    )


@pytest.mark.parametrize(
    ("expr", "zone"),
    [
        ("7,37 * * * *", NY),
        ("30 1,2 * * *", NY),
        ("15 2 * * *", "Australia/Lord_Howe"),
        ("*/20 0-3 * * *", "Europe/London"),
        ("0 */3 * * *", "UTC"),
    ],
)
def test_properties_over_a_year(expr: str, zone: str) -> None:
    """Over a year that contains both changes: fire times ascend strictly, no local
    wall-clock time fires twice, and walking back agrees with walking forward."""
    schedule = CronSchedule(expr, zone)
    tz = ZoneInfo(zone)
    start, end = utc(2025, 1, 1), utc(2026, 1, 1)
    forward = list(schedule.between(start, end))
    assert forward == sorted(set(forward))
    # no two fire times read the same on the local clock (a repeated hour fires once)
    fired_walls = [t.astimezone(tz).replace(tzinfo=None) for t in forward]
    assert len(fired_walls) == len(set(fired_walls))
    rng = random.Random(expr)
    for _ in range(200):
        instant = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
        before = bisect.bisect_right(forward, instant)
        expected = forward[before - 1] if before else None
        assert schedule.latest_at_or_before(instant, not_before=start) == expected, instant


def test_schedules_compare_by_instant_not_by_zone_object() -> None:
    paris = fires("0 12 * * *", "Europe/Paris", utc(2026, 1, 1), 1)[0]
    assert paris.tzinfo is UTC
    assert paris == utc(2026, 1, 1, 11)
