"""Billing end to end: buy, change, cancel, suspend, reactivate, add an add-on, let a term renew with a
lower quantity and another expire, and let a sync find changes made elsewhere — all through the real
ordering and subscription services against the sandbox, priced from the real price book — then read
the bills and check every line to the cent (on SQLite and PostgreSQL).

The sandbox's clock starts on Monday 16 Nov 2026, 09:00 UTC; cycles are calendar months (the default),
so November has 30 days and pro-rata runs from the event's day to 30 Nov, both included.
Prices (global list, USD): Business Basic P1Y billed monthly 6.00, P1M monthly 7.20, P1Y annual 72.00;
Exchange Online Archiving (add-on) P1Y monthly 3.00.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from services.access import Caller
from services.billing.export import CSV_COLUMNS, to_csv
from services.billing.reports import CycleReport
from services.billing.service import BillingService
from services.container import Services
from services.ledger import LedgerSource
from services.models import BillingReportLineRow, BillingSettingRow
from services.organisations import OrganisationView
from tests.conftest import Sandbox
from tests.subscription_fixtures import ARCHIVING, admin, approver, buy, prepare_catalog_and_prices

BASIC = "CFQ7TTC0LH18:0001"


def _at(month: int, day: int, hour: int = 9, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


async def _order(services: Services, caller: Caller, plan: str, quantity: int) -> str:
    """Buy through the ordering service (the add-subscription dialog's path) and run its job."""
    quote = await services.ordering.quote(caller, BASIC, plan, str(quantity))
    placed = await services.ordering.place_order(caller, quote, uuid.uuid4().hex, notify_conversation_id=None)
    assert await services.jobs.run_pending() == 1
    done = await services.jobs.get(placed.job.id)
    assert done is not None and done.status == "succeeded", done
    assert done.result is not None
    return str(done.result["subscription_id"]).lower()


async def _change(services: Services, caller: Caller, sid: str, quantity: int) -> None:
    plan = await services.subscription_changes.plan_quantity(caller, sid, str(quantity))
    assert plan.kind in ("increase", "decrease"), plan
    await services.subscription_changes.change_quantity(
        caller, sid, str(quantity), etag=plan.etag, key=uuid.uuid4().hex
    )


Row = tuple[str, str | None, str, int, str, int | None, int | None, str]


def _lines(report: CycleReport, names: dict[str, str]) -> list[Row]:
    """(subscription, parent, charge type, quantity, unit price, days, cycle days, amount), sorted."""
    return sorted(
        (
            names[line.subscription_id],
            names[line.parent_subscription_id] if line.parent_subscription_id else None,
            line.charge_type.value,
            line.quantity,
            str(line.unit_price),
            line.days,
            line.cycle_days,
            str(line.amount),
        )
        for line in report.lines
    )


@pytest.fixture
async def billing(services: Services, sandbox: Sandbox) -> BillingService:
    """The app's billing service (real price book, real ledger) on the sandbox's clock."""
    return BillingService(
        services.sessions, services.ledger, services.pricing, services.alerts, clock=sandbox.microsoft_clock
    )


async def test_bills_of_what_was_bought_and_changed_through_the_services(
    services: Services, sandbox: Sandbox, demo_customer: OrganisationView, billing: BillingService
) -> None:
    await prepare_catalog_and_prices(services)
    services.subscriptions.use_clock(sandbox.clock.now)
    changes = services.subscription_changes
    me = await admin(services)
    org = me.organisation_id
    clock = sandbox.clock

    # --- 16 Nov 09:00: four purchases through the ordering service --------------------------------
    a = await _order(services, me, "P1Y:monthly", 10)  # 6.00 per seat and month
    b = await _order(services, me, "P1M:monthly", 4)  # 7.20
    c = await _order(services, me, "P1Y:annual", 2)  # 72.00 per seat and year
    e = await _order(services, me, "P1M:monthly", 5)  # 7.20; renews with fewer seats
    # 11:00, inside the seats' 7-day window: A 10 → 7 (a refunded reduction)
    clock.set(_at(11, 16, 11))
    await _change(services, me, a, 7)
    # --- 17 Nov: A 7 → 12, an add-on of 2 under A, C (annual) 2 → 3 -------------------------------
    clock.set(_at(11, 17))
    await _change(services, me, a, 12)
    addon = (await changes.order_addon(me, a, f"{ARCHIVING}:0001", "2", key="addon-1")).subscription_id
    await _change(services, me, c, 3)
    # --- 18 Nov: cancel B inside its window ----------------------------------------------------------
    clock.set(_at(11, 18))
    plan = await changes.plan_cancel(me, b)
    await changes.cancel(me, b, etag=plan.etag, key="cancel-b")
    # --- 19 Nov: the add-on goes 2 → 3 in Partner Center (elsewhere); a sync ledgers it -------------
    clock.set(_at(11, 19))
    customer = demo_customer.partner_center_customer_id
    assert customer
    current = await services.partner_center.subscription(customer, addon)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 3}))
    clock.set(_at(11, 19, 10))
    await services.subscriptions.sync(org)
    # --- 20 Nov: D bought elsewhere (found by a sync); A suspended with an approver's yes ----------
    clock.set(_at(11, 20))
    d = await buy(services, demo_customer, quantity=1, term="P1M", cycle="monthly")
    await services.subscriptions.sync(org)
    request, _ = await services.approvals.request_suspension(me, a, "Project paused")
    decision = await services.approvals.decide(await approver(services), request.id, approve=True)
    assert decision.decided_now
    assert (await services.approvals.run_suspension(request.id)).status == "suspended"
    # --- 21 Nov: D will not renew -------------------------------------------------------------------
    clock.set(_at(11, 21))
    await changes.set_auto_renew(me, d, False, key="ar-d")
    # --- 24 Nov: E's seats are past their window: 3 seats scheduled for the renewal ------------------
    clock.set(_at(11, 24))
    plan = await changes.plan_quantity(me, e, "3")
    assert plan.kind == "schedule"
    await changes.schedule_quantity(me, e, "3", etag=plan.etag, key="schedule-e")
    # --- 25 Nov: D 1 → 2 in Partner Center, not synced before November's bill is issued -------------
    clock.set(_at(11, 25))
    current = await services.partner_center.subscription(customer, d)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 2}))

    names = {a: "A", b: "B", c: "C", d: "D", e: "E", addon: "A+archiving"}

    # --- 2 Dec: "billing last month" = November ---------------------------------------------------
    clock.set(_at(12, 2))
    november = await billing.last_month(me)
    assert november.issued and (november.cycle.start.isoformat(), november.cycle.end.isoformat()) == (
        "2026-11-01",
        "2026-11-30",
    )
    expected_november = sorted(
        [
            # A, bought 16 Nov: 10 × 6.00 × 15/30 (16..30 Nov)
            ("A", None, "prorata_purchase", 10, "6.00", 15, 30, "30.00"),
            # −3 the same day, at the purchase's price: 3 × 6.00 × 15/30
            ("A", None, "refund", 3, "6.00", 15, 30, "-9.00"),
            # +5 on 17 Nov: 5 × 6.00 × 14/30
            ("A", None, "prorata_increase", 5, "6.00", 14, 30, "14.00"),
            # the add-on, bought 17 Nov under A: 2 × 3.00 × 14/30; +1 elsewhere on 19 Nov: 1 × 3.00 × 12/30
            ("A+archiving", "A", "addon_prorata", 2, "3.00", 14, 30, "2.80"),
            ("A+archiving", "A", "addon_prorata", 1, "3.00", 12, 30, "1.20"),
            # B: 4 × 7.20 × 15/30; cancelled 18 Nov: −4 × 7.20 × 13/30 = −12.48
            ("B", None, "prorata_purchase", 4, "7.20", 15, 30, "14.40"),
            ("B", None, "refund", 4, "7.20", 13, 30, "-12.48"),
            # C, annual: the year's fee where the term starts, 2 × 72.00; +1 on 17 Nov over the term
            # 16 Nov 2026 – 15 Nov 2027 (365 days), 17 Nov..15 Nov = 364: 72 × 364/365 = 71.8027… → 71.80
            ("C", None, "cycle_fee", 2, "72.00", None, None, "144.00"),
            ("C", None, "prorata_increase", 1, "72.00", 364, 365, "71.80"),
            # D, found by the sync (bought 20 Nov): 1 × 7.20 × 11/30 = 2.64 (its +1 of 25 Nov not yet known)
            ("D", None, "prorata_purchase", 1, "7.20", 11, 30, "2.64"),
            # E: 5 × 7.20 × 15/30
            ("E", None, "prorata_purchase", 5, "7.20", 15, 30, "18.00"),
        ]
    )
    assert _lines(november, names) == expected_november
    # 30.00 − 9.00 + 14.00 + 2.80 + 1.20 + 14.40 − 12.48 + 144.00 + 71.80 + 2.64 + 18.00
    assert november.totals == {"USD": Decimal("277.36")}
    assert november.unpriced == 0
    # Where each line came from: the ordering service, the bot's changes and the sync.
    sources = {
        (entry.subscription_id, entry.event_type.value, entry.source) for entry in await services.ledger.entries(org)
    }
    assert (a, "purchase", LedgerSource.BOT) in sources and (d, "purchase", LedgerSource.SYNC) in sources
    assert (addon, "quantity_increase", LedgerSource.SYNC) in sources
    assert (a, "suspension", LedgerSource.BOT) in sources
    async with services.sessions() as session:
        stored_before = (
            await session.execute(
                select(BillingReportLineRow.id, BillingReportLineRow.amount).order_by(BillingReportLineRow.id)
            )
        ).all()

    # --- now the sync finds D's +1 of 25 Nov: a late event for the issued November -------------------
    await services.subscriptions.sync(org)
    assert _lines(await billing.last_month(me), names) == expected_november, "an issued report never changes"

    # --- 5 Dec: A reactivated; 16 Dec: E renews with 3 seats; 20 Dec: D expires ----------------------
    clock.set(_at(12, 5))
    await changes.reactivate(me, a, key="reactivate-a")
    clock.set(_at(12, 16, 6))
    await services.subscriptions.sync(org)
    clock.set(_at(12, 20, 6))
    await services.subscriptions.sync(org)
    events = {(entry.subscription_id, entry.event_type.value) for entry in await services.ledger.entries(org)}
    assert {(a, "reactivation"), (e, "renewal"), (d, "expiry")} <= events

    # --- 2 Jan: December -----------------------------------------------------------------------
    clock.set(_at(1, 2, year=2027))
    await services.subscriptions.sync(org)
    december = await billing.last_month(me)
    assert (december.cycle.start.isoformat(), december.cycle.end.isoformat()) == ("2026-12-01", "2026-12-31")
    assert _lines(december, names) == sorted(
        [
            # A held 12 seats at the end of November (suspended then: still billed): 12 × 6.00
            ("A", None, "cycle_fee", 12, "6.00", None, None, "72.00"),
            ("A+archiving", "A", "addon_cycle_fee", 3, "3.00", None, None, "9.00"),
            # B was cancelled, C is billed yearly: nothing. D held 2 seats at the end of November.
            ("D", None, "cycle_fee", 2, "7.20", None, None, "14.40"),
            # D's late +1 on 25 Nov: 1 × 7.20 × 6/30 = 1.44 for November, as an adjustment here
            ("D", None, "adjustment", 1, "1.44", None, None, "1.44"),
            # E renewed with 3 seats on 16 Dec: nothing already billed changes, 5 × 7.20
            ("E", None, "cycle_fee", 5, "7.20", None, None, "36.00"),
        ]
    )
    assert december.totals == {"USD": Decimal("132.84")}
    adjustment = next(line for line in december.lines if line.charge_type.value == "adjustment")
    assert adjustment.corrects is not None and adjustment.corrects.isoformat() == "2026-11-30"

    # November, read again after all that, is the stored report, row for row.
    (again,) = await billing.months(me, (2026, 11), (2026, 11))
    assert again.issued and _lines(again, names) == expected_november
    async with services.sessions() as session:
        stored_after = (
            await session.execute(
                select(BillingReportLineRow.id, BillingReportLineRow.amount)
                .where(BillingReportLineRow.id.in_([row.id for row in stored_before]))
                .order_by(BillingReportLineRow.id)
            )
        ).all()
        assert stored_after == stored_before
        assert await session.scalar(select(func.count()).select_from(BillingReportLineRow)) == len(stored_before) + 5

    # --- 2 Feb: January: the fees after the renewal and the expiry -----------------------------
    clock.set(_at(1, 16, 6, year=2027))
    await services.subscriptions.sync(org)
    clock.set(_at(2, 2, year=2027))
    january = await billing.last_month(me)
    assert _lines(january, names) == sorted(
        [
            ("A", None, "cycle_fee", 12, "6.00", None, None, "72.00"),
            ("A+archiving", "A", "addon_cycle_fee", 3, "3.00", None, None, "9.00"),
            ("E", None, "cycle_fee", 3, "7.20", None, None, "21.60"),  # D expired in December: no fee
        ]
    )
    assert january.totals == {"USD": Decimal("102.60")}

    # --- the CSV of December: the spec's columns in order, amounts to the cent -------------------
    parsed = list(csv.reader(io.StringIO(to_csv([december]).decode("utf-8-sig"))))
    assert tuple(parsed[0]) == CSV_COLUMNS == (
        "report_date", "cycle_start", "cycle_end", "subscription_id", "parent_subscription_id", "product",
        "offer_id", "charge_type", "quantity", "unit_price", "days", "cycle_days", "amount", "currency",
    )  # fmt: skip
    by_type = {(row[3], row[7]): row for row in parsed[1:]}
    fee = by_type[(addon, "addon_cycle_fee")]
    assert fee[:3] == ["2027-01-01", "2026-12-01", "2026-12-31"]
    assert (fee[4], fee[8], fee[9], fee[10], fee[11], fee[12], fee[13]) == (a, "3", "3.00", "", "", "9.00", "USD")
    assert fee[6] == f"{ARCHIVING}:0001"  # the product's offer id, not Microsoft's availability
    late = by_type[(d, "adjustment")]
    assert (late[4], late[8], late[12], late[13]) == ("", "1", "1.44", "USD")
    assert sum(Decimal(row[12]) for row in parsed[1:]) == Decimal("132.84")


