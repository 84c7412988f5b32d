"""Cards of the subscriptions task: the list (with actions per row), quantity, its preview, add-ons,
cancel, auto-renew, suspend request and reactivate. Pure functions of the services' views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from cards.base import Card, card, facts, heading, submit, text
from services import formatting
from services.i18n import N_, _, ngettext, pgettext
from services.subscriptions import (
    AddonOffer,
    ApprovalView,
    CancelPlan,
    QuantityPlan,
    SubscriptionPage,
    SubscriptionView,
)
from services.subscriptions.changes import addon_price_token
from services.subscriptions.common import ProRata

PAGE, REFRESH, CLOSE, BACK = "subs_page", "subs_refresh", "subs_close", "subs_back"
QUANTITY, PREVIEW, CONFIRM_QUANTITY, CONFIRM_SCHEDULE = (
    "subs_quantity",
    "subs_quantity_preview",
    "subs_quantity_confirm",
    "subs_schedule_confirm",
)
ADDONS, ORDER_ADDON = "subs_addons", "subs_addon_order"
CANCEL, CONFIRM_CANCEL = "subs_cancel", "subs_cancel_confirm"
AUTORENEW, CONFIRM_AUTORENEW = "subs_autorenew", "subs_autorenew_confirm"
SUSPEND, SEND_SUSPEND, WITHDRAW_SUSPEND = "subs_suspend", "subs_suspend_send", "subs_suspend_withdraw"
UNSCHEDULE = "subs_unschedule"
REACTIVATE, CONFIRM_REACTIVATE = "subs_reactivate", "subs_reactivate_confirm"

NO_PRICE = N_("no price set — ask your reseller")
_TERMS = {"P1M": N_("1 month"), "P1Y": N_("1 year"), "P3Y": N_("3 years")}
_BILLING = {"monthly": N_("monthly"), "annual": N_("annually"), "triennial": N_("every 3 years")}


def _term(term_duration: str, billing_cycle: str) -> str:
    return _(
        "{get}, billed {get2}",
        get=_(_TERMS.get(term_duration, term_duration)),
        get2=_(_BILLING.get(billing_cycle, billing_cycle)),
    )


def _money(amount: Decimal | None, currency: str) -> str:
    return _(NO_PRICE) if amount is None else formatting.money(amount, currency)


def _price(view: SubscriptionView) -> str:
    if view.unit_price is None:
        return _(NO_PRICE)
    return formatting.unit_price(view.unit_price, view.currency, view.billing_cycle)


def _status(view: SubscriptionView) -> str:
    shown = {
        "active": _("Active"),
        "suspended": "⏸ " + _("Suspended"),
        "deleted": _("Cancelled"),
        "expired": _("Expired"),
    }
    return shown.get(view.status, view.status.capitalize())


def _consumed(view: SubscriptionView) -> str:
    if not view.licence_sku_id:
        return _("— (grants no licences)")
    if view.consumed is None:
        return _("unknown right now")
    shown = _("{consumed} assigned", consumed=view.consumed)
    if view.shared_with:
        others = ngettext("{n} other subscription", "{n} other subscriptions", view.shared_with)
        shown += _(" — shared with {others} of this licence product", others=others)
    return shown


def _renewal(view: SubscriptionView) -> str:
    if view.status in ("deleted", "expired"):
        return "—"
    verb = _("renews") if view.auto_renew else _("ends (auto-renew off)")
    if view.auto_renew and view.scheduled_quantity is not None:
        verb = _("renews with {seats}, as scheduled", seats=formatting.seats(view.scheduled_quantity))
    return _("{date} ({verb}; price locked until then)", date=formatting.date(view.renewal_date), verb=verb)


def _row_facts(view: SubscriptionView) -> list[tuple[str, str]]:
    return [
        (_("Offer id"), view.offer_id),
        (_("Price"), _price(view)),
        (_("Purchased"), formatting.seats(view.quantity)),
        (_("Consumed"), _consumed(view)),
        (_("Status"), _status(view)),
        (
            _("Term"),
            _term(view.term_duration, view.billing_cycle),
        ),
        (_("Renewal"), _renewal(view)),
    ]


def _request_line(request: ApprovalView) -> tuple[str, str]:
    """What a suspension request of the row is waiting for, and its colour."""
    asked = _(
        "Suspension asked by {requester_name} ({datetime_utc})",
        requester_name=request.requester_name,
        datetime_utc=formatting.datetime_utc(request.created_at),
    )
    if request.status == "pending":
        return _(
            "{asked} — waiting for an approver (until {datetime_utc}).",
            asked=asked,
            datetime_utc=formatting.datetime_utc(request.expires_at),
        ), "Accent"
    if request.status == "suspending":
        return _(
            "{asked} — approved by {decider_name}; suspending now.", asked=asked, decider_name=request.decider_name
        ), "Accent"
    return _(
        "{asked} — approved by {decider_name}, but it failed: {outcome}",
        asked=asked,
        decider_name=request.decider_name,
        outcome=request.outcome,
    ), "Attention"


def _row_actions(
    view: SubscriptionView, page: SubscriptionPage, request: ApprovalView | None = None
) -> list[dict[str, Any]]:
    ids = {"subscription_id": view.id}
    actions: list[dict[str, Any]] = []
    if page.can_manage and view.is_active and view.scheduled_quantity is not None:
        actions.append(submit(_("Withdraw the scheduled change"), UNSCHEDULE, ids))
    if page.can_manage and view.is_active:
        actions.append(submit(_("Change quantity"), QUANTITY, ids))
        actions.append(submit(_("Add-ons"), ADDONS, ids))
        actions.append(submit(_("Auto-renew off") if view.auto_renew else _("Auto-renew on"), AUTORENEW, ids))
        actions.append(submit(pgettext("subscription", "Cancel"), CANCEL, ids))  # end it, not this task
    if page.can_request_suspension and view.is_active:
        if request is None:
            actions.append(submit(_("Suspend"), SUSPEND, ids))
        elif request.status == "pending":
            actions.append(submit(_("Withdraw the suspension request"), WITHDRAW_SUSPEND, {"approval_id": request.id}))
    if page.can_manage and view.is_suspended:
        actions.append(submit(_("Reactivate"), REACTIVATE, ids))
        actions.append(submit(_("Auto-renew off") if view.auto_renew else _("Auto-renew on"), AUTORENEW, ids))
    return actions


def _row(view: SubscriptionView, page: SubscriptionPage, requests: Mapping[str, ApprovalView]) -> dict[str, Any]:
    """A subscription, its buttons right under its own facts, then each add-on in its own box with
    its own buttons (so no button reads as the other's)."""
    items: list[dict[str, Any]] = [
        text(view.name, weight="Bolder"),
        facts(_row_facts(view)),
    ]
    request = requests.get(view.id)
    if request is not None:
        line, colour = _request_line(request)
        items.append(text(line, color=colour))
    actions = _row_actions(view, page, request)
    if actions:
        items.append({"type": "ActionSet", "actions": actions[:7]})
    for addon in view.addons:
        addon_items: list[dict[str, Any]] = [
            text(_("Add-on: {name}", name=addon.name), weight="Bolder"),
            facts(_row_facts(addon)),
        ]
        addon_request = requests.get(addon.id)
        if addon_request is not None:
            line, colour = _request_line(addon_request)
            addon_items.append(text(line, color=colour))
        addon_actions = _row_actions(addon, page, addon_request)
        if addon_actions:
            addon_items.append({"type": "ActionSet", "actions": addon_actions[:5]})
        items.append({"type": "Container", "style": "emphasis", "items": addon_items})
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def build_subscriptions_card(page: SubscriptionPage, requests: Mapping[str, ApprovalView] | None = None) -> Card:
    """The list; `requests`: the open suspension requests by subscription id (shown on their rows)."""
    body: list[dict[str, Any]] = [heading(_("Your subscriptions"))]
    if page.problem:
        body.append(text(page.problem, color="Attention"))
    if page.notice:
        body.append(text(page.notice, color="Good"))
    if not page.has_tenant:
        body.append(
            text(_("Your organisation has no Microsoft tenant with the reseller yet. Type **add tenant** first."))
        )
    elif not page.items:
        body.append(text(_("You have no subscriptions yet. Type **add subscription** to buy one.")))
    fresh = (
        _("Updated from Microsoft {datetime_utc}", datetime_utc=formatting.datetime_utc(page.synced_at))
        if page.synced_at
        else _("Not read from Microsoft yet")
    )
    counted = ngettext("{n} subscription", "{n} subscriptions", page.total)
    body.append(text(_("{fresh}. {counted}.", fresh=fresh, counted=counted), subtle=True))
    body.extend(_row(view, page, requests or {}) for view in page.items)
    actions: list[dict[str, Any]] = []
    if page.page > 0:
        actions.append(submit(_("◀ Previous"), PAGE, {"page": page.page - 1}))
    if page.page + 1 < page.pages:
        actions.append(
            submit(
                _("Next ▶ (page {value} of {pages})", value=page.page + 2, pages=page.pages),
                PAGE,
                {"page": page.page + 1},
            )
        )
    actions.append(submit(_("Refresh"), REFRESH, {"page": page.page}))
    actions.append(submit(_("Done"), CLOSE))
    return card(body, actions)


def _back(view_id: str | None = None) -> dict[str, Any]:
    return submit(_("Back to the list"), BACK, {"subscription_id": view_id} if view_id else None)


def _error(error: str) -> list[dict[str, Any]]:
    return [text(error, color="Attention", weight="Bolder")] if error else []


def _removable(view: SubscriptionView) -> str:
    """What Microsoft lets be removed now, and until when (each seat only within 7 days of being added)."""
    added = _("Seats can be added at any time.")
    renewal = _(" on {date}", date=formatting.date(view.renewal_date)) if view.renewal_date else ""
    if not view.refundable_batches:
        return _(
            "{added} No seat can be removed now: Microsoft allows it only within 7 days of adding a "
            "seat. A lower quantity can be scheduled for the renewal{renewal}.",
            added=added,
            renewal=renewal,
        )
    total = sum(seats for seats, _unused in view.refundable_batches)
    windows = ", ".join(
        _("{seats} until {until}", seats=seats, until=formatting.datetime_utc(until))
        for seats, until in view.refundable_batches
    )
    if len(view.refundable_batches) == 1:
        windows = _("until {datetime_utc}", datetime_utc=formatting.datetime_utc(view.refundable_batches[0][1]))
    seats = formatting.seats(total)
    return _(
        "{added} You can remove up to {seats} with a refund ({windows}); after that, a lower "
        "quantity can be scheduled for the renewal{renewal}.",
        added=added,
        seats=seats,
        windows=windows,
        renewal=renewal,
    )


def build_quantity_card(view: SubscriptionView, *, entered: str = "", error: str = "") -> Card:
    body = [
        heading(_("Change the quantity of {name}", name=view.name)),
        facts(
            [
                (_("Now"), formatting.seats(view.quantity)),
                (_("Consumed"), _consumed(view)),
                (_("Price"), _price(view)),
            ]
        ),
        text(_removable(view)),
        *_error(error),
        {
            "type": "Input.Text",
            "id": "quantity",
            "label": _("New number of seats"),
            "value": entered or str(view.quantity),
            "isRequired": True,
            "errorMessage": _("Enter a whole number of seats"),
        },
    ]
    return card(body, [submit(_("Show the cost"), PREVIEW, {"subscription_id": view.id}), _back()])


def _pro_rata_text(charge: ProRata, currency: str) -> str:
    """The amount the bill will show; the formula too when one unit price and window explain it."""
    amount = _money(abs(charge.amount), currency)
    if charge.mixed:
        return amount
    return _(
        "{amount} ({seats} × {price} × {days}/{period_days} days)",
        amount=amount,
        seats=charge.seats,
        price=formatting.price(charge.unit_price, currency),
        days=charge.days,
        period_days=charge.period_days,
    )


def build_quantity_preview_card(plan: QuantityPlan, key: str) -> Card:
    period = formatting.per_period(plan.billing_cycle)
    ids = {"subscription_id": plan.subscription_id, "quantity": str(plan.new), "etag": plan.etag, "request_key": key}
    body: list[dict[str, Any]] = [heading(f"{plan.name}: {plan.current} → {formatting.seats(plan.new)}")]
    pairs: list[tuple[str, str]] = []
    if plan.kind == "schedule":
        body.append(text(plan.explanation, color="Warning"))
        pairs.append((_("Renewal"), formatting.date(plan.renewal_date)))
        pairs.append((_("From the renewal"), f"{_money(plan.recurring_new, plan.currency)} {period}"))
        body.append(facts(pairs))
        actions = [
            submit(
                _("Schedule {seats} for the renewal", seats=formatting.seats(plan.new)),
                CONFIRM_SCHEDULE,
                ids,
                style="positive",
            ),
            submit(_("Choose another number"), QUANTITY, {"subscription_id": plan.subscription_id}),
            _back(),
        ]
        return card(body, actions)
    charge = plan.charge_now
    if charge is not None:
        label = _("Charged now (pro rata)") if plan.kind == "increase" else _("Refunded now (pro rata)")
        pairs.append((label, _pro_rata_text(charge, plan.currency)))
    else:
        pairs.append((_("Charged now"), _(NO_PRICE)))
    pairs.append((_("Now {period}", period=period), _money(plan.recurring_now, plan.currency)))
    pairs.append((_("New cost {period}", period=period), _money(plan.recurring_new, plan.currency)))
    if plan.kind == "decrease" and plan.refundable_until is not None:
        until = formatting.datetime_utc(plan.refundable_until)
        pairs.append(
            (_("Removable until"), _("{seats} until {until}", seats=formatting.seats(plan.refundable), until=until))
        )
    if plan.assigned is not None:
        pairs.append((_("Assigned licences"), str(plan.assigned)))
    body.append(facts(pairs))
    body.append(text(_("Charges follow Microsoft's billing rules; the bill shows the exact lines."), subtle=True))
    seats = abs(plan.new - plan.current)
    if plan.kind == "increase":
        confirm = ngettext("Add {n} seat", "Add {n} seats", seats)
    else:
        confirm = ngettext("Remove {n} seat", "Remove {n} seats", seats)
    return card(
        body,
        [
            submit(confirm, CONFIRM_QUANTITY, ids, style="positive"),
            submit(_("Choose another number"), QUANTITY, {"subscription_id": plan.subscription_id}),
            _back(),
        ],
    )


def build_addons_card(
    base: SubscriptionView,
    offers: Sequence[AddonOffer],
    key: str,
    *,
    error: str = "",
    entered: dict[str, str] | None = None,
) -> Card:
    entered = entered or {}
    body: list[dict[str, Any]] = [heading(_("Add-ons for {name}", name=base.name)), *_error(error)]
    buyable = [offer for offer in offers if offer.price is not None]
    if not offers:
        body.append(text(_("No add-ons fit this subscription.")))
        return card(body, [_back()])
    for offer in offers:
        price = (
            formatting.unit_price(offer.price.amount, offer.price.currency, offer.billing_cycle)
            if offer.price is not None
            else _(NO_PRICE)
        )
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    text(offer.title, weight="Bolder"),
                    text(offer.description[:300] or "—", subtle=True),
                    facts(
                        [
                            (_("Price"), price),
                            (
                                _("Term"),
                                _term(offer.term_duration, offer.billing_cycle),
                            ),
                            (_("Quantity"), f"{formatting.count(offer.minimum)}–{formatting.count(offer.maximum)}"),
                        ]
                    ),
                ],
            }
        )
    if not buyable:
        body.append(text(_("None of these add-ons has a price yet, so they cannot be ordered here."), color="Warning"))
        return card(body, [_back()])
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": "addon",
            "label": _("Add-on"),
            "isRequired": True,
            "errorMessage": _("Pick an add-on"),
            "value": entered.get("addon") or f"{buyable[0].product_id}:{buyable[0].sku_id}",
            "choices": [{"title": offer.title, "value": f"{offer.product_id}:{offer.sku_id}"} for offer in buyable],
        }
    )
    body.append(
        {
            "type": "Input.Text",
            "id": "quantity",
            "label": _("Quantity"),
            "value": entered.get("quantity", "1"),
            "isRequired": True,
            "errorMessage": _("Enter a quantity"),
        }
    )
    body.append(
        text(_("Ordering starts the add-on at once; costs start under Microsoft's billing rules."), subtle=True)
    )
    return card(
        body,
        [
            submit(
                _("Order the add-on"),
                ORDER_ADDON,
                {
                    "subscription_id": base.id,
                    "request_key": key,
                    # the prices shown, so an order is refused if the price changed before the click
                    "prices": {f"{o.product_id}:{o.sku_id}": addon_price_token(o) for o in buyable},
                },
                style="positive",
            ),
            _back(),
        ],
    )


