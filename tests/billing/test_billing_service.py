"""Issued reports, adjustments, settings, scope/roles and export links — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from services.billing.reports import parse_query
from services.billing.service import BillMonths, NoService
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.ledger import LedgerEvent as Ev
from services.models import AuditEntry, BillingReportRow
from services.price_rules import PriceScope
from services.seed import DEMO_SLUG, seed_demo_organisation
from tests.billing.helpers import Clock, ListPrices, billing_service, caller
from tests.billing.ledger_fixtures import BASIC, event, price


async def _org(services) -> int:
    await seed_demo_organisation(services.organisations)
    return (await services.organisations.get(DEMO_SLUG)).id


def _amounts(report) -> list[tuple[str, str, str]]:
    return [(line.subscription_id, line.charge_type.value, str(line.amount)) for line in report.lines]


async def test_last_month_is_issued_once_and_late_events_become_adjustments(services) -> None:
    org = await _org(services)
    clock = Clock(datetime(2026, 10, 3, 9, tzinfo=UTC))
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), clock)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 9, 11), 0, 5, organisation_id=org))
    admin = caller(org, "admin")

    september = await billing.last_month(admin)
    assert september.issued and september.cycle.end == date(2026, 9, 30)
    assert _amounts(september) == [("sub-e3", "prorata_purchase", "100.00")]  # 5 × 30 × 20/30

    # A late event for 21 Sep (+1 seat: 1 × 30 × 10/30 = 10.00) arrives after the report was issued.
    await services.ledger.record(event(Ev.QUANTITY_INCREASE, date(2026, 9, 21), 5, 6, organisation_id=org))
    again = await billing.last_month(admin)
    assert _amounts(again) == _amounts(september), "an issued report never changes"

    clock.now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    october = await billing.last_month(admin)
    assert _amounts(october) == [
        ("sub-e3", "cycle_fee", "180.00"),  # 6 × 30
        ("sub-e3", "adjustment", "10.00"),
    ]
    adjustment = october.lines[-1]
    assert adjustment.corrects == date(2026, 9, 30) and adjustment.quantity == 1
    # The adjustment is itself issued: November does not repeat it.
    clock.now = datetime(2026, 12, 2, 9, tzinfo=UTC)
    november = await billing.last_month(admin)
    assert _amounts(november) == [("sub-e3", "cycle_fee", "180.00")]
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(BillingReportRow)) == 3
        issued = (
            await session.scalars(select(AuditEntry.target).where(AuditEntry.action == "billing.report.issue"))
        ).all()
    assert sorted(issued) == ["2026-09-01..2026-09-30", "2026-10-01..2026-10-31", "2026-11-01..2026-11-30"]


async def test_a_price_correction_for_a_closed_cycle_becomes_an_adjustment(services) -> None:
    org = await _org(services)
    clock = Clock(datetime(2026, 10, 3, 9, tzinfo=UTC))
    prices = ListPrices(global_entries=[price("30.00", entry_id=1)])
    billing = billing_service(services, prices, clock)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 9, 1), 0, 2, organisation_id=org))
    assert _amounts(await billing.last_month(caller(org))) == [("sub-e3", "prorata_purchase", "60.00")]
    # The reseller corrects September's price to 28.00 (a customer price from 1 Sep).
    prices.by_organisation[org] = [price("28.00", valid_from=date(2026, 9, 1), scope=PriceScope.CUSTOMER, entry_id=2)]
    clock.now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    october = await billing.last_month(caller(org))
    assert _amounts(october) == [("sub-e3", "cycle_fee", "56.00"), ("sub-e3", "adjustment", "-4.00")]


async def test_the_open_cycle_is_provisional_and_not_stored(services) -> None:
    org = await _org(services)
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 11, 1), 0, 1, organisation_id=org))
    (report,) = await billing.months(caller(org), (2026, 11), (2026, 11))
    assert not report.issued and report.totals == {"EUR": Decimal("30.00")}
    async with services.sessions() as session:
        stored = (await session.scalars(select(BillingReportRow.cycle_end))).all()
    assert date(2026, 11, 30) not in stored


async def test_a_range_gives_one_report_per_cycle_from_the_first_service_on(services) -> None:
    """Months before the organisation's first ledger event had no service: they are not bills
    (nothing is issued or shown for them); months of service without charges are issued empty."""
    org = await _org(services)
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 8, 20), 0, 3, organisation_id=org))
    await services.ledger.record(event(Ev.CANCELLATION, date(2026, 9, 1), 3, 0, organisation_id=org))
    reports = await billing.months(caller(org), (2026, 6), (2026, 10))
    assert [r.cycle.end for r in reports] == [date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31)]
    assert reports[0].totals == {"EUR": Decimal("34.84")}  # 3 × 30 × 12/31
    assert all(r.issued for r in reports) and reports[-1].lines == ()  # October: service, nothing to charge
    async with services.sessions() as session:
        stored = sorted((await session.scalars(select(BillingReportRow.cycle_end))).all())
    assert stored == [date(2026, 8, 31), date(2026, 9, 30), date(2026, 10, 31)]
    for before in ((2026, 6), (2026, 7)):
        with pytest.raises(NoService, match="There was no service in .* 2026.*began on Aug 20, 2026"):
            await billing.months(caller(org), before, before)


async def test_without_any_ledger_event_no_month_is_a_bill(services) -> None:
    org = await _org(services)
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())
    with pytest.raises(NoService, match="no subscriptions with your reseller yet"):
        await billing.last_month(caller(org))
    with pytest.raises(NoService, match="January 1999"):
        await billing.lookup(caller(org), "billing 1999-01")
    async with services.sessions() as session:
        assert (await session.scalars(select(BillingReportRow.cycle_end))).all() == []


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ((2024, 1), (2026, 10), "at most 24 months"),
        ((2026, 12), (2026, 12), "in the future"),
        ((2026, 10), (2026, 9), "must not be after"),
    ],
)
async def test_bad_ranges_are_refused(services, first, last, message) -> None:
    org = await _org(services)
    billing = billing_service(services, ListPrices(), Clock())
    with pytest.raises(InvalidInput, match=message):
        await billing.months(caller(org), first, last)


async def test_only_admins_and_billing_readers_see_bills_of_their_own_organisation(services) -> None:
    org = await _org(services)
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 10, 1), 0, 1, organisation_id=org))
    await services.ledger.record(
        event(Ev.PURCHASE, date(2026, 10, 1), 0, 9, organisation_id=other.id, subscription="fab")
    )
    with pytest.raises(PermissionDenied):
        await billing.last_month(caller(org, "approver"))
    report = await billing.last_month(caller(org, "billing"))
    assert [line.subscription_id for line in report.lines] == ["sub-e3"]
    assert report.totals == {"EUR": Decimal("30.00")}


async def test_unpriced_lines_are_flagged_and_alerted(services) -> None:
    org = await _org(services)
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())
    await services.ledger.record(
        event(Ev.PURCHASE, date(2026, 10, 5), 0, 2, organisation_id=org, product=BASIC, subscription="b")
    )
    report = await billing.last_month(caller(org))
    assert report.unpriced == 1 and report.totals == {}
    alerts = await services.alerts.list()
    assert [a.code for a in alerts] == ["billing.unpriced"]
    assert BASIC[0] in alerts[0].message


async def test_lookups(services) -> None:
    org = await _org(services)
    billing = billing_service(
        services, ListPrices(global_entries=[price("30.00"), price("6.00", product=BASIC)]), Clock()
    )
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 9, 1), 0, 1, organisation_id=org))
    await services.ledger.record(
        event(Ev.PURCHASE, date(2026, 9, 1), 0, 1, organisation_id=org, product=BASIC, subscription="b")
    )
    query, reports = await billing.lookup(caller(org), "billing 2026-09")
    assert query.label == "September 2026" and [r.totals for r in reports] == [{"EUR": Decimal("36.00")}]
    query, reports = await billing.lookup(caller(org), "what did we spend on E3?")
    assert query.product == "e3" and query.shown_product == "Office 365 E3"  # as the catalog spells it
    assert sum(r.totals.get("EUR", Decimal(0)) for r in reports) == Decimal("90.00")  # Sep, Oct, Nov so far
    basic, _ = await billing.lookup(caller(org), "spend on business basic")
    assert basic.shown_product == "Microsoft 365 Business Basic"
    nothing, _ = await billing.lookup(caller(org), "spend on visio")
    assert nothing.shown_product == "visio"
    query, reports = await billing.lookup(caller(org), "billing this year")
    assert [r.cycle.month for r in reports] == [(2026, 9), (2026, 10), (2026, 11)]  # since the first purchase
    with pytest.raises(InvalidInput):
        await billing.lookup(caller(org), "billing 2026-13")
    _, (last,) = await billing.lookup(caller(org), "billing last month")
    assert last.cycle.end == date(2026, 10, 31)
    for typed in ("bill last month", "bills last month"):  # the aliases start look-ups too
        query, (same,) = await billing.lookup(caller(org), typed)
        assert query.label == "last month" and same.cycle.end == date(2026, 10, 31)
    # Month names without a year: the latest such month, and a range runs forward across a new year.
    query, reports = await billing.lookup(caller(org), "billing september to november")
    assert query.label == "September\u2009–\u2009November 2026" and len(reports) == 3
    query = parse_query("billing november to february", date(2026, 11, 5))
    assert (query.first, query.last, query.label) == ((2025, 11), (2026, 2), "November 2025\u2009–\u2009February 2026")


async def test_the_months_with_bills_run_from_the_first_subscription_to_now(services) -> None:
    org = await _org(services)
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())  # Nov 5, 2026
    assert await billing.bill_months(caller(org)) == BillMonths((), None)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 9, 20), 0, 1, organisation_id=org))
    await services.ledger.record(event(Ev.QUANTITY_INCREASE, date(2026, 10, 2), 1, 2, organisation_id=org))
    months = await billing.bill_months(caller(org))
    assert months == BillMonths(((2026, 11), (2026, 10), (2026, 9)), (2026, 10), older=False)
    assert await billing.bill_months(caller(org), limit=2) == BillMonths(((2026, 11), (2026, 10)), (2026, 10), True)
    with pytest.raises(PermissionDenied):
        await billing.bill_months(caller(org, "approver"))


async def test_cycle_settings_take_effect_and_never_re_cut_history(services) -> None:
    org = await _org(services)
    clock = Clock(datetime(2026, 11, 5, 9, tzinfo=UTC))
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), clock)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 10, 1), 0, 1, organisation_id=org))
    await billing.last_month(caller(org))  # issues October
    with pytest.raises(InvalidInput, match="past"):
        await billing.set_cycle(day="15", timezone=None, effective=date(2026, 11, 1), actor="op")
    setting = await billing.set_cycle(day="15", timezone="Europe/Oslo", effective=date(2026, 12, 1), actor="op")
    assert (setting.cycle_day, setting.timezone) == (15, "Europe/Oslo")
    calendar = await billing.calendar()
    assert calendar.cycle_of(date(2026, 11, 20)).end == date(2026, 11, 30)
    assert calendar.cycle_of(date(2026, 12, 20)).start == date(2026, 12, 16)
    async with services.sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "billing.set_cycle")
            )
            == 1
        )
    with pytest.raises(InvalidInput):
        await billing.set_cycle(day="32", timezone=None, effective=date(2026, 12, 1), actor="op")


async def test_an_effective_date_inside_an_issued_cycle_is_refused(services) -> None:
    org = await _org(services)
    clock = Clock(datetime(2026, 11, 5, 9, tzinfo=UTC))
    billing = billing_service(services, ListPrices(), clock)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 10, 1), 0, 1, organisation_id=org))
    await billing.last_month(caller(org))
    clock.now = datetime(2026, 10, 1, tzinfo=UTC)  # an operator's clock behind the issued reports
    with pytest.raises(InvalidInput, match="already issued"):
        await billing.set_cycle(day="15", timezone=None, effective=date(2026, 10, 20), actor="op")


async def test_export_links_are_single_use_short_lived_and_unforgeable(services) -> None:
    org = await _org(services)
    clock = Clock()
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), clock)
    token = await billing.create_export_link(caller(org, "billing"), "csv", (2026, 9), (2026, 10))
    grant = await billing.redeem_export_link(token)
    assert (grant.organisation_id, grant.file_format, grant.first, grant.last) == (org, "csv", (2026, 9), (2026, 10))
    with pytest.raises(Conflict):
        await billing.redeem_export_link(token)
    with pytest.raises(NotFound):
        await billing.redeem_export_link(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    expiring = await billing.create_export_link(caller(org), "xlsx", (2026, 9), (2026, 9))
    clock.now += timedelta(minutes=15, seconds=1)
    with pytest.raises(PermissionDenied, match="expired"):
        await billing.redeem_export_link(expiring)
    with pytest.raises(PermissionDenied):
        await billing.create_export_link(caller(org, "approver"), "csv", (2026, 9), (2026, 9))
    async with services.sessions() as session:
        downloads = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "billing.export.download")
        )
    assert downloads == 1


async def test_a_cycle_issued_concurrently_is_stored_once(services) -> None:
    import asyncio

    org = await _org(services)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 10, 1), 0, 2, organisation_id=org))
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), Clock())
    first, second = await asyncio.gather(billing.last_month(caller(org)), billing.last_month(caller(org)))
    assert _amounts(first) == _amounts(second) == [("sub-e3", "prorata_purchase", "60.00")]
    async with services.sessions() as session:
        ends = (await session.scalars(select(BillingReportRow.cycle_end))).all()
    assert sorted(ends) == [date(2026, 10, 31)]


async def test_with_cycle_day_15_the_current_month_includes_the_open_cycle(services) -> None:
    org = await _org(services)
    clock = Clock(datetime(2026, 11, 5, 9, tzinfo=UTC))
    billing = billing_service(services, ListPrices(global_entries=[price("30.00")]), clock)
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 11, 1), 0, 1, organisation_id=org))
    await billing.set_cycle(day="15", timezone=None, effective=date(2026, 12, 1), actor="op")
    clock.now = datetime(2026, 12, 20, 9, tzinfo=UTC)
    reports = await billing.months(caller(org), (2026, 12), (2026, 12))
    assert [(r.cycle.start, r.cycle.end, r.issued) for r in reports] == [
        (date(2026, 12, 1), date(2026, 12, 15), True),
        (date(2026, 12, 16), date(2027, 1, 15), False),
    ]


async def test_a_late_event_before_the_first_issued_cycle_adjusts_every_issued_cycle_it_changes(services) -> None:
    """Service began with Basic on 1 Sep; September and October were issued with its fees only. Then
    a sync finds an E3 purchase of 20 Aug (3 seats at 30): service began earlier. August, never
    issued, is issued with its own line (3 × 30 × 12/31 = 34.84); the E3 fees September and October
    missed (3 × 30 = 90.00 each) become adjustments in November, the next cycle issued."""
    org = await _org(services)
    clock = Clock(datetime(2026, 11, 5, 9, tzinfo=UTC))
    billing = billing_service(
        services, ListPrices(global_entries=[price("30.00"), price("6.00", product=BASIC)]), clock
    )
    await services.ledger.record(
        event(Ev.PURCHASE, date(2026, 9, 1), 0, 1, organisation_id=org, product=BASIC, subscription="b")
    )
    issued = await billing.months(caller(org), (2026, 9), (2026, 10))
    assert [(r.cycle.end, r.issued, [line[0] for line in _amounts(r)]) for r in issued] == [
        (date(2026, 9, 30), True, ["b"]),
        (date(2026, 10, 31), True, ["b"]),
    ]
    await services.ledger.record(event(Ev.PURCHASE, date(2026, 8, 20), 0, 3, organisation_id=org))
    clock.now = datetime(2026, 12, 2, 9, tzinfo=UTC)
    november = await billing.last_month(caller(org))
    e3_lines = [line for line in november.lines if line.subscription_id == "sub-e3"]
    assert sorted((line.charge_type.value, str(line.amount), line.corrects) for line in e3_lines) == [
        ("adjustment", "90.00", date(2026, 9, 30)),
        ("adjustment", "90.00", date(2026, 10, 31)),
        ("cycle_fee", "90.00", None),
    ]
    (august,) = await billing.months(caller(org), (2026, 8), (2026, 8))
    assert august.issued and _amounts(august) == [("sub-e3", "prorata_purchase", "34.84")]
    september, october = await billing.months(caller(org), (2026, 9), (2026, 10))
    assert [line[0] for line in _amounts(september) + _amounts(october)] == ["b", "b"], "issued reports never change"
    clock.now = datetime(2027, 1, 2, 9, tzinfo=UTC)
    january_e3 = [line for line in _amounts(await billing.last_month(caller(org))) if line[0] == "sub-e3"]
    assert january_e3 == [("sub-e3", "cycle_fee", "90.00")]  # corrected once
