"""Buying a subscription (SPEC §2): what an organisation is offered, the quote for a choice, and
the order — exactly once, recorded only after Microsoft accepted it.

- The **storefront** is the catalog cache filtered to what the organisation can buy today: active,
  not an add-on (add-ons are bought for a subscription), and priced (customer list, else global)
  for at least one term and billing frequency. An unpriced product is never offered.
- A **quote** re-validates a choice (product, term, billing frequency, quantity) against the
  storefront — ids from a card are never trusted — and prices it.
- **place_order** re-quotes, refuses a changed price (the caller must confirm the new one), and
  submits a durable job keyed by the order key shown on the card, so a double click, a resubmitted
  card or a re-delivered activity find the same job: one order.
- The **job** fetches a fresh availability, creates the cart once per order key (remembered with an
  idempotency key), checks it out with a request id derived from the order key (the client recovers
  a checkout whose answer was lost), then writes the subscription mirror, the ledger's PURCHASE
  entry (with the price-list entry) and the audit entry in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import formatting
from services.access import Caller
from services.alerts import AlertService
from services.catalog import CatalogService, ProductView, SkuView
from services.clock import SYSTEM_CLOCK, Clock
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.i18n import N_, _, ngettext
from services.idempotency import IdempotencyService
from services.jobs import JobService, JobView
from services.ledger import LedgerSource, SubscriptionLedger
from services.models import IdempotencyKey, Job, Organisation, TenantServiceRow
from services.money import line_amount
from services.partner_center import PartnerCenterClient, PartnerCenterError
from services.partner_center.client import MICROSOFT_CUSTOMER_AGREEMENT
from services.partner_center.models import (
    BillingCycle,
    CartLineItem,
    Order,
    OrderError,
    Subscription,
    SubscriptionStatus,
)
from services.payloads import whole_number
from services.price_rules import UnitPrice, price_in_force
from services.pricing import PriceBook, per_month, periods_in_term
from services.purchases import Purchase, record_purchase
from services.roles import Permission
from services.spending import Spend, SpendingPolicies

log = logging.getLogger(__name__)

ORDER_JOB = "order_subscription"
UNPRICED_ALERT = "unpriced_products"
NO_TENANT_MESSAGE = N_(
    "Your organisation has no Microsoft 365 tenant with us yet, so nothing can be bought. "
    "Type **add tenant** to create or link one first."
)
NO_AGREEMENT_MESSAGE = N_(
    "Microsoft needs your organisation's acceptance of the Microsoft Customer Agreement before anything can be "
    "bought, and it has none on record for your tenant. Type **add tenant** to record it, then order again."
)
# Bought, but Microsoft's answer named no subscription yet: the job ends without the mirror row; the
# next subscriptions sync records it. Not "not placed" — the requester must not order again.
UNCONFIRMED_MESSAGE = N_(
    "Microsoft accepted the order but has not named its subscription yet. "
    "It will appear in your subscriptions shortly; do not order again."
)
# A term as it qualifies a noun: "1-year commitment", "the 3-year term".
TERM_NAMES = {"P1M": N_("1-month"), "P1Y": N_("1-year"), "P2Y": N_("2-year"), "P3Y": N_("3-year")}
CYCLE_NAMES = {"monthly": N_("monthly"), "annual": N_("yearly"), "triennial": N_("every 3 years")}
_REQUEST_NAMESPACE = uuid.UUID("5b0c3f52-6a7e-4f0c-9d0e-8f1f3c9b6a21")


def term_name(term_duration: str) -> str:
    known = TERM_NAMES.get(term_duration.upper())
    return _(known) if known else term_duration


def plan_label(term_duration: str, billing_cycle: str) -> str:
    return _(
        "{term_name} commitment, billed {get}",
        term_name=term_name(term_duration),
        get=_(CYCLE_NAMES.get(billing_cycle, billing_cycle)),
    )


def plan_key(term_duration: str, billing_cycle: str) -> str:
    return f"{term_duration.upper()}:{billing_cycle.lower()}"


@dataclass(frozen=True)
class OfferedTerm:
    term_duration: str
    billing_cycle: str
    description: str
    price: UnitPrice

    @property
    def key(self) -> str:
        return plan_key(self.term_duration, self.billing_cycle)

    @property
    def label(self) -> str:
        return plan_label(self.term_duration, self.billing_cycle)


@dataclass(frozen=True)
class OfferedProduct:
    """One SKU the organisation can buy, with its priced terms."""

    product: ProductView
    sku: SkuView
    terms: tuple[OfferedTerm, ...]

    @property
    def key(self) -> str:
        return self.sku.key

    @property
    def name(self) -> str:
        if len(self.product.skus) > 1 and self.sku.title and self.sku.title != self.product.title:
            return f"{self.product.title} — {self.sku.title}"
        return self.product.title

    def term(self, key: str) -> OfferedTerm | None:
        duration, _unused, cycle = str(key).partition(":")
        wanted = plan_key(duration.strip(), cycle.strip())
        return next((term for term in self.terms if term.key == wanted), None)


@dataclass(frozen=True)
class Storefront:
    products: tuple[OfferedProduct, ...]

    def categories(self) -> list[str]:
        return sorted({item.product.category for item in self.products})

    def groups(self, category: str) -> list[str]:
        return sorted({item.product.product_group for item in self.products if item.product.category == category})

    def in_group(self, category: str, group: str) -> list[OfferedProduct]:
        return [
            item for item in self.products if item.product.category == category and item.product.product_group == group
        ]

    def find(self, key: str) -> OfferedProduct | None:
        wanted = key.strip().upper()
        return next((item for item in self.products if item.key == wanted), None)


@dataclass(frozen=True)
class Quote:
    """The price of one choice, as shown before "create subscription"."""

    product_id: str
    sku_id: str
    product_name: str
    term_duration: str
    billing_cycle: str
    quantity: int
    currency: str
    unit_price: Decimal  # per seat per billing period
    price_entry_id: int
    periods: int  # billing periods in the term

    @property
    def total_per_period(self) -> Decimal:
        """What one billing period's cycle fee will be: rounded once, as the bill's line is."""
        return line_amount(self.quantity, self.unit_price, None, None, self.currency)

    @property
    def total_for_term(self) -> Decimal:
        return self.total_per_period * self.periods

    @property
    def plan(self) -> str:
        return plan_label(self.term_duration, self.billing_cycle)

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "sku_id": self.sku_id,
            "product_name": self.product_name,
            "term_duration": self.term_duration,
            "billing_cycle": self.billing_cycle,
            "quantity": self.quantity,
            "currency": self.currency,
            "unit_price": str(self.unit_price),
            "price_entry_id": self.price_entry_id,
            "periods": self.periods,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quote:
        return cls(
            product_id=str(data["product_id"]),
            sku_id=str(data["sku_id"]),
            product_name=str(data["product_name"]),
            term_duration=str(data["term_duration"]),
            billing_cycle=str(data["billing_cycle"]),
            quantity=int(data["quantity"]),
            currency=str(data["currency"]),
            unit_price=Decimal(str(data["unit_price"])),
            price_entry_id=int(data["price_entry_id"]),
            periods=int(data["periods"]),
        )


class PriceChanged(Conflict):
    """The price moved between the quote and the confirmation; `quote` is the new one."""

    code = "price_changed"

    def __init__(self, quote: Quote) -> None:
        super().__init__(
            _("The price changed since it was shown. Check the new price and confirm again."), field="price"
        )
        self.quote = quote


@dataclass(frozen=True)
class PlacedOrder:
    job: JobView
    created: bool


@dataclass(frozen=True)
class UnpricedItem:
    product_id: str
    sku_id: str
    title: str
    term_duration: str
    billing_cycle: str


def parse_quantity(value: Any, minimum: int, maximum: int) -> int:
    """A whole number within the SKU's bounds, or InvalidInput(field="quantity") saying which."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(_("Enter how many licences you need."), field="quantity")
    return whole_number(
        value,
        minimum=minimum,
        maximum=maximum,
        field="quantity",
        not_a_number=_("The quantity must be a whole number ({minimum}–{maximum}).", minimum=minimum, maximum=maximum),
        out_of_range=_(
            "The quantity must be between {minimum} and {maximum} for this product.", minimum=minimum, maximum=maximum
        ),
    )


