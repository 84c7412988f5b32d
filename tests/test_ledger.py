"""The subscription ledger: append-only, idempotent by source key, read in time order per organisation."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.ledger import LedgerEvent, LedgerRecord, LedgerSource
from services.seed import DEMO_SLUG, seed_demo_organisation

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def _purchase(organisation_id: int, *, key: str, at: datetime = T0, quantity: int = 5) -> LedgerRecord:
    return LedgerRecord(
        organisation_id=organisation_id,
        subscription_id="sub-1",
        parent_subscription_id=None,
        event_type=LedgerEvent.PURCHASE,
        effective_at=at,
        offer_id="CFQ7TTC0LH18:0001:CFQ7TTC0LH18:0001:AVAIL",
        product_id="CFQ7TTC0LH18",
        sku_id="0001",
        product_name="Microsoft 365 Business Basic",
        term_duration="P1Y",
        billing_cycle="monthly",
        quantity_before=0,
        quantity_after=quantity,
        source=LedgerSource.BOT,
        source_key=key,
    )


async def test_the_same_event_is_recorded_once_even_concurrently(services) -> None:
    await seed_demo_organisation(services.organisations)
    org = await services.organisations.get(DEMO_SLUG)
    outcomes = await asyncio.gather(*(services.ledger.record(_purchase(org.id, key="order-1")) for _ in range(4)))
    assert outcomes.count(True) == 1
    assert len(await services.ledger.entries(org.id)) == 1
    assert await services.ledger.has("order-1")


async def test_entries_come_in_time_order_and_stop_at_until(services) -> None:
    await seed_demo_organisation(services.organisations)
    org = await services.organisations.get(DEMO_SLUG)
    later = replace(
        _purchase(org.id, key="change-2", at=T0 + timedelta(days=2)),
        event_type=LedgerEvent.QUANTITY_INCREASE,
        quantity_before=5,
        quantity_after=8,
    )
    await services.ledger.record(later)
    await services.ledger.record(_purchase(org.id, key="order-1"))
    entries = await services.ledger.entries(org.id)
    assert [entry.source_key for entry in entries] == ["order-1", "change-2"]
    assert entries[1].event_type is LedgerEvent.QUANTITY_INCREASE and entries[1].quantity_after == 8
    assert [e.source_key for e in await services.ledger.entries(org.id, until=T0 + timedelta(days=1))] == ["order-1"]
    assert await services.ledger.entries(org.id + 1) == []
