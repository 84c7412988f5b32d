"""The renewals ahead (`renewals`): each subscription's next renewal in the coming days, what it renews
with, what that costs at the reseller's price, and what is scheduled — withdrawable by admins. Pure."""

from __future__ import annotations

from typing import Any

from cards.base import Card, card, facts, heading, submit, text
from services import formatting
from services.i18n import _, ngettext
from services.warnings.renewals import RenewalOutlook, RenewalView

WITHDRAW, CLOSE = "renewals_withdraw", "renewals_close"


def _cost(item: RenewalView) -> str:
    if item.cost_per_period is None:
        return _("no price set — ask your reseller") if item.renews else "—"
    period = formatting.per_period(item.billing_cycle)
    shown = f"{formatting.money(item.cost_per_period, item.currency)} {period}"
    if item.cost_per_term is not None and item.cost_per_term != item.cost_per_period:
        shown += _(" ({money} for the term)", money=formatting.money(item.cost_per_term, item.currency))
    return shown


def _what(item: RenewalView) -> str:
    if not item.renews:
        return _("ends (auto-renew off)") if item.status == "active" else _("ends ({status})", status=item.status)
    if item.has_schedule:
        return _(
            "renews with {seats} (now {quantity}), as scheduled",
            seats=formatting.seats(item.renewing_quantity),
            quantity=item.quantity,
        )
    return _("renews with {seats}", seats=formatting.seats(item.renewing_quantity))


def _row(item: RenewalView, can_manage: bool) -> dict[str, Any]:
    when = formatting.date(item.term_end)
    items: list[dict[str, Any]] = [
        text(f"{when} — {item.name}", weight="Bolder"),
        facts(
            [
                (_("What happens"), _what(item)),
                (
                    _("Term"),
                    _(
                        "{term}, billed {billed}",
                        term=formatting.term(item.term_duration),
                        billed=formatting.billed(item.billing_cycle),
                    )
                    + (_(" (as scheduled)") if item.term_scheduled else ""),
                ),
                (_("Cost at renewal"), _cost(item)),
            ]
        ),
    ]
    if item.locked:
        items.append(text(_("Locked: Microsoft allows no change in the 24 hours before the renewal."), subtle=True))
    elif can_manage and item.has_schedule:
        items.append(
            {
                "type": "ActionSet",
                "actions": [
                    submit(_("Withdraw the scheduled change"), WITHDRAW, {"subscription_id": item.subscription_id})
                ],
            }
        )
    return {"type": "Container", "separator": True, "items": items}


def build_renewals_card(outlook: RenewalOutlook, *, can_manage: bool, notice: str = "", problem: str = "") -> Card:
    body: list[dict[str, Any]] = [heading(_("Renewals in the next {days} days", days=outlook.days))]
    if problem:
        body.append(text(problem, color="Attention"))
    if notice:
        body.append(text(notice, color="Good"))
    if not outlook.items:
        body.append(text(_("Nothing renews or ends in the next {days} days.", days=outlook.days)))
    else:
        renewing = sum(1 for item in outlook.items if item.renews)
        total = formatting.money_totals(outlook.totals)
        body.append(
            text(
                _(
                    "{plural}; their first billing periods come to {total} at your reseller's prices on the "
                    "renewal days.",
                    plural=ngettext("{n} renewal", "{n} renewals", renewing),
                    total=total,
                )
            )
        )
        body.extend(_row(item, can_manage) for item in outlook.items)
        body.append(
            text(
                _(
                    "Each renews at midnight UTC after the date shown. Fewer seats can be scheduled from "
                    "**subscriptions** (Change quantity) until 24 hours before."
                ),
                subtle=True,
            )
        )
    return card(body, [submit(_("Done"), CLOSE)])