def _price_key(product_id: str, sku_id: str, term_duration: str, billing_cycle: str) -> tuple[str, str, str, str]:
    return (product_id.upper(), sku_id.upper(), term_duration.upper(), billing_cycle.lower())


def build_storefront(products: Iterable[ProductView], entries: Iterable[UnitPrice], day: date) -> Storefront:
    """The priced, non-add-on SKUs of the catalog on `day`. Entries are grouped by key first, so a
    large catalog costs one pass over the price list, not one per term (the catalog cache stores
    ids upper-case and billing cycles lower-case; price entries are normalised here)."""
    by_key: dict[tuple[str, str, str, str], list[UnitPrice]] = {}
    for entry in entries:
        key = _price_key(entry.product_id, entry.sku_id, entry.term_duration, entry.billing_cycle)
        by_key.setdefault(key, []).append(entry)
    offered: list[OfferedProduct] = []
    for product in products:
        for sku in product.skus:
            if sku.is_addon:
                continue
            terms = []
            for term in sku.terms:
                candidates = by_key.get((sku.product_id, sku.sku_id, term.term_duration, term.billing_cycle))
                if not candidates:
                    continue
                price = price_in_force(
                    candidates,
                    product_id=sku.product_id,
                    sku_id=sku.sku_id,
                    term_duration=term.term_duration,
                    billing_cycle=term.billing_cycle,
                    on=day,
                )
                if price is not None:
                    terms.append(OfferedTerm(term.term_duration, term.billing_cycle, term.description, price))
            if terms:
                offered.append(OfferedProduct(product, sku, tuple(terms)))
    return Storefront(tuple(offered))


