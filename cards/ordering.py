"""Cards of "add subscription": category → product group → product (with "show details") →
term, billing frequency and quantity → the price → the new subscription.

Every submit carries its verb and the card's `card` token; the dialog refuses a token that is not
the current card's (a stale or replayed card) and re-checks every id against the organisation's
storefront. Texts arrive formatted (money, terms); these builders do no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cards.base import Card, card, command_button, facts, heading, submit, text
from services.i18n import N_, _, ngettext

PICK = "order_pick"
BACK = "order_back"
MORE = "order_more"
QUOTE = "order_quote"
CHANGE = "order_change"
CREATE = "order_create"
CANCEL = "order_cancel"
DESCRIPTION_CHARS = 160


@dataclass(frozen=True)
class Choice:
    value: str
    title: str
    subtitle: str = ""


@dataclass(frozen=True)
class ChoiceCardView:
    title: str
    intro: str
    choices: Sequence[Choice]
    token: str
    error: str = ""
    can_go_back: bool = False


@dataclass(frozen=True)
class ProductItem:
    key: str  # PRODUCT:SKU, the offer id
    name: str
    description: str
    from_price: str  # "From $5.52 per licence per month (1-year commitment, billed monthly)"
    plans: Sequence[str]  # priced terms and billing frequencies, as text
    quantity_range: str  # "1–300 licences"
    includes: str = ""


@dataclass(frozen=True)
class ProductListView:
    category: str
    group: str
    items: Sequence[ProductItem]
    token: str
    page: int = 0
    pages: int = 1
    error: str = ""


@dataclass(frozen=True)
class PlanChoice:
    key: str  # "P1Y:monthly"
    label: str  # "1-year commitment, billed monthly — $5.52 per licence per month"


@dataclass(frozen=True)
class ConfigureView:
    product_name: str
    offer_id: str
    plans: Sequence[PlanChoice]
    plan: str
    quantity: str
    minimum: int
    maximum: int
    token: str
    error: str = ""
    error_field: str = ""


@dataclass(frozen=True)
class QuoteView:
    product_name: str
    offer_id: str
    plan: str  # "1-year commitment, billed monthly"
    quantity: int
    unit_price: str  # "$5.52 per licence per month"
    total_per_period: str  # "$27.60 per month"
    term_total: str  # "$331.20 over the 1-year term"
    token: str
    error: str = ""


@dataclass(frozen=True)
class OrderResultView:
    product_name: str
    quantity: int
    subscription_id: str
    status: str
    plan: str
    total_per_period: str
    term_end: str


def _error(message: str) -> list[dict[str, Any]]:
    return [text(message, color="Attention", weight="Bolder")] if message else []


def _short(description: str) -> str:
    clean = " ".join(description.split())
    if len(clean) <= DESCRIPTION_CHARS:
        return clean
    cut = clean[:DESCRIPTION_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def _nav(token: str, *, back: bool) -> list[dict[str, Any]]:
    actions = [submit(_("Back"), BACK, {"card": token})] if back else []
    actions.append(submit(_("Cancel"), CANCEL, {"card": token}))
    return actions


def build_choice_card(view: ChoiceCardView) -> Card:
    """Categories, or the product groups of a category: one button each."""
    body: list[dict[str, Any]] = [heading(view.title), text(view.intro, subtle=True), *_error(view.error)]
    for choice in view.choices:
        body.append(
            {
                "type": "ActionSet",
                "actions": [submit(choice.title, PICK, {"card": view.token, "value": choice.value})],
            }
        )
        if choice.subtitle:
            body.append(text(choice.subtitle, subtle=True))
    return card(body, _nav(view.token, back=view.can_go_back))


def _details_buttons(index: int, details_id: str, choose: dict[str, Any]) -> list[dict[str, Any]]:
    """ "Show details" and "Hide details" as two button rows that swap with the details (a button's
    title cannot change, so the row that fits is the one shown)."""
    show_id, hide_id = f"show-{index}", f"hide-{index}"
    toggle = [details_id, show_id, hide_id]
    return [
        {
            "type": "ActionSet",
            "id": show_id,
            "actions": [
                {"type": "Action.ToggleVisibility", "title": _("Show details"), "targetElements": toggle},
                choose,
            ],
        },
        {
            "type": "ActionSet",
            "id": hide_id,
            "isVisible": False,
            "actions": [
                {"type": "Action.ToggleVisibility", "title": _("Hide details"), "targetElements": toggle},
                choose,
            ],
        },
    ]


def build_product_list_card(view: ProductListView) -> Card:
    """The products of a group: name, short description, price from; details on request."""
    body: list[dict[str, Any]] = [
        heading(f"{view.category} › {view.group}"),
        text(_("Pick a product. **Show details** tells what it includes and its terms."), subtle=True),
        *_error(view.error),
    ]
    for index, item in enumerate(view.items):
        details_id = f"details-{index}"
        body.append(
            {
                "type": "Container",
                "separator": True,
                "spacing": "Medium",
                "items": [
                    text(item.name, weight="Bolder"),
                    text(_short(item.description)),
                    text(item.from_price, subtle=True),
                    {
                        "type": "Container",
                        "id": details_id,
                        "isVisible": False,
                        "items": [
                            facts(
                                [
                                    (_("Offer id / item code"), item.key),
                                    (_("Quantity"), item.quantity_range),
                                    *((_("Term") if i == 0 else "", plan) for i, plan in enumerate(item.plans)),
                                ]
                            ),
                            text(item.includes or item.description, subtle=True),
                        ],
                    },
                    *_details_buttons(
                        index,
                        details_id,
                        submit(_("Choose"), PICK, {"card": view.token, "value": item.key}, style="positive"),
                    ),
                ],
            }
        )
    if view.pages > 1:
        body.append(text(_("Page {value} of {pages}", value=view.page + 1, pages=view.pages), subtle=True))
    actions = _nav(view.token, back=True)
    if view.page + 1 < view.pages:
        actions.insert(0, submit(_("More products"), MORE, {"card": view.token}))
    return card(body, actions)


def build_configure_card(view: ConfigureView) -> Card:
    """Term and billing frequency (from the product's priced availabilities) and the quantity."""
    plan_error = view.error if view.error_field == "plan" else ""
    quantity_error = view.error if view.error_field == "quantity" else ""
    general_error = view.error if view.error_field not in ("plan", "quantity") else ""
    plan_input: dict[str, Any] = {
        "type": "Input.ChoiceSet",
        "id": "plan",
        "label": _("Term and billing frequency"),
        "style": "expanded",
        "isRequired": True,
        "errorMessage": _("Pick a term and billing frequency."),
        "value": view.plan,
        "choices": [{"title": plan.label, "value": plan.key} for plan in view.plans],
    }
    quantity_input: dict[str, Any] = {
        "type": "Input.Number",
        "id": "quantity",
        "label": _("Quantity ({minimum}–{maximum} licences)", minimum=view.minimum, maximum=view.maximum),
        "min": view.minimum,
        "max": view.maximum,
        "isRequired": True,
        "errorMessage": _(
            "Enter a whole number from {minimum} to {maximum}.", minimum=view.minimum, maximum=view.maximum
        ),
    }
    if view.quantity.strip():
        try:
            number: float = float(view.quantity) if "." in view.quantity else int(view.quantity)
        except ValueError:
            pass  # what was typed is not a number: the error above says so
        else:
            if math.isfinite(number):  # "1.e999" is infinite: not a JSON number, the card would be refused
                quantity_input["value"] = number
    body: list[dict[str, Any]] = [
        heading(view.product_name),
        text(_("Offer id {offer_id}", offer_id=view.offer_id), subtle=True),
        *_error(general_error),
        plan_input,
        *_error(plan_error),
        quantity_input,
        *_error(quantity_error),
    ]
    actions = [submit(_("Show price"), QUOTE, {"card": view.token}, style="positive"), *_nav(view.token, back=True)]
    return card(body, actions)


def build_quote_card(view: QuoteView) -> Card:
    """The price for the choice, before anything is ordered."""
    body: list[dict[str, Any]] = [
        heading(_("Check and create the subscription")),
        *_error(view.error),
        facts(
            [
                (_("Product"), view.product_name),
                (_("Offer id"), view.offer_id),
                (_("Commitment"), view.plan),
                (_("Quantity"), ngettext("{n} licence", "{n} licences", view.quantity)),
                (_("Unit price"), view.unit_price),
                (_("Total per billing period"), view.total_per_period),
                (_("Over the whole term"), view.term_total),
            ]
        ),
        text(
            _(
                "When you create it, Microsoft starts the subscription at once and costs start under Microsoft's "
                "billing rules: seats can be reduced or cancelled only within 7 days; after that the commitment "
                "runs to the end of the term."
            ),
            subtle=True,
        ),
    ]
    actions = [
        submit(_("Create subscription"), CREATE, {"card": view.token}, style="positive"),
        submit(_("Change"), CHANGE, {"card": view.token}),
        submit(_("Cancel"), CANCEL, {"card": view.token}),
    ]
    return card(body, actions)


def build_order_result_card(view: OrderResultView) -> Card:
    body: list[dict[str, Any]] = [
        heading(_("Subscription created")),
        facts(
            [
                (_("Product"), view.product_name),
                (_("Quantity"), ngettext("{n} licence", "{n} licences", view.quantity)),
                (_("Status"), view.status),
                (_("Commitment"), view.plan),
                (_("Price per billing period"), view.total_per_period),
                (_("Term ends"), view.term_end or "—"),
                (_("Subscription id"), view.subscription_id),
            ]
        ),
        text(_("Costs now start under Microsoft's billing rules.")),
    ]
    return card(
        body,
        [
            command_button(_("Open subscriptions"), "subscriptions"),
            command_button(_("Add another subscription"), "add subscription"),
            command_button(_("Menu"), "menu"),
        ],
    )


def build_no_tenant_card(message: str, *, title: str = N_("First, a Microsoft 365 tenant")) -> Card:
    """Nothing can be bought yet (no tenant, or no Microsoft Customer Agreement): on to "add tenant"."""
    return card(
        [heading(_(title)), text(message)],
        [command_button(_("Add tenant"), "add tenant"), command_button(_("Menu"), "menu")],
    )
