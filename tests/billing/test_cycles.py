"""The reseller's cycles: SPEC §6's examples (D = 15, D = 30, D = last), February, leap years, the
31st, time zones and settings that take effect without re-cutting history."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.billing.cycles import Cycle, CycleCalendar, CycleSetting, parse_cycle_day, parse_timezone
from services.errors import InvalidInput


def calendar_with(day: int | None, timezone: str = "UTC") -> CycleCalendar:
    return CycleCalendar([CycleSetting(date.min, day, timezone)])


@pytest.mark.parametrize(
    ("cycle_day", "day", "start", "end", "report_date"),
    [
        # D = 15: 16 Feb – 15 Mar, dated 16 Mar (the spec's example)
        (15, date(2026, 3, 1), date(2026, 2, 16), date(2026, 3, 15), date(2026, 3, 16)),
        (15, date(2026, 2, 16), date(2026, 2, 16), date(2026, 3, 15), date(2026, 3, 16)),
        (15, date(2026, 2, 15), date(2026, 1, 16), date(2026, 2, 15), date(2026, 2, 16)),
        # D = 30: 31 Mar – 30 Apr, then 1 May – 30 May (the spec's example)
        (30, date(2026, 3, 31), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 1)),
        (30, date(2026, 5, 1), date(2026, 5, 1), date(2026, 5, 30), date(2026, 5, 31)),
        (30, date(2026, 5, 31), date(2026, 5, 31), date(2026, 6, 30), date(2026, 7, 1)),
        # D = 30 across February: ends on the 28th (29th in a leap year), then 1 – 30 Mar
        (30, date(2026, 2, 10), date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 1)),
        (30, date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 30), date(2026, 3, 31)),
        (30, date(2028, 2, 29), date(2028, 1, 31), date(2028, 2, 29), date(2028, 3, 1)),
        # D = 31: the last day of every month
        (31, date(2026, 2, 14), date(2026, 2, 1), date(2026, 2, 28), date(2026, 3, 1)),
        (31, date(2026, 4, 30), date(2026, 4, 1), date(2026, 4, 30), date(2026, 5, 1)),
        # D = last: calendar months (the default)
        (None, date(2026, 9, 17), date(2026, 9, 1), date(2026, 9, 30), date(2026, 10, 1)),
        (None, date(2028, 2, 1), date(2028, 2, 1), date(2028, 2, 29), date(2028, 3, 1)),
        (None, date(2026, 12, 31), date(2026, 12, 1), date(2026, 12, 31), date(2027, 1, 1)),
        # D = 15 in a leap year: 16 Feb – 15 Mar has 29 days
        (15, date(2028, 3, 15), date(2028, 2, 16), date(2028, 3, 15), date(2028, 3, 16)),
        # D = 1: one-day-past-the-month cycles
        (1, date(2026, 1, 15), date(2026, 1, 2), date(2026, 2, 1), date(2026, 2, 2)),
    ],
)
def test_cycle_of_a_day(cycle_day: int | None, day: date, start: date, end: date, report_date: date) -> None:
    cycle = calendar_with(cycle_day).cycle_of(day)
    assert (cycle.start, cycle.end, cycle.report_date) == (start, end, report_date)


def test_cycle_lengths_in_february() -> None:
    assert calendar_with(15).cycle_of(date(2026, 3, 1)).days == 28
    assert calendar_with(15).cycle_of(date(2028, 3, 1)).days == 29
    assert calendar_with(None).cycle_of(date(2028, 2, 1)).days == 29
    assert calendar_with(30).cycle_of(date(2026, 4, 1)).days == 31  # 31 Mar – 30 Apr


def test_default_is_calendar_months_in_utc() -> None:
    calendar = CycleCalendar()
    assert calendar.cycle_of(date(2026, 9, 5)) == Cycle(date(2026, 9, 1), date(2026, 9, 30))
    assert calendar.day_of(datetime(2026, 9, 30, 23, 30, tzinfo=UTC)) == date(2026, 9, 30)


def test_cycles_are_contiguous_over_years() -> None:
    for cycle_day in (None, 1, 15, 28, 29, 30, 31):
        cycles = calendar_with(cycle_day).cycles_between(date(2027, 1, 1), date(2029, 12, 31))
        for previous, current in zip(cycles, cycles[1:], strict=False):
            assert (current.start - previous.end).days == 1
        months = [cycle.month for cycle in cycles]
        assert len(months) == len(set(months)), "one cycle per month"


def test_the_cycle_of_a_month_and_ranges() -> None:
    calendar = calendar_with(15)
    assert calendar.cycle_of_month(2026, 3) == Cycle(date(2026, 2, 16), date(2026, 3, 15))
    assert [c.end for c in calendar.cycles_ending_in((2026, 1), (2026, 3))] == [
        date(2026, 1, 15),
        date(2026, 2, 15),
        date(2026, 3, 15),
    ]
    assert calendar.last_ended(date(2026, 3, 16)) == Cycle(date(2026, 2, 16), date(2026, 3, 15))
    assert calendar.last_ended(date(2026, 3, 15)) == Cycle(date(2026, 1, 16), date(2026, 2, 15))


def test_the_time_zone_decides_the_day_of_an_event() -> None:
    oslo = calendar_with(None, "Europe/Oslo")
    assert oslo.day_of(datetime(2026, 9, 30, 22, 30, tzinfo=UTC)) == date(2026, 10, 1)
    assert oslo.day_of(datetime(2026, 9, 30, 21, 59, tzinfo=UTC)) == date(2026, 9, 30)
    assert calendar_with(None).day_of(datetime(2026, 9, 30, 22, 30, tzinfo=UTC)) == date(2026, 9, 30)


def test_a_new_cycle_day_takes_effect_without_re_cutting_history() -> None:
    calendar = CycleCalendar([CycleSetting(date(2026, 12, 1), 15, "UTC")])
    assert calendar.cycle_of(date(2026, 11, 20)) == Cycle(date(2026, 11, 1), date(2026, 11, 30))
    assert calendar.cycle_of(date(2026, 12, 3)) == Cycle(date(2026, 12, 1), date(2026, 12, 15))
    assert calendar.cycle_of(date(2026, 12, 20)) == Cycle(date(2026, 12, 16), date(2027, 1, 15))
    assert calendar.cycle_of(date(2028, 6, 20)) == Cycle(date(2028, 6, 16), date(2028, 7, 15))
    # Effective in the middle of a cycle: that cycle ends under the old setting.
    mid = CycleCalendar([CycleSetting(date(2026, 12, 10), 15, "UTC")])
    assert mid.cycle_of(date(2026, 12, 20)) == Cycle(date(2026, 12, 1), date(2026, 12, 31))
    assert mid.cycle_of(date(2027, 1, 3)) == Cycle(date(2027, 1, 1), date(2027, 1, 15))
    cycles = mid.cycles_between(date(2026, 10, 1), date(2027, 6, 30))
    for previous, current in zip(cycles, cycles[1:], strict=False):
        assert (current.start - previous.end).days == 1


def test_input_parsing() -> None:
    assert parse_cycle_day("last") is None and parse_cycle_day("15") == 15
    for bad in ("0", "32", "fifteen"):
        with pytest.raises(InvalidInput):
            parse_cycle_day(bad)
    assert parse_timezone("Europe/Oslo") == "Europe/Oslo"
    with pytest.raises(InvalidInput):
        parse_timezone("Mars/Olympus")
