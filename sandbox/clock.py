"""Sandbox time: a clock tests and operators can move, and the calendar arithmetic of terms.

New-commerce rules are all about dates (a 7-day cancellation window, per-seat 168-hour refund
windows, monthly/annual/triennial terms), so the sandbox never reads the wall clock directly: every
rule asks a `SandboxClock`. A clock either follows real time shifted by an offset (the embedded
default, so a developer can jump a month ahead) or is frozen at an instant (tests, so nothing
depends on how fast the machine is).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """An ISO-8601 duration split into its calendar part (years, months) and its exact part.

    Terms are calendar periods (P1M from 31 January ends on the last day of February), so months
    and years cannot be flattened into a `timedelta`."""

    years: int = 0
    months: int = 0
    exact: timedelta = timedelta()

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.match(text.strip().upper())
        if match is None:
            raise ValueError(f"not an ISO-8601 duration: {text!r}")
        parts = {key: value for key, value in match.groupdict().items() if value is not None}
        exact = timedelta(
            weeks=int(parts.get("weeks", 0)),
            days=int(parts.get("days", 0)),
            hours=int(parts.get("hours", 0)),
            minutes=int(parts.get("minutes", 0)),
            seconds=float(parts.get("seconds", 0)),
        )
        return cls(int(parts.get("years", 0)), int(parts.get("months", 0)), exact)

    def add_to(self, instant: datetime) -> datetime:
        return add_months(instant, self.years * 12 + self.months) + self.exact


def add_months(instant: datetime, months: int) -> datetime:
    """`instant` moved by whole calendar months, the day clamped to the target month's length."""
    if months == 0:
        return instant
    index = instant.year * 12 + (instant.month - 1) + months
    year, month = divmod(index, 12)
    day = min(instant.day, calendar.monthrange(year, month + 1)[1])
    return instant.replace(year=year, month=month + 1, day=day)


TERM_MONTHS = {"P1M": 1, "P1Y": 12, "P3Y": 36}
BILLING_MONTHS = {"monthly": 1, "annual": 12, "triennial": 36}


def term_months(term: str) -> int:
    try:
        return TERM_MONTHS[term.upper()]
    except KeyError:
        raise ValueError(f"unsupported term duration {term!r}") from None


def start_of_day(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def commitment_end(start_day: datetime, term: str) -> datetime:
    """Microsoft's `commitmentEndDate`: the last day of the term (start + term - 1 day, 00:00Z)."""
    return add_months(start_day, term_months(term)) - timedelta(days=1)


def term_end_instant(commitment_end_date: datetime) -> datetime:
    """The instant a term is over: the end of its `commitmentEndDate` day (UTC)."""
    return start_of_day(commitment_end_date) + timedelta(days=1)


def billing_cycle_end(start_day: datetime, billing_cycle: str, now: datetime, term_end: datetime) -> datetime:
    """The last day of the billing period that contains `now` (never past the term's last day)."""
    months = BILLING_MONTHS.get(billing_cycle.lower(), 1)
    periods = 1
    while add_months(start_day, months * periods) <= now and add_months(start_day, months * periods) < term_end:
        periods += 1
    return min(add_months(start_day, months * periods), term_end) - timedelta(days=1)


def parse_instant(text: str) -> datetime:
    """An ISO-8601 date or date-time; naive values are taken as UTC (the API speaks UTC)."""
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso(instant: datetime | None) -> str | None:
    """Microsoft's wire format for instants: UTC with a `Z` suffix."""
    if instant is None:
        return None
    text = instant.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


class SandboxClock:
    """Real time shifted by an offset, or frozen at an instant.

    `advance` accepts calendar durations (P1M, P1Y) so moving past a term's end is one call."""

    def __init__(self, *, frozen_at: datetime | None = None, offset: timedelta = timedelta()) -> None:
        if frozen_at is not None and frozen_at.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware instant")
        self._frozen_at = frozen_at.astimezone(UTC) if frozen_at is not None else None
        self._offset = offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now(self) -> datetime:
        if self._frozen_at is not None:
            return self._frozen_at
        return datetime.now(UTC) + self._offset

    def advance(self, duration: Duration | timedelta) -> datetime:
        current = self.now()
        target = duration.add_to(current) if isinstance(duration, Duration) else current + duration
        self.set(target)
        return target

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware instant")
        if self._frozen_at is not None:
            self._frozen_at = instant.astimezone(UTC)
        else:
            self._offset = instant.astimezone(UTC) - datetime.now(UTC)

    def state(self) -> dict[str, Any]:
        """What survives a restart: the offset of a running clock, or the instant of a frozen one."""
        if self._frozen_at is not None:
            return {"frozenAt": iso(self._frozen_at)}
        return {"offsetSeconds": self._offset.total_seconds()}

    def restore(self, state: dict[str, Any]) -> None:
        frozen = state.get("frozenAt")
        if isinstance(frozen, str):
            self._frozen_at = parse_instant(frozen)
        elif isinstance(state.get("offsetSeconds"), int | float):
            self._offset = timedelta(seconds=float(state["offsetSeconds"]))
