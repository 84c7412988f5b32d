"""The money a change shows before it is confirmed is the money the bill shows for it: the previews of
adding seats, removing seats and cancelling are rated by the billing engine itself — in the
reseller's cycle (not the calendar month), its time zone, its pro-rata windows (the term for annual
billing) and its once-per-line rounding — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.billing.rating import ChargeType, Line
from services.billing.service import BillingService
from services.container import Services
from services.models import BillingSettingRow
from services.organisations import OrganisationView
from tests.conftest import Sandbox, demo_customer_then
from tests.subscription_fixtures import admin, buy, prepare_catalog_and_prices


@pytest.fixture
@demo_customer_then(prepare_catalog_and_prices)
async def ready(services: Services, demo_customer: OrganisationView, sandbox: Sandbox) -> OrganisationView:
    services.subscriptions.use_clock(sandbox.clock.now)
    # The reseller's cycle ends on the 20th (21 Oct – 20 Nov holds the sandbox's 16 Nov), not the
    # calendar month: a calendar-month preview would show other amounts than the bill.
    async with services.sessions() as session:
        session.add(BillingSettingRow(effective_from=date(2026, 1, 1), cycle_day=20, timezone="UTC", actor="tests"))
        await session.commit()
    return demo_customer


async def _bill_lines(services: Services, sandbox: Sandbox, subscription_id: str, *types: ChargeType) -> list[Line]:
    billing = BillingService(
        services.sessions, services.ledger, services.pricing, services.alerts, clock=sandbox.microsoft_clock
    )
    caller = await admin(services)
    day = sandbox.clock.now().date()
    reports = await billing.months(caller, (day.year, day.month), (day.year, day.month))
    report = next(r for r in reports if r.cycle.contains(day))
    assert (report.cycle.start, report.cycle.end) == (date(2026, 10, 21), date(2026, 11, 20))
    return [line for line in report.lines if line.subscription_id == subscription_id and line.charge_type in types]


async def test_added_seats_preview_equals_the_rated_line_in_the_resellers_cycle(services, ready, sandbox):
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    plan = await services.subscription_changes.plan_quantity(caller, sid, "13")
    # 3 seats × 6.00 × 5/31 days (16–20 Nov of a 31-day cycle) = 2.903… → 2.90 (the calendar month gave 9.00)
    assert plan.charge_now is not None
    assert (plan.charge_now.days, plan.charge_now.period_days, plan.charge_now.amount) == (5, 31, Decimal("2.90"))
    await services.subscription_changes.change_quantity(caller, sid, "13", etag=plan.etag, key="p-inc")
    [line] = await _bill_lines(services, sandbox, sid, ChargeType.PRORATA_INCREASE)
    assert line.amount == plan.charge_now.amount
    assert (line.quantity, line.unit_price, line.days, line.cycle_days) == (3, Decimal("6.00"), 5, 31)


async def test_removed_seats_and_cancel_previews_equal_the_refund_lines(services, ready, sandbox):
    first = await buy(services, ready, quantity=10)
    second = await buy(services, ready, quantity=4)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=2))  # 18 Nov: 3 days left of the cycle
    plan = await services.subscription_changes.plan_quantity(caller, first, "7")
    assert plan.kind == "decrease" and plan.charge_now is not None
    assert plan.charge_now.amount == Decimal("-1.74")  # -(3 × 6.00 × 3/31) = -1.7419…
    await services.subscription_changes.change_quantity(caller, first, "7", etag=plan.etag, key="p-dec")
    [refund] = await _bill_lines(services, sandbox, first, ChargeType.REFUND)
    assert refund.amount == plan.charge_now.amount

    cancel = await services.subscription_changes.plan_cancel(caller, second)
    assert cancel.refund is not None and cancel.refund.amount == Decimal("-2.32")  # -(4 × 6.00 × 3/31)
    await services.subscription_changes.cancel(caller, second, etag=cancel.etag, key="p-cancel")
    [refund] = await _bill_lines(services, sandbox, second, ChargeType.REFUND)
    assert refund.amount == cancel.refund.amount


async def test_annual_billing_preview_uses_the_term_window_like_the_bill(services, ready, sandbox):
    sid = await buy(services, ready, quantity=5, cycle="annual")
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=1))
    plan = await services.subscription_changes.plan_quantity(caller, sid, "6")
    assert plan.charge_now is not None and plan.charge_now.period_days == 365
    await services.subscription_changes.change_quantity(caller, sid, "6", etag=plan.etag, key="p-annual")
    [line] = await _bill_lines(services, sandbox, sid, ChargeType.PRORATA_INCREASE)
    assert line.amount == plan.charge_now.amount
    assert (line.days, line.cycle_days) == (plan.charge_now.days, plan.charge_now.period_days)