def purchase_spend(quote: Quote) -> Spend:
    """What a purchase costs, as the spending policy weighs it."""
    period = formatting.per_period(quote.billing_cycle)
    return Spend(
        what=_("Buy {quantity} × {product_name}", quantity=quote.quantity, product_name=quote.product_name),
        currency=quote.currency,
        monthly_increase=per_month(quote.total_per_period, quote.currency, quote.billing_cycle),
        term_duration=quote.term_duration,
        charge_now=quote.total_per_period,
        per_period=f"{formatting.money(quote.total_per_period, quote.currency)} {period}",
    )


def order_request_id(organisation_id: int, order_key: str) -> str:
    """The checkout request id of an order key: the same on every retry, so Microsoft (and the
    client's recovery of a lost answer) sees one order."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, f"{organisation_id}:{order_key}"))


def _as_quoted(subscription: Subscription, quote: Quote) -> Subscription:
    """Microsoft's subscription with what it leaves out taken from the quote it was bought on."""
    return subscription.model_copy(
        update={
            "offer_id": subscription.offer_id or f"{quote.product_id}:{quote.sku_id}",
            "friendly_name": subscription.friendly_name or subscription.offer_name or quote.product_name,
            "quantity": quote.quantity if subscription.quantity is None else subscription.quantity,
            "status": subscription.status or SubscriptionStatus.ACTIVE,
            "term_duration": subscription.term_duration or quote.term_duration,
            "billing_cycle": subscription.billing_cycle or BillingCycle(quote.billing_cycle),
            "auto_renew_enabled": True if subscription.auto_renew_enabled is None else subscription.auto_renew_enabled,
        }
    )


class OrderRefused(DomainError):
    """Microsoft answered the checkout with order errors and bought nothing; `errors` are its own."""

    def __init__(self, errors: list[OrderError]) -> None:
        first = errors[0]
        detail = first.description or first.code or _("unknown reason")
        super().__init__(
            _("Microsoft refused the order: {detail}. Nothing was bought.", detail=detail), code="order_error"
        )
        self.errors = errors


