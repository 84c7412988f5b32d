"""`SubscriptionChanges.order_addon` (the add-on path of the subscriptions dialog) on the shared
checkout core `services.ordering.checkout_once`: an add-on bought under a parent subscription,
exactly once per card key (cart line with the parent in `provisioningContext`, mirror + PURCHASE
ledger entry with the parent id and the price-list entry), on SQLite and PostgreSQL with the sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from services.access import Caller
from services.container import Services
from services.db import utcnow
from services.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from services.ledger import LedgerEvent
from services.models import AuditEntry, LedgerEntry, PriceEntryRow, SubscriptionRow
from services.ordering import NO_AGREEMENT_MESSAGE
from services.organisations import OrganisationView
from services.partner_center.models import Contact
from services.seed import PLAYGROUND_APPROVER
from services.subscriptions.changes import ChangeResult
from tests.conftest import Sandbox, demo_customer_then
from tests.test_ordering import BASIC, _caller, _ready, link_new_customer, sync_and_price

ARCHIVING = "CFQ7TTC0LH0J:0001"  # Exchange Online Archiving: an add-on of Business Basic


async def _order(services: Services, caller: Caller, base: str, addon: str, quantity: str, key: str) -> ChangeResult:
    return await services.subscription_changes.order_addon(caller, base, addon, quantity, key=key)


async def _base(services: Services, caller: Caller) -> str:
    """Business Basic × 5 (P1Y, monthly) bought through the order job; its subscription id."""
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "5")
    placed = await services.ordering.place_order(caller, quote, "base", notify_conversation_id=None)
    await services.jobs.run_pending()
    done = await services.jobs.get(placed.job.id)
    assert done is not None and done.status == "succeeded" and done.result is not None, done
    return str(done.result["subscription_id"])


async def _counts(services: Services) -> tuple[int, int]:
    async with services.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(SubscriptionRow))
        ledger = await session.scalar(select(func.count()).select_from(LedgerEntry))
    return int(rows or 0), int(ledger or 0)


@pytest.fixture
@demo_customer_then(sync_and_price)
async def ready_caller(services: Services, demo_customer: OrganisationView) -> Caller:  # noqa: ARG001 - needed for its effect
    """The demo organisation's admin, the organisation linked, the catalog synced and priced."""
    return await _caller(services)


async def test_an_addon_is_bought_once_under_its_parent_and_ledgered_with_it(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    base = await _base(services, caller)
    # Counts the carts created from here on (never fires).
    await sandbox.admin("POST", "/faults", {"kind": "latency", "method": "POST", "path": "*/carts", "nth": 1000})
    first = await _order(services, caller, base, ARCHIVING, "3", "card-1")
    again = await _order(services, caller, base, ARCHIVING, "3", "card-1")  # double click
    assert not first.repeated and again.repeated and "already ordered" in again.message
    assert [fault["matched"] for fault in (await sandbox.admin("GET", "/faults"))["faults"]] == [1]  # one cart

    at_microsoft = await sandbox.client.subscriptions(demo_customer.partner_center_customer_id)
    assert len(at_microsoft) == 2
    addon = next(item for item in at_microsoft if item.id == first.subscription_id)
    assert (addon.parent_subscription_id or "").lower() == base and addon.quantity == 3
    price = await services.pricing.price_for(
        caller.organisation_id, "CFQ7TTC0LH0J", "0001", "P1Y", "monthly", utcnow().date()
    )
    assert price is not None
    async with services.sessions() as session:
        row = await session.get(SubscriptionRow, first.subscription_id)
        assert row is not None and row.parent_subscription_id == base and row.quantity == 3
        assert (row.product_id, row.sku_id, row.term_duration, row.billing_cycle) == (
            "CFQ7TTC0LH0J",
            "0001",
            "P1Y",
            "monthly",
        )
        entries = list(
            await session.scalars(select(LedgerEntry).where(LedgerEntry.subscription_id == first.subscription_id))
        )
        assert len(entries) == 1
        entry = entries[0]
        assert entry.event_type == LedgerEvent.PURCHASE and entry.parent_subscription_id == base
        assert (entry.quantity_before, entry.quantity_after, entry.price_entry_id) == (0, 3, price.entry_id)
        actions = list(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.target == first.subscription_id))
        )
        assert actions == ["subscription.addon_order"]

    # Another card (another key) is another order.
    other = await _order(services, caller, base, ARCHIVING, "1", "card-2")
    assert not other.repeated and other.subscription_id != first.subscription_id
    assert len(await sandbox.client.subscriptions(demo_customer.partner_center_customer_id)) == 3


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop_after_commit", "method": "POST", "path": "*/checkout", "nth": 1},
        {"kind": "error_after_commit", "status": 500, "method": "POST", "path": "*/checkout", "nth": 1},
    ],
    ids=["lost-answer", "500-after-commit"],
)
async def test_a_lost_checkout_answer_buys_the_addon_once(
    services: Services, sandbox: Sandbox, demo_customer, fault, ready_caller: Caller
) -> None:
    caller = ready_caller
    base = await _base(services, caller)
    await sandbox.admin("POST", "/faults", fault)
    bought = await _order(services, caller, base, ARCHIVING, "2", "card-lost")
    assert [item["fired"] for item in (await sandbox.admin("GET", "/faults"))["faults"]] == [1]
    at_microsoft = await sandbox.client.subscriptions(demo_customer.partner_center_customer_id)
    assert len(at_microsoft) == 2 and bought.subscription_id in {item.id for item in at_microsoft}
    assert await _counts(services) == (2, 2)


