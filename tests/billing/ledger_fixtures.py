"""Ledger records and price entries for billing tests, written the way the ordering features write them."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time
from decimal import Decimal

from services.ledger import LedgerEvent, LedgerRecord, LedgerSource
from services.price_rules import PriceScope, UnitPrice

E3 = ("CFQ7TTC0LFLX", "0001", "Office 365 E3")
BASIC = ("CFQ7TTC0LH18", "0001", "Microsoft 365 Business Basic")
TEAMS_PHONE = ("CFQ7TTC0J1FV", "0001", "Teams Phone Standard")
_keys = itertools.count(1)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def event(
    kind: LedgerEvent,
    day: date | datetime,
    before: int,
    after: int,
    *,
    subscription: str = "sub-e3",
    product: tuple[str, str, str] = E3,
    term: str = "P1M",
    billing: str = "monthly",
    parent: str | None = None,
    organisation_id: int = 1,
    key: str | None = None,
) -> LedgerRecord:
    return LedgerRecord(
        organisation_id=organisation_id,
        subscription_id=subscription,
        parent_subscription_id=parent,
        event_type=kind,
        effective_at=day if isinstance(day, datetime) else at(day),
        offer_id=f"{product[0]}:{product[1]}:{product[0]}:{product[1]}:AVAIL",
        product_id=product[0],
        sku_id=product[1],
        product_name=product[2],
        term_duration=term,
        billing_cycle=billing,
        quantity_before=before,
        quantity_after=after,
        source=LedgerSource.BOT,
        source_key=key or f"test-{next(_keys)}",
    )


def price(
    amount: str,
    *,
    product: tuple[str, str, str] = E3,
    term: str = "P1M",
    billing: str = "monthly",
    valid_from: date = date(2020, 1, 1),
    valid_to: date | None = None,
    scope: PriceScope = PriceScope.GLOBAL,
    currency: str = "EUR",
    entry_id: int | None = None,
) -> UnitPrice:
    return UnitPrice(
        entry_id=entry_id if entry_id is not None else next(_keys),
        scope=scope,
        product_id=product[0],
        sku_id=product[1],
        term_duration=term,
        billing_cycle=billing,
        currency=currency,
        amount=Decimal(amount),
        valid_from=valid_from,
        valid_to=valid_to,
    )
