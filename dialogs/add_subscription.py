"""Dialog "add subscription" (SPEC §2): a card flow — a wizard whose every choice goes on to the
next card (`AddSubscriptionDialog.verbs`: pick, more, back, quote, change, create, cancel).

Screens, in order:
  category  → pick a category (only those with priced products)
  group     → pick a product group of it (only groups with priced products)
  product   → pick a product; "show details" reveals offer id, what it includes, terms
  configure → term and billing frequency (its priced availabilities) and a quantity within min/max
  confirm   → the price (unit, total per billing period, term total, currency); "create subscription"
              places the order as a durable job keyed by this card's order key and ends the dialog

Every submit's `card` token must be the current card's (and its verb one that card offers), or the
current card is shown again with "out of date"; every id is re-checked against the organisation's
storefront by the services.
The new subscription is posted by the job's notifier (`render_order_job`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import MessageFactory

from cards.ordering import (
    BACK,
    CANCEL,
    CHANGE,
    CREATE,
    MORE,
    PICK,
    QUOTE,
    Choice,
    ChoiceCardView,
    ConfigureView,
    OrderResultView,
    PlanChoice,
    ProductItem,
    ProductListView,
    QuoteView,
    build_choice_card,
    build_configure_card,
    build_no_tenant_card,
    build_order_result_card,
    build_product_list_card,
    build_quote_card,
)
from dialogs.approval_delivery import ApprovalPosting
from dialogs.base import (
    END,
    ERROR,
    HERE,
    SCREEN,
    CardFlow,
    Next,
    Outcome,
    Turn,
    Verb,
    View,
    caller_of,
    card_activity,
    card_done,
)
from dialogs.catalogue import Task
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from dialogs.spending import ask_an_approver
from services import formatting
from services.errors import DomainError, InvalidInput
from services.i18n import N_, _, ngettext
from services.jobs import SUCCEEDED, JobView
from services.ordering import (
    UNCONFIRMED_MESSAGE,
    OfferedProduct,
    OfferedTerm,
    OrderingService,
    PriceChanged,
    Quote,
    Storefront,
    term_name,
)
from services.pricing import per_month
from services.roles import Permission
from services.spending import ApprovalNeeded
from services.subscriptions import ApprovalService
from services.subscriptions.approvals import PURCHASE

ORDER_DIALOG_ID = "add_subscription"
TITLE = N_("add subscription")
PAGE_SIZE = 8
STALE_MESSAGE = N_("That card is out of date; this is where your order stands. Use this card.")
AGREEMENT_TITLE = N_("First, the Microsoft Customer Agreement")
STAGES = ("category", "group", "product", "configure", "confirm")


def per_licence(term: OfferedTerm) -> str:
    """`$5.52 per licence per month`; billed yearly or every 3 years, also what that comes to a month."""
    price = term.price
    shown = formatting.unit_price(price.amount, price.currency, term.billing_cycle)
    if term.billing_cycle == "monthly":
        return shown
    monthly = per_month(price.amount, price.currency, term.billing_cycle)
    return _(
        "{price} ({monthly} {per_month})",
        price=shown,
        monthly=formatting.money(monthly, price.currency),
        per_month=formatting.per_period("monthly"),
    )


def _monthly(term: OfferedTerm) -> Decimal:
    return per_month(term.price.amount, term.price.currency, term.billing_cycle)


def _product_item(item: OfferedProduct) -> ProductItem:
    # Products billed monthly, yearly or every 3 years compare on what a licence comes to a month.
    cheapest = min(item.terms, key=lambda term: (_monthly(term), term.key))
    from_price = formatting.unit_price(_monthly(cheapest), cheapest.price.currency, "monthly")
    return ProductItem(
        key=item.key,
        name=item.name,
        description=item.product.description or item.sku.description,
        from_price=_("From {price} ({plan})", price=from_price, plan=cheapest.label),
        plans=[_("{plan}: {price}", plan=term.label, price=per_licence(term)) for term in item.terms],
        quantity_range=_(
            "{minimum}–{maximum} licences",
            minimum=formatting.count(item.sku.minimum_quantity),
            maximum=formatting.count(item.sku.maximum_quantity),
        ),
        includes=item.sku.description if item.sku.description != item.product.description else "",
    )


def quote_view(quote: Quote, token: str, error: str = "") -> QuoteView:
    return QuoteView(
        product_name=quote.product_name,
        offer_id=f"{quote.product_id}:{quote.sku_id}",
        plan=quote.plan,
        quantity=quote.quantity,
        unit_price=formatting.unit_price(quote.unit_price, quote.currency, quote.billing_cycle),
        total_per_period=_per_period(quote),
        term_total=_(
            "{total} over the {term_name} term",
            total=formatting.money(quote.total_for_term, quote.currency),
            term_name=term_name(quote.term_duration),
        ),
        token=token,
        error=error,
    )


def _per_period(quote: Quote) -> str:
    """`$27.60 per month`: the total of one billing period."""
    return _(
        "{amount} {period}",
        amount=formatting.money(quote.total_per_period, quote.currency),
        period=formatting.per_period(quote.billing_cycle),
    )


def _day(value: Any) -> str:
    """A date the job result keeps as ISO text, for a person; "" when there is none."""
    try:
        return formatting.date(date.fromisoformat(str(value))) if value else ""
    except ValueError:
        return ""


def _order_status(status: str) -> str:
    """Microsoft's status of the new subscription, for a person (an unknown one as Microsoft says it)."""
    shown = {"active": _("Active"), "pending": _("Pending"), "suspended": _("Suspended")}
    return shown.get(status.strip().lower(), status.capitalize())


