"""Dialog "add subscription" (SPEC §2): one card at a time, driven by a small state machine.

Steps (the waterfall loops through `show_step` → `handle_step` with the new state):
  category  → pick a category (only those with priced products)
  group     → pick a product group of it (only groups with priced products)
  product   → pick a product; "show details" reveals offer id, what it includes, terms
  configure → term and billing frequency (its priced availabilities) and a quantity within min/max
  confirm   → the price (unit, total per billing period, term total, currency); "create subscription"
              places the order as a durable job keyed by this card's order key and ends the dialog

Every submit's `card` token must be the current card's, or the current card is shown again with
"out of date"; every id is re-checked against the organisation's storefront by the services.
The new subscription is posted by the job's notifier (`render_order_job`).
"""

from __future__ import annotations

import math
import uuid
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
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_activity, card_done, stored
from dialogs.catalogue import Task
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from dialogs.spending import ask_an_approver
from services import formatting
from services.errors import DomainError, InvalidInput
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
TITLE = "add subscription"
PAGE_SIZE = 8
STALE_MESSAGE = "That card is out of date; this is where your order stands. Use this card."
AGREEMENT_TITLE = "First, the Microsoft Customer Agreement"
STAGES = ("category", "group", "product", "configure", "confirm")


def per_licence(term: OfferedTerm) -> str:
    """`$5.52 per licence per month`; billed yearly or every 3 years, also what that comes to a month."""
    price = term.price
    shown = formatting.unit_price(price.amount, price.currency, term.billing_cycle)
    if term.billing_cycle == "monthly":
        return shown
    monthly = per_month(price.amount, price.currency, term.billing_cycle)
    return f"{shown} ({formatting.money(monthly, price.currency)} {formatting.per_period('monthly')})"


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
        from_price=f"From {from_price} ({cheapest.label})",
        plans=[f"{term.label}: {per_licence(term)}" for term in item.terms],
        quantity_range=f"{item.sku.minimum_quantity}–{item.sku.maximum_quantity} licences",
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
        term_total=(
            f"{formatting.money(quote.total_for_term, quote.currency)} over the {term_name(quote.term_duration)} term"
        ),
        token=token,
        error=error,
    )


def _per_period(quote: Quote) -> str:
    """`$27.60 per month`: the total of one billing period."""
    return f"{formatting.money(quote.total_per_period, quote.currency)} {formatting.per_period(quote.billing_cycle)}"


def _day(value: Any) -> str:
    """A date the job result keeps as ISO text, for a person; "" when there is none."""
    try:
        return formatting.date(date.fromisoformat(str(value))) if value else ""
    except ValueError:
        return ""


def render_order_job(job: JobView) -> Activity:
    """The job's outcome for the requester: the new subscription, or why nothing was bought."""
    result = job.result or {}
    if job.status != SUCCEEDED or "quote" not in result:
        if job.error_message == UNCONFIRMED_MESSAGE:  # bought: never "not placed"
            return MessageFactory.text(f"Your order went through. {UNCONFIRMED_MESSAGE}")
        return MessageFactory.text(f"Your order was not placed: {job.error_message or 'unknown reason'}")
    quote = Quote.from_dict(result["quote"])
    view = OrderResultView(
        product_name=quote.product_name,
        quantity=quote.quantity,
        subscription_id=str(result.get("subscription_id", "")),
        status=str(result.get("status", "active")).capitalize(),
        plan=quote.plan,
        total_per_period=_per_period(quote),
        term_end=_day(result.get("commitment_end_date")),
    )
    return card_activity(build_order_result_card(view))


