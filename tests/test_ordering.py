"""Ordering a subscription through the services, on SQLite and PostgreSQL with the sandbox: what
is offered, quotes and their bad input, exactly one order per order key, the mirror and ledger
written only after Microsoft accepted, Microsoft's refusals and faults."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from services.access import Caller, ChannelIdentity
from services.container import Services
from services.db import utcnow
from services.errors import DomainError, InvalidInput, PermissionDenied
from services.ledger import LedgerEvent
from services.models import AuditEntry, Job, LedgerEntry, SubscriptionRow, TenantServiceRow
from services.ordering import NO_AGREEMENT_MESSAGE, NO_TENANT_MESSAGE, PriceChanged, Quote
from services.organisations import OrganisationView
from services.partner_center.client import MICROSOFT_CUSTOMER_AGREEMENT
from services.partner_center.models import Address, Contact, Customer, CustomerBillingProfile, CustomerCompanyProfile
from services.pricing import GLOBAL_LIST
from services.seed import DEMO_SLUG, PLAYGROUND_ADMIN, PLAYGROUND_APPROVER, PLAYGROUND_TENANT_ID, seed_demo_organisation
from tests.conftest import SANDBOX_START, Sandbox, demo_customer_then

BASIC = "CFQ7TTC0LH18:0001"
DAY = SANDBOX_START.date()


async def _caller(services: Services, who: tuple[str, str, str, str] = PLAYGROUND_ADMIN) -> Caller:
    await seed_demo_organisation(services.organisations)
    _, name, user_id, object_id = who
    caller = await services.access.resolve(ChannelIdentity(PLAYGROUND_TENANT_ID, object_id, user_id, name))
    assert caller is not None
    return caller


async def sync_and_price(services: Services) -> None:
    await services.catalog.sync()
    await services.pricing.generate(GLOBAL_LIST, Decimal(15), actor="op")


async def _ready(services: Services) -> Caller:
    await sync_and_price(services)
    return await _caller(services)


@pytest.fixture
@demo_customer_then(sync_and_price)
async def ready_caller(services: Services, demo_customer: OrganisationView) -> Caller:  # noqa: ARG001 - needed for its effect
    """The demo organisation's admin, the organisation linked, the catalog synced and priced (`_ready`)."""
    return await _caller(services)


async def link_without_agreement(services: Services) -> str:
    """The demo organisation linked to a new sandbox customer whose Microsoft Customer Agreement
    acceptance Microsoft does not have (a tenant the operator linked by hand). Returns its id."""
    await seed_demo_organisation(services.organisations)
    return await link_new_customer(services, DEMO_SLUG, "contosonomca", agreement=False)


async def link_new_customer(services: Services, slug: str, domain_prefix: str, *, agreement: bool) -> str:
    """Organisation `slug` linked to a new sandbox customer (with the MCA attested or not)."""
    demo = await services.organisations.get(DEMO_SLUG)  # its address is valid for the sandbox
    org = await services.organisations.get(slug)
    customer = await services.partner_center.create_customer(
        Customer(
            company_profile=CustomerCompanyProfile(domain=f"{domain_prefix}.onmicrosoft.com"),
            billing_profile=CustomerBillingProfile(
                email=demo.contact_email,
                culture=demo.culture,
                language=demo.language,
                company_name=org.name,
                default_address=Address(
                    country=demo.country,
                    city=demo.city,
                    state=demo.state,
                    address_line1=demo.address_line1,
                    postal_code=demo.postal_code,
                    first_name=demo.contact_first_name,
                    last_name=demo.contact_last_name,
                    phone_number=demo.contact_phone.replace(" ", "").lstrip("+"),
                ),
            ),
        )
    )
    assert customer.id
    if agreement:
        await services.partner_center.accept_agreement(
            customer.id, Contact(first_name="Alex", last_name="Wilber", email=demo.contact_email)
        )
    await services.organisations.set_partner_center_customer(org.id, customer.id, actor="tests")
    return customer.id


async def _subscriptions(sandbox: Sandbox, customer_id: str) -> list:
    return await sandbox.client.subscriptions(customer_id)