def render_order_job(job: JobView) -> Activity:
    """The job's outcome for the requester: the new subscription, or why nothing was bought."""
    result = job.result or {}
    if job.status != SUCCEEDED or "quote" not in result:
        # Bought: never "not placed". The ordering service keeps this outcome as the untranslated
        # constant (the job stores no error code), so the check holds in every language.
        if job.error_message == UNCONFIRMED_MESSAGE:
            return MessageFactory.text(_("Your order went through. {details}", details=_(UNCONFIRMED_MESSAGE)))
        reason = job.error_message or _("unknown reason")
        return MessageFactory.text(_("Your order was not placed: {reason}", reason=reason))
    quote = Quote.from_dict(result["quote"])
    view = OrderResultView(
        product_name=quote.product_name,
        quantity=quote.quantity,
        subscription_id=str(result.get("subscription_id", "")),
        status=_order_status(str(result.get("status", "active"))),
        plan=quote.plan,
        total_per_period=_per_period(quote),
        term_end=_day(result.get("commitment_end_date")),
    )
    return card_activity(build_order_result_card(view))


def render_stage_card(store: Storefront, state: dict[str, Any]) -> dict[str, Any]:
    """The card for the state's screen (pure: the storefront is already computed)."""
    stage, token, error = state[SCREEN], state["card"], state.pop("error", "")
    if stage == "category":
        choices = [Choice(category, category, ", ".join(store.groups(category))) for category in store.categories()]
        return build_choice_card(
            ChoiceCardView(_("Add a subscription"), _("Pick a category."), choices, token, error, can_go_back=False)
        )
    if stage == "group":
        category = state["category"]
        choices = [
            Choice(group, group, ngettext("{n} product", "{n} products", len(store.in_group(category, group))))
            for group in store.groups(category)
        ]
        return build_choice_card(
            ChoiceCardView(category, _("Pick a product group."), choices, token, error, can_go_back=True)
        )
    if stage == "product":
        items = store.in_group(state["category"], state["group"])
        pages = max(1, math.ceil(len(items) / PAGE_SIZE))
        page = min(int(state.get("page", 0)), pages - 1)
        shown = items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        return build_product_list_card(
            ProductListView(
                state["category"],
                state["group"],
                [_product_item(item) for item in shown],
                token,
                page,
                pages,
                error,
            )
        )
    if stage == "configure":
        offered = store.find(state["product"])
        if offered is None:  # no longer offered (price list or catalog changed meanwhile)
            state[SCREEN] = "product"
            state["error"] = _("That product is no longer offered to your organisation.")
            return render_stage_card(store, state)
        return build_configure_card(
            ConfigureView(
                product_name=offered.name,
                offer_id=offered.key,
                plans=[
                    PlanChoice(term.key, _("{plan} — {price}", plan=term.label, price=per_licence(term)))
                    for term in offered.terms
                ],
                plan=state.get("plan") or offered.terms[0].key,
                quantity=str(state.get("quantity", offered.sku.minimum_quantity)),
                minimum=offered.sku.minimum_quantity,
                maximum=offered.sku.maximum_quantity,
                token=token,
                error=error,
                error_field=state.pop("error_field", ""),
            )
        )
    return build_quote_card(quote_view(Quote.from_dict(state["quote"]), token, error))


