"""The renewals ahead (`renewals`): each subscription's next renewal within the coming days, what it
renews with (the quantity scheduled for it, else the current one), what that costs at the reseller's
price in force on the renewal day, and whether it can still be changed (the 24-hour lock). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.billing.rating import term_months
from services.subscriptions.common import RENEWAL_LOCK
from services.warnings.rules import SubscriptionFacts

CYCLE_MONTHS = {"monthly": 1, "annual": 12, "triennial": 36}


@dataclass(frozen=True)
class RenewalView:
    subscription_id: str
    name: str
    term_end: datetime  # Microsoft's commitmentEndDate: the term's last day
    renews_at: datetime  # midnight UTC after it
    renews: bool  # False: auto-renew off or suspended — it ends then
    quantity: int
    scheduled_quantity: int | None
    renewing_quantity: int
    term_duration: str
    billing_cycle: str
    currency: str
    unit_price: Decimal | None  # in force on the renewal day
    cost_per_period: Decimal | None
    cost_per_term: Decimal | None
    locked: bool  # inside the 24 hours before the renewal: nothing can change now
    status: str
    term_scheduled: bool = False  # term_duration / billing_cycle are the ones scheduled for the renewal

    @property
    def has_schedule(self) -> bool:
        return self.scheduled_quantity is not None or self.term_scheduled


@dataclass(frozen=True)
class RenewalOutlook:
    items: tuple[RenewalView, ...]
    days: int
    totals: dict[str, Decimal]  # the first billing period of every renewing term, by currency


def renewal_outlook(subscriptions: Sequence[SubscriptionFacts], now: datetime, days: int = 90) -> RenewalOutlook:
    """The next renewal (or end) of each live subscription within `days`, soonest first."""
    horizon = now + timedelta(days=days)
    items: list[RenewalView] = []
    for sub in subscriptions:
        renewal = sub.renewal_at
        if sub.status not in ("active", "suspended") or renewal is None or sub.commitment_end is None:
            continue
        if not now < renewal <= horizon:
            continue
        renews = sub.auto_renew and sub.status == "active"
        renewing = sub.scheduled_quantity if sub.scheduled_quantity is not None else sub.quantity
        price = sub.renewal_unit_price
        term, cycle = sub.next_term
        periods = max(1, term_months(term) // CYCLE_MONTHS.get(cycle.lower(), 1))
        items.append(
            RenewalView(
                subscription_id=sub.id,
                name=sub.name,
                term_end=sub.commitment_end,
                renews_at=renewal,
                renews=renews,
                quantity=sub.quantity,
                scheduled_quantity=sub.scheduled_quantity,
                renewing_quantity=renewing if renews else 0,
                term_duration=term,
                billing_cycle=cycle,
                currency=sub.currency,
                unit_price=price,
                cost_per_period=price * renewing if renews and price is not None else None,
                cost_per_term=price * renewing * periods if renews and price is not None else None,
                locked=now >= renewal - RENEWAL_LOCK,
                status=sub.status,
                term_scheduled=(term, cycle) != (sub.term_duration, sub.billing_cycle),
            )
        )
    items.sort(key=lambda item: (item.renews_at, item.name, item.subscription_id))
    totals: dict[str, Decimal] = {}
    for item in items:
        if item.cost_per_period is not None:
            totals[item.currency] = totals.get(item.currency, Decimal(0)) + item.cost_per_period
    return RenewalOutlook(tuple(items), days, totals)
