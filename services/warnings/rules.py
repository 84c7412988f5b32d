"""Which warnings are due, on Microsoft's clock: pure functions of an organisation's facts.

Three kinds, each tied to one of Microsoft's new-commerce rules (docs/renewals.md):

- **seat window** — seats are refundable only within 168 hours of being added (purchase, increase,
  renewal). Due `seat_window_hours` before the soonest window of a subscription closes, while some of
  its refundable seats are unassigned; the action (remove them) is possible until that window closes.
- **renewal** — a lower quantity can be scheduled for the renewal, but not in the last 24 hours before
  it (the lock). Due at each lead time before the renewal (default 30 and 7 days), never later than
  48 hours before the lock; only the latest reached lead counts (a clock jump past several sends one),
  none before the term's own seat window has closed, and none once the lock has begun.
- **idle licences** — seats of a licence product unassigned for `idle_days`, and licensed users who
  have not signed in for `idle_days`; at most once a month per licence product.

A warning is identified by (organisation, kind, subject, window): the service stores that key once,
so each is sent at most once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from services.billing.cycles import add_months
from services.billing.rating import term_months
from services.i18n import N_
from services.pricing import per_month
from services.subscriptions.common import RENEWAL_LOCK, renewal_instant

SEAT_WINDOW = timedelta(hours=168)
LOCK_MARGIN = timedelta(hours=48)  # a renewal warning comes at least this long before the lock


class Kind(StrEnum):
    SEAT_WINDOW = "seat_window"
    RENEWAL = "renewal"
    IDLE = "idle_licences"


KIND_TITLES = {
    Kind.SEAT_WINDOW: N_("seat window closing"),
    Kind.RENEWAL: N_("renewal coming"),
    Kind.IDLE: N_("idle licences"),
}


@dataclass(frozen=True)
class WarningSettings:
    """An organisation's choices (defaults when it made none)."""

    enabled: frozenset[Kind] = frozenset(Kind)
    renewal_lead_days: tuple[int, ...] = (30, 7)
    seat_window_hours: int = 48
    idle_days: int = 30
    excluded_skus: frozenset[str] = frozenset()  # PRODUCT:SKU, excluded from idle warnings (e.g. grants)
    quiet_start: int | None = None  # hour of day in `timezone`; quiet from start to end (may wrap midnight)
    quiet_end: int | None = None
    timezone: str = "UTC"

    def quiet_until(self, now: datetime) -> datetime | None:
        """The end of the quiet hours `now` falls in (None when not quiet)."""
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        hour = local.hour
        start, end = self.quiet_start, self.quiet_end
        quiet = start <= hour < end if start < end else (hour >= start or hour < end)
        if not quiet:
            return None
        day = local.date() if hour < end else local.date() + timedelta(days=1)
        return datetime.combine(day, time(end), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class SubscriptionFacts:
    id: str
    name: str
    product_id: str
    sku_id: str
    licence_sku_id: str
    quantity: int
    status: str
    term_duration: str
    billing_cycle: str
    auto_renew: bool
    commitment_end: datetime | None  # Microsoft's commitmentEndDate: the term's last day
    refundable: tuple[tuple[int, datetime], ...] = ()  # (seats, end of their refund window)
    scheduled_quantity: int | None = None
    currency: str = ""
    unit_price: Decimal | None = None  # per seat per billing period, in force now
    renewal_unit_price: Decimal | None = None  # in force on the renewal day, for the next term
    parent_id: str | None = None
    scheduled_term_duration: str = ""  # a term and billing frequency scheduled for the renewal ("": its own)
    scheduled_billing_cycle: str = ""

    @property
    def next_term(self) -> tuple[str, str]:
        """The term and billing frequency it renews with (scheduled, else its own)."""
        if self.scheduled_term_duration and self.scheduled_billing_cycle:
            return self.scheduled_term_duration, self.scheduled_billing_cycle
        return self.term_duration, self.billing_cycle

    @property
    def renewal_at(self) -> datetime | None:
        """The instant the term ends and renews: the end of its commitmentEndDate day (UTC)."""
        return renewal_instant(self.commitment_end)

    @property
    def term_start(self) -> datetime | None:
        renewal = self.renewal_at
        if renewal is None:
            return None
        return datetime.combine(add_months(renewal.date(), -term_months(self.term_duration)), time(), tzinfo=UTC)

    @property
    def key(self) -> str:
        return f"{self.product_id}:{self.sku_id}".upper()


@dataclass(frozen=True)
class PoolFacts:
    """A licence product's pool: Microsoft's units, and how long some of them have been unassigned."""

    licence_sku_id: str
    name: str
    active_units: int
    consumed_units: int
    # (seats, since): how many seats have stayed unassigned without a break since when (`track_idle`).
    idle_layers: tuple[tuple[int, datetime], ...] = ()

    @property
    def unassigned(self) -> int:
        return max(0, self.active_units - self.consumed_units)

    def idle_since(self, threshold: datetime) -> tuple[int, datetime | None]:
        """Seats unassigned without a break since `threshold` or earlier, and since when the oldest."""
        layers = [(seats, since) for seats, since in self.idle_layers if since <= threshold]
        return min(sum(seats for seats, _ in layers), self.unassigned), min((s for _, s in layers), default=None)


def track_idle(
    layers: Sequence[tuple[int, datetime]], unassigned: int, now: datetime
) -> tuple[tuple[int, datetime], ...]:
    """The idle layers after seeing `unassigned` seats at `now`: new unassigned seats start a layer;
    when fewer are unassigned, the newest layers give way first — so a layer's seats have stayed
    unassigned since its time (the count of seats unassigned throughout, whichever seats they are)."""
    kept: list[tuple[int, datetime]] = []
    remaining = max(0, unassigned)
    for seats, since in sorted(layers, key=lambda layer: layer[1]):
        taken = min(seats, remaining)
        if taken:
            kept.append((taken, since))
        remaining -= taken
    if remaining:
        kept.append((remaining, now))
    return tuple(kept)


@dataclass(frozen=True)
class UserFacts:
    user_id: str
    display_name: str
    user_principal_name: str
    licence_sku_ids: tuple[str, ...]
    last_sign_in: datetime | None  # None: unknown, never counted as idle


@dataclass(frozen=True)
class OrganisationFacts:
    organisation_id: int
    subscriptions: Sequence[SubscriptionFacts]
    pools: dict[str, PoolFacts] = field(default_factory=dict)  # by lower-case licence SKU id
    users: Sequence[UserFacts] = ()
    settings: WarningSettings = WarningSettings()


@dataclass(frozen=True)
class Warning:
    organisation_id: int
    kind: Kind
    subject: str  # a subscription id, or a licence SKU id (idle licences)
    window: str  # which occurrence: the closing window, the renewal and its lead, the month
    due_at: datetime
    deadline: datetime | None  # the action stops being possible then (None: it stays possible)
    facts: dict[str, Any]  # what the card shows (JSON-safe)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def attributable_assigned(subscription: SubscriptionFacts, facts: OrganisationFacts) -> int | None:
    """Licences of the subscription's pool that this subscription's seats must cover: the pool's
    assigned count less what the pool's other live subscriptions hold (None: no licence pool)."""
    pool = facts.pools.get(subscription.licence_sku_id.lower()) if subscription.licence_sku_id else None
    if pool is None:
        return None
    others = sum(
        other.quantity
        for other in facts.subscriptions
        if other.id != subscription.id
        and other.status in ("active", "suspended")
        and other.licence_sku_id.lower() == subscription.licence_sku_id.lower()
    )
    return max(0, min(subscription.quantity, pool.consumed_units - others))


def seat_window_warning(subscription: SubscriptionFacts, facts: OrganisationFacts, now: datetime) -> Warning | None:
    settings = facts.settings
    if subscription.status != "active":
        return None
    open_batches = sorted((until, seats) for seats, until in subscription.refundable if seats > 0 and until > now)
    if not open_batches:
        return None
    closes, closing_seats = open_batches[0]
    due = closes - timedelta(hours=settings.seat_window_hours)
    if now < due:
        return None
    refundable = sum(seats for _, seats in open_batches)
    pool = facts.pools.get(subscription.licence_sku_id.lower()) if subscription.licence_sku_id else None
    unassigned = pool.unassigned if pool is not None else None
    # The last seat is not removed this way (that is a cancellation, from the subscriptions task).
    removable = min(refundable, subscription.quantity - 1, refundable if unassigned is None else unassigned)
    if removable <= 0:
        return None  # every refundable seat is in use: nothing to remove, nothing to say
    return Warning(
        facts.organisation_id,
        Kind.SEAT_WINDOW,
        subscription.id,
        closes.astimezone(UTC).isoformat(),
        due,
        closes,
        {
            "name": subscription.name,
            "quantity": subscription.quantity,
            "closing_seats": closing_seats,
            "refundable": refundable,
            "unassigned": unassigned,
            "removable": removable,
            "closes_at": _iso(closes),
            "currency": subscription.currency,
            "unit_price": _money(subscription.unit_price),
            "billing_cycle": subscription.billing_cycle,
        },
    )


def renewal_thresholds(subscription: SubscriptionFacts, lead_days: Iterable[int]) -> list[tuple[int, datetime]]:
    """(lead in days, when it is due) for the subscription's coming renewal, soonest lead last.
    A lead is due no later than 48 hours before the lock; a lead that would fall inside the term's own
    seat window (a monthly term's 30 days) is dropped: the seat window is still the place to act."""
    renewal, start = subscription.renewal_at, subscription.term_start
    if renewal is None or start is None:
        return []
    latest = renewal - RENEWAL_LOCK - LOCK_MARGIN
    found: dict[datetime, int] = {}
    for lead in sorted(set(lead_days), reverse=True):
        at = min(renewal - timedelta(days=lead), latest)
        if at < start + SEAT_WINDOW:
            continue
        found.setdefault(at, lead)
    return sorted(((lead, at) for at, lead in found.items()), key=lambda item: item[1])


def renewal_warning(subscription: SubscriptionFacts, facts: OrganisationFacts, now: datetime) -> Warning | None:
    if subscription.status != "active" or not subscription.auto_renew:
        return None
    renewal = subscription.renewal_at
    if renewal is None:
        return None
    lock = renewal - RENEWAL_LOCK
    if now >= lock:
        return None  # too late: nothing about the renewal can be changed any more
    reached = [
        (lead, at) for lead, at in renewal_thresholds(subscription, facts.settings.renewal_lead_days) if at <= now
    ]
    if not reached:
        return None
    lead, due = reached[-1]  # the latest reached lead only: a clock jump over several sends one
    assigned = attributable_assigned(subscription, facts)
    renewing = subscription.scheduled_quantity if subscription.scheduled_quantity is not None else subscription.quantity
    price = subscription.renewal_unit_price if subscription.renewal_unit_price is not None else subscription.unit_price
    term, cycle = subscription.next_term
    term_switch = (term, cycle) != (subscription.term_duration, subscription.billing_cycle)
    periods = max(1, term_months(term) // _cycle_months(cycle))
    return Warning(
        facts.organisation_id,
        Kind.RENEWAL,
        subscription.id,
        f"{renewal.date().isoformat()}:{lead}d",
        due,
        lock,
        {
            "name": subscription.name,
            "quantity": subscription.quantity,
            "scheduled_quantity": subscription.scheduled_quantity,
            "renewing_quantity": renewing,
            "assigned": assigned,
            "unassigned": None if assigned is None else max(0, renewing - assigned),
            "suggested_quantity": assigned if assigned is not None and 0 < assigned < renewing else None,
            "renews_at": _iso(renewal),
            "renews_on": subscription.commitment_end.date().isoformat() if subscription.commitment_end else None,
            "lock_at": _iso(lock),
            "lead_days": lead,
            "term_duration": term,
            "billing_cycle": cycle,
            "term_scheduled": term_switch,
            "currency": subscription.currency,
            "unit_price": _money(subscription.unit_price),
            "renewal_unit_price": _money(price),
            "price_changes": not term_switch
            and price is not None
            and subscription.unit_price is not None
            and price != subscription.unit_price,
            "cost_per_period": _money(price * renewing if price is not None else None),
            "cost_per_term": _money(price * renewing * periods if price is not None else None),
        },
    )


def _cycle_months(billing_cycle: str) -> int:
    return {"monthly": 1, "annual": 12, "triennial": 36}.get(billing_cycle.lower(), 1)


def idle_warning(
    pool: PoolFacts,
    facts: OrganisationFacts,
    now: datetime,
    *,
    by_licence: Mapping[str, Sequence[SubscriptionFacts]] | None = None,
    holders: Mapping[str, Sequence[UserFacts]] | None = None,
) -> Warning | None:
    """`by_licence`/`holders`: the organisation's live subscriptions and users by licence (computed
    here when not given)."""
    settings = facts.settings
    licence = pool.licence_sku_id.lower()
    subscriptions = list((by_licence if by_licence is not None else _by_licence(facts))[licence])
    users = (holders if holders is not None else _holders(facts)).get(licence, ())
    if not subscriptions or any(s.key in settings.excluded_skus for s in subscriptions):
        return None
    threshold = now - timedelta(days=settings.idle_days)
    idle_seats, idle_since = pool.idle_since(threshold)
    inactive = sorted(
        (user for user in users if user.last_sign_in is not None and user.last_sign_in <= threshold),
        key=lambda user: (user.last_sign_in or now, user.display_name),
    )
    if not idle_seats and not inactive:
        return None
    priced = next((s for s in subscriptions if s.unit_price is not None), None)
    monthly = (
        per_month(priced.unit_price, priced.currency, priced.billing_cycle) if priced and priced.unit_price else None
    )
    renewals = sorted(r for r in (s.renewal_at for s in subscriptions if s.auto_renew) if r is not None)
    return Warning(
        facts.organisation_id,
        Kind.IDLE,
        pool.licence_sku_id.lower(),
        f"{now.astimezone(UTC):%Y-%m}",
        now,
        None,
        {
            "name": pool.name or subscriptions[0].name,
            "idle_seats": idle_seats,
            "idle_since": _iso(idle_since) if idle_seats else None,
            "idle_days": settings.idle_days,
            "inactive_users": [
                {
                    "user_id": user.user_id,
                    "name": user.display_name,
                    "upn": user.user_principal_name,
                    "last_sign_in": _iso(user.last_sign_in),
                }
                for user in inactive[:10]
            ],
            "inactive_count": len(inactive),
            "currency": priced.currency if priced else "",
            "monthly_price": _money(monthly),
            "monthly_cost": _money(monthly * (idle_seats + len(inactive)) if monthly is not None else None),
            "reassign_now": idle_seats,
            "reducible_at_renewal": idle_seats + len(inactive),
            "next_renewal": _iso(renewals[0]) if renewals else None,
        },
    )


def due_warnings(facts: OrganisationFacts, now: datetime) -> list[Warning]:
    """Every warning of the organisation due at `now` (Microsoft's time), by the organisation's settings."""
    enabled = facts.settings.enabled
    found: list[Warning] = []
    for subscription in facts.subscriptions:
        if Kind.SEAT_WINDOW in enabled and (warning := seat_window_warning(subscription, facts, now)) is not None:
            found.append(warning)
        if Kind.RENEWAL in enabled and (warning := renewal_warning(subscription, facts, now)) is not None:
            found.append(warning)
    if Kind.IDLE in enabled:
        by_licence, holders = _by_licence(facts), _holders(facts)
        for pool in facts.pools.values():
            if (warning := idle_warning(pool, facts, now, by_licence=by_licence, holders=holders)) is not None:
                found.append(warning)
    return found


def _by_licence(facts: OrganisationFacts) -> dict[str, list[SubscriptionFacts]]:
    found: dict[str, list[SubscriptionFacts]] = {licence: [] for licence in facts.pools}
    for sub in facts.subscriptions:
        if sub.status in ("active", "suspended") and sub.licence_sku_id:
            found.setdefault(sub.licence_sku_id.lower(), []).append(sub)
    return found


def _holders(facts: OrganisationFacts) -> dict[str, list[UserFacts]]:
    found: dict[str, list[UserFacts]] = {}
    for user in facts.users:
        for licence in user.licence_sku_ids:
            found.setdefault(licence, []).append(user)
    return found


def still_possible(warning_deadline: datetime | None, now: datetime) -> bool:
    """A warning whose moment passed (the bot was down) is sent late only while its action can still be done."""
    return warning_deadline is None or now < warning_deadline


def renewal_day(commitment_end: datetime | None) -> date | None:
    """The day a term renews (the day after its commitmentEndDate)."""
    if commitment_end is None:
        return None
    return commitment_end.astimezone(UTC).date() + timedelta(days=1)