async def test_the_charge_shown_before_a_change_is_what_the_bill_charges_on_the_resellers_cycle(
    services: Services, sandbox: Sandbox, demo_customer: OrganisationView, billing: BillingService
) -> None:
    """With cycles ending on the 15th (set earlier in the year), 16 Nov is the first day of the cycle
    16 Nov – 15 Dec (30 days): adding 2 seats of 6.00 on it charges 2 × 6.00 × 30/30 = 12.00 — what
    the quantity card shows and what the bill says (a calendar month would have said 15/30 = 6.00);
    cancelling another subscription the same day refunds 3 × 7.20 × 30/30 = 21.60 on both."""
    async with services.sessions.begin() as session:
        session.add(BillingSettingRow(effective_from=date(2026, 1, 1), cycle_day=15, timezone="UTC", actor="op"))
    await prepare_catalog_and_prices(services)
    services.subscriptions.use_clock(sandbox.clock.now)
    changes = services.subscription_changes
    me = await admin(services)
    a = await buy(services, demo_customer, quantity=10, term="P1Y", cycle="monthly")
    b = await buy(services, demo_customer, quantity=3, term="P1M", cycle="monthly")
    await services.subscriptions.sync(me.organisation_id)
    plan = await changes.plan_quantity(me, a, "12")
    assert plan.charge_now is not None
    assert (plan.charge_now.days, plan.charge_now.period_days, plan.charge_now.amount) == (30, 30, Decimal("12.00"))
    await changes.change_quantity(me, a, "12", etag=plan.etag, key="add-2")
    cancel = await changes.plan_cancel(me, b)
    assert cancel.refund is not None and cancel.refund.amount == Decimal("-21.60")
    await changes.cancel(me, b, etag=cancel.etag, key="cancel-b")

    reports = await billing.months(me, (2026, 11), (2026, 11))
    current = reports[-1]
    assert (current.cycle.start, current.cycle.end, current.issued) == (date(2026, 11, 16), date(2026, 12, 15), False)
    amounts = {(line.subscription_id, line.charge_type.value): line.amount for line in current.lines}
    assert amounts == {
        (a, "prorata_purchase"): Decimal("60.00"),  # 10 × 6.00 × 30/30
        (a, "prorata_increase"): plan.charge_now.amount,
        (b, "prorata_purchase"): Decimal("21.60"),  # 3 × 7.20 × 30/30
        (b, "refund"): cancel.refund.amount,
    }
