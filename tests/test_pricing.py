"""Price lists: storage, customer list over global, CSV round trip, markup generation from the
sandbox's price sheet, assignment — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from services.container import Services
from services.errors import Conflict, InvalidInput, NotFound
from services.models import AuditEntry
from services.partner_center.models import PriceSheetRow
from services.price_rules import PriceScope
from services.pricing import GLOBAL_LIST, PriceBook, parse_csv, parse_markup, per_month, periods_in_term
from services.seed import DEMO_SLUG, seed_demo_organisation

CSV = (
    "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
    "CFQ7TTC0LH18,0001,P1M,monthly,USD,7.20,2026-01-01,\n"
    "CFQ7TTC0LH18,0001,P1Y,annual,USD,69.00,2026-01-01,2026-12-31\n"
    "CFQ7TTC0LH18,0001,P1Y,monthly,USD,5.75,2026-01-01,\n"
    "CFQ7TTC0LH18,0001,P1Y,monthly,USD,5.9125,2027-01-01,\n"
)
KEY = {"product_id": "CFQ7TTC0LH18", "sku_id": "0001", "term_duration": "P1Y", "billing_cycle": "monthly"}


async def _org_id(services: Services) -> int:
    await seed_demo_organisation(services.organisations)
    return (await services.organisations.get(DEMO_SLUG)).id


async def test_csv_import_then_export_is_the_same_csv(services: Services) -> None:
    result = await services.pricing.import_csv(GLOBAL_LIST, CSV, actor="operator@reseller")
    assert (result.created, result.updated) == (4, 0)
    assert await services.pricing.export_csv(GLOBAL_LIST) == CSV
    again = await services.pricing.import_csv(GLOBAL_LIST, CSV, actor="operator@reseller")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


async def test_the_customer_list_wins_over_the_global_one_for_its_organisation_only(services: Services) -> None:
    org_id = await _org_id(services)
    await services.pricing.import_csv(GLOBAL_LIST, CSV, actor="op")
    await services.pricing.import_csv(
        "contoso-special",
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        "CFQ7TTC0LH18,0001,P1Y,monthly,USD,5.10,2026-06-01,2026-06-30\n",
        actor="op",
    )
    day = date(2026, 6, 15)
    before = await services.pricing.price_for(org_id, **KEY, on=day)
    assert before is not None and before.scope is PriceScope.GLOBAL and before.amount == Decimal("5.75")

    await services.pricing.assign(DEMO_SLUG, "contoso-special", actor="op")
    special = await services.pricing.price_for(org_id, **KEY, on=day)
    assert special is not None and special.scope is PriceScope.CUSTOMER and special.amount == Decimal("5.10")
    after_june = await services.pricing.price_for(org_id, **KEY, on=date(2026, 7, 1))
    assert after_june is not None and after_june.amount == Decimal("5.75")
    # The later global correction applies from its day on.
    next_year = await services.pricing.price_for(org_id, **KEY, on=date(2027, 2, 1))
    assert next_year is not None and next_year.amount == Decimal("5.9125")
    assert await services.pricing.assigned_list(org_id) == "contoso-special"

    entries = await services.pricing.entries_for(org_id)
    assert {entry.scope for entry in entries} == {PriceScope.CUSTOMER, PriceScope.GLOBAL}
    assert all(isinstance(entry.amount, Decimal) for entry in entries)

    # Another organisation sees only the global list.
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    assert {entry.scope for entry in await services.pricing.entries_for(other.id)} == {PriceScope.GLOBAL}

    await services.pricing.assign(DEMO_SLUG, None, actor="op")
    back = await services.pricing.price_for(org_id, **KEY, on=day)
    assert back is not None and back.scope is PriceScope.GLOBAL
    async with services.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("price_list.%"))))
    assert actions.count("price_list.assign") == 2 and "price_list.import" in actions


async def test_an_entry_is_found_again_by_its_id(services: Services) -> None:
    org_id = await _org_id(services)
    await services.pricing.import_csv(GLOBAL_LIST, CSV, actor="op")
    price = await services.pricing.price_for(org_id, **KEY, on=date(2026, 3, 1))
    assert price is not None
    assert await services.pricing.entry(price.entry_id) == price
    assert await services.pricing.entry(999_999) is None


async def test_a_bad_csv_imports_nothing_and_names_the_lines(services: Services) -> None:
    bad = (
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        "CFQ7TTC0LH18,0001,P1M,monthly,USD,7.20,2026-01-01,\n"
        "CFQ7TTC0LH18,0001,P1M,weekly,USD,7.20,2026-01-01,\n"
        "CFQ7TTC0LH18,0001,P1Y,annual,USD,-1,2026-01-01,\n"
        "CFQ7TTC0LH18,0001,P1Y,monthly,USD,abc,2026-01-01,\n"
        "CFQ7TTC0LH18,0001,P1M,annual,USD,1,2026-01-01,\n"
        "CFQ7TTC0LH18,0001,P1Y,monthly,USD,1,2026-02-01,2026-01-01\n"
        "CFQ7TTC0LH18,0001,P1M,monthly,USD,7.30,2026-01-01,\n"
    )
    with pytest.raises(InvalidInput) as error:
        await services.pricing.import_csv(GLOBAL_LIST, bad, actor="op")
    for line in ("line 3", "line 4", "line 5", "line 6", "line 7", "line 8"):
        assert line in error.value.message
    assert "line 2:" not in error.value.message
    assert not await services.pricing.has_global_list()
    with pytest.raises(InvalidInput, match="lacks 6 columns: term_duration, billing_cycle,"):
        parse_csv("product_id,sku_id\nX,Y\n")


async def test_replace_removes_entries_missing_from_the_file(services: Services) -> None:
    await services.pricing.import_csv(GLOBAL_LIST, CSV, actor="op")
    header, first, *_ = CSV.splitlines(keepends=True)
    result = await services.pricing.import_csv(GLOBAL_LIST, header + first, actor="op", replace=True)
    assert (result.unchanged, result.removed) == (1, 3)
    assert await services.pricing.export_csv(GLOBAL_LIST) == header + first


async def test_generation_from_the_sandbox_price_sheet_with_a_markup(services: Services) -> None:
    result = await services.pricing.generate(GLOBAL_LIST, parse_markup("15%"), actor="op")
    assert result.created > 100
    org_id = await _org_id(services)
    day = date(2026, 11, 20)
    # Business Basic: ERP 72.00 a year, cost 57.60; billed monthly 4.80 + 15 % = 5.52; annually 66.24.
    monthly = await services.pricing.price_for(org_id, **KEY, on=day)
    annual = await services.pricing.price_for(org_id, **{**KEY, "billing_cycle": "annual"}, on=day)
    one_month = await services.pricing.price_for(
        org_id, **{**KEY, "term_duration": "P1M", "billing_cycle": "monthly"}, on=day
    )
    assert monthly is not None and monthly.amount == Decimal("5.52") and monthly.currency == "USD"
    assert annual is not None and annual.amount == Decimal("66.24")
    assert one_month is not None and one_month.amount == Decimal("6.62")  # 7.20 less 20 % = 5.76, + 15 %
    assert monthly.valid_to is None
    # Generating again with the same markup changes nothing; another markup corrects in place.
    again = await services.pricing.generate(GLOBAL_LIST, Decimal(15), actor="op")
    assert (again.created, again.updated) == (0, 0)
    corrected = await services.pricing.generate(GLOBAL_LIST, Decimal(10), actor="op")
    assert corrected.updated + corrected.unchanged == result.created and corrected.updated > 100  # free ones stay
    assert (await services.pricing.price_for(org_id, **KEY, on=day)).amount == Decimal("5.28")  # type: ignore[union-attr]


async def test_the_demo_global_list_is_generated_once_and_never_over_an_operators_list(services: Services) -> None:
    assert await services.pricing.ensure_default_global(Decimal(15), actor="system:seed") is True
    count = (await services.pricing.lists())[0].entries
    assert await services.pricing.ensure_default_global(Decimal(50), actor="system:seed") is False
    lists = await services.pricing.lists()
    assert [(item.name, item.is_global, item.entries) for item in lists] == [(GLOBAL_LIST, True, count)]


async def test_list_management_rules(services: Services) -> None:
    await seed_demo_organisation(services.organisations)
    await services.pricing.create_list("vip", actor="op")
    with pytest.raises(Conflict):
        await services.pricing.create_list("VIP", actor="op")
    with pytest.raises(InvalidInput):
        await services.pricing.create_list("no spaces please", actor="op")
    await services.pricing.create_list(GLOBAL_LIST, actor="op")
    with pytest.raises(InvalidInput, match="global list applies"):
        await services.pricing.assign(DEMO_SLUG, GLOBAL_LIST, actor="op")
    with pytest.raises(NotFound):
        await services.pricing.assign(DEMO_SLUG, "missing", actor="op")
    with pytest.raises(NotFound):
        await services.pricing.assign("nobody", "vip", actor="op")
    await services.pricing.assign(DEMO_SLUG, "vip", actor="op")
    assert [(item.name, item.organisations) for item in await services.pricing.lists()] == [
        (GLOBAL_LIST, ()),
        ("vip", (DEMO_SLUG,)),
    ]
    await services.pricing.delete_list("vip", actor="op")
    org_id = (await services.organisations.get(DEMO_SLUG)).id
    assert await services.pricing.assigned_list(org_id) is None


def test_amounts_markups_and_periods() -> None:
    assert parse_markup("15%") == Decimal(15) and parse_markup(" +7.5 % ") == Decimal("7.5")
    for bad in ("abc", "-100%", "2000"):
        with pytest.raises(InvalidInput):
            parse_markup(bad)
    assert periods_in_term("P1Y", "monthly") == 12
    assert periods_in_term("P3Y", "annual") == 3
    assert periods_in_term("P3Y", "triennial") == 1
    assert periods_in_term("P1M", "annual") is None
    # What a price per billing period comes to a month, in the currency's minor unit.
    assert per_month(Decimal("198.72"), "USD", "triennial") == Decimal("5.52")
    assert per_month(Decimal("138.00"), "USD", "annual") == Decimal("11.50")
    assert per_month(Decimal("13.80"), "USD", "monthly") == Decimal("13.80")
    assert per_month(Decimal("16330"), "JPY", "annual") == Decimal("1361")  # 1360.83…
    assert per_month(Decimal("30.007"), "KWD", "annual") == Decimal("2.501")  # 2.50058…


class PriceSheetIn:
    """Microsoft's price sheet for a market billed in `currency` (the sandbox's is in USD)."""

    def __init__(self, currency: str) -> None:
        self.currency = currency

    async def price_sheet(self, market: str) -> list[PriceSheetRow]:
        row = {"ProductId": "CFQ7TTC0LH18", "SkuId": "0001", "Market": market, "Currency": self.currency}
        return [
            # 16,334 a year: billed monthly 1,361.1666… before the markup.
            PriceSheetRow.model_validate({**row, "TermDuration": "P1Y", "BillingPlan": plan, "UnitPrice": price})
            for plan, price in (("Monthly", "16334"), ("Annual", "30.007"))
        ]


@pytest.mark.parametrize(
    ("currency", "monthly", "annual", "csv_rows"),
    [
        # × 1.0731: 1,460.66795 a month, 32.2005117 a year.
        ("JPY", "1461", "32", ["P1Y,annual,JPY,32,", "P1Y,monthly,JPY,1461,"]),
        ("KWD", "1460.668", "32.201", ["P1Y,annual,KWD,32.201,", "P1Y,monthly,KWD,1460.668,"]),
        ("USD", "1460.67", "32.20", ["P1Y,annual,USD,32.20,", "P1Y,monthly,USD,1460.67,"]),
    ],
)
async def test_generated_prices_are_rounded_to_the_currencys_minor_unit(
    services: Services, currency: str, monthly: str, annual: str, csv_rows: list[str]
) -> None:
    book = PriceBook(services.sessions, PriceSheetIn(currency))  # type: ignore[arg-type]
    await book.generate(GLOBAL_LIST, parse_markup("7.31%"), actor="op", valid_from=date(2026, 1, 1))
    org_id = await _org_id(services)
    day = date(2026, 6, 1)
    per_month_price = await book.price_for(org_id, **KEY, on=day)
    per_year_price = await book.price_for(org_id, **{**KEY, "billing_cycle": "annual"}, on=day)
    assert per_month_price is not None and str(per_month_price.amount) == monthly
    assert per_year_price is not None and str(per_year_price.amount) == annual
    # The list's CSV writes each amount with its currency's digits: no padded yen, no cut fils.
    exported = await book.export_csv(GLOBAL_LIST)
    assert [line.split(",", 2)[2] for line in exported.splitlines()[1:]] == [f"{row}2026-01-01," for row in csv_rows]