async def checkout_once(
    sessions: async_sessionmaker[AsyncSession],
    partner_center: PartnerCenterClient,
    catalog: CatalogService,
    idempotency: IdempotencyService,
    *,
    organisation_id: int,
    customer_id: str,
    product_id: str,
    sku_id: str,
    term_duration: str,
    billing_cycle: str,
    quantity: int,
    friendly_name: str,
    cart_key: str,
    request_id: str,
    cart_purpose: str = "order_cart",
    parent_subscription_id: str | None = None,
) -> tuple[Order, Subscription]:
    """The one checkout core of every purchase (a subscription, or an add-on under its base), exactly
    once per `cart_key`: the cart claimed under the key is the one checked out (a rerun after a crash
    or an uncertain answer, or a repeated call, creates no other, so it never buys a second; a new
    cart is made from a fresh availability id and claimed through the idempotency service), with a
    request id fixed by the caller (derived from the order key: a lost answer is recovered, not
    bought again). Returns the order and the new subscription as Microsoft reads it (or as the order
    names it). Raises OrderRefused when Microsoft refused (nothing was bought) and a DomainError
    with code "checkout_unconfirmed" when the order names no subscription yet."""
    async with sessions() as session:
        claimed = await session.get(IdempotencyKey, cart_key)
    if claimed is not None and (claimed.purpose != cart_purpose or claimed.organisation_id != organisation_id):
        raise Conflict(_("That order key belongs to something else."))
    cart_id = claimed.resource_id if claimed is not None else None
    if cart_id is None:
        catalog_item_id = await catalog.fresh_catalog_item_id(product_id, sku_id, term_duration, billing_cycle)
        cart = await partner_center.create_cart(
            customer_id,
            [
                CartLineItem(
                    catalog_item_id=catalog_item_id,
                    quantity=quantity,
                    billing_cycle=BillingCycle(billing_cycle),
                    term_duration=term_duration,
                    friendly_name=friendly_name,
                    provisioning_context={"parentSubscriptionId": parent_subscription_id}
                    if parent_subscription_id
                    else None,
                )
            ],
        )
        if not cart.id:
            raise DomainError(_("Microsoft did not accept the order (no cart). Nothing was bought."))
        # One cart per order: a rerun after a crash checks out the cart the first run created.
        record = await idempotency.claim(
            cart_key,
            purpose=cart_purpose,
            organisation_id=organisation_id,
            resource_type="cart",
            resource_id=cart.id,
        )
        cart_id = record.resource_id
    result = await partner_center.checkout(customer_id, cart_id, request_id=request_id)
    if result.order_errors:
        raise OrderRefused(list(result.order_errors))
    line = next(
        ((order, item) for order in result.orders for item in order.line_items if item.subscription_id),
        None,
    )
    if line is None:
        raise DomainError(UNCONFIRMED_MESSAGE, code="checkout_unconfirmed")
    order, item = line
    assert item.subscription_id is not None
    try:
        subscription = await partner_center.subscription(customer_id, item.subscription_id)
    except PartnerCenterError:
        # Bought: never report it as failed. Record what the order says; a sync fills in the rest.
        log.warning("%s: subscription %s bought but not readable yet", cart_key, item.subscription_id)
        subscription = Subscription(
            id=item.subscription_id,
            offer_id=item.offer_id,
            quantity=item.quantity or quantity,
            term_duration=item.term_duration or term_duration,
            billing_cycle=BillingCycle(billing_cycle),
            status=SubscriptionStatus.ACTIVE,
            creation_date=order.creation_date,
            parent_subscription_id=parent_subscription_id,
        )
    return order, subscription


