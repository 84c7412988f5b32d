"""`renewals`: the next 90 days of renewals with what each will cost and what is scheduled; the
scheduled change shown in `subscriptions` and withdrawable from both; the bill rates the renewal at
the scheduled quantity — on the sandbox's clock, through the service and the HTTP endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.errors import DomainError
from tests.cardcheck import assert_valid_card
from tests.chat import button
from tests.conftest import demo_customer_then, message, runtime_of
from tests.fakes import card_of, card_text
from tests.subscription_fixtures import admin, approver, buy, prepare_catalog_and_prices

MONTHLY_END = datetime(2026, 12, 15, tzinfo=UTC)  # a P1M term bought on 2026-11-16 ends then
ANNUAL_END = datetime(2027, 11, 15, tzinfo=UTC)


@pytest.fixture
@demo_customer_then(prepare_catalog_and_prices)
async def ready(sqlite_services, sqlite_demo_customer, sandbox):
    sqlite_services.subscriptions.use_clock(sandbox.clock.now)
    return sqlite_demo_customer


async def _schedule(services, caller, sid: str, quantity: int) -> None:
    plan = await services.subscription_changes.plan_quantity(caller, sid, str(quantity))
    await services.subscription_changes.schedule_quantity(
        caller, sid, str(quantity), etag=plan.etag, key=uuid.uuid4().hex
    )


async def test_the_next_90_days_with_costs_and_what_is_scheduled(sqlite_services, ready, sandbox):
    services = sqlite_services
    monthly = await buy(services, ready, quantity=10, term="P1M", cycle="monthly")
    annual = await buy(services, ready, quantity=4, term="P1Y", cycle="annual")
    ending = await buy(services, ready, quantity=2, term="P1M", cycle="monthly")
    customer = ready.partner_center_customer_id
    current = await services.partner_center.subscription(customer, ending)
    await services.partner_center.update_subscription(
        customer, current.model_copy(update={"auto_renew_enabled": False})
    )
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=8))
    await _schedule(services, caller, monthly, 6)

    outlook = await services.warnings.renewals(await approver(services))  # reading needs no admin
    rows = {item.subscription_id: item for item in outlook.items}
    assert set(rows) == {monthly, ending}  # the annual one renews in a year
    renewing = rows[monthly]
    assert (renewing.term_end, renewing.renewing_quantity, renewing.scheduled_quantity) == (MONTHLY_END, 6, 6)
    assert renewing.cost_per_period == Decimal("43.20") and renewing.renews and not renewing.locked  # 6 × 7.20
    assert not rows[ending].renews and rows[ending].cost_per_period is None
    assert outlook.totals == {"USD": Decimal("43.20")}

    sandbox.clock.advance(timedelta(days=300))  # Sep 2027: the annual renewal is 70 days away
    annual_row = {i.subscription_id: i for i in (await services.warnings.renewals(caller)).items}[annual]
    assert (annual_row.term_end, annual_row.cost_per_period) == (ANNUAL_END, Decimal("288.00"))  # 4 × 72.00


async def test_a_scheduled_change_is_withdrawn_but_not_inside_the_lock(sqlite_services, ready, sandbox):
    services = sqlite_services
    sid = await buy(services, ready, quantity=10, term="P1M", cycle="monthly")
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=8))
    await _schedule(services, caller, sid, 6)
    result = await services.subscription_changes.withdraw_schedule(caller, sid, key="w1")
    assert "withdrawn" in result.message and "renews with 10 seats" in result.message
    customer = ready.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is None
    assert (await services.subscriptions.get(caller, sid)).scheduled_quantity is None
    with pytest.raises(DomainError, match="no change scheduled"):
        await services.subscription_changes.withdraw_schedule(caller, sid, key="w2")
    await _schedule(services, caller, sid, 5)
    await sandbox.admin("POST", "/clock", {"set": (MONTHLY_END + timedelta(hours=1)).isoformat()})
    with pytest.raises(DomainError, match="24 hours before it renews"):
        await services.subscription_changes.withdraw_schedule(caller, sid, key="w3")
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is not None


async def test_the_bill_rates_the_renewal_at_the_scheduled_quantity(sqlite_services, ready, sandbox):
    services = sqlite_services
    sid = await buy(services, ready, quantity=10, term="P1M", cycle="monthly")
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=8))
    await _schedule(services, caller, sid, 6)
    await sandbox.admin("POST", "/clock", {"set": "2027-02-02T09:00:00Z"})  # renewed on Dec 16 and Jan 16
    await services.subscriptions.sync(caller.organisation_id)
    (january,) = await services.billing.months(caller, (2027, 1), (2027, 1))
    fees = [(line.charge_type.value, line.quantity, str(line.amount)) for line in january.lines]
    renewals = [
        e for e in await services.ledger.entries(caller.organisation_id, subscription_id=sid) if e.quantity_before
    ]
    assert [(e.effective_at, e.quantity_before, e.quantity_after) for e in renewals] == [
        (datetime(2026, 12, 16, tzinfo=UTC), 10, 6),  # at Microsoft's renewal, not when the sync saw it
        (datetime(2027, 1, 16, tzinfo=UTC), 6, 6),
    ]
    assert fees == [("cycle_fee", 6, "43.20")]  # 6 seats × 7.20 since the December renewal


async def _say(client, fake, url, text: str | None = None, value: dict[str, Any] | None = None) -> dict[str, Any]:
    before = len(fake.messages("personal-chat-alex"))
    response = await client.post("/api/messages", json=message(text, service_url=url, value=value))
    assert response.status == 202
    await fake.wait_for(before + 1, "personal-chat-alex")
    card = card_of(fake.messages("personal-chat-alex")[-1])
    assert card is not None
    assert_valid_card(card)
    return card


async def test_renewals_and_subscriptions_show_the_scheduled_change_and_withdraw_it(
    make_bot, connector, sqlite_services, ready, sandbox
):
    fake, url = connector
    sid = await buy(sqlite_services, ready, quantity=10, term="P1M", cycle="monthly")
    client = await make_bot(run_jobs=False)
    services = runtime_of(client).services
    services.subscriptions.use_clock(sandbox.clock.now)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=8))
    await _schedule(services, caller, sid, 6)

    listing = await _say(client, fake, url, "subscriptions")
    assert "Dec 15, 2026 (renews with 6 seats, as scheduled; price locked until then)" in card_text(listing)
    renewals = await _say(client, fake, url, "renewals")
    shown = card_text(renewals)
    assert "Renewals in the next 90 days" in shown and "Dec 15, 2026 — Microsoft 365 Business Basic" in shown
    assert "renews with 6 seats (now 10), as scheduled" in shown and "$43.20 per month" in shown
    after = await _say(client, fake, url, value=button(renewals, "Withdraw the scheduled change"))
    assert "The scheduled change is withdrawn" in card_text(after) and "renews with 10 seats" in card_text(after)
    customer = ready.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is None
    # …and from the subscriptions list.
    await _schedule(services, caller, sid, 7)
    listing = await _say(client, fake, url, "subscriptions")
    after = await _say(client, fake, url, value=button(listing, "Withdraw the scheduled change"))
    assert "The scheduled change is withdrawn" in card_text(after)
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is None
