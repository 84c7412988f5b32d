"""What the subscription services share: the views they return, the organisation-scoped look-up of
a mirror row, writing a mirror row from Microsoft's subscription, and the pro-rata arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import DomainError, NotFound
from services.ledger import LedgerEvent, LedgerRecord, LedgerSource
from services.models import Organisation, SubscriptionRow
from services.partner_center.models import Subscription

Clock = Callable[[], datetime]
NOT_YOURS = "That subscription is not one of your organisation's. Open **subscriptions** again."
LIVE = ("active", "suspended")
# Microsoft locks a subscription's seats, scheduled changes and auto-renew this long before it renews.
RENEWAL_LOCK = timedelta(hours=24)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def renewal_instant(commitment_end: datetime | None) -> datetime | None:
    """When a term ends and renews: the end of its commitmentEndDate day (UTC)."""
    if commitment_end is None:
        return None
    end = (as_utc(commitment_end) or commitment_end).astimezone(UTC)
    return datetime.combine(end.date(), time(), tzinfo=UTC) + timedelta(days=1)


def renewal_locked(commitment_end: datetime | None, now: datetime) -> datetime | None:
    """The renewal instant while `now` is inside the 24-hour lock before it, else None."""
    renewal = renewal_instant(commitment_end)
    if renewal is not None and renewal - RENEWAL_LOCK <= now < renewal:
        return renewal
    return None


@dataclass(frozen=True)
class ProRata:
    """The charge (or, negative, the refund) a change makes now, as the bill will show it: the sum of
    the bill's own lines for the change (`services.billing.rating.event_lines`). `seats × unit_price ×
    days ÷ period_days` describes them when they share one unit price and window (`mixed` False)."""

    seats: int
    unit_price: Decimal
    days: int
    period_days: int
    amount: Decimal
    mixed: bool = False


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
    product = instructions.product if instructions is not None else None
    term = (product.term_duration or "").upper() if product is not None else ""
    cycle = str(product.billing_cycle or "").lower() if product is not None else ""
    # Only a term or billing frequency other than its own is a scheduled change of term.
    changes_term = (term, cycle) != (row.term_duration.upper(), row.billing_cycle.lower())
    row.scheduled_term_duration = term or None if term and cycle and changes_term else None
    row.scheduled_billing_cycle = cycle or None if term and cycle and changes_term else None
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