def build_cancel_card(plan: CancelPlan, key: str) -> Card:
    refund = _pro_rata_text(plan.refund, plan.currency) if plan.refund is not None else _(NO_PRICE)

    body = [
        heading(_("Cancel {name}?", name=plan.name)),
        facts(
            [
                (_("Seats"), str(plan.quantity)),
                (_("Refund"), refund),
                (_("Cancellation possible until"), formatting.datetime_utc(plan.window_ends)),
            ]
        ),
        text(
            _("Cancelling ends the subscription now and removes its licences from users. It cannot be undone."),
            color="Warning",
        ),
    ]
    ids = {"subscription_id": plan.subscription_id, "etag": plan.etag, "request_key": key}
    return card(body, [submit(_("Cancel the subscription"), CONFIRM_CANCEL, ids, style="destructive"), _back()])


def build_autorenew_card(view: SubscriptionView, key: str) -> Card:
    turn_on = not view.auto_renew
    renewal = formatting.date(view.renewal_date)
    if turn_on:
        explanation = _(
            "With auto-renew on, {name} renews on {renewal} for another term.", name=view.name, renewal=renewal
        )
    else:
        explanation = _(
            "With auto-renew off, {name} ends on {renewal} and is not billed after that.",
            name=view.name,
            renewal=renewal,
        )
    body = [
        heading(
            _("Auto-renew on for {name}?", name=view.name)
            if turn_on
            else _("Auto-renew off for {name}?", name=view.name)
        ),
        text(explanation),
    ]
    data = {"subscription_id": view.id, "enabled": turn_on, "request_key": key}
    return card(
        body,
        [submit(_("Turn auto-renew on") if turn_on else _("Turn auto-renew off"), CONFIRM_AUTORENEW, data), _back()],
    )


