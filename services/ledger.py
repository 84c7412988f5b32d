"""The subscription ledger: every purchase, quantity change, suspension, reactivation, cancellation,
renewal and expiry, from the bot or discovered by a sync. Billing's only input besides the price lists.

Entries are appended, never changed. Recording is idempotent through `source_key` (an order id, a
change's idempotency key, an audit record id): the same event seen twice is one entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models import LedgerEntry


class LedgerEvent(StrEnum):
    PURCHASE = "purchase"
    QUANTITY_INCREASE = "quantity_increase"
    QUANTITY_DECREASE = "quantity_decrease"  # a refunded reduction, inside the seats' window
    CANCELLATION = "cancellation"  # inside the window, refunded
    SUSPENSION = "suspension"
    REACTIVATION = "reactivation"
    RENEWAL = "renewal"  # a new term; quantity_after is the renewed quantity
    EXPIRY = "expiry"  # the term ended without renewal


class LedgerSource(StrEnum):
    BOT = "bot"
    SYNC = "sync"


@dataclass(frozen=True)
class LedgerRecord:
    """What happened, in the terms billing needs. `effective_at` is Microsoft's time of the event."""

    organisation_id: int
    subscription_id: str
    parent_subscription_id: str | None
    event_type: LedgerEvent
    effective_at: datetime
    offer_id: str
    product_id: str
    sku_id: str
    product_name: str
    term_duration: str
    billing_cycle: str
    quantity_before: int
    quantity_after: int
    source: LedgerSource
    source_key: str
    actor: str = ""
    price_entry_id: int | None = None
    id: int | None = None


_COLUMNS = [getattr(LedgerEntry, field.name) for field in fields(LedgerRecord)]  # in the record's order
_EVENT_TYPE, _SOURCE = ([field.name for field in fields(LedgerRecord)].index(name) for name in ("event_type", "source"))
_EVENTS = {event.value: event for event in LedgerEvent}
_SOURCES = {source.value: source for source in LedgerSource}


def _record(row: Sequence[Any]) -> LedgerRecord:
    """A ledger row selected as `_COLUMNS` (plain values by position, no ORM object) as a record."""
    values = list(row)
    values[_EVENT_TYPE] = _EVENTS[values[_EVENT_TYPE]]
    values[_SOURCE] = _SOURCES[values[_SOURCE]]
    return LedgerRecord(*values)


class SubscriptionLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @staticmethod
    def add(session: AsyncSession, record: LedgerRecord) -> None:
        """Add an entry inside the caller's transaction (with the mirror row it goes with).
        The caller must know the `source_key` is new (or let the unique constraint roll it back)."""
        if record.effective_at.tzinfo is None:
            raise ValueError("ledger times are timezone-aware")
        session.add(
            LedgerEntry(
                organisation_id=record.organisation_id,
                subscription_id=record.subscription_id,
                parent_subscription_id=record.parent_subscription_id,
                event_type=record.event_type.value,
                effective_at=record.effective_at,
                offer_id=record.offer_id,
                product_id=record.product_id,
                sku_id=record.sku_id,
                product_name=record.product_name,
                term_duration=record.term_duration,
                billing_cycle=record.billing_cycle,
                quantity_before=record.quantity_before,
                quantity_after=record.quantity_after,
                source=record.source.value,
                source_key=record.source_key,
                actor=record.actor,
                price_entry_id=record.price_entry_id,
            )
        )

    @classmethod
    async def add_once(cls, session: AsyncSession, record: LedgerRecord) -> bool:
        """Add an entry inside the caller's transaction unless its `source_key` is recorded already
        (a retried job, or another path that saw the event first); True if added."""
        if await session.scalar(select(LedgerEntry.id).where(LedgerEntry.source_key == record.source_key)):
            return False
        cls.add(session, record)
        return True

    async def record(self, record: LedgerRecord) -> bool:
        """Append one entry in its own transaction; False if its `source_key` was already recorded."""
        async with self._sessions() as session:
            if not await self.add_once(session, record):
                return False
            try:
                await session.commit()
            except IntegrityError:  # recorded concurrently by another replica
                await session.rollback()
                return False
            return True

    async def has(self, source_key: str) -> bool:
        async with self._sessions() as session:
            return await session.scalar(select(LedgerEntry.id).where(LedgerEntry.source_key == source_key)) is not None

    async def first_effective_at(self, organisation_id: int) -> datetime | None:
        """When the organisation's first entry took effect (its first service); None without any."""
        async with self._sessions() as session:
            return await session.scalar(
                select(func.min(LedgerEntry.effective_at)).where(LedgerEntry.organisation_id == organisation_id)
            )

    async def entries(
        self, organisation_id: int, *, until: datetime | None = None, subscription_id: str | None = None
    ) -> list[LedgerRecord]:
        """An organisation's entries in time order (ties in recording order), optionally up to `until`."""
        query = select(*_COLUMNS).where(LedgerEntry.organisation_id == organisation_id)
        if until is not None:
            query = query.where(LedgerEntry.effective_at <= until)
        if subscription_id is not None:
            query = query.where(LedgerEntry.subscription_id == subscription_id)
        async with self._sessions() as session:
            rows = (await session.execute(query.order_by(LedgerEntry.effective_at, LedgerEntry.id))).all()
        return [_record(row) for row in rows]