@dataclass(frozen=True)
class Picked:
    value: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Picked:
        value = payload.get("value")
        return cls(value.strip()[:200] if isinstance(value, str) else "")


@dataclass(frozen=True)
class PlanEntry:
    """The configure card: a plan key and the quantity as typed (the quote reads it within the
    product's own bounds, which only the storefront knows)."""

    plan: str
    quantity: str | None

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> PlanEntry:
        plan, quantity = payload.get("plan"), payload.get("quantity")
        typed = None if quantity is None or isinstance(quantity, bool) else str(quantity)[:40]
        return cls(str(plan or "")[:200] if isinstance(plan, str | int) else "", typed)


BACK_TO = {"group": "category", "product": "group", "configure": "product", "confirm": "configure"}


class AddSubscriptionDialog(CardFlow):
    title = TITLE
    home = "category"
    carries_view = True
    token_key = "card"
    stale_message = STALE_MESSAGE
    retry_errors = (InvalidInput,)

    def __init__(self, ordering: OrderingService, approvals: ApprovalService, posting: ApprovalPosting) -> None:
        super().__init__(ORDER_DIALOG_ID)
        self._ordering = ordering
        self._approvals = approvals
        self._posting = posting
        self.screens = {stage: self._stage for stage in STAGES}
        self.verbs = {
            CANCEL: Verb(END, self._cancel),
            BACK: Verb("category", self._back),
            MORE: Verb("product", self._more, on=frozenset({"product"})),
            PICK: Verb(HERE, self._pick, HERE, Picked.of, on=frozenset({"category", "group", "product"})),
            QUOTE: Verb(
                "confirm", self._quote, "configure", PlanEntry.of, ("plan", "quantity"), on=frozenset({"configure"})
            ),
            CHANGE: Verb("configure", on=frozenset({"confirm"})),
            CREATE: Verb(END, self._create, "configure", on=frozenset({"confirm"})),
        }

    async def opening(self, step: WaterfallStepContext, view: View, /) -> DialogTurnResult | None:
        """Before the first card: a tenant and Microsoft's agreement are needed, and something priced."""
        caller = caller_of(step.context)
        if not isinstance(step.options, dict) or not step.options:
            view.clear()
            view[SCREEN] = self.home
            try:
                await self._ordering.customer_id(caller)
            except DomainError as error:
                if error.code == "no_agreement":
                    reply = card_activity(build_no_tenant_card(error.message, title=_(AGREEMENT_TITLE)))
                elif error.code == "no_tenant":
                    reply = card_activity(build_no_tenant_card(error.message))
                else:  # e.g. Microsoft unreachable while checking the agreement: say so, nothing else
                    reply = MessageFactory.text(
                        _("I cannot open the catalog right now: {reason}", reason=error.message)
                    )
                await step.context.send_activity(reply)
                return await step.end_dialog()
        store = await self._ordering.storefront(caller)
        if not store.products:
            await self._ordering.alert_unpriced()
            await step.context.send_activity(
                _(
                    "Nothing can be ordered right now: no product has a price for your organisation yet. "
                    "Your reseller has been told."
                )
            )
            return await step.end_dialog()
        return None

    # --- screens: one renderer for the wizard's stages ----------------------------------------------

    async def _stage(self, turn: Turn) -> dict[str, Any]:
        return render_stage_card(await self._ordering.storefront(turn.caller), turn.view)

    # --- verbs: action(turn, parsed) -> Next | what was said -----------------------------------------

    async def _cancel(self, _turn: Turn, _nothing: None) -> Outcome:
        return _("Cancelled add subscription. Nothing was ordered.")

    async def _back(self, turn: Turn, _nothing: None) -> Outcome:
        here = str(turn.view.get(SCREEN))
        back = BACK_TO.get(here, here)
        return Next(back, {"page": None} if back == "group" else {})

    async def _more(self, turn: Turn, _nothing: None) -> Outcome:
        return Next("product", {"page": int(turn.view.get("page", 0)) + 1})

    async def _pick(self, turn: Turn, picked: Picked) -> Outcome:
        store = await self._ordering.storefront(turn.caller)
        stage, view, value = turn.view[SCREEN], turn.view, picked.value
        if stage == "category" and value in store.categories():
            return Next("group", {"category": value})
        if stage == "group" and value in store.groups(view["category"]):
            return Next("product", {"group": value, "page": 0})
        if stage == "product" and any(
            item.key == value.upper() for item in store.in_group(view["category"], view["group"])
        ):
            return Next("configure", {"product": value.upper(), "plan": None, "quantity": None})
        raise InvalidInput(_("That is not offered to your organisation. Pick one from this card."))

    async def _quote(self, turn: Turn, entry: PlanEntry) -> Outcome:
        quote = await self._ordering.quote(turn.caller, turn.view["product"], entry.plan, entry.quantity)
        shown = "" if entry.quantity is None else entry.quantity
        return Next(
            "confirm", {"plan": entry.plan, "quantity": shown, "quote": quote.as_dict(), "order_key": uuid.uuid4().hex}
        )

    async def _create(self, turn: Turn, _nothing: None) -> Outcome:
        caller, view, context = turn.caller, turn.view, turn.context
        conversation = context.activity.conversation
        try:
            placed = await self._ordering.place_order(
                caller,
                Quote.from_dict(view["quote"]),
                str(view["order_key"]),
                notify_conversation_id=conversation.id if conversation else None,
            )
        except PriceChanged as changed:  # the new price, on the same card, to confirm again
            changes = {"quote": changed.quote.as_dict(), "order_key": uuid.uuid4().hex, ERROR: changed.message}
            return Next("confirm", changes)
        except ApprovalNeeded as needed:  # above the organisation's spending policy
            change = {"quote": view["quote"], "key": view["order_key"]}
            change["conversation_id"] = conversation.id if conversation else ""
            card_done(context, _("Sent to an approver"))
            return await ask_an_approver(
                context,
                self._approvals,
                self._posting,
                caller,
                needed,
                kind=PURCHASE,
                subscription_id="",
                change=change,
            )
        quote = Quote.from_dict(view["quote"])
        if placed.created:
            return _(
                "Ordering **{product}** × {quantity} from Microsoft… "
                "I will post the new subscription here as soon as Microsoft confirms it.",
                product=quote.product_name,
                quantity=quote.quantity,
            )
        if placed.job.finished:
            await context.send_activity(render_order_job(placed.job))
            return None
        return _("That order is already being placed; I will post the result here.")


def add_subscription_tasks(dialog: AddSubscriptionDialog) -> list[Task]:
    return [
        Task(
            command="add subscription",
            title=N_("Add subscription"),
            description=N_("Buy a Microsoft 365 subscription: browse, pick a term and quantity, see the price"),
            dialog=dialog,
            permission=Permission.MANAGE_SERVICES,
            aliases=("buy", "order", "new subscription", "add a subscription"),
        )
    ]


__all__ = [
    "ORDER_DIALOG_ID",
    "STAGES",
    "AddSubscriptionDialog",
    "add_subscription_tasks",
    "render_order_job",
]