async def test_only_priced_base_products_are_offered(services: Services) -> None:
    await services.catalog.sync()
    caller = await _caller(services)
    assert (await services.ordering.storefront(caller, on=DAY)).products == ()  # nothing priced yet
    await services.pricing.import_csv(
        GLOBAL_LIST,
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        "CFQ7TTC0LH18,0001,P1Y,monthly,USD,6.00,2026-01-01,\n"
        "CFQ7TTC0LH0J,0001,P1Y,monthly,USD,3.00,2026-01-01,\n",  # an add-on: bought for a subscription
        actor="op",
    )
    store = await services.ordering.storefront(caller, on=DAY)
    assert [item.key for item in store.products] == [BASIC]
    assert store.categories() == ["Business"] and store.groups("Business") == ["Microsoft 365"]
    assert [term.key for term in store.products[0].terms] == ["P1Y:monthly"]
    missing = await services.ordering.alert_unpriced(on=DAY)
    assert any(item.product_id == "CFQ7TTC0LDPB" for item in missing)
    assert "unpriced_products" in {alert.code for alert in await services.alerts.list()}


def test_a_quote_totals_as_the_bill_will_in_the_currencys_minor_unit() -> None:
    """A price below the minor unit: a billing period's fee is rounded once, as its bill line is, and
    the term is that many periods of it."""
    quote = Quote("CFQ7TTC0LH18", "0001", "Basic", "P1Y", "monthly", 3, "USD", Decimal("5.9125"), 1, 12)
    assert (quote.total_per_period, quote.total_for_term) == (Decimal("17.74"), Decimal("212.88"))  # 17.7375
    yen = Quote("CFQ7TTC0LH18", "0001", "Basic", "P1Y", "annual", 3, "JPY", Decimal("1360.5"), 1, 1)
    assert (yen.total_per_period, yen.total_for_term) == (Decimal("4082"), Decimal("4082"))  # 4081.5


async def test_quotes_refuse_bad_quantities_and_forged_choices(services: Services) -> None:
    caller = await _ready(services)
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "5", on=DAY)
    assert (quote.unit_price, quote.total_per_period, quote.currency, quote.periods) == (
        Decimal("5.52"),
        Decimal("27.60"),
        "USD",
        12,
    )
    assert quote.total_for_term == Decimal("331.20") and quote.billing_cycle == "monthly"
    triennial = await services.ordering.quote(caller, BASIC, "P3Y:triennial", "1", on=DAY)
    # 216.00 ERP for three years, cost 172.80, + 15 %: one payment per term.
    assert (triennial.unit_price, triennial.periods, triennial.billing_cycle) == (Decimal("198.72"), 1, "triennial")
    for bad, words in (("0", "between 1 and 300"), ("-2", "between 1 and 300"), ("301", "between 1 and 300"),
                       ("abc", "whole number"), ("2.5", "whole number"), ("", "how many")):  # fmt: skip
        with pytest.raises(InvalidInput, match=words) as error:
            await services.ordering.quote(caller, BASIC, "P1Y:monthly", bad, on=DAY)
        assert error.value.field == "quantity"
    with pytest.raises(InvalidInput, match="not offered") as forged:
        await services.ordering.quote(caller, "CFQ7TTC0LH0J:0001", "P1Y:monthly", "1", on=DAY)  # add-on
    assert forged.value.field == "product"
    with pytest.raises(InvalidInput, match="not offered"):
        await services.ordering.quote(caller, "CFQ7TTC0NOPE:0001", "P1Y:monthly", "1", on=DAY)
    with pytest.raises(InvalidInput, match="term and billing") as plan:
        await services.ordering.quote(caller, BASIC, "P1M:annual", "1", on=DAY)
    assert plan.value.field == "plan"


async def test_only_admins_may_browse_or_order(services: Services) -> None:
    await _ready(services)
    approver = await _caller(services, PLAYGROUND_APPROVER)
    with pytest.raises(PermissionDenied):
        await services.ordering.storefront(approver)
    fake_quote = Quote(*BASIC.split(":"), "x", "P1Y", "monthly", 1, "USD", Decimal(1), 1, 12)  # type: ignore[call-arg]
    with pytest.raises(PermissionDenied):
        await services.ordering.place_order(approver, fake_quote, "k", notify_conversation_id=None)


