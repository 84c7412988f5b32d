"""The monthly licence overview: per licence product the seats, how many are assigned, how many are
idle (unassigned, or held by users who have not signed in for the idle threshold), what they cost per
month at the reseller's price, and what changed since last month's overview; and the renewals of the
next 60 days. Pure: built from an organisation's facts (`rules.OrganisationFacts`) as JSON-safe data,
stored once per organisation and month (`warnings.service`), shown as a card and as an XLSX file."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.billing.xlsx import Workbook
from services.i18n import _
from services.warnings.renewals import CYCLE_MONTHS, renewal_outlook
from services.warnings.rules import OrganisationFacts

RENEWAL_DAYS = 60


def _amounts(by_currency: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: str(amount.quantize(Decimal("0.01"))) for currency, amount in by_currency.items()}


def build_overview(
    facts: OrganisationFacts, now: datetime, month: str, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The overview of `month` (YYYY-MM, the billing cycle that has just ended); `previous`: last
    month's overview of the organisation (None: the first one, no changes shown)."""
    idle_before = now - timedelta(days=facts.settings.idle_days)
    monthly: dict[str, dict[str, Decimal]] = {}  # licence → currency → cost per month
    for sub in facts.subscriptions:
        licence = sub.licence_sku_id.lower()
        if sub.status != "active" or not licence or sub.unit_price is None:
            continue
        months = CYCLE_MONTHS.get(sub.billing_cycle.lower(), 1)
        costs = monthly.setdefault(licence, {})
        costs[sub.currency] = costs.get(sub.currency, Decimal(0)) + sub.unit_price * sub.quantity / months
    before = {str(p["licence_sku_id"]): p for p in (previous or {}).get("products", [])}
    products = []
    for licence, pool in sorted(facts.pools.items(), key=lambda item: (item[1].name, item[0])):
        inactive = sum(
            1
            for user in facts.users
            if licence in user.licence_sku_ids and user.last_sign_in is not None and user.last_sign_in < idle_before
        )
        last = before.get(licence)
        costs = monthly.get(licence, {})
        products.append(
            {
                "licence_sku_id": licence,
                "name": pool.name,
                "seats": pool.active_units,
                "assigned": pool.consumed_units,
                "unassigned": pool.unassigned,
                "inactive_users": inactive,
                "idle": pool.unassigned + inactive,
                "cost_per_month": _amounts(costs),
                "seats_change": pool.active_units - int(last["seats"]) if last is not None else None,
                "assigned_change": pool.consumed_units - int(last["assigned"]) if last is not None else None,
            }
        )
    gone = [str(p["name"]) for licence, p in before.items() if licence not in facts.pools]
    renewals = [
        {
            "subscription_id": item.subscription_id,
            "name": item.name,
            "renews_on": item.term_end.date().isoformat(),
            "renews": item.renews,
            "quantity": item.renewing_quantity,
            "currency": item.currency,
            "cost_per_period": str(item.cost_per_period) if item.cost_per_period is not None else None,
            "billing_cycle": item.billing_cycle,
        }
        for item in renewal_outlook(facts.subscriptions, now, RENEWAL_DAYS).items
    ]
    totals: dict[str, Decimal] = {}
    for costs in monthly.values():
        for currency, amount in costs.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
    return {
        "month": month,
        "products": products,
        "gone": gone,
        "renewals": renewals,
        "total_per_month": _amounts(totals),
        "first": previous is None,
    }


def overview_name(month: str) -> str:
    return f"licence-overview-{month}.xlsx"


def overview_xlsx(overview: Mapping[str, Any], organisation: str = "") -> bytes:
    """The overview as an XLSX file: a sheet of products, a sheet of the renewals ahead."""
    book = Workbook()
    with book.sheet(_("Licences"), widths=(34, 10, 10, 12, 14, 8, 16, 10, 14, 16)) as sheet:
        if organisation:
            sheet.append(
                [_("{organisation} — licence overview {month}", organisation=organisation, month=overview["month"])]
            )
        sheet.append(
            [
                _("Product"),
                _("Seats"),
                _("Assigned"),
                _("Unassigned"),
                _("Not signed in"),
                _("Idle"),
                _("Cost per month"),
                _("Currency"),
                _("Seats change"),
                _("Assigned change"),
            ]
        )
        for product in overview["products"]:
            costs = product["cost_per_month"] or {"": None}
            for currency, amount in costs.items():
                sheet.append(
                    [
                        product["name"],
                        product["seats"],
                        product["assigned"],
                        product["unassigned"],
                        product["inactive_users"],
                        product["idle"],
                        Decimal(amount) if amount is not None else "",
                        currency,
                        product["seats_change"] if product["seats_change"] is not None else "",
                        product["assigned_change"] if product["assigned_change"] is not None else "",
                    ]
                )
    with book.sheet(
        _("Renewals next {RENEWAL_DAYS} days", RENEWAL_DAYS=RENEWAL_DAYS), widths=(34, 12, 10, 10, 16, 8)
    ) as sheet:
        sheet.append([_("Subscription"), _("Renews on"), _("Renews"), _("Seats"), _("Cost per period"), _("Currency")])
        for item in overview["renewals"]:
            sheet.append(
                [
                    item["name"],
                    item["renews_on"],
                    _("yes") if item["renews"] else _("ends"),
                    item["quantity"],
                    Decimal(item["cost_per_period"]) if item["cost_per_period"] is not None else "",
                    item["currency"],
                ]
            )
    return book.finish()
