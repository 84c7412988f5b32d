"""Microsoft's "now" for business rules: which price list is in force, when a term renews, whether a
change is inside its window, which billing cycle a day falls in.

One `Clock` is built at start-up and handed to every service that decides by the date: the system
clock in production, the built-in sandbox's clock (which an operator may move) when the bot runs
against it. Wall-clock timing (jobs, leases, retries, caches) keeps `services.db.utcnow`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime


def as_utc(value: datetime | None) -> datetime | None:
    """A stored or wire time as aware UTC (a naive one is taken as UTC, as the database keeps it)."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _system_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Aware UTC instants and UTC dates from one source (the system clock unless given another)."""

    def __init__(self, source: Callable[[], datetime] = _system_now) -> None:
        self._source = source

    def now(self) -> datetime:
        value = self._source()
        if value.tzinfo is None:
            raise ValueError("a clock gives timezone-aware times")
        return value.astimezone(UTC)

    def today(self) -> date:
        """Today in UTC (never the server's local zone)."""
        return self.now().date()


SYSTEM_CLOCK = Clock()