async def test_without_a_tenant_nothing_is_ordered(services: Services) -> None:
    caller = await _ready(services)
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "1", on=DAY)
    with pytest.raises(DomainError) as error:
        await services.ordering.place_order(caller, quote, "k1", notify_conversation_id=None)
    assert error.value.message == NO_TENANT_MESSAGE
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_without_the_customer_agreement_nothing_is_ordered(services: Services, sandbox: Sandbox) -> None:
    """SPEC §1.4/§2, issue 6 point 5: Microsoft requires the MCA acceptance before anything can be
    bought; without it the caller is sent to "add tenant" and no job, cart or order is made."""
    caller = await _ready(services)
    customer_id = await link_without_agreement(services)
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "1")
    with pytest.raises(DomainError) as error:
        await services.ordering.customer_id(caller)
    assert (error.value.code, error.value.message) == ("no_agreement", NO_AGREEMENT_MESSAGE)
    with pytest.raises(DomainError, match="Customer Agreement"):
        await services.ordering.place_order(caller, quote, "k-mca", notify_conversation_id=None)
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    assert await _subscriptions(sandbox, customer_id) == []

    # Once Microsoft has the acceptance (recorded elsewhere, e.g. in Partner Center) it may buy.
    await sandbox.client.accept_agreement(customer_id, Contact(first_name="Alex", last_name="W", email="a@b.example"))
    assert await services.ordering.customer_id(caller) == customer_id
    placed = await services.ordering.place_order(caller, quote, "k-mca", notify_conversation_id=None)
    assert placed.created


async def test_an_acceptance_recorded_in_my_services_is_not_asked_of_microsoft_again(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    customer_id = demo_customer.partner_center_customer_id
    assert await sandbox.client.agreements(customer_id, agreement_type=MICROSOFT_CUSTOMER_AGREEMENT)
    async with services.sessions() as session:
        session.add(
            TenantServiceRow(
                organisation_id=caller.organisation_id,
                status="active",
                origin="linked",
                customer_id=customer_id.lower(),
                mca_name="Alex Wilber",
                mca_accepted_at=utcnow(),
            )
        )
        await session.commit()
    # Microsoft cannot be asked now: the recorded acceptance is enough.
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "method": "GET", "path": "*/agreements", "repeat": 5}
    )
    assert await services.ordering.customer_id(caller) == customer_id
    assert [fault["fired"] for fault in (await sandbox.admin("GET", "/faults"))["faults"]] == [0]


async def test_one_order_per_key_then_mirror_ledger_and_audit(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "5")
    key = uuid.uuid4().hex
    first = await services.ordering.place_order(caller, quote, key, notify_conversation_id=None)
    again = await services.ordering.place_order(caller, quote, key, notify_conversation_id=None)
    assert first.created and not again.created and again.job.id == first.job.id
    assert await services.jobs.run_pending() == 1
    done = await services.jobs.get(first.job.id)
    assert done is not None and done.status == "succeeded", done
    after = await services.ordering.place_order(caller, quote, key, notify_conversation_id=None)
    assert not after.created and after.job.result == done.result
    assert await services.jobs.run_pending() == 0

    bought = await _subscriptions(sandbox, demo_customer.partner_center_customer_id)
    assert len(bought) == 1 and bought[0].quantity == 5
    sid = bought[0].id
    assert done.result is not None and done.result["subscription_id"] == sid
    assert "costs now start under Microsoft's billing rules" in done.result["message"]
    async with services.sessions() as session:
        row = await session.get(SubscriptionRow, sid)
        assert row is not None and row.organisation_id == caller.organisation_id
        assert (row.product_id, row.sku_id, row.quantity, row.term_duration, row.billing_cycle) == (
            "CFQ7TTC0LH18",
            "0001",
            5,
            "P1Y",
            "monthly",
        )
        assert row.licence_sku_id == "3b555118-da6a-4418-894f-7df1e2096870"
        ledger = list(await session.scalars(select(LedgerEntry)))
        assert len(ledger) == 1
        entry = ledger[0]
        assert entry.event_type == LedgerEvent.PURCHASE and (entry.quantity_before, entry.quantity_after) == (0, 5)
        assert entry.price_entry_id == quote.price_entry_id and entry.actor == caller.actor
        actions = list(await session.scalars(select(AuditEntry.action).where(AuditEntry.target == sid)))
        assert actions == ["subscription.purchase"]


