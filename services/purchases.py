"""The one writer of a purchase: the subscription's mirror row, its PURCHASE ledger entry (exactly
once, keyed `purchase:<subscription id>`) and the audit entry, inside the caller's transaction.

Three paths see a purchase: an order the bot placed (`services.ordering`), an add-on bought for a
subscription (`services.subscriptions.changes`) and the sync finding a subscription bought elsewhere
or before the bot recorded it (`services.subscriptions.listing`). Whichever comes first writes the
ledger entry; the others update the mirror row and add nothing to the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services import audit
from services.clock import as_utc
from services.ledger import LedgerEvent, LedgerRecord, LedgerSource, SubscriptionLedger
from services.models import SubscriptionRow
from services.partner_center.models import Subscription


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
    product_name: str | None = None,
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
        product_name=(product_name or row.name)[:200],
        term_duration=row.term_duration,
        billing_cycle=row.billing_cycle,
        quantity_before=before,
        quantity_after=after,
        source=source,
        source_key=source_key,
        actor=actor,
        price_entry_id=price_entry_id,
    )


def purchase_key(subscription_id: str) -> str:
    return f"purchase:{subscription_id.lower()}"


@dataclass(frozen=True)
class Purchase:
    """A subscription bought, as one of the three paths saw it.

    `quantity` is the seats bought (the ledger's quantity after the purchase; the mirror row takes
    Microsoft's current quantity). `now` is Microsoft's time: the purchase's time when Microsoft names
    no creation or start date (and the row's sync time unless `synced_at` is given). `audit_action`
    None leaves the audit to the caller (the sync writes one summary entry)."""

    organisation_id: int
    customer_id: str
    subscription: Subscription
    quantity: int
    source: LedgerSource
    actor: str
    now: datetime
    synced_at: datetime | None = None
    licence_sku_id: str | None = None  # None keeps the row's
    price_entry_id: int | None = None
    product_name: str | None = None  # the ledger's name when it is not the row's (the quote's)
    audit_action: str | None = None
    audit_after: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PurchaseWritten:
    row: SubscriptionRow
    created: bool  # the mirror row is new
    ledgered: bool  # this call wrote the PURCHASE entry (and the audit entry)


async def record_purchase(session: AsyncSession, purchase: Purchase) -> PurchaseWritten:
    """Upsert the mirror row from Microsoft's subscription and, unless the purchase is in the ledger
    already, add its PURCHASE entry and the audit entry — in the caller's transaction (committing is
    the caller's). Rerunning it, or running it after another path recorded the purchase, adds
    nothing to the ledger or the audit log."""
    subscription = purchase.subscription
    row = await session.get(SubscriptionRow, subscription.id.lower())
    created = row is None
    if row is None:
        row = new_row(purchase.organisation_id, purchase.customer_id, subscription)
        session.add(row)
    apply_to_row(row, subscription, licence_sku_id=purchase.licence_sku_id, now=purchase.synced_at or purchase.now)
    at = as_utc(subscription.creation_date) or as_utc(subscription.effective_start_date) or purchase.now
    record = ledger_record(
        row,
        LedgerEvent.PURCHASE,
        before=0,
        after=purchase.quantity,
        at=at,
        source=purchase.source,
        source_key=purchase_key(subscription.id),
        actor=purchase.actor,
        price_entry_id=purchase.price_entry_id,
        product_name=purchase.product_name,
    )
    ledgered = await SubscriptionLedger.add_once(session, record)
    if ledgered and purchase.audit_action:
        audit.record(
            session,
            actor=purchase.actor,
            action=purchase.audit_action,
            organisation_id=purchase.organisation_id,
            target=row.id,
            after=purchase.audit_after,
        )
    return PurchaseWritten(row, created, ledgered)