def render_stage_card(store: Storefront, state: dict[str, Any]) -> dict[str, Any]:
    """The card for the state's stage (pure: the storefront is already computed)."""
    stage, token, error = state["stage"], state["card"], state.pop("error", "")
    if stage == "category":
        choices = [Choice(category, category, ", ".join(store.groups(category))) for category in store.categories()]
        return build_choice_card(
            ChoiceCardView("Add a subscription", "Pick a category.", choices, token, error, can_go_back=False)
        )
    if stage == "group":
        category = state["category"]
        choices = [
            Choice(group, group, formatting.plural(len(store.in_group(category, group)), "product", "products"))
            for group in store.groups(category)
        ]
        return build_choice_card(
            ChoiceCardView(category, "Pick a product group.", choices, token, error, can_go_back=True)
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
            state["stage"] = "product"
            state["error"] = "That product is no longer offered to your organisation."
            return render_stage_card(store, state)
        return build_configure_card(
            ConfigureView(
                product_name=offered.name,
                offer_id=offered.key,
                plans=[PlanChoice(term.key, f"{term.label} — {per_licence(term)}") for term in offered.terms],
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


class AddSubscriptionDialog(TaskDialog):
    title = TITLE

    def __init__(self, ordering: OrderingService, approvals: ApprovalService, posting: ApprovalPosting) -> None:
        super().__init__(ORDER_DIALOG_ID, [self.show_step, self.handle_step])
        self._ordering = ordering
        self._approvals = approvals
        self._posting = posting

    # --- showing the current card ------------------------------------------------------------------

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        state: dict[str, Any] = dict(step.options) if isinstance(step.options, dict) else {}
        caller = caller_of(step.context)
        ordering = self._ordering
        if not state:
            state = {"stage": "category"}
            try:
                await ordering.customer_id(caller)
            except DomainError as error:
                if error.code == "no_agreement":
                    reply = card_activity(build_no_tenant_card(error.message, title=AGREEMENT_TITLE))
                elif error.code == "no_tenant":
                    reply = card_activity(build_no_tenant_card(error.message))
                else:  # e.g. Microsoft unreachable while checking the agreement: say so, nothing else
                    reply = MessageFactory.text(f"I cannot open the catalog right now: {error.message}")
                await step.context.send_activity(reply)
                return await step.end_dialog()
        store = await ordering.storefront(caller)
        if not store.products:
            await ordering.alert_unpriced()
            await step.context.send_activity(
                "Nothing can be ordered right now: no product has a price for your organisation yet. "
                "Your reseller has been told."
            )
            return await step.end_dialog()
        state["card"] = uuid.uuid4().hex
        step.values["state"] = state
        return await step.prompt(CARD_PROMPT, self.prompt_card(render_stage_card(store, state)))

    # --- handling what was submitted ---------------------------------------------------------------

    async def handle_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        value: dict[str, Any] = step.result if isinstance(step.result, dict) else {}
        state = stored(step, "state")
        verb = value.get("verb")
        if value.get("card") != state.get("card"):
            state["error"] = STALE_MESSAGE
            return await step.replace_dialog(self.steps_id, state)
        if verb == CANCEL:
            await step.context.send_activity("Cancelled add subscription. Nothing was ordered.")
            return await step.end_dialog()
        stage = state["stage"]
        if verb == BACK:
            back = {"group": "category", "product": "group", "configure": "product", "confirm": "configure"}
            state["stage"] = back.get(stage, stage)
            if state["stage"] == "group":
                state.pop("page", None)
            return await step.replace_dialog(self.steps_id, state)
        if verb == MORE and stage == "product":
            state["page"] = int(state.get("page", 0)) + 1
            return await step.replace_dialog(self.steps_id, state)
        if verb == PICK and stage in ("category", "group", "product"):
            return await self._pick(step, state, str(value.get("value", "")))
        if verb == QUOTE and stage == "configure":
            return await self._quote(step, state, value)
        if verb == CHANGE and stage == "confirm":
            state["stage"] = "configure"
            return await step.replace_dialog(self.steps_id, state)
        if verb == CREATE and stage == "confirm":
            return await self._create(step, state)
        state["error"] = STALE_MESSAGE
        return await step.replace_dialog(self.steps_id, state)

    async def _pick(self, step: WaterfallStepContext, state: dict[str, Any], picked: str) -> DialogTurnResult:
        store = await self._ordering.storefront(caller_of(step.context))
        stage = state["stage"]
        if stage == "category" and picked in store.categories():
            state.update(stage="group", category=picked)
        elif stage == "group" and picked in store.groups(state["category"]):
            state.update(stage="product", group=picked, page=0)
        elif stage == "product" and any(
            item.key == picked.strip().upper() for item in store.in_group(state["category"], state["group"])
        ):
            state.update(stage="configure", product=picked.strip().upper())
            state.pop("plan", None)
            state.pop("quantity", None)
        else:
            state["error"] = "That is not offered to your organisation. Pick one from this card."
        return await step.replace_dialog(self.steps_id, state)

    async def _quote(
        self, step: WaterfallStepContext, state: dict[str, Any], value: dict[str, Any]
    ) -> DialogTurnResult:
        plan, quantity = str(value.get("plan", "") or ""), value.get("quantity")
        state["plan"], state["quantity"] = plan, "" if quantity is None else str(quantity)
        try:
            quote = await self._ordering.quote(caller_of(step.context), state["product"], plan, quantity)
        except InvalidInput as error:
            state.update(error=error.message, error_field=error.field or "")
            return await step.replace_dialog(self.steps_id, state)
        state.update(stage="confirm", quote=quote.as_dict(), order_key=uuid.uuid4().hex)
        return await step.replace_dialog(self.steps_id, state)

    async def _create(self, step: WaterfallStepContext, state: dict[str, Any]) -> DialogTurnResult:
        caller = caller_of(step.context)
        conversation = step.context.activity.conversation
        try:
            placed = await self._ordering.place_order(
                caller,
                Quote.from_dict(state["quote"]),
                str(state["order_key"]),
                notify_conversation_id=conversation.id if conversation else None,
            )
        except PriceChanged as changed:
            state.update(quote=changed.quote.as_dict(), order_key=uuid.uuid4().hex, error=changed.message)
            return await step.replace_dialog(self.steps_id, state)
        except InvalidInput as error:  # no longer offered, or the bounds changed: choose again
            state.update(stage="configure", error=error.message, error_field=error.field or "")
            return await step.replace_dialog(self.steps_id, state)
        except ApprovalNeeded as needed:  # above the organisation's spending policy
            change = {"quote": state["quote"], "key": state["order_key"]}
            change["conversation_id"] = conversation.id if conversation else ""
            message = await ask_an_approver(
                step.context,
                self._approvals,
                self._posting,
                caller,
                needed,
                kind=PURCHASE,
                subscription_id="",
                change=change,
            )
            card_done(step.context, "Sent to an approver")
            await step.context.send_activity(message)
            return await step.end_dialog()
        quote = Quote.from_dict(state["quote"])
        if placed.created:
            await step.context.send_activity(
                f"Ordering **{quote.product_name}** × {quote.quantity} from Microsoft… "
                "I will post the new subscription here as soon as Microsoft confirms it."
            )
        elif placed.job.finished:
            await step.context.send_activity(render_order_job(placed.job))
        else:
            await step.context.send_activity("That order is already being placed; I will post the result here.")
        return await step.end_dialog()


def add_subscription_tasks(dialog: AddSubscriptionDialog) -> list[Task]:
    return [
        Task(
            command="add subscription",
            title="Add subscription",
            description="Buy a Microsoft 365 subscription: browse, pick a term and quantity, see the price",
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
