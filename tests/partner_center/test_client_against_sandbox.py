"""The product's real `PartnerCenterClient` against the running built-in sandbox (fixture `sandbox`),
one test per area, for every client operation: what comes back is typed, and Microsoft's refusals
arrive as the domain errors carrying Microsoft's codes. The sandbox's own wire tests live in
`tests/sandbox/`; the client's protocol edges against a scripted server in
`test_client_protocol.py`. Here the two halves meet."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest

from services.errors import Conflict, InvalidInput, NotFound
from services.partner_center.errors import (
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInvalidInput,
    PartnerCenterNotFound,
    PartnerCenterRuleViolation,
)
from services.partner_center.models import (
    Address,
    AddressValidationStatus,
    BillingCycle,
    CartLineItem,
    CartStatus,
    Contact,
    Customer,
    CustomerBillingProfile,
    CustomerCompanyProfile,
    CustomerUser,
    LicenseAssignment,
    LicenseUpdate,
    PasswordProfile,
    ProductTerm,
    ScheduledNextTermInstructions,
    Subscription,
    SubscriptionStatus,
)
from tests.conftest import SANDBOX_START, Sandbox
from tests.sandbox.conftest import BASIC, BASIC_LICENCE, E3, MCA_TEMPLATE, STANDARD, TEAMS_PHONE

CONTACT = Contact(first_name="Tania", last_name="Carr", email="tania@example.com")


def us_customer(prefix: str, **company: str) -> Customer:
    return Customer(
        company_profile=CustomerCompanyProfile(domain=f"{prefix}.onmicrosoft.com", **company),
        billing_profile=CustomerBillingProfile(
            email="admin@example.com",
            culture="en-US",
            language="en",
            company_name=f"{prefix.title()} Ltd",
            default_address=Address(
                first_name="Tania",
                last_name="Carr",
                address_line1="1 Microsoft Way",
                city="Redmond",
                state="WA",
                postal_code="98052",
                country="US",
                phone_number="4255550101",
            ),
        ),
    )


def prefix() -> str:
    return f"pc{uuid.uuid4().hex[:10]}"


async def new_customer(sandbox: Sandbox, *, attest: bool = True) -> Customer:
    customer = await sandbox.client.create_customer(us_customer(prefix()))
    assert customer.id
    if attest:
        await sandbox.client.accept_agreement(customer.id, CONTACT)
    return customer


async def catalog_item(sandbox: Sandbox, product: tuple[str, str], term: str = "P1Y") -> str:
    for availability in await sandbox.client.availabilities(product[0], product[1], "US"):
        if availability.terms and availability.terms[0].duration == term and availability.catalog_item_id:
            return availability.catalog_item_id
    raise AssertionError(f"{product} has no {term} availability")


async def line(
    sandbox: Sandbox,
    product: tuple[str, str],
    quantity: int,
    *,
    term: str = "P1Y",
    cycle: str = "monthly",
    parent: str | None = None,
) -> CartLineItem:
    return CartLineItem(
        catalog_item_id=await catalog_item(sandbox, product, term),
        quantity=quantity,
        term_duration=term,
        billing_cycle=cycle,
        provisioning_context={"parentSubscriptionId": parent} if parent else None,
    )


async def buy(
    sandbox: Sandbox, customer_id: str, product: tuple[str, str], quantity: int, **kwargs: str
) -> Subscription:
    cart = await sandbox.client.create_cart(customer_id, [await line(sandbox, product, quantity, **kwargs)])
    assert cart.id
    result = await sandbox.client.checkout(customer_id, cart.id)
    assert result.order_errors == []
    subscription_id = result.orders[0].line_items[0].subscription_id
    assert subscription_id
    return await sandbox.client.subscription(customer_id, subscription_id)


def changed(subscription: Subscription, **changes: object) -> Subscription:
    return subscription.model_copy(update=changes)


# --- Customers ---------------------------------------------------------------------------------------------


async def test_domain_availability(sandbox: Sandbox) -> None:
    assert await sandbox.client.domain_is_taken("contoso.onmicrosoft.com") is True
    assert await sandbox.client.domain_is_taken(f"{prefix()}.onmicrosoft.com") is False


async def test_country_rules(sandbox: Sandbox) -> None:
    us = await sandbox.client.country_rules("US")
    assert us.is_state_required is True and "WA" in us.supported_states_list
    assert us.postal_code_regex
    gb = await sandbox.client.country_rules("GB")
    assert gb.is_state_required is False and gb.default_culture == "en-GB"


async def test_address_validation_with_a_suggested_correction(sandbox: Sandbox) -> None:
    street = await sandbox.client.validate_address(
        Address(address_line1="10 Downing St", city="London", postal_code="SW1A 2AA", country="GB")
    )
    assert street.status is AddressValidationStatus.INTERACTION_REQUIRED
    assert street.suggested_addresses[0].address_line1 == "10 Downing Street"
    shippable = await sandbox.client.validate_address(
        Address(address_line1="1 Microsoft Way", city="Redmond", state="wa", postal_code="98052", country="US")
    )
    assert shippable.status is AddressValidationStatus.VERIFIED_SHIPPABLE
    suggestion = shippable.suggested_addresses[0]
    assert suggestion.state == "WA" and (suggestion.postal_code or "").startswith("98052-")
    broken = await sandbox.client.validate_address(Address(address_line1="1 Main", postal_code="ABC", country="US"))
    assert broken.status is AddressValidationStatus.NONE and broken.suggested_addresses == []


async def test_create_and_get_a_customer_with_its_admin_credentials(sandbox: Sandbox) -> None:
    name = prefix()
    created = await sandbox.client.create_customer(us_customer(name))

    assert created.id and created.domain == f"{name}.onmicrosoft.com"
    credentials = created.user_credentials
    assert credentials is not None and credentials.password is not None
    assert credentials.user_name and credentials.user_name.startswith("admin")
    assert len(credentials.password.get_secret_value()) == 16
    assert credentials.password.get_secret_value() not in repr(created)
    fetched = await sandbox.client.get_customer(created.id)
    assert fetched.domain == created.domain and fetched.user_credentials is None
    found = await sandbox.client.find_customer_by_domain(f"{name}.onmicrosoft.com")
    assert found is not None and found.id == created.id
    assert await sandbox.client.find_customer_by_domain(f"{prefix()}.onmicrosoft.com") is None
    (admin,) = [user async for user in sandbox.client.users(created.id)]
    assert admin.user_principal_name == f"admin@{name}.onmicrosoft.com"

    with pytest.raises(PartnerCenterNotFound):
        await sandbox.client.get_customer(str(uuid.uuid4()))


async def test_customer_creation_refusals_are_domain_errors(sandbox: Sandbox) -> None:
    with pytest.raises(PartnerCenterConflict) as taken:
        await sandbox.client.create_customer(us_customer("contoso"))
    assert taken.value.code == "27002" and isinstance(taken.value, Conflict)

    hungarian = us_customer(prefix())
    assert hungarian.billing_profile is not None and hungarian.billing_profile.default_address is not None
    hungarian.billing_profile.default_address = Address(
        first_name="Tania",
        last_name="Carr",
        address_line1="Szepvolgyi ut 39",
        city="Budapest",
        postal_code="1037",
        country="HU",
        phone_number="3612345678",
    )
    hungarian.billing_profile.culture = "hu-HU"
    with pytest.raises(PartnerCenterInvalidInput) as missing:
        await sandbox.client.create_customer(hungarian)
    assert missing.value.code == "600049" and missing.value.field == "organizationRegistrationNumber"
    assert isinstance(missing.value, InvalidInput)


async def test_the_reseller_relationship_link_and_a_customer_who_accepted_it(sandbox: Sandbox) -> None:
    url = await sandbox.client.relationship_request_url()
    assert url.startswith("https://admin.microsoft.com/") and "partnerId=" in url

    tenant = str(uuid.uuid4())
    await sandbox.admin(
        "POST",
        "/relationships/accept",
        {"tenantId": tenant, "companyName": "Relecloud", "domain": "relecloudpc.onmicrosoft.com"},
    )
    customer = await sandbox.client.get_customer(tenant)
    assert customer.relationship_to_partner == "reseller"
    assert customer.domain == "relecloudpc.onmicrosoft.com"
    assert await sandbox.client.agreements(tenant) == []


async def test_buying_needs_the_mca_attestation_13605(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox, attest=False)
    assert customer.id
    cart = await sandbox.client.create_cart(customer.id, [await line(sandbox, BASIC, 3)])
    assert cart.id

    with pytest.raises(PartnerCenterRuleViolation) as refused:
        await sandbox.client.checkout(customer.id, cart.id)
    assert refused.value.code == "13605" and refused.value.http_status == 403
    assert "Customer Agreement" in refused.value.message
    assert await sandbox.client.subscriptions(customer.id) == []

    assert await sandbox.client.mca_template_id() == MCA_TEMPLATE
    agreement = await sandbox.client.accept_agreement(customer.id, CONTACT)
    assert agreement.template_id == MCA_TEMPLATE and agreement.type == "MicrosoftCustomerAgreement"
    (recorded,) = await sandbox.client.agreements(customer.id, agreement_type="MicrosoftCustomerAgreement")
    assert recorded.primary_contact is not None
    assert (recorded.primary_contact.email, recorded.primary_contact.last_name) == (CONTACT.email, CONTACT.last_name)

    result = await sandbox.client.checkout(customer.id, cart.id)
    assert len(result.orders) == 1
    assert len(await sandbox.client.subscriptions(customer.id)) == 1


# --- Catalog and prices -------------------------------------------------------------------------------------


async def test_catalog_products_skus_and_availabilities(sandbox: Sandbox) -> None:
    products = await sandbox.client.products("US")
    assert len(products) >= 30
    titles = {product.title for product in products}
    assert {"Microsoft 365 Business Basic", "Microsoft 365 E3", "Microsoft Teams Phone Standard"} <= titles
    product = await sandbox.client.product(BASIC[0], "US")
    assert product.title == "Microsoft 365 Business Basic"

    (basic,) = await sandbox.client.skus(BASIC[0], "US")
    assert basic.id == BASIC[1]
    assert (basic.minimum_quantity, basic.maximum_quantity) == (1, 300)
    assert basic.dynamic_attributes is not None
    assert basic.dynamic_attributes.is_addon is False
    assert basic.dynamic_attributes.provisioning_id == BASIC_LICENCE

    (phone,) = await sandbox.client.skus(TEAMS_PHONE[0], "US")
    assert phone.dynamic_attributes is not None and phone.dynamic_attributes.is_addon is True
    assert "CFQ7TTC0LH18:0001" in (phone.dynamic_attributes.prerequisite_skus or [])

    availabilities = await sandbox.client.availabilities(BASIC[0], BASIC[1], "US")
    by_term = {item.terms[0].duration: item for item in availabilities}
    assert set(by_term) == {"P1M", "P1Y", "P3Y"}
    cycles = {term.billing_cycle for term in by_term["P1Y"].terms}
    assert cycles == {BillingCycle.MONTHLY, BillingCycle.ANNUAL}
    assert {term.billing_cycle for term in by_term["P1M"].terms} == {BillingCycle.MONTHLY}
    assert all(item.is_purchasable for item in availabilities)
    assert by_term["P1Y"].catalog_item_id == f"{BASIC[0]}:{BASIC[1]}:{by_term['P1Y'].id}"


async def test_price_sheet(sandbox: Sandbox) -> None:
    rows = await sandbox.client.price_sheet("US")
    basic = {
        (row.term_duration, (row.billing_plan or "").lower()): row for row in rows if row.sku_key == "CFQ7TTC0LH18:0001"
    }
    annual = basic[("P1Y", "annual")]
    assert annual.erp_price == Decimal("72") and isinstance(annual.unit_price, Decimal)
    assert annual.unit_price < annual.erp_price, "the partner's cost is below the retail price"
    assert basic[("P1Y", "monthly")].erp_price == Decimal("72")
    assert basic[("P1M", "monthly")].erp_price == Decimal("7.2")
    assert len({row.sku_key for row in rows}) >= 30


# --- Orders and subscriptions -----------------------------------------------------------------------------


async def test_cart_and_checkout_with_an_add_on_under_its_parent(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cart = await sandbox.client.create_cart(customer.id, [await line(sandbox, BASIC, 10)])
    assert cart.id and cart.status == CartStatus.ACTIVE
    result = await sandbox.client.checkout(customer.id, cart.id)
    (order,) = result.orders
    assert order.id and order.line_items[0].quantity == 10
    assert (await sandbox.client.get_cart(customer.id, cart.id)).status == CartStatus.ORDERED
    assert (await sandbox.client.get_order(customer.id, order.id)).id == order.id
    base_id = order.line_items[0].subscription_id
    assert base_id

    with pytest.raises(PartnerCenterError) as orphan:
        await sandbox.client.create_cart(customer.id, [await line(sandbox, TEAMS_PHONE, 2)])
    assert orphan.value.code == "800009"

    addon_cart = await sandbox.client.create_cart(customer.id, [await line(sandbox, TEAMS_PHONE, 2, parent=base_id)])
    assert addon_cart.id
    assert addon_cart.line_items[0].provisioning_context == {"parentSubscriptionId": base_id}
    (addon_order,) = (await sandbox.client.checkout(customer.id, addon_cart.id)).orders
    addon_id = addon_order.line_items[0].subscription_id
    assert addon_id

    addon = await sandbox.client.subscription(customer.id, addon_id)
    assert addon.parent_subscription_id == base_id and addon.sku_key == "CFQ7TTC0LH0T:0001"
    assert [item.id for item in await sandbox.client.subscription_addons(customer.id, base_id)] == [addon_id]
    assert {item.id for item in await sandbox.client.subscriptions(customer.id)} == {base_id, addon_id}


async def test_a_new_subscription_has_its_term_window_and_refundable_seats(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    subscription = await buy(sandbox, customer.id, STANDARD, 10)

    assert subscription.status is SubscriptionStatus.ACTIVE and subscription.quantity == 10
    assert subscription.term_duration == "P1Y" and subscription.billing_cycle is BillingCycle.MONTHLY
    assert subscription.auto_renew_enabled is True and subscription.etag
    assert subscription.cancellation_allowed_until_date == SANDBOX_START + timedelta(days=7)
    assert subscription.commitment_end_date is not None
    assert subscription.commitment_end_date.date() == (SANDBOX_START + timedelta(days=364)).date()
    assert subscription.refundable_quantity is not None and subscription.refundable_quantity.total_quantity == 10


async def test_quantity_changes_with_etags_and_microsofts_limits(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cid = customer.id
    bought = await buy(sandbox, cid, STANDARD, 10)

    raised = await sandbox.client.update_subscription(cid, changed(bought, quantity=14))
    assert raised.quantity == 14 and raised.etag and raised.etag != bought.etag

    with pytest.raises(PartnerCenterConflict) as stale:
        await sandbox.client.update_subscription(cid, changed(bought, quantity=20))
    assert stale.value.code == "2055" and isinstance(stale.value, Conflict)

    with pytest.raises(PartnerCenterInvalidInput) as too_many:
        await sandbox.client.update_subscription(cid, changed(raised, quantity=301))
    assert too_many.value.code == "2002" and too_many.value.field == "quantity"

    lowered = await sandbox.client.update_subscription(cid, changed(raised, quantity=12))
    assert lowered.quantity == 12, "seats inside their 168-hour window can be removed"

    await sandbox.admin("POST", "/clock", {"advance": "P8D"})
    current = await sandbox.client.subscription(cid, bought.id)
    with pytest.raises(PartnerCenterRuleViolation) as decrease:
        await sandbox.client.update_subscription(cid, changed(current, quantity=11))
    assert decrease.value.code == "800090" and decrease.value.field == "quantity"
    assert (await sandbox.client.subscription(cid, bought.id)).quantity == 12


async def test_suspend_reactivate_and_a_frozen_quantity(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cid = customer.id
    bought = await buy(sandbox, cid, BASIC, 5)

    suspended = await sandbox.client.update_subscription(cid, changed(bought, status=SubscriptionStatus.SUSPENDED))
    assert suspended.status is SubscriptionStatus.SUSPENDED
    with pytest.raises(PartnerCenterRuleViolation) as frozen:
        await sandbox.client.update_subscription(cid, changed(suspended, quantity=6))
    assert frozen.value.code == "2001"

    reactivated = await sandbox.client.update_subscription(cid, changed(suspended, status=SubscriptionStatus.ACTIVE))
    assert reactivated.status is SubscriptionStatus.ACTIVE
    assert (await sandbox.client.update_subscription(cid, changed(reactivated, quantity=6))).quantity == 6


async def test_cancel_inside_the_window_and_900117_after_it(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cid = customer.id
    early = await buy(sandbox, cid, BASIC, 2)
    late = await buy(sandbox, cid, E3, 2)

    cancelled = await sandbox.client.update_subscription(cid, changed(early, status=SubscriptionStatus.DELETED))
    assert cancelled.status is SubscriptionStatus.DELETED

    await sandbox.admin("POST", "/clock", {"advance": "P8D"})
    current = await sandbox.client.subscription(cid, late.id)
    with pytest.raises(PartnerCenterRuleViolation) as refused:
        await sandbox.client.update_subscription(cid, changed(current, status=SubscriptionStatus.DELETED))
    assert refused.value.code == "900117"
    assert (await sandbox.client.subscription(cid, late.id)).status is SubscriptionStatus.ACTIVE


async def test_auto_renew_and_next_term_instructions_drive_the_clock_renewal(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cid = customer.id
    renewing = await buy(sandbox, cid, BASIC, 10)
    ending = await buy(sandbox, cid, E3, 3)

    instructions = ScheduledNextTermInstructions(
        product=ProductTerm(product_id=BASIC[0], sku_id=BASIC[1], billing_cycle="annual", term_duration="P1Y"),
        quantity=7,
    )
    scheduled = await sandbox.client.update_subscription(
        cid, changed(renewing, scheduled_next_term_instructions=instructions)
    )
    assert scheduled.scheduled_next_term_instructions is not None
    assert scheduled.scheduled_next_term_instructions.quantity == 7
    not_renewing = await sandbox.client.update_subscription(cid, changed(ending, auto_renew_enabled=False))
    assert not_renewing.auto_renew_enabled is False

    assert renewing.commitment_end_date is not None
    term_end = renewing.commitment_end_date.astimezone(UTC) + timedelta(days=1)
    moved = await sandbox.admin("POST", "/clock", {"set": term_end.isoformat().replace("+00:00", "Z")})
    assert renewing.id in moved["termEnds"]["renewed"]

    renewed = await sandbox.client.subscription(cid, renewing.id)
    assert renewed.status is SubscriptionStatus.ACTIVE
    assert (renewed.quantity, renewed.billing_cycle) == (7, BillingCycle.ANNUAL)
    assert renewed.effective_start_date == term_end
    assert renewed.cancellation_allowed_until_date == term_end + timedelta(days=7)
    assert renewed.refundable_quantity is not None and renewed.refundable_quantity.total_quantity == 7
    assert renewed.scheduled_next_term_instructions is None
    assert (await sandbox.client.subscription(cid, ending.id)).status is SubscriptionStatus.EXPIRED


# --- Users and licences -------------------------------------------------------------------------------------


def new_user(domain: str, name: str, *, location: str | None = "US") -> CustomerUser:
    return CustomerUser(
        user_principal_name=f"{name}@{domain}",
        first_name=name.title(),
        last_name="Doe",
        display_name=f"{name.title()} Doe",
        usage_location=location,
        password_profile=PasswordProfile(password="abCD123*x", force_change_password=True),
    )


async def test_users_page_create_update_and_delete(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id and customer.domain
    cid, domain = customer.id, customer.domain
    created = [await sandbox.client.create_user(cid, new_user(domain, f"user{index}")) for index in range(5)]
    assert all(user.id and user.state == "active" for user in created)

    first = await sandbox.client.users_page(cid, page_size=2)
    assert len(first.items) == 2 and first.next_link is not None and first.continuation
    second = await sandbox.client.users_page(cid, next_link=first.next_link)
    assert len(second.items) == 2 and {u.id for u in second.items}.isdisjoint({u.id for u in first.items})
    everyone = [user async for user in sandbox.client.users(cid, page_size=2)]
    assert len(everyone) == len({user.id for user in everyone}) == 6  # the admin and five users

    user_id = created[0].id
    assert user_id
    renamed = await sandbox.client.update_user(cid, user_id, CustomerUser(display_name="Jane Q. Doe"))
    assert renamed.display_name == "Jane Q. Doe"
    assert (await sandbox.client.get_user(cid, user_id)).display_name == "Jane Q. Doe"

    await sandbox.client.delete_user(cid, user_id)
    with pytest.raises(PartnerCenterNotFound) as gone:
        await sandbox.client.get_user(cid, user_id)
    assert gone.value.code == "60002" and isinstance(gone.value, NotFound)
    assert len([user async for user in sandbox.client.users(cid)]) == 5

    with pytest.raises(PartnerCenterError) as no_location:
        await sandbox.client.create_user(cid, new_user(domain, "nomad", location=None))
    assert no_location.value.code == "27002"


async def test_licences_follow_subscribed_skus_and_60012_when_none_is_free(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id and customer.domain
    cid = customer.id
    await buy(sandbox, cid, BASIC, 1)
    first = await sandbox.client.create_user(cid, new_user(customer.domain, "first"))
    second = await sandbox.client.create_user(cid, new_user(customer.domain, "second"))
    assert first.id and second.id
    assign = LicenseUpdate(licenses_to_assign=[LicenseAssignment(sku_id=BASIC_LICENCE)])

    (sku,) = await sandbox.client.subscribed_skus(cid)
    assert sku.product_sku.id == BASIC_LICENCE
    assert (sku.active_units, sku.consumed_units, sku.available_units) == (1, 0, 1)

    done = await sandbox.client.update_user_licenses(cid, first.id, assign)
    assert done.licenses_to_assign and done.licenses_to_assign[0].sku_id == BASIC_LICENCE
    assert [item.product_sku.id for item in await sandbox.client.user_licenses(cid, first.id)] == [BASIC_LICENCE]
    (sku,) = await sandbox.client.subscribed_skus(cid)
    assert (sku.active_units, sku.consumed_units, sku.available_units) == (1, 1, 0)

    with pytest.raises(PartnerCenterRuleViolation) as none_left:
        await sandbox.client.update_user_licenses(cid, second.id, assign)
    assert none_left.value.code == "60012" and "no free licences" in none_left.value.message
    assert await sandbox.client.user_licenses(cid, second.id) == []

    await sandbox.client.update_user_licenses(cid, first.id, LicenseUpdate(licenses_to_remove=[BASIC_LICENCE]))
    assert await sandbox.client.user_licenses(cid, first.id) == []
    await sandbox.client.update_user_licenses(cid, second.id, assign)
    (sku,) = await sandbox.client.subscribed_skus(cid)
    assert (sku.consumed_units, sku.available_units) == (1, 0)


async def test_changes_made_elsewhere_are_seen_by_the_client(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id and customer.domain
    cid = customer.id
    await buy(sandbox, cid, BASIC, 2)
    kim = await sandbox.admin(
        "POST",
        f"/customers/{cid}/users",
        {"userPrincipalName": f"kim@{customer.domain}", "displayName": "Kim", "usageLocation": "US"},
    )
    await sandbox.admin("POST", f"/customers/{cid}/users/{kim['id']}/licenses", {"assign": [BASIC_LICENCE]})

    assert f"kim@{customer.domain}" in {user.user_principal_name async for user in sandbox.client.users(cid)}
    assert [item.product_sku.id for item in await sandbox.client.user_licenses(cid, kim["id"])] == [BASIC_LICENCE]
    (sku,) = await sandbox.client.subscribed_skus(cid)
    assert sku.consumed_units == 1


# --- Audit ------------------------------------------------------------------------------------------------


async def test_audit_records_show_every_mutation(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id and customer.domain
    cid = customer.id
    other = await new_customer(sandbox, attest=False)
    subscription = await buy(sandbox, cid, BASIC, 3)
    await sandbox.client.update_subscription(cid, changed(subscription, quantity=4))
    user = await sandbox.client.create_user(cid, new_user(customer.domain, "lee"))
    assert user.id
    await sandbox.client.update_user_licenses(
        cid, user.id, LicenseUpdate(licenses_to_assign=[LicenseAssignment(sku_id=BASIC_LICENCE)])
    )
    await sandbox.client.delete_user(cid, user.id)

    since = SANDBOX_START.date()
    ours = [
        record
        async for record in sandbox.client.audit_records(
            since, size=2, filter={"Field": "CustomerId", "Value": cid, "Operator": "equals"}
        )
    ]
    assert [record.operation_type for record in ours] == [
        "add_customer",
        "create_customer_agreement",
        "create_cart",
        "create_order",
        "update_subscription",
        "create_customer_user",
        "update_customer_user_licenses",
        "delete_customer_user",
    ]
    assert all(record.customer_id == cid and record.operation_status == "succeeded" for record in ours)
    assert ours[0].operation_date is not None and ours[0].operation_date >= SANDBOX_START
    everyone = [record async for record in sandbox.client.audit_records(since, since)]
    assert {record.customer_id for record in everyone} == {cid, other.id}


# --- Faults the sandbox injects: the client's retries and exactly-once against a real back end ---------------


async def test_a_5xx_after_the_checkout_committed_buys_once(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cid = customer.id
    cart = await sandbox.client.create_cart(cid, [await line(sandbox, BASIC, 4)])
    assert cart.id
    await sandbox.admin("POST", "/faults", {"kind": "error_after_commit", "method": "POST", "path": "*/checkout"})

    result = await sandbox.client.checkout(cid, cart.id)

    (order,) = result.orders
    (subscription,) = await sandbox.client.subscriptions(cid)
    assert order.line_items[0].subscription_id == subscription.id and subscription.quantity == 4
    (fault,) = (await sandbox.admin("GET", "/faults"))["faults"]
    assert fault["fired"] == 1


async def test_a_5xx_after_the_customer_was_created_creates_one_tenant(sandbox: Sandbox) -> None:
    name = prefix()
    await sandbox.admin("POST", "/faults", {"kind": "error_after_commit", "method": "POST", "path": "/v1/customers"})

    created = await sandbox.client.create_customer(us_customer(name))

    assert created.domain == f"{name}.onmicrosoft.com"
    assert created.user_credentials is None, "found by its domain: Microsoft shows the password once"
    found = await sandbox.client.find_customer_by_domain(created.domain)
    assert found is not None and found.id == created.id
    records = [record async for record in sandbox.client.audit_records(SANDBOX_START.date())]
    assert [record.operation_type for record in records] == ["add_customer"]


async def test_throttling_a_storm_and_a_202_are_absorbed(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id
    cid = customer.id
    bought = await buy(sandbox, cid, BASIC, 3)
    await sandbox.admin(
        "POST", "/faults", {"kind": "throttle", "method": "GET", "path": "/v1/customers/*/subscriptions", "nth": 1}
    )
    await sandbox.admin("POST", "/faults", {"kind": "error", "status": 503, "path": "/v1/products", "repeat": 3})
    await sandbox.admin(
        "POST",
        "/faults",
        {"kind": "accepted", "method": "PATCH", "path": "/v1/customers/*/subscriptions/*", "polls": 2, "retryAfter": 0},
    )

    assert [item.id for item in await sandbox.client.subscriptions(cid)] == [bought.id]
    assert len(await sandbox.client.products("US")) >= 30
    updated = await sandbox.client.update_subscription(cid, changed(bought, quantity=5))
    assert updated.quantity == 5
    assert (await sandbox.client.subscription(cid, bought.id)).quantity == 5
    assert all(fault["fired"] >= 1 for fault in (await sandbox.admin("GET", "/faults"))["faults"])


async def test_per_customer_throttling_is_waited_out_on_retry_after(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    other = await new_customer(sandbox)
    assert customer.id and other.id
    waits: list[float] = []
    client = sandbox.waiting_client(waits)  # the client's wait moves the sandbox's frozen clock
    await sandbox.admin("POST", "/throttle", {"enabled": True, "capacity": 2, "refillPerSecond": 0.5})

    for _ in range(3):
        assert await client.subscriptions(customer.id) == []
    assert waits == [2.0], "the third call was throttled, waited Retry-After, and went through"
    assert await client.subscriptions(other.id) == [], "another customer has its own budget"
    assert waits == [2.0]


async def test_quantity_never_falls_below_the_assigned_licences_800095(sandbox: Sandbox) -> None:
    customer = await new_customer(sandbox)
    assert customer.id and customer.domain
    cid = customer.id
    bought = await buy(sandbox, cid, BASIC, 2)
    for name in ("ann", "bob"):
        user = await sandbox.client.create_user(cid, new_user(customer.domain, name))
        assert user.id
        await sandbox.client.update_user_licenses(
            cid, user.id, LicenseUpdate(licenses_to_assign=[LicenseAssignment(sku_id=BASIC_LICENCE)])
        )

    with pytest.raises(PartnerCenterRuleViolation) as refused:
        await sandbox.client.update_subscription(cid, changed(bought, quantity=1))
    assert refused.value.code == "800095" and refused.value.field == "quantity"
    assert "assigned to users" in refused.value.message
    assert (await sandbox.client.subscription(cid, bought.id)).quantity == 2