@pytest.mark.usefixtures("demo_customer")
async def test_a_changed_price_must_be_confirmed_again(services: Services) -> None:
    caller = await _ready(services)
    shown = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "2")
    await services.pricing.import_csv(
        GLOBAL_LIST,
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        f"CFQ7TTC0LH18,0001,P1Y,monthly,USD,9.99,{services.clock.today().isoformat()},\n",
        actor="op",
    )
    with pytest.raises(PriceChanged) as changed:
        await services.ordering.place_order(caller, shown, "k-price", notify_conversation_id=None)
    assert changed.value.quote.unit_price == Decimal("9.99")
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "error", "status": 503, "method": "POST", "path": "*/checkout", "nth": 1},
        {"kind": "throttle", "method": "POST", "path": "*/checkout", "nth": 1, "retryAfter": 1},
        {"kind": "error_after_commit", "status": 500, "method": "POST", "path": "*/checkout", "nth": 1},
        {"kind": "drop_after_commit", "method": "POST", "path": "*/checkout", "nth": 1},
    ],
    ids=["503", "429", "500-after-commit", "lost-answer"],
)
async def test_faults_at_checkout_never_buy_twice(
    services: Services, sandbox: Sandbox, demo_customer, fault, ready_caller: Caller
) -> None:
    caller = ready_caller
    await sandbox.admin("POST", "/faults", fault)
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "3")
    placed = await services.ordering.place_order(caller, quote, "k-fault", notify_conversation_id=None)
    await services.jobs.run_pending()
    done = await services.jobs.get(placed.job.id)
    assert done is not None and done.status == "succeeded", done
    assert len(await _subscriptions(sandbox, demo_customer.partner_center_customer_id)) == 1
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert [item["fired"] for item in (await sandbox.admin("GET", "/faults"))["faults"]] == [1]


async def test_a_job_rerun_after_a_crash_past_checkout_buys_nothing_more(
    services: Services, sandbox: Sandbox, demo_customer, monkeypatch: pytest.MonkeyPatch, ready_caller: Caller
) -> None:
    """The process dies after Microsoft bought, before the mirror/ledger were written: the job runs
    again, checks out the cart the first run created (claimed under the order key) with the same
    request id, finds the order already placed, and records it once."""
    caller = ready_caller
    record = services.ordering._record_purchase
    crashes = []

    async def crash_once(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not crashes:
            crashes.append(1)
            raise RuntimeError("process died")
        return await record(*args, **kwargs)

    monkeypatch.setattr(services.ordering, "_record_purchase", crash_once)
    placed = await services.ordering.place_order(
        caller, await services.ordering.quote(caller, BASIC, "P1Y:monthly", "2"), "k-crash", notify_conversation_id=None
    )
    await services.jobs.run_pending()
    assert len(await _subscriptions(sandbox, demo_customer.partner_center_customer_id)) == 1
    async with services.sessions() as session:
        job = await session.get(Job, placed.job.id)
        assert job is not None and job.status == "pending" and job.attempts == 1
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        job.run_after = utcnow()  # the backoff is over
        await session.commit()
    assert await services.jobs.run_pending() == 1
    done = await services.jobs.get(placed.job.id)
    assert done is not None and done.status == "succeeded" and done.attempts == 2, done
    bought = await _subscriptions(sandbox, demo_customer.partner_center_customer_id)
    assert len(bought) == 1 and done.result is not None and done.result["subscription_id"] == bought[0].id
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SubscriptionRow)) == 1
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


