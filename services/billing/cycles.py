"""The reseller's billing cycles (SPEC §6): a cycle-end day D (1–31, or `last` = calendar months) and
a time zone that decides an event's day, both set with an effective date so that history is never
re-cut.

The cycle of month M ends on min(D, last day of M) and starts the day after the previous cycle
ended; its report is dated the day after it ends. A setting applies to the cycles that *start* on or
after its effective date, so a cycle that began under the old setting ends under it.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.errors import InvalidInput
from services.i18n import _

LAST = None  # cycle_day None = the last day of every month (calendar months)


@dataclass(frozen=True)
class CycleSetting:
    """Cycle-end day (None = last day of the month) and time zone, in force from `effective_from`."""

    effective_from: date
    cycle_day: int | None = LAST
    timezone: str = "UTC"

    @property
    def day_label(self) -> str:
        return "last" if self.cycle_day is None else str(self.cycle_day)


DEFAULT_SETTING = CycleSetting(effective_from=date.min, cycle_day=LAST, timezone="UTC")


@dataclass(frozen=True, order=True)
class Cycle:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def report_date(self) -> date:
        return self.end + timedelta(days=1)

    @property
    def month(self) -> tuple[int, int]:
        """The month the cycle belongs to: the month it ends in."""
        return (self.end.year, self.end.month)

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def parse_cycle_day(value: str | int | None) -> int | None:
    """`last` (or None) = calendar months; otherwise a day 1–31."""
    if value is None:
        return LAST
    text = str(value).strip().lower()
    if text == "last":
        return LAST
    try:
        day = int(text)
    except ValueError:
        raise InvalidInput(_("The cycle day is a number from 1 to 31, or 'last'."), field="day") from None
    if not 1 <= day <= 31:
        raise InvalidInput(_("The cycle day is a number from 1 to 31, or 'last'."), field="day")
    return day


def parse_timezone(value: str) -> str:
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            _("Unknown time zone {value!r}; use an IANA name such as Europe/Oslo.", value=value), field="timezone"
        ) from None
    return name


def month_end(year: int, month: int, cycle_day: int | None) -> date:
    """The end of the cycle of month (year, month): min(D, last day of the month)."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, last if cycle_day is None else min(cycle_day, last))


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def add_months(day: date, months: int) -> date:
    """`day` plus whole months, clamped to the last day of the target month."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


class CycleCalendar:
    """Cycles and event days under a history of settings (pure; built from the stored settings)."""

    def __init__(self, settings: Sequence[CycleSetting] = ()) -> None:
        ordered = sorted(settings, key=lambda s: s.effective_from)
        if not ordered or ordered[0].effective_from > date.min:
            ordered.insert(0, DEFAULT_SETTING)
        self._settings = tuple(ordered)
        self._zones = {s.timezone: ZoneInfo(s.timezone) for s in self._settings}
        self._cache: dict[date, Cycle] = {}
        self._days: dict[datetime, date] = {}

    @property
    def settings(self) -> tuple[CycleSetting, ...]:
        return self._settings

    def setting_on(self, day: date) -> CycleSetting:
        current = self._settings[0]
        for setting in self._settings:
            if setting.effective_from <= day:
                current = setting
        return current

    def day_of(self, moment: datetime) -> date:
        """An event's day: its date in the reseller's time zone (the one in force on its UTC date)."""
        known = self._days.get(moment)
        if known is not None:
            return known
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        setting = self.setting_on(aware.astimezone(UTC).date())
        day = aware.astimezone(self._zones[setting.timezone]).date()
        self._days[moment] = day
        return day

    def today(self, now: datetime) -> date:
        return self.day_of(now)

    def _cycle_starting(self, start: date) -> Cycle:
        cached = self._cache.get(start)
        if cached is not None:
            return cached
        setting = self.setting_on(start)
        year, month = start.year, start.month
        end = month_end(year, month, setting.cycle_day)
        while end < start:
            year, month = _next_month(year, month)
            end = month_end(year, month, setting.cycle_day)
        cycle = Cycle(start, end)
        self._cache[start] = cycle
        return cycle

    def cycle_of(self, day: date) -> Cycle:
        """The cycle containing `day`."""
        # Cycles are anchored at the first setting; walk from a known boundary near `day`.
        anchor = self._anchor_before(day)
        cycle = self._cycle_starting(anchor)
        while cycle.end < day:
            cycle = self._cycle_starting(cycle.end + timedelta(days=1))
        return cycle

    def _anchor_before(self, day: date) -> date:
        """A cycle start at most ~2 months before `day` (never re-walks history from year 1)."""
        setting = self.setting_on(day)
        # The latest setting change at or before `day` starts a cycle only if the previous cycle
        # ended the day before; find the boundary under the previous setting when needed.
        if setting.effective_from == date.min:
            year, month = day.year, day.month
            for _unused in range(2):
                year, month = (year - 1, 12) if month == 1 else (year, month - 1)
            return month_end(year, month, setting.cycle_day) + timedelta(days=1)
        # Under an older setting: the cycle of the effective date's previous day decides where the
        # first new cycle starts.
        previous = self.cycle_of(setting.effective_from - timedelta(days=1))
        start = previous.end + timedelta(days=1)
        if start > day:  # `day` is still inside the last cycle under the old setting
            return previous.start
        if (day - start).days > 62:
            # Far past the change: the new setting's boundaries are regular from here on.
            year, month = day.year, day.month
            for _unused in range(2):
                year, month = (year - 1, 12) if month == 1 else (year, month - 1)
            candidate = month_end(year, month, setting.cycle_day) + timedelta(days=1)
            if candidate > start:
                return candidate
        return start

    def cycles_ending_in(self, first: tuple[int, int], last: tuple[int, int]) -> list[Cycle]:
        """The cycles that end in the months first..last (year, month), in order: one per month,
        two only in a month where a new cycle day took effect."""
        start = date(first[0], first[1], 1)
        stop = date(last[0], last[1], calendar.monthrange(last[0], last[1])[1])
        return [cycle for cycle in self.cycles_between(start, stop) if start <= cycle.end <= stop]

    def cycle_of_month(self, year: int, month: int) -> Cycle:
        """The cycle of month M: the (last) one that ends in it."""
        return self.cycles_ending_in((year, month), (year, month))[-1]

    def cycles_between(self, first: date, last: date) -> list[Cycle]:
        """Every cycle overlapping [first, last], in order."""
        cycles = []
        cycle = self.cycle_of(first)
        while cycle.start <= last:
            cycles.append(cycle)
            cycle = self.cycle_of(cycle.end + timedelta(days=1))
        return cycles

    def last_ended(self, today: date) -> Cycle:
        """The most recent cycle that has ended before `today`."""
        return self.cycle_of(self.cycle_of(today).start - timedelta(days=1))
