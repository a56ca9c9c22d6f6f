"""Cron expressions evaluated in an IANA time zone, with fire times in UTC.

Pure functions of their inputs (no clock reads): every computation takes the instant it
starts from, so tests drive it with explicit times.

**Syntax.** The classic five fields ``minute hour day-of-month month day-of-week``:
``*``, single values, ranges ``a-b``, lists ``a,b,c`` and steps ``*/n``, ``a-b/n`` and
``a/n`` (``a`` to the field's maximum). Months may be written ``jan``-``dec`` and days
``sun``-``sat`` (0 and 7 are both Sunday; ``sun`` ending a range means 7, so ``mon-sun``
is the whole week). When both day-of-month and day-of-week are restricted, a day
matching *either* fires (as in every Unix cron). Aliases: ``@yearly`` (``@annually``),
``@monthly``, ``@weekly``, ``@daily`` (``@midnight``), ``@hourly``. Seconds and year
fields, ``L``, ``W``, ``#``, ``?`` and ``H`` are not accepted.

**Time zones and daylight saving time.** The expression matches *local wall-clock*
times of the schedule's zone, and each matching local time fires exactly once:

- a local time that does not exist because the clocks jump forward (``30 2 * * *`` on
  the spring-forward day in ``America/New_York``, where 02:00 becomes 03:00) fires at
  the instant of the jump (03:00 local). Several skipped times (``*/15 * * * *``
  between 02:00 and 02:59) collapse into that one fire time, which is also the 03:00
  fire time itself when the expression matches 03:00;
- a local time that occurs twice because the clocks go back (``30 1 * * *`` on the
  fall-back day, when 01:00-01:59 happens first in EDT, then in EST) fires once, at its
  *first* occurrence. So an hourly ``0 * * * *`` schedule in such a zone has a two-hour
  gap once a year; a schedule that needs strictly even intervals should use ``UTC``.

This is what Vixie cron and cronie do for fixed-time jobs, and it keeps fire times in
the order of the local times they stand for. (croniter itself, which does the matching
here, moves skipped times to the jump too, but fires repeated times twice; the mapping
to UTC below is ours.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadDateError, CroniterError, croniter

from ponder.errors import ErrorCode, PonderError

# The last year croniter is asked about; fire times beyond it do not exist for Ponder.
MAX_YEAR = 2999

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day-of-month", 1, 31, {}),
    _Field("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    _Field("day-of-week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
)
_FORM = "'minute hour day-of-month month day-of-week', e.g. '30 2 * * *'"
_NUMBER = re.compile(r"[0-9]+")


class CronError(PonderError, ValueError):
    """An expression or time zone that cannot be used; the message says why."""

    code = ErrorCode.INVALID


def parse_cron(expression: str) -> str:
    """``expression`` in the plain numeric five-field form croniter is given (names and
    aliases resolved), or :class:`CronError` saying what is wrong, e.g.
    ``'61 * * * *': minute must be 0-59, got 61``."""
    text = " ".join(expression.split())
    if not text:
        raise CronError(f"is empty; write five fields {_FORM}")
    if text.startswith("@"):
        alias = ALIASES.get(text.lower())
        if alias is None:
            known = ", ".join(sorted(ALIASES))
            raise CronError(f"{text!r} is not a known alias; use one of {known}")
        return alias
    fields = text.split(" ")
    if len(fields) != len(_FIELDS):
        hint = " (no seconds or year field)" if len(fields) in (6, 7) else ""
        raise CronError(f"{text!r} has {len(fields)} fields; write exactly five{hint}: {_FORM}")
    return " ".join(
        _parse_field(text, spec, value) for spec, value in zip(_FIELDS, fields, strict=True)
    )


def _parse_field(text: str, spec: _Field, value: str) -> str:
    parts = value.split(",")
    if any(part == "" for part in parts):
        raise CronError(f"{text!r}: {spec.name} {value!r} has an empty list item")
    return ",".join(_parse_item(text, spec, part) for part in parts)


def _parse_item(text: str, spec: _Field, item: str) -> str:
    base, slash, step_text = item.partition("/")
    step = ""
    if slash:
        if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
            raise CronError(
                f"{text!r}: {spec.name} step {step_text!r} must be a whole number of 1 or more"
            )
        step = f"/{int(step_text)}"
    if base == "*":
        return "*" + step
    low_text, dash, high_text = base.partition("-")
    if dash and not (low_text and high_text):
        raise CronError(f"{text!r}: {spec.name} range {base!r} needs a value on both sides of '-'")
    low = _value(text, spec, low_text, range_end=False)
    if not dash:
        # ``a/n`` means from a to the field's maximum, every n
        return f"{low}-{spec.high}{step}" if step else str(low)
    high = _value(text, spec, high_text, range_end=True)
    if low > high:
        raise CronError(
            f"{text!r}: {spec.name} range {base!r} is reversed; write it low-high "
            f"(or as a list of two ranges)"
        )
    return f"{low}-{high}{step}"


def _value(text: str, spec: _Field, token: str, *, range_end: bool) -> int:
    if _NUMBER.fullmatch(token):
        number = int(token)
    elif token.lower() in spec.names:
        number = spec.names[token.lower()]
        if range_end and spec.name == "day-of-week" and number == 0:
            number = 7  # ``mon-sun``: Sunday as the end of the week
    else:
        names = ""
        if spec.names:
            names = f" or a name ({', '.join(spec.names)})"
        shown = token or "nothing"
        raise CronError(
            f"{text!r}: {spec.name} must be a number {spec.low}-{spec.high}{names}, got {shown!r}"
        )
    if not spec.low <= number <= spec.high:
        raise CronError(f"{text!r}: {spec.name} must be {spec.low}-{spec.high}, got {number}")
    return number


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_timezone(name: str) -> tzinfo:
    """The IANA zone called ``name`` (``UTC``, ``Europe/Paris``, ...), or
    :class:`CronError`. The server's ``localtime`` and the leap-second ``right/`` zones
    are refused: they would not mean the same thing on every server."""
    if name == "UTC":
        return UTC
    unusable = name in ("localtime", "Factory") or name.startswith(("right/", "posix/"))
    if unusable or name not in _zone_names():
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC', "
            "'Europe/Paris' or 'America/New_York'"
        )
    return ZoneInfo(name)


class CronSchedule:
    """A validated cron expression in a time zone. Fire times are aware UTC datetimes,
    ascending, each once (see the module's notes on daylight saving time)."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = " ".join(expression.split())
        self.timezone = timezone
        self._numeric = parse_cron(expression)
        self._zone = parse_timezone(timezone)
        # A valid expression may still name no real date (``0 0 30 2 *``).
        try:
            self.next_after(datetime(2000, 1, 1, tzinfo=UTC))
        except CronError:
            raise CronError(
                f"{self.expression!r} never fires: no calendar date matches it"
            ) from None

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone!r})"

    def after(self, instant: datetime) -> Iterator[datetime]:
        """Every fire time strictly after ``instant``, ascending (endless, up to
        :data:`MAX_YEAR`)."""
        _require_aware(instant)
        start = instant.astimezone(self._zone).replace(tzinfo=None)
        # Every local time at or before ``start`` maps to an instant at or before
        # ``instant`` (the mapping is monotonic), so matching starts there.
        matches = croniter(self._numeric, start, ret_type=datetime)
        previous: datetime | None = None
        while True:
            try:
                local = matches.get_next(datetime)
            except CroniterBadDateError:
                return
            except CroniterError as exc:  # the expression was validated; not expected
                raise CronError(str(exc)) from exc
            if local.year > MAX_YEAR:
                return
            fire = self._to_utc(local)
            if fire <= instant or fire == previous:
                continue
            previous = fire
            yield fire

    def next_after(self, instant: datetime) -> datetime:
        """The first fire time strictly after ``instant``; :class:`CronError` if none."""
        for fire in self.after(instant):
            return fire
        raise CronError(f"{self.expression!r} has no fire time after {instant.isoformat()}")

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every fire time in ``[start, end]`` (both included), ascending."""
        for fire in self.after(start - timedelta(microseconds=1)):
            if fire > end:
                return
            yield fire

    def latest_at_or_before(self, instant: datetime, *, not_before: datetime) -> datetime | None:
        """The newest fire time in ``[not_before, instant]``, if any, found by walking
        back from ``instant`` (cheap even when the range is long)."""
        _require_aware(instant)
        local = instant.astimezone(self._zone)
        start = local.replace(tzinfo=None)
        if getattr(local, "fold", 0) == 1:
            # The second pass of a repeated hour: local times up to an hour (the size of
            # the repeat) later still map to instants before ``instant``.
            first_pass = start.replace(tzinfo=self._zone, fold=0).utcoffset()
            second_pass = local.utcoffset()
            if first_pass is not None and second_pass is not None:
                start += first_pass - second_pass
        matches = croniter(self._numeric, start + timedelta(microseconds=1), ret_type=datetime)
        while True:
            try:
                candidate = matches.get_prev(datetime)
            except CroniterBadDateError:
                return None
            fire = self._to_utc(candidate)
            if fire < not_before:
                return None
            if fire <= instant:
                return fire

    def _to_utc(self, local: datetime) -> datetime:
        """A naive local wall-clock time as the UTC instant it fires at."""
        if self._zone is UTC:
            return local.replace(tzinfo=UTC)
        first = local.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
        if first.astimezone(self._zone).replace(tzinfo=None) == local:
            return first  # it exists (a repeated time: its first occurrence)
        return _transition_before(first, self._zone)


def _transition_before(shifted: datetime, zone: tzinfo) -> datetime:
    """For a local time skipped by a forward jump, interpreted with the offset from before
    the jump (``shifted``, which lands after the jump by the skipped span): the instant
    of the jump itself. Found by bisection over whole seconds, as offsets change at most
    a day at a time."""
    after_offset = shifted.astimezone(zone).utcoffset()
    low = shifted - timedelta(days=1)  # before the jump
    high = shifted  # at or after it
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + timedelta(seconds=1)
        if middle.astimezone(zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return high


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("fire-time computations need timezone-aware datetimes")
