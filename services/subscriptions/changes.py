"""Changes to a subscription under Microsoft's new-commerce rules: quantity (with the charge now and
the new recurring cost), a lower quantity scheduled for the renewal, cancel inside the window,
auto-renew, reactivate, the suspension an approver allowed, and add-ons.

Every change: the caller's organisation and role are checked; Microsoft's current subscription is
read first and must still be the one the admin saw (its e-tag), else the admin is asked again; the
PATCH carries `If-Match`; the mirror, the ledger and the audit log are written together only after
Microsoft accepted. A card's idempotency key makes a double click one change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit, formatting
from services.access import Caller
from services.billing.rating import event_lines
from services.billing.service import cycle_calendar
from services.catalog import CatalogService, SkuView
from services.clock import Clock
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.i18n import N_, _, ngettext
from services.idempotency import IdempotencyService
from services.ledger import LedgerEvent, LedgerSource, SubscriptionLedger
from services.models import IdempotencyKey, SubscriptionRow
from services.ordering import NO_AGREEMENT_MESSAGE, OrderRefused, checkout_once, order_request_id
from services.partner_center import PartnerCenterClient
from services.partner_center.errors import PartnerCenterConflict, PartnerCenterError
from services.partner_center.models import (
    ProductTerm,
    ScheduledNextTermInstructions,
    Subscription,
    SubscriptionStatus,
)
from services.payloads import token, whole_number
from services.price_rules import UnitPrice
from services.pricing import PriceBook, per_month
from services.purchases import Purchase, apply_to_row, ledger_record, record_purchase
from services.roles import Permission
from services.spending import Spend, SpendingPolicies
from services.subscriptions.common import (
    ProRata,
    as_utc,
    customer_of,
    organisation_of,
    renewal_locked,
    row_in_organisation,
    snapshot,
    status_word,
)
from services.subscriptions.listing import SubscriptionService

log = logging.getLogger(__name__)

OUT_OF_DATE = N_("This card is out of date. Open **subscriptions** again.")
# Microsoft's refusals, in plain words (the client maps only the codes every feature shares).
_RULES = {
    "2001": N_("This subscription is suspended: its seats cannot change until it is reactivated."),
    "800090": N_("Those seats are past their 7-day window, so Microsoft no longer lets them be removed."),
    "800095": N_("Licences are assigned to users from these seats; unassign them before lowering the quantity."),
    "900117": N_("The 7-day cancellation window has passed, so it can no longer be cancelled."),
    "2011": N_("This subscription has ended and can no longer be changed."),
    "900190": N_(
        "Microsoft locks a subscription for changes in the 24 hours before it renews: its seats, scheduled "
        "changes and auto-renew can change again once it has renewed."
    ),
    "2002": N_("Microsoft does not sell that quantity of this product."),
    "27009": N_("The base subscription must be active before an add-on can be bought for it."),
    # A customer with subscriptions from before the Microsoft Customer Agreement (or bought through
    # Partner Center directly) may have none on record: say how to record it, as ordering does.
    "13605": NO_AGREEMENT_MESSAGE,
}


class StaleSubscription(Conflict):
    """The subscription changed since the card was shown (or Microsoft answered 412)."""

    code = "stale_subscription"


@dataclass(frozen=True)
class QuantityPlan:
    subscription_id: str
    name: str
    current: int
    new: int
    kind: str  # "increase" | "decrease" | "schedule"
    etag: str
    currency: str
    unit_price: Decimal | None
    charge_now: ProRata | None  # positive: charged now; negative amount: refunded now
    recurring_now: Decimal | None
    recurring_new: Decimal | None
    billing_cycle: str
    refundable: int
    refundable_until: datetime | None
    renewal_date: datetime | None
    assigned: int | None
    explanation: str = ""  # why a decrease must wait for the renewal, in plain words
    price_entry_id: int | None = None
    term_duration: str = ""


@dataclass(frozen=True)
class CancelPlan:
    subscription_id: str
    name: str
    quantity: int
    etag: str
    currency: str
    refund: ProRata | None
    window_ends: datetime | None


@dataclass(frozen=True)
class AddonOffer:
    product_id: str
    sku_id: str
    title: str
    description: str
    minimum: int
    maximum: int
    term_duration: str
    billing_cycle: str
    price: UnitPrice | None


@dataclass(frozen=True)
class ChangeResult:
    message: str
    subscription_id: str
    repeated: bool = False


def addon_price_token(offer: AddonOffer) -> str:
    """The price an add-on card showed (price-list entry, amount, currency), compared at the order."""
    price = offer.price
    return f"{price.entry_id}:{price.amount}:{price.currency}" if price is not None else ""


def seats_spend(plan: QuantityPlan) -> Spend:
    """What more seats cost, as the spending policy weighs it."""
    added = plan.new - plan.current
    monthly = Decimal(0)
    if plan.unit_price is not None:
        monthly = per_month(plan.unit_price * added, plan.currency, plan.billing_cycle)
    new_cost = "" if plan.recurring_new is None else formatting.money(plan.recurring_new, plan.currency)
    return Spend(
        what=_("Add {plural} to {name}", plural=formatting.seats(added), name=plan.name),
        currency=plan.currency,
        monthly_increase=monthly,
        term_duration=plan.term_duration,
        charge_now=plan.charge_now.amount if plan.charge_now is not None else None,
        per_period=f"{new_cost} {formatting.per_period(plan.billing_cycle)}" if new_cost else "",
    )


def parse_quantity(value: Any) -> int:
    return whole_number(
        value,
        minimum=0,
        maximum=999_999,
        field="quantity",
        not_a_number=_("Enter the number of seats as a whole number, for example 12."),
    )


def _etag(value: Any) -> str:
    """The e-tag the admin's card showed (compared with Microsoft's before a change)."""
    return token(value, max_length=200, out_of_date=_(OUT_OF_DATE), required=False)


def _translate(error: PartnerCenterError) -> DomainError:
    message = _RULES.get(error.code or "")
    return DomainError(_(message), code=error.code) if message else error


class SubscriptionChanges:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        partner_center: PartnerCenterClient,
        catalog: CatalogService,
        pricing: PriceBook,
        ledger: SubscriptionLedger,
        idempotency: IdempotencyService,
        listing: SubscriptionService,
    ) -> None:
        self._sessions = sessions
        self._client = partner_center
        self._catalog = catalog
        self._pricing = pricing
        self._ledger = ledger
        self._idempotency = idempotency
        self._listing = listing
        self.spending: SpendingPolicies | None = None  # set by the container: the policy seats meet

    @property
    def _clock(self) -> Clock:
        return self._listing.clock  # Microsoft's "now", one with the list's

    # --- shared steps ---------------------------------------------------------------------------

    async def _load(self, caller: Caller, subscription_id: Any) -> tuple[str, SubscriptionRow]:
        async with self._sessions() as session:
            customer_id = customer_of(await organisation_of(session, caller.organisation_id))
            row = await row_in_organisation(session, caller.organisation_id, subscription_id)
            session.expunge(row)
        return customer_id, row

    async def _fresh(
        self, caller: Caller, customer_id: str, row: SubscriptionRow, expected_etag: str | None
    ) -> Subscription:
        """Microsoft's subscription now; if it is not what the admin saw, mirror it and ask again."""
        current = await self._client.subscription(customer_id, row.id)
        if expected_etag is not None and current.etag != expected_etag:
            await self._listing.sync(caller.organisation_id)
            raise StaleSubscription(
                _(
                    "{name} was changed meanwhile (it now has {plural}, {status}). I reloaded it: please check "
                    "the numbers and confirm again.",
                    name=row.name,
                    plural=formatting.seats(current.quantity or 0),
                    status=status_word(current.status),
                )
            )
        return current

    async def _patch(
        self, caller: Caller, customer_id: str, row: SubscriptionRow, desired: Subscription, *, withdraw: bool = False
    ) -> Subscription:
        try:
            return await self._client.update_subscription(customer_id, desired, withdraw_scheduled_changes=withdraw)
        except PartnerCenterConflict as error:
            if error.http_status == 412 or error.code in ("2055", "etag_mismatch"):
                await self._listing.sync(caller.organisation_id)
                raise StaleSubscription(
                    _(
                        "{name} was changed at Microsoft a moment ago. I reloaded it: please check and confirm again.",
                        name=row.name,
                    )
                ) from None
            raise _translate(error) from None
        except PartnerCenterError as error:
            raise _translate(error) from None

    async def _claim(self, caller: Caller, key: Any, purpose: str) -> bool:
        key = token(key, max_length=150, out_of_date=_(OUT_OF_DATE))
        record = await self._idempotency.claim(
            f"{purpose}:{key}",
            purpose=purpose,
            organisation_id=caller.organisation_id,
            resource_type="subscription",
            resource_id="",
        )
        return record.first_use

    async def _release(self, key: str, purpose: str) -> None:
        """A change Microsoft refused did nothing: the same card may try again."""
        async with self._sessions() as session:
            await session.execute(delete(IdempotencyKey).where(IdempotencyKey.key == f"{purpose}:{key}"))
            await session.commit()

    async def _commit(
        self,
        caller_actor: str,
        organisation_id: int,
        subscription_id: str,
        result: Subscription,
        action: str,
        events: list[tuple[LedgerEvent, int, int, str]],
        *,
        price_entry_id: int | None = None,
    ) -> None:
        """Mirror row, ledger entries and audit entry in one transaction."""
        async with self._sessions() as session:
            row = await row_in_organisation(session, organisation_id, subscription_id)
            before = snapshot(row)
            apply_to_row(row, result, licence_sku_id=None, now=self._clock.now())
            for event, quantity_before, quantity_after, source_key in events:
                await self._ledger.add_once(  # a retried job whose first attempt got this far adds nothing
                    session,
                    ledger_record(
                        row,
                        event,
                        before=quantity_before,
                        after=quantity_after,
                        at=self._clock.now(),
                        source=LedgerSource.BOT,
                        source_key=source_key,
                        actor=caller_actor,
                        price_entry_id=price_entry_id,
                    ),
                )
            audit.record(
                session,
                actor=caller_actor,
                action=action,
                organisation_id=organisation_id,
                target=subscription_id,
                before=before,
                after=snapshot(row),
            )
            await session.commit()

    async def _price(self, caller: Caller, row: SubscriptionRow) -> UnitPrice | None:
        return await self._pricing.price_for(
            caller.organisation_id,
            row.product_id,
            row.sku_id,
            row.term_duration,
            row.billing_cycle,
            self._clock.today(),
        )

    async def _preview(
        self, caller: Caller, row: SubscriptionRow, event: LedgerEvent, before: int, after: int
    ) -> ProRata | None:
        """What the bill will charge (or refund) for this change made now: the billing engine's own
        lines for the event, in the reseller's cycle, with its pro-rata rules and rounding. None when
        a line has no price in force."""
        record = ledger_record(
            row,
            event,
            before=before,
            after=after,
            at=self._clock.now(),
            source=LedgerSource.BOT,
            source_key="preview",
            actor=caller.actor,
        )
        lines = event_lines(
            await self._ledger.entries(caller.organisation_id, subscription_id=row.id),
            await self._pricing.entries_for(caller.organisation_id),
            await cycle_calendar(self._sessions),
            record,
        )
        seats = abs(after - before)
        if not lines:
            return ProRata(seats, Decimal(0), 0, 0, Decimal(0), mixed=True)
        amounts = [line.amount for line in lines]
        if any(amount is None for amount in amounts):
            return None
        first = lines[0]
        shape = {(line.unit_price, line.days, line.cycle_days) for line in lines}
        return ProRata(
            sum(line.quantity for line in lines),
            first.unit_price or Decimal(0),
            first.days or 0,
            first.cycle_days or 0,
            sum((amount for amount in amounts if amount is not None), Decimal(0)),
            mixed=len(shape) > 1 or first.days is None,
        )

    async def _sku(self, row: SubscriptionRow) -> SkuView | None:
        try:
            return await self._catalog.sku(row.product_id, row.sku_id, include_inactive=True)
        except NotFound:
            return None

    # --- quantity ---------------------------------------------------------------------------------

    async def plan_quantity(self, caller: Caller, subscription_id: Any, quantity: Any) -> QuantityPlan:
        """What changing to `quantity` does (charge now, new recurring cost), or why it cannot."""
        caller.require(Permission.MANAGE_SERVICES)
        new = parse_quantity(quantity)
        customer_id, row = await self._load(caller, subscription_id)
        current = await self._fresh(caller, customer_id, row, None)
        if current.etag != row.etag:
            await self._listing.sync(caller.organisation_id)
            customer_id, row = await self._load(caller, subscription_id)
        return await self._plan(caller, customer_id, row, current, new)

    async def _plan(
        self, caller: Caller, customer_id: str, row: SubscriptionRow, current: Subscription, new: int
    ) -> QuantityPlan:
        status = str(current.status or "")
        if status == "suspended":
            raise DomainError(_(_RULES["2001"]), code="suspended")
        if status != "active":
            raise DomainError(
                _("This subscription is {status}; its seats cannot change.", status=status_word(status)),
                code="not_active",
            )
        locked = renewal_locked(as_utc(current.commitment_end_date), self._clock.now())
        if locked is not None:
            raise DomainError(
                _(
                    "{name} renews on {datetime_utc}, and Microsoft locks it for changes in the 24 hours "
                    "before: its seats can change again once it has renewed.",
                    name=row.name,
                    datetime_utc=formatting.datetime_utc(locked),
                ),
                code="renewal_locked",
            )
        sku = await self._sku(row)
        low, high = (sku.minimum_quantity, sku.maximum_quantity) if sku else (1, 100000)
        if not low <= new <= high:
            raise InvalidInput(
                _("Choose between {low} and {high} seats for {name}.", low=low, high=high, name=row.name),
                field="quantity",
            )
        have = current.quantity or 0
        if new == have:
            raise InvalidInput(
                _(
                    "{name} already has {plural}. Enter a different number.",
                    name=row.name,
                    plural=formatting.seats(have),
                ),
                field="quantity",
            )
        price = await self._price(caller, row)
        refundable = current.refundable_quantity
        refundable_seats = refundable.total_quantity if refundable else 0
        until = min(  # type: ignore[type-var]
            (
                as_utc(d.allowed_until_date_time)
                for d in (refundable.details if refundable else [])
                if d.allowed_until_date_time
            ),
            default=None,
        )
        assigned: int | None = None
        kind, explanation, charge = "increase", "", None
        if new > have:
            charge = await self._preview(caller, row, LedgerEvent.QUANTITY_INCREASE, have, new)
        else:
            assigned = await self._check_assigned(caller, customer_id, row, new)
            if have - new <= refundable_seats:
                kind = "decrease"
                charge = await self._preview(caller, row, LedgerEvent.QUANTITY_DECREASE, have, new)
            else:
                kind = "schedule"
                renewal = as_utc(current.commitment_end_date)
                if refundable_seats:
                    explanation = _(
                        "Microsoft lets seats be removed only within 7 days of being added: you can remove up to "
                        "{plural} until {date} (down to {value}).",
                        plural=formatting.seats(refundable_seats),
                        date=formatting.date(until),
                        value=have - refundable_seats,
                    )
                else:
                    explanation = _(
                        "These seats are past their 7-day window, so Microsoft no longer lets them be removed now."
                    )
                explanation += _(
                    " You can instead schedule {plural} for the renewal on {date}.",
                    plural=formatting.seats(new),
                    date=formatting.date(renewal),
                )
        return QuantityPlan(
            subscription_id=row.id,
            name=row.name,
            current=have,
            new=new,
            kind=kind,
            etag=current.etag or "",
            currency=price.currency if price else "",
            unit_price=price.amount if price else None,
            charge_now=charge,
            recurring_now=price.amount * have if price else None,
            recurring_new=price.amount * new if price else None,
            billing_cycle=row.billing_cycle,
            refundable=refundable_seats,
            refundable_until=until,
            renewal_date=as_utc(current.commitment_end_date),
            assigned=assigned,
            explanation=explanation,
            price_entry_id=price.entry_id if price else None,
            term_duration=row.term_duration,
        )

    async def _check_assigned(self, caller: Caller, customer_id: str, row: SubscriptionRow, new: int) -> int | None:
        """The licence product's total may never drop below the licences assigned from it."""
        if not row.licence_sku_id:
            return None
        consumed = (await self._listing.consumed_by_licence(customer_id) or {}).get(row.licence_sku_id.lower())
        if consumed is None:
            return None
        async with self._sessions() as session:
            others = await session.scalar(
                select(func.coalesce(func.sum(SubscriptionRow.quantity), 0)).where(
                    SubscriptionRow.organisation_id == caller.organisation_id,
                    SubscriptionRow.licence_sku_id == row.licence_sku_id,
                    SubscriptionRow.status == "active",
                    SubscriptionRow.id != row.id,
                )
            )
        if int(others or 0) + new < consumed:
            lowest = max(0, consumed - int(others or 0))
            raise InvalidInput(
                ngettext(
                    "{n} licence of {name} is assigned to users, and the total can't go below that. Choose "
                    "at least {seats}, or unassign licences first.",
                    "{n} licences of {name} are assigned to users, and the total can't go below that. Choose "
                    "at least {seats}, or unassign licences first.",
                    consumed,
                    name=row.name,
                    seats=formatting.seats(lowest),
                ),
                field="quantity",
            )
        return consumed

    async def change_quantity(
        self, caller: Caller, subscription_id: Any, quantity: Any, *, etag: Any, key: Any, approved: bool = False
    ) -> ChangeResult:
        """Add seats, or remove refundable ones — the change the admin confirmed on the preview. More
        seats above the organisation's spending policy raise `ApprovalNeeded` unless `approved`."""
        caller.require(Permission.MANAGE_SERVICES)
        new, expected_etag = parse_quantity(quantity), _etag(etag)
        customer_id, row = await self._load(caller, subscription_id)
        spending = self.spending
        if not approved and spending is not None and new > row.quantity:
            if (await spending.get(caller.organisation_id)).is_empty:
                spending = None  # nothing to weigh: no extra read of Microsoft
        if not approved and spending is not None and new > row.quantity:
            plan = await self.plan_quantity(caller, row.id, new)
            if plan.kind == "increase":
                await spending.require(caller.organisation_id, seats_spend(plan))
        purpose = "subscriptions.quantity"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(_("That change of {name} was already sent.", name=row.name), row.id, repeated=True)
        try:
            current = await self._fresh(caller, customer_id, row, expected_etag)
            plan = await self._plan(caller, customer_id, row, current, new)
            if plan.kind == "schedule":
                raise DomainError(plan.explanation, code="outside_window")
            result = await self._patch(caller, customer_id, row, current.model_copy(update={"quantity": new}))
        except DomainError:
            await self._release(str(key), purpose)
            raise
        event = LedgerEvent.QUANTITY_INCREASE if new > plan.current else LedgerEvent.QUANTITY_DECREASE
        await self._commit(
            caller.actor,
            caller.organisation_id,
            row.id,
            result,
            "subscription.quantity",
            [(event, plan.current, new, f"bot:quantity:{key}")],
            price_entry_id=plan.price_entry_id,
        )
        seats = formatting.seats(new)
        return ChangeResult(
            _("{name} now has {seats} (was {current}).", name=row.name, seats=seats, current=plan.current), row.id
        )

    async def schedule_quantity(
        self, caller: Caller, subscription_id: Any, quantity: Any, *, etag: Any, key: Any
    ) -> ChangeResult:
        """Lower the quantity at the renewal (Microsoft's scheduledNextTermInstructions)."""
        caller.require(Permission.MANAGE_SERVICES)
        new, expected_etag = parse_quantity(quantity), _etag(etag)
        customer_id, row = await self._load(caller, subscription_id)
        purpose = "subscriptions.schedule"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(
                _("That renewal change of {name} was already sent.", name=row.name), row.id, repeated=True
            )
        try:
            current = await self._fresh(caller, customer_id, row, expected_etag)
            plan = await self._plan(caller, customer_id, row, current, new)
            if new > plan.current:
                raise InvalidInput(_("Adding seats needs no scheduling: change the quantity now."), field="quantity")
            # A term or billing change scheduled before stays: only the quantity is rescheduled.
            scheduled = current.scheduled_next_term_instructions
            instructions = ScheduledNextTermInstructions(
                product=(scheduled.product if scheduled is not None and scheduled.product is not None else None)
                or ProductTerm(
                    product_id=row.product_id,
                    sku_id=row.sku_id,
                    billing_cycle=current.billing_cycle,
                    term_duration=current.term_duration,
                ),
                quantity=new,
            )
            result = await self._patch(
                caller, customer_id, row, current.model_copy(update={"scheduled_next_term_instructions": instructions})
            )
        except DomainError:
            await self._release(str(key), purpose)
            raise
        await self._commit(caller.actor, caller.organisation_id, row.id, result, "subscription.schedule_quantity", [])
        return ChangeResult(
            _(
                "{name} will renew with {plural} on {date}; until then it keeps {plural2}.",
                name=row.name,
                plural=formatting.seats(new),
                date=formatting.date(as_utc(result.commitment_end_date)),
                plural2=formatting.seats(result.quantity or 0),
            ),
            row.id,
        )

    async def schedule_term(
        self, caller: Caller, subscription_id: Any, term_duration: str, billing_cycle: str, *, key: Any
    ) -> ChangeResult:
        """Renew into another term duration and/or billing frequency (Microsoft's
        scheduledNextTermInstructions); a lower quantity scheduled before stays scheduled."""
        caller.require(Permission.MANAGE_SERVICES)
        customer_id, row = await self._load(caller, subscription_id)
        purpose = "subscriptions.schedule_term"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(
                _("That renewal change of {name} was already sent.", name=row.name), row.id, repeated=True
            )
        try:
            current = await self._fresh(caller, customer_id, row, None)
            if current.status != SubscriptionStatus.ACTIVE or not current.auto_renew_enabled:
                raise DomainError(
                    _(
                        "{name} does not renew (it is {status}, auto-renew {auto_renew}), so there is no next term to "
                        "change.",
                        name=row.name,
                        status=status_word(current.status),
                        auto_renew=_("on") if current.auto_renew_enabled else _("off"),
                    ),
                    code="not_renewing",
                )
            if renewal_locked(as_utc(current.commitment_end_date), self._clock.now()) is not None:
                raise DomainError(_(_RULES["900190"]), code="renewal_locked")
            scheduled = current.scheduled_next_term_instructions
            quantity = scheduled.quantity if scheduled is not None and scheduled.quantity else current.quantity
            instructions = ScheduledNextTermInstructions(
                product=ProductTerm(
                    product_id=row.product_id,
                    sku_id=row.sku_id,
                    billing_cycle=billing_cycle,  # type: ignore[arg-type]
                    term_duration=term_duration,
                ),
                quantity=quantity,
            )
            result = await self._patch(
                caller, customer_id, row, current.model_copy(update={"scheduled_next_term_instructions": instructions})
            )
        except DomainError:
            await self._release(str(key), purpose)
            raise
        await self._commit(caller.actor, caller.organisation_id, row.id, result, "subscription.schedule_term", [])
        return ChangeResult(
            _(
                "{name} will renew on {date} for {term}, billed {billed} ({plural}).",
                name=row.name,
                date=formatting.date(as_utc(result.commitment_end_date)),
                term=formatting.term(term_duration),
                billed=formatting.billed(billing_cycle),
                plural=formatting.seats(quantity or 0),
            ),
            row.id,
        )

    async def withdraw_schedule(self, caller: Caller, subscription_id: Any, *, key: Any) -> ChangeResult:
        """Withdraw the changes scheduled for the renewal: it renews as it is now."""
        caller.require(Permission.MANAGE_SERVICES)
        customer_id, row = await self._load(caller, subscription_id)
        purpose = "subscriptions.unschedule"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(
                _("The scheduled change of {name} was already withdrawn.", name=row.name), row.id, repeated=True
            )
        try:
            current = await self._fresh(caller, customer_id, row, None)
            if current.scheduled_next_term_instructions is None:
                raise DomainError(
                    _("{name} has no change scheduled for its renewal.", name=row.name), code="nothing_scheduled"
                )
            locked = renewal_locked(as_utc(current.commitment_end_date), self._clock.now())
            if locked is not None:
                raise DomainError(_(_RULES["900190"]), code="renewal_locked")
            result = await self._patch(
                caller,
                customer_id,
                row,
                current.model_copy(update={"scheduled_next_term_instructions": None}),
                withdraw=True,
            )
        except DomainError:
            await self._release(str(key), purpose)
            raise
        await self._commit(caller.actor, caller.organisation_id, row.id, result, "subscription.unschedule", [])
        return ChangeResult(
            _(
                "The scheduled change is withdrawn: {name} renews with {plural} on {date}.",
                name=row.name,
                plural=formatting.seats(result.quantity or 0),
                date=formatting.date(as_utc(result.commitment_end_date)),
            ),
            row.id,
        )

    # --- cancel, auto-renew, reactivate, suspend ---------------------------------------------------

    def _in_window(self, current: Subscription) -> bool:
        if current.actions is not None:
            return "cancel" in [action.lower() for action in current.actions]
        until = as_utc(current.cancellation_allowed_until_date)
        return until is not None and self._clock.now() <= until

    async def plan_cancel(self, caller: Caller, subscription_id: Any) -> CancelPlan:
        caller.require(Permission.MANAGE_SERVICES)
        customer_id, row = await self._load(caller, subscription_id)
        current = await self._fresh(caller, customer_id, row, None)
        if str(current.status) not in ("active", "suspended"):
            raise DomainError(
                _("This subscription is {status}; there is nothing to cancel.", status=current.status),
                code="not_active",
            )
        if not self._in_window(current):
            raise DomainError(
                _(
                    "The 7-day cancellation window of {name} ended on {date}, so it can no longer be "
                    "cancelled. You can turn auto-renew off so it ends on {date2}.",
                    name=row.name,
                    date=formatting.date(as_utc(current.cancellation_allowed_until_date)),
                    date2=formatting.date(as_utc(current.commitment_end_date)),
                ),
                code="window_passed",
            )
        price = await self._price(caller, row)
        refund = await self._preview(caller, row, LedgerEvent.CANCELLATION, current.quantity or 0, 0)
        return CancelPlan(
            row.id,
            row.name,
            current.quantity or 0,
            current.etag or "",
            price.currency if price else "",
            refund,
            as_utc(current.cancellation_allowed_until_date),
        )

    async def cancel(self, caller: Caller, subscription_id: Any, *, etag: Any, key: Any) -> ChangeResult:
        caller.require(Permission.MANAGE_SERVICES)
        expected_etag = _etag(etag)
        customer_id, row = await self._load(caller, subscription_id)
        purpose = "subscriptions.cancel"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(_("The cancellation of {name} was already sent.", name=row.name), row.id, repeated=True)
        try:
            current = await self._fresh(caller, customer_id, row, expected_etag)
            if not self._in_window(current):
                raise DomainError(_(_RULES["900117"]), code="window_passed")
            result = await self._patch(
                caller, customer_id, row, current.model_copy(update={"status": SubscriptionStatus.DELETED})
            )
        except DomainError:
            await self._release(str(key), purpose)
            raise
        quantity = current.quantity or 0
        await self._commit(
            caller.actor,
            caller.organisation_id,
            row.id,
            result,
            "subscription.cancel",
            [(LedgerEvent.CANCELLATION, quantity, 0, f"bot:cancel:{key}")],
        )
        return ChangeResult(_("{name} is cancelled; the refund appears on the next bill.", name=row.name), row.id)

    async def set_auto_renew(self, caller: Caller, subscription_id: Any, enabled: bool, *, key: Any) -> ChangeResult:
        caller.require(Permission.MANAGE_SERVICES)
        customer_id, row = await self._load(caller, subscription_id)
        purpose = "subscriptions.autorenew"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(
                _("That auto-renew change of {name} was already sent.", name=row.name), row.id, repeated=True
            )
        try:
            current = await self._fresh(caller, customer_id, row, None)
            if str(current.status) not in ("active", "suspended"):
                raise DomainError(
                    _("This subscription is {status}; it does not renew.", status=current.status), code="not_active"
                )
            result = await self._patch(
                caller, customer_id, row, current.model_copy(update={"auto_renew_enabled": enabled})
            )
        except DomainError:
            await self._release(str(key), purpose)
            raise
        await self._commit(caller.actor, caller.organisation_id, row.id, result, "subscription.auto_renew", [])
        renewal = formatting.date(as_utc(result.commitment_end_date))
        if enabled:
            return ChangeResult(
                _("Auto-renew is on: {name} renews on {renewal}.", name=row.name, renewal=renewal), row.id
            )
        return ChangeResult(_("Auto-renew is off: {name} ends on {renewal}.", name=row.name, renewal=renewal), row.id)

    async def reactivate(self, caller: Caller, subscription_id: Any, *, key: Any) -> ChangeResult:
        caller.require(Permission.MANAGE_SERVICES)
        customer_id, row = await self._load(caller, subscription_id)
        purpose = "subscriptions.reactivate"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(_("The reactivation of {name} was already sent.", name=row.name), row.id, repeated=True)
        try:
            current = await self._fresh(caller, customer_id, row, None)
            if str(current.status) != "suspended":
                raise DomainError(
                    _("{name} is {status}, not suspended.", name=row.name, status=current.status), code="not_suspended"
                )
            result = await self._patch(
                caller, customer_id, row, current.model_copy(update={"status": SubscriptionStatus.ACTIVE})
            )
        except DomainError:
            await self._release(str(key), purpose)
            raise
        await self._commit(
            caller.actor,
            caller.organisation_id,
            row.id,
            result,
            "subscription.reactivate",
            [(LedgerEvent.REACTIVATION, result.quantity or 0, result.quantity or 0, f"bot:reactivate:{key}")],
        )
        return ChangeResult(_("{name} is active again.", name=row.name), row.id)

    async def suspend_approved(
        self, organisation_id: int, subscription_id: str, *, actor: str, approval_id: int
    ) -> str:
        """The suspension an approver allowed (permissions were checked by the approval)."""
        async with self._sessions() as session:
            customer_id = customer_of(await organisation_of(session, organisation_id))
            row = await row_in_organisation(session, organisation_id, subscription_id)
            session.expunge(row)
        try:
            current = await self._client.subscription(customer_id, row.id)
        except PartnerCenterError as error:
            raise _translate(error) from None
        if str(current.status) == "suspended":
            result = current  # a lost answer of an earlier attempt: Microsoft already did it
        elif str(current.status) != "active":
            raise DomainError(
                _("{name} is {status}; it cannot be suspended.", name=row.name, status=current.status),
                code="not_active",
            )
        else:
            try:
                result = await self._client.update_subscription(
                    customer_id, current.model_copy(update={"status": SubscriptionStatus.SUSPENDED})
                )
            except PartnerCenterError as error:
                raise _translate(error) from None
        await self._commit(
            actor,
            organisation_id,
            row.id,
            result,
            "subscription.suspend",
            [(LedgerEvent.SUSPENSION, result.quantity or 0, result.quantity or 0, f"approval:{approval_id}:suspend")],
        )
        return _("{name} is suspended.", name=row.name)

    # --- add-ons ------------------------------------------------------------------------------------

    async def addons(self, caller: Caller, subscription_id: Any) -> tuple[SubscriptionRow, list[AddonOffer]]:
        """The add-ons that fit the subscription, each with its term and the reseller's price."""
        caller.require(Permission.READ_SUBSCRIPTIONS)
        _unused, row = await self._load(caller, subscription_id)
        offers: list[AddonOffer] = []
        for sku in await self._catalog.addons_for(row.product_id, row.sku_id):
            term = sku.term(row.term_duration, row.billing_cycle) or (sku.terms[0] if sku.terms else None)
            if term is None:
                continue
            price = await self._pricing.price_for(
                caller.organisation_id,
                sku.product_id,
                sku.sku_id,
                term.term_duration,
                term.billing_cycle,
                self._clock.today(),
            )
            offers.append(
                AddonOffer(
                    sku.product_id,
                    sku.sku_id,
                    sku.title,
                    sku.description,
                    sku.minimum_quantity,
                    sku.maximum_quantity,
                    term.term_duration,
                    term.billing_cycle,
                    price,
                )
            )
        return row, offers

    async def order_addon(
        self,
        caller: Caller,
        subscription_id: Any,
        addon: Any,
        quantity: Any,
        *,
        key: Any,
        shown_price: Any = None,
        approved: bool = False,
    ) -> ChangeResult:
        """Buy an add-on for a base subscription, exactly once per card (cart with the base as
        `provisioningContext` parent, checkout with a request id derived from the card's key)."""
        caller.require(Permission.MANAGE_SERVICES)
        count = parse_quantity(quantity)
        row, offers = await self.addons(caller, subscription_id)
        offer = next((o for o in offers if f"{o.product_id}:{o.sku_id}" == str(addon or "").upper()), None)
        if offer is None:
            raise NotFound(_("That add-on does not fit this subscription. Open its add-ons again."))
        if offer.price is None:
            raise DomainError(
                _("Your reseller has not priced this add-on yet, so it cannot be ordered."), code="unpriced"
            )
        if shown_price is not None and str(shown_price) != addon_price_token(offer):
            raise InvalidInput(
                _(
                    "The price of {title} changed since the card was shown: it is now {unit_price}. Check it "
                    "and order again.",
                    title=offer.title,
                    unit_price=formatting.unit_price(offer.price.amount, offer.price.currency, offer.billing_cycle),
                ),
                field="addon",
            )
        if not offer.minimum <= count <= offer.maximum:
            raise InvalidInput(
                _(
                    "Choose between {minimum} and {maximum} for {title}.",
                    minimum=offer.minimum,
                    maximum=offer.maximum,
                    title=offer.title,
                ),
                field="quantity",
            )
        if row.status != "active":
            raise DomainError(_(_RULES["27009"]), code="parent_not_active")
        if not approved and self.spending is not None:
            amount = offer.price.amount * count
            await self.spending.require(
                caller.organisation_id,
                Spend(
                    what=_("Add {count} × {title} to {name}", count=count, title=offer.title, name=row.name),
                    currency=offer.price.currency,
                    monthly_increase=per_month(amount, offer.price.currency, offer.billing_cycle),
                    term_duration=offer.term_duration,
                    per_period=f"{formatting.money(amount, offer.price.currency)} "
                    f"{formatting.per_period(offer.billing_cycle)}",
                ),
            )
        customer_id, _unused = await self._load(caller, subscription_id)
        purpose = "subscriptions.addon"
        if not await self._claim(caller, key, purpose):
            return ChangeResult(
                _("{title} was already ordered from this card.", title=offer.title), row.id, repeated=True
            )
        try:
            # The checkout core every purchase shares: one cart per card key, a request id derived
            # from it — so a retry after a lost answer or a crash can never buy the add-on twice.
            _cart, bought = await checkout_once(
                self._sessions,
                self._client,
                self._catalog,
                self._idempotency,
                organisation_id=caller.organisation_id,
                customer_id=customer_id,
                product_id=offer.product_id,
                sku_id=offer.sku_id,
                term_duration=offer.term_duration,
                billing_cycle=offer.billing_cycle,
                quantity=count,
                friendly_name=offer.title[:50],
                cart_key=f"order-cart:{caller.organisation_id}:addon:{key}",
                request_id=order_request_id(caller.organisation_id, f"addon:{key}"),
                parent_subscription_id=row.id,
            )
        except PartnerCenterError as error:
            await self._release(str(key), purpose)
            raise _translate(error) from None
        except OrderRefused as refused:
            await self._release(str(key), purpose)
            code = refused.errors[0].code or ""
            raise DomainError(
                _(_RULES.get(code, N_("Microsoft refused the order of this add-on."))), code=code or None
            ) from None
        except DomainError as error:
            if error.code == "checkout_unconfirmed":  # bought: the card must not order again
                raise DomainError(
                    _("Microsoft accepted the order but has not listed it yet. Refresh in a minute.")
                ) from None
            await self._release(str(key), purpose)
            raise
        except Exception:
            # Nothing recorded yet; the same card may try again, and its retry reuses this cart.
            await self._release(str(key), purpose)
            raise
        licence = await self._catalog.licence_sku_for_offer(bought.offer_id or "")
        async with self._sessions() as session:
            await record_purchase(
                session,
                Purchase(
                    organisation_id=caller.organisation_id,
                    customer_id=customer_id,
                    subscription=bought,
                    quantity=count,
                    source=LedgerSource.BOT,
                    actor=caller.actor,
                    now=self._clock.now(),
                    licence_sku_id=licence or "",
                    price_entry_id=offer.price.entry_id,
                    audit_action="subscription.addon_order",
                    audit_after={"parent": row.id, "offer": bought.offer_id or "", "quantity": count},
                ),
            )
            await session.commit()
        return ChangeResult(
            _(
                "Ordered {count} × {title} for {name}. It is available now and shows under it; costs start "
                "under Microsoft's billing rules.",
                count=count,
                title=offer.title,
                name=row.name,
            ),
            bought.id.lower(),
        )