async def test_a_refused_order_changes_nothing_here(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    # 300 is Business Basic's maximum per customer: a second order of 300 breaks Microsoft's pooled limit.
    first = await services.ordering.place_order(
        caller, await services.ordering.quote(caller, BASIC, "P1Y:monthly", "300"), "k-a", notify_conversation_id=None
    )
    second = await services.ordering.place_order(
        caller, await services.ordering.quote(caller, BASIC, "P1Y:monthly", "1"), "k-b", notify_conversation_id=None
    )
    await services.jobs.run_pending()
    ok, refused = await services.jobs.get(first.job.id), await services.jobs.get(second.job.id)
    assert ok is not None and ok.status == "succeeded"
    assert refused is not None and refused.status == "failed"
    assert "over Microsoft's limit" in refused.error_message  # 403 800088 at cart creation
    assert len(await _subscriptions(sandbox, demo_customer.partner_center_customer_id)) == 1
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SubscriptionRow)) == 1
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


async def test_a_customer_specific_price_is_offered_to_its_organisation_only(services: Services) -> None:
    await services.catalog.sync()
    contoso = await _caller(services)
    fabrikam = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    outsider = Caller(0, fabrikam.id, "Fabrikam", "ann@fabrikam.example", "Ann", frozenset({"admin"}))
    await services.pricing.import_csv(
        "contoso-only",
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        "CFQ7TTC0LDPB,0001,P1Y,monthly,USD,11.00,2026-01-01,\n",
        actor="op",
    )
    await services.pricing.assign("contoso", "contoso-only", actor="op")
    assert [item.key for item in (await services.ordering.storefront(contoso, on=DAY)).products] == [
        "CFQ7TTC0LDPB:0001"
    ]
    assert (await services.ordering.storefront(outsider, on=DAY)).products == ()
    with pytest.raises(InvalidInput, match="not offered"):
        await services.ordering.quote(outsider, "CFQ7TTC0LDPB:0001", "P1Y:monthly", "1", on=DAY)


async def test_an_unreadable_new_subscription_is_still_recorded_as_bought(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    await sandbox.admin(
        "POST",
        "/faults",
        {"kind": "error", "status": 503, "method": "GET", "path": "/v1/customers/*/subscriptions/*", "repeat": 50},
    )
    placed = await services.ordering.place_order(
        caller, await services.ordering.quote(caller, BASIC, "P1Y:monthly", "4"), "k-read", notify_conversation_id=None
    )
    await services.jobs.run_pending()
    done = await services.jobs.get(placed.job.id)
    assert done is not None and done.status == "succeeded", done
    assert (await sandbox.admin("GET", "/faults"))["faults"][0]["fired"] > 0
    await sandbox.admin("DELETE", "/faults")
    bought = await _subscriptions(sandbox, demo_customer.partner_center_customer_id)
    async with services.sessions() as session:
        row = await session.get(SubscriptionRow, bought[0].id)
        assert row is not None and row.quantity == 4
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


async def test_order_errors_at_checkout_are_reported_and_nothing_is_recorded(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    """Both carts pass Microsoft's pooled-maximum check when created; the checkout that comes second
    gets `orderErrors` (HTTP 200). The checkouts are slowed so both carts exist before either is bought."""
    caller = ready_caller
    await sandbox.admin(
        "POST", "/faults", {"kind": "latency", "latencyMs": 1500, "method": "POST", "path": "*/checkout"}
    )
    quotes = [await services.ordering.quote(caller, BASIC, "P1Y:monthly", count) for count in ("300", "2")]
    placed = [
        await services.ordering.place_order(caller, quote, f"k-race-{index}", notify_conversation_id=None)
        for index, quote in enumerate(quotes)
    ]
    await asyncio.gather(services.jobs.run_pending(limit=1), services.jobs.run_pending(limit=1))
    jobs = [await services.jobs.get(item.job.id) for item in placed]
    assert sorted(job.status for job in jobs if job) == ["failed", "succeeded"]
    failed = next(job for job in jobs if job and job.status == "failed")
    assert failed.error_message.startswith("Microsoft refused the order:"), failed.error_message
    assert failed.error_message.endswith("Nothing was bought.")
    assert len(await _subscriptions(sandbox, demo_customer.partner_center_customer_id)) == 1
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SubscriptionRow)) == 1
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