class OrderingService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: CatalogService,
        pricing: PriceBook,
        partner_center: PartnerCenterClient,
        jobs: JobService,
        idempotency: IdempotencyService,
        ledger: SubscriptionLedger,
        alerts: AlertService,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self._clock = clock  # Microsoft's: which prices are in force today
        self._catalog = catalog
        self._pricing = pricing
        self._partner_center = partner_center
        self._jobs = jobs
        self._idempotency = idempotency
        self._ledger = ledger
        self._alerts = alerts
        self.spending: SpendingPolicies | None = None  # set by the container: the policy orders meet
        jobs.register(ORDER_JOB, self._run_order)

    # --- browsing --------------------------------------------------------------------------------

    async def customer_id(self, caller: Caller) -> str:
        """The organisation's Partner Center customer, ready to buy: a tenant with the Microsoft
        Customer Agreement accepted. Else a DomainError (code `no_tenant` / `no_agreement`) pointing
        to "add tenant"."""
        async with self._sessions() as session:
            organisation = await session.get(Organisation, caller.organisation_id)
        if organisation is None:
            raise NotFound(_("Your organisation is no longer registered with the reseller."))
        if not organisation.partner_center_customer_id:
            raise DomainError(_(NO_TENANT_MESSAGE), code="no_tenant")
        customer_id = organisation.partner_center_customer_id
        if not await self._agreement_recorded(organisation.id, customer_id):
            raise DomainError(_(NO_AGREEMENT_MESSAGE), code="no_agreement")
        return customer_id

    async def _agreement_recorded(self, organisation_id: int, customer_id: str) -> bool:
        """Whether the customer's acceptance of the Microsoft Customer Agreement is on record (SPEC
        §1.4: nothing can be bought without it): in My services when "add tenant" recorded it, else
        as Microsoft lists it (a tenant the operator linked, an attestation made in Partner Center)."""
        async with self._sessions() as session:
            service = await session.scalar(
                select(TenantServiceRow).where(TenantServiceRow.organisation_id == organisation_id)
            )
        if (
            service is not None
            and service.mca_accepted_at is not None
            and (service.customer_id or "").lower() == customer_id.lower()
        ):
            return True
        return bool(await self._partner_center.agreements(customer_id, agreement_type=MICROSOFT_CUSTOMER_AGREEMENT))

    async def storefront(self, caller: Caller, *, on: date | None = None) -> Storefront:
        """What the caller's organisation can buy on `on` (default Microsoft's today, UTC)."""
        caller.require(Permission.MANAGE_SERVICES)
        entries = await self._pricing.entries_for(caller.organisation_id)
        return build_storefront(await self._catalog.products(), entries, on or self._clock.today())

    async def quote(
        self, caller: Caller, product_key: str, plan: str, quantity: Any, *, on: date | None = None
    ) -> Quote:
        """Price a choice; every id is checked against what this organisation is offered."""
        storefront = await self.storefront(caller, on=on)
        item = storefront.find(product_key)
        if item is None:
            raise InvalidInput(_("That product is not offered to your organisation."), field="product")
        term = item.term(plan)
        if term is None:
            raise InvalidInput(_("Pick a term and billing frequency offered for this product."), field="plan")
        count = parse_quantity(quantity, item.sku.minimum_quantity, item.sku.maximum_quantity)
        periods = periods_in_term(term.term_duration, term.billing_cycle) or 1
        return Quote(
            product_id=item.sku.product_id,
            sku_id=item.sku.sku_id,
            product_name=item.name,
            term_duration=term.term_duration,
            billing_cycle=term.billing_cycle,
            quantity=count,
            currency=term.price.currency,
            unit_price=term.price.amount,
            price_entry_id=term.price.entry_id,
            periods=periods,
        )

    # --- ordering --------------------------------------------------------------------------------

    async def place_order(
        self,
        caller: Caller,
        shown: Quote,
        order_key: str,
        *,
        notify_conversation_id: str | None,
        approved: bool = False,
    ) -> PlacedOrder:
        """Order what the caller confirmed. The same order key always means the same single order.
        Above the organisation's spending policy it raises `ApprovalNeeded`, unless an approver has
        `approved` exactly this order (the approval's job passes it)."""
        caller.require(Permission.MANAGE_SERVICES)
        key = f"order:{caller.organisation_id}:{order_key}"
        existing = await self._job_for(key)
        if existing is not None:  # a double click, a resubmitted card, a re-delivered activity
            return PlacedOrder(existing, created=False)
        customer_id = await self.customer_id(caller)
        current = await self.quote(
            caller,
            f"{shown.product_id}:{shown.sku_id}",
            plan_key(shown.term_duration, shown.billing_cycle),
            shown.quantity,
        )
        if (current.price_entry_id, current.unit_price, current.currency) != (
            shown.price_entry_id,
            shown.unit_price,
            shown.currency,
        ):
            raise PriceChanged(current)
        if not approved and self.spending is not None:
            await self.spending.require(caller.organisation_id, purchase_spend(current))
        job, created = await self._jobs.submit(
            ORDER_JOB,
            idempotency_key=key,
            payload={"order_key": order_key, "customer_id": customer_id, "quote": current.as_dict()},
            organisation_id=caller.organisation_id,
            requested_by=caller.actor,
            notify_conversation_id=notify_conversation_id,
            max_attempts=3,
        )
        if created:
            log.info("order %s submitted as job %s", order_key, job.id)
        return PlacedOrder(job, created)

    async def _run_order(self, job: JobView) -> Mapping[str, Any]:
        """The durable part: cart → checkout → mirror + ledger. Safe to run again after a crash."""
        payload = job.payload
        order_key = str(payload["order_key"])
        customer_id = str(payload["customer_id"])
        quote = Quote.from_dict(payload["quote"])
        organisation_id = job.organisation_id
        if organisation_id is None:
            raise DomainError(_("The order has no organisation."))
        async with self._sessions() as session:
            organisation = await session.get(Organisation, organisation_id)
            if organisation is None or organisation.partner_center_customer_id != customer_id:
                raise DomainError(_("Your organisation's Microsoft tenant changed; the order was not placed."))
        order, subscription = await checkout_once(
            self._sessions,
            self._partner_center,
            self._catalog,
            self._idempotency,
            organisation_id=organisation_id,
            customer_id=customer_id,
            product_id=quote.product_id,
            sku_id=quote.sku_id,
            term_duration=quote.term_duration,
            billing_cycle=quote.billing_cycle,
            quantity=quote.quantity,
            friendly_name=quote.product_name[:50],
            cart_key=f"order-cart:{organisation_id}:{order_key}",
            request_id=order_request_id(organisation_id, order_key),
        )
        await self._record_purchase(
            organisation_id, customer_id, quote, subscription, order_id=order.id or "", actor=job.requested_by
        )
        return {
            "message": (
                _(
                    "Your subscription **{product_name}** × {quantity} is active (costs now start under "
                    "Microsoft's billing rules).",
                    product_name=quote.product_name,
                    quantity=quote.quantity,
                )
            ),
            "subscription_id": subscription.id,
            "order_id": order.id or "",
            "quote": quote.as_dict(),
            "commitment_end_date": subscription.commitment_end_date.date().isoformat()
            if subscription.commitment_end_date
            else "",
            "status": str(subscription.status or "active"),
        }

    async def _record_purchase(
        self,
        organisation_id: int,
        customer_id: str,
        quote: Quote,
        subscription: Subscription,
        *,
        order_id: str,
        actor: str,
    ) -> None:
        """Mirror + ledger + audit in one transaction; a rerun (or a sync that saw the subscription
        first) finds the purchase recorded and adds nothing."""
        licence = await self._catalog.licence_sku_id(quote.product_id, quote.sku_id) or ""
        async with self._sessions() as session:
            await record_purchase(
                session,
                Purchase(
                    organisation_id=organisation_id,
                    customer_id=customer_id,
                    subscription=_as_quoted(subscription, quote),
                    quantity=quote.quantity,
                    source=LedgerSource.BOT,
                    actor=actor,
                    now=self._clock.now(),
                    licence_sku_id=licence,
                    price_entry_id=quote.price_entry_id,
                    product_name=quote.product_name,
                    audit_action="subscription.purchase",
                    audit_after={**quote.as_dict(), "order_id": order_id},
                ),
            )
            await session.commit()

    async def _job_for(self, idempotency_key: str) -> JobView | None:
        async with self._sessions() as session:
            job_id = await session.scalar(select(Job.id).where(Job.idempotency_key == idempotency_key))
        return await self._jobs.get(job_id) if job_id is not None else None

    # --- operator report -------------------------------------------------------------------------

    async def unpriced(self, *, on: date | None = None, organisation_id: int | None = None) -> list[UnpricedItem]:
        """Catalog terms with no price in force (global list, or the organisation's lists)."""
        day = on or self._clock.today()
        if organisation_id is None:
            entries = await self._pricing.global_entries()
        else:
            entries = await self._pricing.entries_for(organisation_id)
        missing: list[UnpricedItem] = []
        for product in await self._catalog.products():
            for sku in product.skus:
                for term in sku.terms:
                    if (
                        price_in_force(
                            entries,
                            product_id=sku.product_id,
                            sku_id=sku.sku_id,
                            term_duration=term.term_duration,
                            billing_cycle=term.billing_cycle,
                            on=day,
                        )
                        is None
                    ):
                        missing.append(
                            UnpricedItem(sku.product_id, sku.sku_id, sku.title, term.term_duration, term.billing_cycle)
                        )
        return missing

    async def alert_unpriced(self, *, on: date | None = None) -> list[UnpricedItem]:
        """Raise (or count again) the operator alert when catalog items have no global price."""
        missing = await self.unpriced(on=on)
        if missing:
            products = sorted({f"{item.title} ({item.product_id}:{item.sku_id})" for item in missing})
            await self._alerts.raise_alert(
                UNPRICED_ALERT,
                _(
                    "Not offered to customers without their own price for want of a global price: {plural}, "
                    "{join}{value}. See `cspbot prices unpriced`.",
                    plural=ngettext("{n} product term", "{n} product terms", len(missing)),
                    join=", ".join(products[:15]),
                    value=" …" if len(products) > 15 else "",
                ),
                dedup_key=UNPRICED_ALERT,
            )
        return missing
