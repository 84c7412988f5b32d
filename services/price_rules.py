"""The reseller's price for a product on a day: the one rule shared by ordering, the subscriptions
card and billing (SPEC §2.3 and "Price in force").

A price is keyed by product/SKU, term and billing frequency — never by Microsoft's availability id,
which rotates. The customer-specific list wins over the global one; within a list, the entry valid
on the day counts (validity dates inclusive; an open end runs forever). `amount` is per seat per
billing period: a month for monthly billing, a year for annual, the whole term for triennial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum


class PriceScope(StrEnum):
    CUSTOMER = "customer"
    GLOBAL = "global"


@dataclass(frozen=True)
class UnitPrice:
    entry_id: int
    scope: PriceScope
    product_id: str
    sku_id: str
    term_duration: str  # Microsoft's ISO 8601 term: P1M, P1Y, P3Y
    billing_cycle: str  # Microsoft's billingCycle: monthly, annual, triennial
    currency: str  # ISO 4217
    amount: Decimal  # per seat per billing period
    valid_from: date
    valid_to: date | None = None  # inclusive; None = open-ended

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def matches(self, product_id: str, sku_id: str, term_duration: str, billing_cycle: str) -> bool:
        return (
            self.product_id.upper() == product_id.upper()
            and self.sku_id.upper() == sku_id.upper()
            and self.term_duration.upper() == term_duration.upper()
            and self.billing_cycle.lower() == billing_cycle.lower()
        )


def price_in_force(
    entries: Iterable[UnitPrice], *, product_id: str, sku_id: str, term_duration: str, billing_cycle: str, on: date
) -> UnitPrice | None:
    """The customer-specific entry valid on `on`, else the global one, else None (not offered).

    Entries are those of the customer's own list plus the global list. If two entries of one scope
    overlap on the day, the one that started last wins (a correction published later)."""
    candidates = [
        entry
        for entry in entries
        if entry.matches(product_id, sku_id, term_duration, billing_cycle) and entry.valid_on(on)
    ]
    for scope in (PriceScope.CUSTOMER, PriceScope.GLOBAL):
        scoped = [entry for entry in candidates if entry.scope is scope]
        if scoped:
            return max(scoped, key=lambda entry: (entry.valid_from, entry.entry_id))
    return None