async def test_microsoft_unavailable_fails_with_a_clear_message_and_buys_nothing(
    services: Services, sandbox: Sandbox, demo_customer, ready_caller: Caller
) -> None:
    caller = ready_caller
    await sandbox.admin(
        "POST", "/faults", {"kind": "error", "status": 503, "method": "POST", "path": "*/carts", "repeat": 50}
    )
    placed = await services.ordering.place_order(
        caller, await services.ordering.quote(caller, BASIC, "P1Y:monthly", "1"), "k-down", notify_conversation_id=None
    )
    await services.jobs.run_pending()
    job = await services.jobs.get(placed.job.id)
    assert job is not None and job.status == "failed" and job.attempts == 1
    assert job.error_message and "Traceback" not in job.error_message and "503" not in job.error_message
    assert await _subscriptions(sandbox, demo_customer.partner_center_customer_id) == []
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SubscriptionRow)) == 0
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


@pytest.mark.parametrize("first", ["order", "sync"])
async def test_a_purchase_is_ledgered_once_whichever_path_sees_it_first(
    services: Services,
    sandbox: Sandbox,
    demo_customer,
    monkeypatch: pytest.MonkeyPatch,
    first: str,
    ready_caller: Caller,
) -> None:
    """The order job and the subscriptions sync both record a purchase through one writer: the one
    that sees the new subscription first writes its PURCHASE entry, the other only the mirror row."""
    caller = ready_caller
    record = services.ordering._record_purchase

    async def sync_between_checkout_and_record(*args, **kwargs):  # type: ignore[no-untyped-def]
        await services.subscriptions.sync(caller.organisation_id)
        return await record(*args, **kwargs)

    if first == "sync":
        monkeypatch.setattr(services.ordering, "_record_purchase", sync_between_checkout_and_record)
    quote = await services.ordering.quote(caller, BASIC, "P1Y:monthly", "3")
    placed = await services.ordering.place_order(caller, quote, f"k-{first}", notify_conversation_id=None)
    assert await services.jobs.run_pending() == 1
    done = await services.jobs.get(placed.job.id)
    assert done is not None and done.status == "succeeded" and done.attempts == 1, done
    await services.subscriptions.sync(caller.organisation_id)
    await services.subscriptions.sync(caller.organisation_id)

    (bought,) = await _subscriptions(sandbox, demo_customer.partner_center_customer_id)
    async with services.sessions() as session:
        rows = list(await session.scalars(select(SubscriptionRow)))
        assert [(row.id, row.quantity) for row in rows] == [(bought.id.lower(), 3)]
        entries = list(await session.scalars(select(LedgerEntry)))
        assert [(e.event_type, e.quantity_before, e.quantity_after, e.source_key) for e in entries] == [
            (LedgerEvent.PURCHASE, 0, 3, f"purchase:{bought.id.lower()}")
        ]
        assert entries[0].source == ("bot" if first == "order" else "sync")
        assert entries[0].price_entry_id == (quote.price_entry_id if first == "order" else None)
        purchases = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "subscription.purchase")
        )
        assert purchases == (1 if first == "order" else 0)


async def test_the_storefront_prices_by_microsofts_date_not_this_machines(services: Services, sandbox: Sandbox) -> None:
    """The services decide by the injected clock (here the sandbox's, ten days behind or more than
    this machine's): a price list valid from a later day is offered only once that day has come
    on Microsoft's clock."""
    caller = await _ready(services)
    later = SANDBOX_START.date() + timedelta(days=10)
    assert later <= datetime.now(UTC).date()  # already in force by this machine's clock
    await services.pricing.import_csv(
        GLOBAL_LIST,
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        f"CFQ7TTC0LH18,0001,P1Y,monthly,USD,7.77,{later.isoformat()},\n",
        actor="op",
    )

    async def basic_price() -> Decimal:
        item = (await services.ordering.storefront(caller)).find(BASIC)
        term = item.term("P1Y:monthly") if item is not None else None
        assert term is not None
        return term.price.amount

    assert await basic_price() != Decimal("7.77")
    assert services.clock.today() == SANDBOX_START.date()
    sandbox.clock.set(datetime.combine(later, time(9), tzinfo=UTC))
    assert await basic_price() == Decimal("7.77")
    assert (await services.ordering.quote(caller, BASIC, "P1Y:monthly", "1")).unit_price == Decimal("7.77")
