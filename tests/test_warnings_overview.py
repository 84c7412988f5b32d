"""The monthly licence overview built from an organisation's facts (pure): idle counts the unassigned
seats and the licences of users not signed in for the idle threshold; the cost per month spreads an
annual bill over its twelve months; changes are against last month's overview; the renewals are those
of the next 60 days; the XLSX carries the same figures."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.warnings.overview import build_overview, overview_xlsx
from services.warnings.rules import OrganisationFacts, PoolFacts, SubscriptionFacts, UserFacts

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def _sub(sid: str, licence: str, quantity: int, cycle: str, price: str, days_to_end: int) -> SubscriptionFacts:
    return SubscriptionFacts(
        id=sid,
        name=f"Offer {sid}",
        product_id="P",
        sku_id="S",
        licence_sku_id=licence,
        quantity=quantity,
        status="active",
        term_duration="P1Y",
        billing_cycle=cycle,
        auto_renew=True,
        commitment_end=NOW + timedelta(days=days_to_end),
        currency="USD",
        unit_price=Decimal(price),
        renewal_unit_price=Decimal(price),
    )


def _facts() -> OrganisationFacts:
    return OrganisationFacts(
        1,
        [_sub("a", "lic-a", 10, "monthly", "6.00", 20), _sub("b", "lic-b", 4, "annual", "120.00", 90)],
        {"lic-a": PoolFacts("lic-a", "Basic", 10, 7), "lic-b": PoolFacts("lic-b", "Premium", 4, 4)},
        [
            UserFacts("u1", "Kim", "kim@x", ("lic-a",), NOW - timedelta(days=31)),  # idle
            UserFacts("u2", "Lee", "lee@x", ("lic-a",), NOW - timedelta(days=2)),
            UserFacts("u3", "Max", "max@x", ("lic-b",), None),  # never known: not counted
        ],
    )


def test_idle_cost_per_month_and_the_renewals_of_the_next_60_days():
    overview = build_overview(_facts(), NOW, "2027-02", None)
    basic, premium = overview["products"]
    assert (basic["name"], basic["seats"], basic["assigned"], basic["unassigned"]) == ("Basic", 10, 7, 3)
    assert (basic["inactive_users"], basic["idle"]) == (1, 4)
    assert basic["cost_per_month"] == {"USD": "60.00"}
    assert premium["cost_per_month"] == {"USD": "40.00"}  # 4 × 120.00 a year, over 12 months
    assert premium["idle"] == 0
    assert overview["total_per_month"] == {"USD": "100.00"}
    assert [item["subscription_id"] for item in overview["renewals"]] == ["a"]  # b renews in 91 days
    assert basic["seats_change"] is None and overview["first"] is True


def test_changes_are_against_last_months_overview():
    previous = build_overview(_facts(), NOW - timedelta(days=28), "2027-01", None)
    previous["products"][0].update(seats=8, assigned=7)
    previous["products"].append({**previous["products"][1], "licence_sku_id": "lic-c", "name": "Visio"})
    overview = build_overview(_facts(), NOW, "2027-02", previous)
    basic = overview["products"][0]
    assert (basic["seats_change"], basic["assigned_change"]) == (2, 0)
    assert overview["gone"] == ["Visio"] and overview["first"] is False


def test_the_xlsx_has_the_products_and_the_renewals():
    with zipfile.ZipFile(io.BytesIO(overview_xlsx(build_overview(_facts(), NOW, "2027-02", None), "Contoso"))) as book:
        products = book.read("xl/worksheets/sheet1.xml").decode()
        renewals = book.read("xl/worksheets/sheet2.xml").decode()
    assert "Contoso" in products and "Premium" in products and ">40.00<" in products
    assert "Offer a" in renewals and "Offer b" not in renewals


async def test_the_overview_is_due_on_the_billing_day_and_made_up_for_three_days_only(sqlite_services):
    due = sqlite_services.warnings.overview_due
    assert await due(datetime(2027, 2, 28, 23, 0, tzinfo=UTC)) is None  # February's cycle has not ended
    assert await due(datetime(2027, 3, 1, 0, 30, tzinfo=UTC)) == "2027-02"  # the billing day
    assert await due(datetime(2027, 3, 4, 12, 0, tzinfo=UTC)) == "2027-02"  # missed: made up within 3 days
    assert await due(datetime(2027, 3, 5, 12, 0, tzinfo=UTC)) is None  # later: skipped
