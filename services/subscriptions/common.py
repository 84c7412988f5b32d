"""What the subscription services share: the views they return, the organisation-scoped look-up of
a mirror row, the renewal instant and the pro-rata arithmetic. (Writing a mirror row from
Microsoft's subscription: `services.purchases`.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.clock import as_utc
from services.errors import DomainError, NotFound
from services.i18n import N_, _
from services.models import Organisation, SubscriptionRow

NOT_YOURS = N_("That subscription is not one of your organisation's. Open **subscriptions** again.")
LIVE = ("active", "suspended")
# Microsoft's subscription statuses as a sentence names them ("it is suspended").
STATUS_WORDS = {
    "active": N_("active"),
    "suspended": N_("suspended"),
    "deleted": N_("cancelled"),
    "expired": N_("expired"),
    "disabled": N_("disabled"),
    "pending": N_("pending"),
}
# Microsoft locks a subscription's seats, scheduled changes and auto-renew this long before it renews.
RENEWAL_LOCK = timedelta(hours=24)


def status_word(status: object) -> str:
    """A subscription status in the reader's language (`suspended` → `suspendert`); an unknown one as it is."""
    key = str(getattr(status, "value", status)).lower()
    return _(STATUS_WORDS[key]) if key in STATUS_WORDS else key


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
        raise NotFound(_("Your organisation is not registered any more."))
    return org


def customer_of(org: Organisation) -> str:
    if not org.partner_center_customer_id:
        raise DomainError(
            _("Your organisation has no Microsoft tenant with the reseller yet. Type **add tenant** first."),
            code="no_tenant",
        )
    return org.partner_center_customer_id


async def row_in_organisation(session: AsyncSession, organisation_id: int, subscription_id: Any) -> SubscriptionRow:
    """The mirror row, only if it belongs to the organisation (ids from cards are never trusted)."""
    if not isinstance(subscription_id, str) or not subscription_id.strip() or len(subscription_id) > 64:
        raise NotFound(_(NOT_YOURS))
    row = await session.scalar(
        select(SubscriptionRow).where(
            SubscriptionRow.id == subscription_id.strip().lower(), SubscriptionRow.organisation_id == organisation_id
        )
    )
    if row is None:
        raise NotFound(_(NOT_YOURS))
    return row


def snapshot(row: SubscriptionRow) -> dict[str, Any]:
    """The row as the audit log keeps it (before/after)."""
    return {
        "quantity": row.quantity,
        "status": row.status,
        "auto_renew": row.auto_renew,
        "scheduled_quantity": row.scheduled_quantity,
    }
