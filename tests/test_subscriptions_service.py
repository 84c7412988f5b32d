"""Subscriptions: list and sync (changes elsewhere -> ledger at Microsoft's audit time, idempotent),
quantity under Microsoft's new-commerce rules with the sandbox clock, cancel, auto-renew, add-ons,
organisation scope and roles — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from services.container import Services
from services.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from services.ledger import LedgerEvent
from services.models import AuditEntry, LedgerEntry, SubscriptionRow
from services.organisations import OrganisationView
from services.partner_center.models import SubscriptionStatus
from services.subscriptions.changes import addon_price_token
from tests.conftest import Sandbox, demo_customer_then
from tests.subscription_fixtures import (
    ARCHIVING,
    BASIC_LICENCE,
    admin,
    approver,
    buy,
    prepare_catalog_and_prices,
)


@pytest.fixture
@demo_customer_then(prepare_catalog_and_prices)
async def ready(services: Services, demo_customer: OrganisationView, sandbox: Sandbox) -> OrganisationView:
    services.subscriptions.use_clock(sandbox.clock.now)
    return demo_customer


async def _ledger(services: Services, subscription_id: str) -> list[tuple[str, int, int]]:
    return [
        (e.event_type.value, e.quantity_before, e.quantity_after)
        for e in await services.ledger.entries((await admin(services)).organisation_id, subscription_id=subscription_id)
    ]


@pytest.mark.usefixtures("sandbox")
async def test_list_syncs_bought_subscriptions_with_price_consumed_and_sharing(services, ready):
    first = await buy(services, ready, quantity=10)
    second = await buy(services, ready, quantity=2, term="P1M")
    page = await services.subscriptions.page(await approver(services))
    assert page.total == 2
    rows = {item.id: item for item in page.items}
    one = rows[first]
    assert one.quantity == 10 and one.status == "active" and one.term_duration == "P1Y"
    assert (one.unit_price, one.currency) == (Decimal("6.00"), "USD") and one.licence_sku_id == BASIC_LICENCE
    assert one.consumed == 0 and one.shared_with == 1  # both pool into Business Basic
    # The offer id a person reads is the product's, without Microsoft's rotating availability id.
    assert one.renewal_date is not None and one.offer_id == "CFQ7TTC0LH18:0001"
    assert await _ledger(services, first) == [("purchase", 0, 10)]
    assert await _ledger(services, second) == [("purchase", 0, 2)]


async def test_changes_made_elsewhere_are_ledgered_once_at_microsofts_time(services, ready, sandbox):
    sid = await buy(services, ready, quantity=5)
    await services.subscriptions.sync((await admin(services)).organisation_id)
    sandbox.clock.advance(timedelta(hours=2))
    customer = ready.partner_center_customer_id
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 8}))
    changed_at = sandbox.clock.now()
    sandbox.clock.advance(timedelta(hours=1))
    org_id = (await admin(services)).organisation_id
    await services.subscriptions.sync(org_id)
    await services.subscriptions.sync(org_id)  # idempotent
    entries = await services.ledger.entries(org_id, subscription_id=sid)
    assert [(e.event_type, e.quantity_before, e.quantity_after) for e in entries] == [
        (LedgerEvent.PURCHASE, 0, 5),
        (LedgerEvent.QUANTITY_INCREASE, 5, 8),
    ]
    assert entries[1].effective_at == changed_at and entries[1].source_key.startswith("audit:")
    view = await services.subscriptions.get(await admin(services), sid)
    assert view.quantity == 8


async def test_quantity_rules_before_and_after_the_seats_window(services, ready, sandbox):
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    changes = services.subscription_changes
    with pytest.raises(InvalidInput) as bad:
        await changes.plan_quantity(caller, sid, "ten")
    assert bad.value.field == "quantity"
    with pytest.raises(InvalidInput, match="between 1 and 300"):
        await changes.plan_quantity(caller, sid, "301")
    # Inside the window: a decrease is a refund now.
    plan = await changes.plan_quantity(caller, sid, "7")
    assert plan.kind == "decrease" and plan.charge_now is not None and plan.charge_now.amount < 0
    assert plan.recurring_new == Decimal("42.00") and plan.recurring_now == Decimal("60.00")
    # 16 Nov: 15 of 30 days left in the month -> 3 seats x 6.00 x 15/30 = 9.00 refunded.
    assert plan.charge_now.amount == Decimal("-9.00") and (plan.charge_now.days, plan.charge_now.period_days) == (
        15,
        30,
    )
    result = await changes.change_quantity(caller, sid, "7", etag=plan.etag, key="k-dec")
    assert "now has 7 seats" in result.message
    again = await changes.change_quantity(caller, sid, "7", etag=plan.etag, key="k-dec")
    assert again.repeated
    # Add seats any time: charged pro rata now.
    plan = await changes.plan_quantity(caller, sid, "12")
    assert plan.kind == "increase" and plan.charge_now.amount == Decimal("15.00")
    await changes.change_quantity(caller, sid, "12", etag=plan.etag, key="k-inc")
    # After 8 days only the seats added later... none left: the window has passed for all.
    sandbox.clock.advance(timedelta(days=8))
    plan = await changes.plan_quantity(caller, sid, "9")
    assert plan.kind == "schedule" and "past their 7-day window" in plan.explanation
    with pytest.raises(DomainError):
        await changes.change_quantity(caller, sid, "9", etag=plan.etag, key="k-late")
    assert await _ledger(services, sid) == [
        ("purchase", 0, 10),
        ("quantity_decrease", 10, 7),
        ("quantity_increase", 7, 12),
    ]
    async with services.sessions() as session:
        audited = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "subscription.quantity").order_by(AuditEntry.id)
            )
        )
    assert [(a.actor, a.target, a.before["quantity"], a.after["quantity"]) for a in audited] == [
        ("alexw@example.com", sid, 10, 7),
        ("alexw@example.com", sid, 7, 12),
    ]


async def test_removal_limited_to_seats_in_their_own_window(services, ready, sandbox):
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=5))
    plan = await services.subscription_changes.plan_quantity(caller, sid, "14")
    await services.subscription_changes.change_quantity(caller, sid, "14", etag=plan.etag, key="add4")
    sandbox.clock.advance(timedelta(days=3))  # the first 10 seats are past their window, the 4 are not
    plan = await services.subscription_changes.plan_quantity(caller, sid, "8")
    assert plan.kind == "schedule"
    assert "you can remove up to 4 seats until Nov 28, 2026 (down to 10)." in plan.explanation
    ok = await services.subscription_changes.plan_quantity(caller, sid, "10")
    assert ok.kind == "decrease"


async def test_the_list_stops_offering_seats_whose_window_ended_since_it_was_read(services, ready, sandbox):
    """The copy says "removable until D"; once Microsoft's clock passes D, before any re-read, the list
    (and the quantity card built from it) no longer offers those seats."""
    await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    (fresh,) = (await services.subscriptions.page(caller)).items
    assert fresh.refundable == 10 and [seats for seats, _ in fresh.refundable_batches] == [10]
    sandbox.clock.advance(timedelta(days=8))
    (later,) = (await services.subscriptions.page(caller)).items  # the copy is not re-read
    assert later.refundable == 0 and later.refundable_batches == ()


async def test_scheduled_lower_quantity_applies_at_renewal(services, ready, sandbox):
    sid = await buy(services, ready, quantity=10, term="P1M")
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(days=8))
    plan = await services.subscription_changes.plan_quantity(caller, sid, "6")
    assert plan.kind == "schedule"
    result = await services.subscription_changes.schedule_quantity(caller, sid, "6", etag=plan.etag, key="s1")
    assert "will renew with 6 seats" in result.message
    view = await services.subscriptions.get(caller, sid)
    assert view.quantity == 10 and view.scheduled_quantity == 6
    await sandbox.admin("POST", "/clock", {"advance": "P1M"})
    await services.subscriptions.sync(caller.organisation_id)
    view = await services.subscriptions.get(caller, sid)
    assert view.quantity == 6 and view.scheduled_quantity is None
    assert (await _ledger(services, sid))[-1] == ("renewal", 10, 6)


async def test_never_below_assigned_and_nothing_while_suspended(services, ready, sandbox):
    sid = await buy(services, ready, quantity=3)
    caller = await admin(services)
    customer = ready.partner_center_customer_id
    for name in ("a", "b"):
        user = await sandbox.admin(
            "POST",
            f"/customers/{customer}/users",
            {"userPrincipalName": f"{name}@contosodemo.onmicrosoft.com", "displayName": name, "usageLocation": "US"},
        )
        await sandbox.admin(
            "POST", f"/customers/{customer}/users/{user['id']}/licenses", {"assign": [BASIC_LICENCE], "remove": []}
        )
    await services.subscriptions.sync(caller.organisation_id)
    assigned = "2 licences of Microsoft 365 Business Basic are assigned to users, .* Choose at least 2 seats,"
    with pytest.raises(InvalidInput, match=assigned):
        await services.subscription_changes.plan_quantity(caller, sid, "1")
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(
        customer, current.model_copy(update={"status": SubscriptionStatus.SUSPENDED})
    )
    await services.subscriptions.sync(caller.organisation_id)
    with pytest.raises(DomainError, match="suspended"):
        await services.subscription_changes.plan_quantity(caller, sid, "5")


@pytest.mark.usefixtures("sandbox")
async def test_stale_card_is_reloaded_and_asked_again(services, ready):
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    plan = await services.subscription_changes.plan_quantity(caller, sid, "11")
    customer = ready.partner_center_customer_id
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 13}))
    with pytest.raises(DomainError, match="changed meanwhile"):
        await services.subscription_changes.change_quantity(caller, sid, "11", etag=plan.etag, key="stale")
    assert (await services.subscriptions.get(caller, sid)).quantity == 13  # reloaded
    # the same card's key may be used again once reloaded
    plan = await services.subscription_changes.plan_quantity(caller, sid, "11")
    await services.subscription_changes.change_quantity(caller, sid, "11", etag=plan.etag, key="stale")


async def test_cancel_inside_the_window_with_refund_and_not_after(services, ready, sandbox):
    first = await buy(services, ready, quantity=4)
    late = await buy(services, ready, quantity=2, term="P1M")
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    plan = await services.subscription_changes.plan_cancel(caller, first)
    assert plan.refund is not None and plan.refund.amount == Decimal("-12.00")  # 4 x 6.00 x 15/30
    await services.subscription_changes.cancel(caller, first, etag=plan.etag, key="c1")
    assert (await services.subscriptions.get(caller, first)).status == "deleted"
    assert (await _ledger(services, first))[-1] == ("cancellation", 4, 0)
    sandbox.clock.advance(timedelta(days=8))
    with pytest.raises(DomainError, match="cancellation window .* ended"):
        await services.subscription_changes.plan_cancel(caller, late)


@pytest.mark.usefixtures("sandbox")
async def test_auto_renew_off_and_on_shows_the_renewal_date(services, ready):
    sid = await buy(services, ready)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    off = await services.subscription_changes.set_auto_renew(caller, sid, False, key="ar1")
    assert "Auto-renew is off" in off.message and "ends on" in off.message
    assert not (await services.subscriptions.get(caller, sid)).auto_renew
    on = await services.subscription_changes.set_auto_renew(caller, sid, True, key="ar2")
    assert "renews on" in on.message


@pytest.mark.usefixtures("sandbox")
async def test_addon_is_ordered_once_under_its_base(services, ready):
    base = await buy(services, ready, quantity=5)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    _, offers = await services.subscription_changes.addons(caller, base)
    archiving = next(o for o in offers if o.product_id == ARCHIVING)
    assert archiving.price is not None and archiving.price.amount == Decimal("3.00")
    with pytest.raises(NotFound):
        await services.subscription_changes.order_addon(caller, base, "CFQ7TTC0LH18:0001", "1", key="a0")
    first = await services.subscription_changes.order_addon(caller, base, f"{ARCHIVING}:0001", "2", key="a1")
    again = await services.subscription_changes.order_addon(caller, base, f"{ARCHIVING}:0001", "2", key="a1")
    assert again.repeated
    page = await services.subscriptions.page(caller, refresh=True)
    assert page.total == 1 and [a.id for a in page.items[0].addons] == [first.subscription_id]
    entries = await services.ledger.entries(caller.organisation_id, subscription_id=first.subscription_id)
    assert [(e.event_type, e.parent_subscription_id) for e in entries] == [(LedgerEvent.PURCHASE, base)]


@pytest.mark.usefixtures("sandbox")
async def test_an_addon_is_not_ordered_at_another_price_than_the_card_showed(services, ready):
    base = await buy(services, ready, quantity=5)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    _, offers = await services.subscription_changes.addons(caller, base)
    archiving = next(o for o in offers if o.product_id == ARCHIVING)
    shown = addon_price_token(archiving)
    stale = shown.replace("3.00", "2.50")
    now_costs = r"it is now \$3\.00 per licence per month\. Check it"
    with pytest.raises(InvalidInput, match=rf"price of .* changed since the card was shown: {now_costs}") as changed:
        await services.subscription_changes.order_addon(
            caller, base, f"{ARCHIVING}:0001", "2", key="p1", shown_price=stale
        )
    assert changed.value.field == "addon"
    customer = ready.partner_center_customer_id
    assert await services.partner_center.subscription_addons(customer, base) == []
    done = await services.subscription_changes.order_addon(
        caller, base, f"{ARCHIVING}:0001", "2", key="p1", shown_price=shown
    )
    assert not done.repeated  # the refused attempt did not use up the card


async def test_an_addon_order_whose_answer_was_lost_is_never_bought_twice(services, ready, sandbox):
    """The add-on shares the ordering checkout core: one cart per card key. Microsoft bought it but
    the answer was lost (and could not be recovered at once); the same card, tried again, checks out
    the same cart and finds the order instead of buying a second add-on."""
    base = await buy(services, ready, quantity=5)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    customer = ready.partner_center_customer_id
    await sandbox.admin("POST", "/faults", {"kind": "drop_after_commit", "method": "POST", "path": "*/checkout"})
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "method": "GET", "path": "*/carts/*", "repeat": 50}
    )
    with pytest.raises(DomainError):
        await services.subscription_changes.order_addon(caller, base, f"{ARCHIVING}:0001", "2", key="lost")
    await sandbox.admin("DELETE", "/faults")
    addons = [s for s in await services.partner_center.subscriptions(customer) if s.parent_subscription_id]
    assert len(addons) == 1  # Microsoft did buy it
    result = await services.subscription_changes.order_addon(caller, base, f"{ARCHIVING}:0001", "2", key="lost")
    addons = [s for s in await services.partner_center.subscriptions(customer) if s.parent_subscription_id]
    assert len(addons) == 1 and result.subscription_id == addons[0].id.lower()
    entries = await services.ledger.entries(caller.organisation_id, subscription_id=result.subscription_id)
    assert [(e.event_type, e.quantity_after) for e in entries] == [(LedgerEvent.PURCHASE, 2)]


@pytest.mark.usefixtures("sandbox")
async def test_forged_ids_and_roles_are_refused(services, ready):
    sid = await buy(services, ready)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="t")
    async with services.sessions() as session:
        row = await session.get(SubscriptionRow, sid)
        session.expunge(row)
    async with services.sessions.begin() as session:
        forged = SubscriptionRow(
            **{
                c: getattr(row, c)
                for c in (
                    "offer_id",
                    "product_id",
                    "sku_id",
                    "name",
                    "quantity",
                    "status",
                    "term_duration",
                    "billing_cycle",
                    "customer_id",
                )
            },
            id="forged-1",
            organisation_id=other.id,
        )
        session.add(forged)
    for call in (
        services.subscription_changes.plan_quantity(caller, "forged-1", "3"),
        services.subscription_changes.plan_cancel(caller, "forged-1"),
        services.subscriptions.get(caller, "forged-1"),
        services.subscription_changes.reactivate(caller, "forged-1", key="x"),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(PermissionDenied):
        await services.subscription_changes.plan_quantity(await approver(services), sid, "3")
    async with services.sessions() as session:
        assert await session.scalar(select(AuditEntry.id).where(AuditEntry.action == "subscription.quantity")) is None
        assert len(list(await session.scalars(select(LedgerEntry)))) == 1


async def test_the_bots_own_changes_are_never_ledgered_twice_by_later_syncs(services, ready, sandbox):
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    sandbox.clock.advance(timedelta(minutes=5))
    plan = await services.subscription_changes.plan_quantity(caller, sid, "12")
    await services.subscription_changes.change_quantity(caller, sid, "12", etag=plan.etag, key="mine")
    sandbox.clock.advance(timedelta(minutes=5))
    customer = ready.partner_center_customer_id
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 10}))
    for _ in range(3):
        sandbox.clock.advance(timedelta(minutes=5))
        await services.subscriptions.sync(caller.organisation_id)
    assert await _ledger(services, sid) == [
        ("purchase", 0, 10),
        ("quantity_increase", 10, 12),
        ("quantity_decrease", 12, 10),
    ]


async def test_a_412_from_microsoft_reloads_and_asks_again(services, ready, sandbox):
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    plan = await services.subscription_changes.plan_quantity(caller, sid, "11")
    # The bot's PATCH is held back; meanwhile someone else changes the subscription.
    fault = await sandbox.admin(
        "POST",
        "/faults",
        {"kind": "latency", "latencyMs": 1500, "method": "PATCH", "path": "/v1/customers/*/subscriptions/*", "nth": 1},
    )
    change = asyncio.create_task(
        services.subscription_changes.change_quantity(caller, sid, "11", etag=plan.etag, key="k412")
    )
    for _ in range(200):
        faults = await sandbox.admin("GET", "/faults")
        if any(f.get("matched") for f in (faults.get("faults", faults) if isinstance(faults, dict) else faults)):
            break
        await asyncio.sleep(0.01)
    customer = ready.partner_center_customer_id
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 14}))
    with pytest.raises(DomainError, match="changed at Microsoft a moment ago"):
        await change
    assert (await services.subscriptions.get(caller, sid)).quantity == 14  # reloaded
    assert [e[0] for e in await _ledger(services, sid)] == ["purchase", "quantity_increase"]  # only the other change
    del fault


@pytest.mark.usefixtures("sandbox")
async def test_the_list_is_paged(services, ready):
    for _ in range(6):
        await buy(services, ready, quantity=1, term="P1M")
    caller = await approver(services)
    first = await services.subscriptions.page(caller)
    second = await services.subscriptions.page(caller, page=1)
    beyond = await services.subscriptions.page(caller, page=9)
    assert (first.total, first.pages, len(first.items), len(second.items)) == (6, 2, 5, 1)
    assert beyond.page == 1 and not first.can_manage and not first.can_request_suspension
    assert {i.id for i in first.items}.isdisjoint({i.id for i in second.items})


async def test_a_sync_after_the_clock_moved_a_year_on_still_reads_microsofts_audit_records(
    services, ready, sandbox, caplog
):
    """Microsoft keeps 90 days of audit records and refuses a start before that: a sync whose last look
    was a year ago (the sandbox's clock moved on with `cspbot sandbox clock --advance 1y`) reads from
    the oldest kept record, rather than failing on every sync from then on."""
    sid = await buy(services, ready, quantity=10)
    caller = await admin(services)
    await services.subscriptions.sync(caller.organisation_id)
    await sandbox.admin("POST", "/clock", {"advance": "P1Y3D"})
    await services.subscriptions.sync(caller.organisation_id)
    await services.subscriptions.sync(caller.organisation_id)
    assert "audit records unavailable" not in caplog.text
    entries = await services.ledger.entries(caller.organisation_id, subscription_id=sid)
    assert [e.event_type.value for e in entries] == ["purchase", "renewal"]
    assert entries[-1].source_key is not None and entries[-1].source_key.startswith("audit:")


@pytest.mark.usefixtures("sandbox")
async def test_a_refreshing_list_asks_microsoft_for_the_licence_counts_while_it_syncs(services, ready, monkeypatch):
    """One round trip to Microsoft less in a row: the counts do not wait for the sync."""
    await buy(services, ready, quantity=3)
    client = services.subscriptions._client
    counting_started = asyncio.Event()
    real_subscriptions, real_skus = client.subscriptions, client.subscribed_skus

    async def subscriptions(customer_id):
        await asyncio.wait_for(counting_started.wait(), 5)  # waited in vain if the counts came after the sync
        return await real_subscriptions(customer_id)

    async def subscribed_skus(customer_id):
        counting_started.set()
        return await real_skus(customer_id)

    monkeypatch.setattr(client, "subscriptions", subscriptions)
    monkeypatch.setattr(client, "subscribed_skus", subscribed_skus)
    page = await services.subscriptions.page(await admin(services), refresh=True)
    assert page.problem == "" and page.total == 1
    assert page.items[0].consumed == 0