async def test_bad_addon_orders_buy_nothing(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    base = await _base(services, caller)
    before = await _counts(services)
    outsider_org = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    outsider = Caller(0, outsider_org.id, "Fabrikam", "ann@fabrikam.example", "Ann", frozenset({"admin"}))
    approver = await _caller(services, PLAYGROUND_APPROVER)

    with pytest.raises(PermissionDenied):
        await _order(services, approver, base, ARCHIVING, "1", "k1")
    with pytest.raises(DomainError, match="no Microsoft tenant"):  # another organisation, no tenant
        await _order(services, outsider, base, ARCHIVING, "1", "k2")
    # Even with a tenant (with the agreement) of its own, another organisation's subscription is not its.
    await link_new_customer(services, "fabrikam", "fabrikamaddons", agreement=True)
    with pytest.raises(NotFound):
        await _order(services, outsider, base, ARCHIVING, "1", "k2")
    with pytest.raises(NotFound):
        await _order(services, caller, "00000000-0000-0000-0000-000000000000", ARCHIVING, "1", "k3")
    with pytest.raises(NotFound, match="does not fit"):  # not an add-on
        await _order(services, caller, base, BASIC, "1", "k4")
    with pytest.raises(NotFound, match="does not fit"):  # a base product, not an add-on of Basic
        await _order(services, caller, base, "CFQ7TTC0LDPB:0001", "1", "k5")
    for bad in ("0", "-1", "abc", "100001"):
        with pytest.raises(InvalidInput) as quantity:
            await _order(services, caller, base, ARCHIVING, bad, "k6")
        assert quantity.value.field == "quantity"
    async with services.sessions() as session:  # the reseller withdraws the add-on's prices
        rows = await session.scalars(select(PriceEntryRow).where(PriceEntryRow.product_id == "CFQ7TTC0LH0J"))
        for row in rows:
            await session.delete(row)
        await session.commit()
    with pytest.raises(DomainError) as unpriced:
        await _order(services, caller, base, ARCHIVING, "1", "k8")
    assert unpriced.value.code == "unpriced"

    assert await _counts(services) == before
    assert len(await sandbox.client.subscriptions(demo_customer.partner_center_customer_id)) == 1


@pytest.mark.usefixtures("demo_customer")
async def test_an_addon_is_priced_from_the_organisations_list(services: Services) -> None:
    caller = await _ready(services)
    base = await _base(services, caller)
    await services.pricing.import_csv(
        "contoso-special",
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        "CFQ7TTC0LH0J,0001,P1Y,monthly,USD,2.25,2026-01-01,\n",
        actor="op",
    )
    await services.pricing.assign("contoso", "contoso-special", actor="op")
    _, offers = await services.subscription_changes.addons(caller, base)
    offer = next(item for item in offers if f"{item.product_id}:{item.sku_id}" == ARCHIVING)
    assert offer.price is not None and offer.price.amount == Decimal("2.25")
    bought = await _order(services, caller, base, ARCHIVING, "2", "card-special")
    async with services.sessions() as session:
        entry = await session.scalar(select(LedgerEntry).where(LedgerEntry.subscription_id == bought.subscription_id))
    assert entry is not None and entry.price_entry_id == offer.price.entry_id


async def test_an_addon_refused_for_a_missing_agreement_says_how_to_record_it(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    """A customer whose subscriptions predate the Microsoft Customer Agreement has none on record, and
    Microsoft refuses its add-ons with 13605: the admin is told to record it, and the card may retry."""
    caller = ready_caller
    base = await _base(services, caller)
    before = await _counts(services)
    customer_id = demo_customer.partner_center_customer_id
    assert (await sandbox.admin("DELETE", f"/customers/{customer_id}/agreements"))["removed"] >= 1

    with pytest.raises(DomainError) as missing:
        await _order(services, caller, base, ARCHIVING, "1", "card-mca")
    assert missing.value.message == NO_AGREEMENT_MESSAGE
    assert await _counts(services) == before
    assert len(await sandbox.client.subscriptions(customer_id)) == 1

    await services.partner_center.accept_agreement(  # recorded meanwhile
        customer_id, Contact(first_name="Alex", last_name="Wilber", email="alexw@example.com")
    )
    bought = await _order(services, caller, base, ARCHIVING, "1", "card-mca")
    assert not bought.repeated
