"""What the subscription services share: the views they return, the organisation-scoped look-up of
a mirror row, writing a mirror row from Microsoft's subscription, and the pro-rata arithmetic."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import DomainError, NotFound
from services.ledger import LedgerEvent, LedgerRecord, LedgerSource
from services.models import Organisation, SubscriptionRow
from services.partner_center.models import Subscription
from services.price_rules import UnitPrice

Clock = Callable[[], datetime]
NOT_YOURS = "That subscription is not one of your organisation's. Open **subscriptions** again."
LIVE = ("active", "suspended")
CENT = Decimal("0.01")


def money(amount: Decimal) -> Decimal:
    """Rounded once, half away from zero, to the currency's minor unit (SPEC rating rules)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def show_money(amount: Decimal, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,.2f} {currency}"


def show_date(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    return f"{value:%d %b %Y}"


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ProRata:
    """Seats × unit price × days ÷ period days: the charge (or, negative, the refund) of a change today."""

    seats: int
    unit_price: Decimal
    days: int
    period_days: int
    amount: Decimal


def pro_rata(
    seats: int,
    price: UnitPrice,
    *,
    billing_cycle: str,
    today: date,
    term_start: date | None,
    term_end: date | None,
    cycle: tuple[date, date] | None = None,
) -> ProRata:
    """Monthly billing: from today to the end of the reseller's billing cycle (`cycle`, first and
    last day; default the calendar month), both included, over the days in that cycle. Annual and
    triennial billing: from today to the term's last day over the term's days."""
    if billing_cycle.lower() == "monthly" or term_start is None or term_end is None:
        if cycle is not None:
            period = (cycle[1] - cycle[0]).days + 1
            days = (cycle[1] - today).days + 1
        else:
            period = calendar.monthrange(today.year, today.month)[1]
            days = period - today.day + 1
    else:
        period = (term_end - term_start).days + 1
        days = max(0, (term_end - today).days + 1)
    amount = money(Decimal(seats) * price.amount * Decimal(days) / Decimal(max(period, 1)))
    return ProRata(seats, price.amount, days, period, amount)


async def organisation_of(session: AsyncSession, organisation_id: int) -> Organisation:
    org = await session.get(Organisation, organisation_id)
    if org is None:
        raise NotFound("Your organisation is not registered any more.")
    return org


def customer_of(org: Organisation) -> str:
    if not org.partner_center_customer_id:
        raise DomainError(
            "Your organisation has no Microsoft tenant with the reseller yet. Type **add tenant** first.",
            code="no_tenant",
        )
    return org.partner_center_customer_id


async def row_in_organisation(session: AsyncSession, organisation_id: int, subscription_id: Any) -> SubscriptionRow:
    """The mirror row, only if it belongs to the organisation (ids from cards are never trusted)."""
    if not isinstance(subscription_id, str) or not subscription_id.strip() or len(subscription_id) > 64:
        raise NotFound(NOT_YOURS)
    row = await session.scalar(
        select(SubscriptionRow).where(
            SubscriptionRow.id == subscription_id.strip().lower(), SubscriptionRow.organisation_id == organisation_id
        )
    )
    if row is None:
        raise NotFound(NOT_YOURS)
    return row


def split_offer(offer_id: str) -> tuple[str, str]:
    parts = (offer_id or "").split(":")
    return (parts[0].upper(), parts[1].upper()) if len(parts) >= 2 else ("", "")


def apply_to_row(
    row: SubscriptionRow, subscription: Subscription, *, licence_sku_id: str | None, now: datetime
) -> None:
    """Copy Microsoft's state into the mirror row."""
    product_id, sku_id = split_offer(subscription.offer_id or "")
    instructions = subscription.scheduled_next_term_instructions
    row.customer_id = row.customer_id or ""
    row.parent_subscription_id = (subscription.parent_subscription_id or "").lower() or None
    row.offer_id = subscription.offer_id or ""
    row.product_id = product_id
    row.sku_id = sku_id
    row.name = (subscription.friendly_name or subscription.offer_name or row.offer_id)[:200]
    if licence_sku_id is not None:
        row.licence_sku_id = licence_sku_id
    row.quantity = subscription.quantity or 0
    row.status = str(subscription.status or "active")
    row.term_duration = subscription.term_duration or ""
    row.billing_cycle = str(subscription.billing_cycle or "")
    row.auto_renew = bool(subscription.auto_renew_enabled)
    row.commitment_end_date = subscription.commitment_end_date
    row.cancellation_allowed_until = subscription.cancellation_allowed_until_date
    refundable = subscription.refundable_quantity
    row.refundable = refundable.to_wire() if refundable is not None else {}
    row.scheduled_quantity = instructions.quantity if instructions is not None else None
    row.etag = subscription.etag or ""
    row.synced_at = now


def new_row(organisation_id: int, customer_id: str, subscription: Subscription) -> SubscriptionRow:
    row = SubscriptionRow(id=subscription.id.lower(), organisation_id=organisation_id, customer_id=customer_id)
    row.licence_sku_id = ""
    return row


def ledger_record(
    row: SubscriptionRow,
    event: LedgerEvent,
    *,
    before: int,
    after: int,
    at: datetime,
    source: LedgerSource,
    source_key: str,
    actor: str,
    price_entry_id: int | None = None,
) -> LedgerRecord:
    return LedgerRecord(
        organisation_id=row.organisation_id,
        subscription_id=row.id,
        parent_subscription_id=row.parent_subscription_id,
        event_type=event,
        effective_at=as_utc(at) or at,
        offer_id=row.offer_id,
        product_id=row.product_id,
        sku_id=row.sku_id,
        product_name=row.name,
        term_duration=row.term_duration,
        billing_cycle=row.billing_cycle,
        quantity_before=before,
        quantity_after=after,
        source=source,
        source_key=source_key,
        actor=actor,
        price_entry_id=price_entry_id,
    )


def snapshot(row: SubscriptionRow) -> dict[str, Any]:
    """The row as the audit log keeps it (before/after)."""
    return {
        "quantity": row.quantity,
        "status": row.status,
        "auto_renew": row.auto_renew,
        "scheduled_quantity": row.scheduled_quantity,
    }