def build_suspend_request_card(view: SubscriptionView, *, entered: str = "", error: str = "") -> Card:
    body = [
        heading(_("Suspend {name}?", name=view.name)),
        text(
            _(
                "An approver of your organisation has to confirm. Suspended seats stop working for users, "
                "but Microsoft keeps billing them until the subscription is cancelled or expires."
            ),
        ),
        *_error(error),
        {
            "type": "Input.Text",
            "id": "reason",
            "label": _("Why? (the approver reads this)"),
            "isMultiline": True,
            "maxLength": 500,
            "value": entered,
            "isRequired": True,
            "errorMessage": _("Give a reason"),
        },
    ]
    return card(body, [submit(_("Ask an approver"), SEND_SUSPEND, {"subscription_id": view.id}), _back()])


def build_reactivate_card(view: SubscriptionView, key: str) -> Card:
    body = [
        heading(_("Reactivate {name}?", name=view.name)),
        facts([(_("Seats"), str(view.quantity)), (_("Renewal"), _renewal(view))]),
        text(_("Its licences work again for the users they are assigned to."), subtle=True),
    ]
    data = {"subscription_id": view.id, "request_key": key}
    return card(body, [submit(_("Reactivate"), CONFIRM_REACTIVATE, data, style="positive"), _back()])
