"""Test support for users and licences: licences bought through the real client against the sandbox,
with the `SubscriptionRow` mirror written here (ordering is another feature's)."""

from __future__ import annotations

from sqlalchemy import select

from services.access import Caller
from services.container import Services
from services.models import SubscriptionRow
from services.organisations import OrganisationView
from services.partner_center.models import BillingCycle, CartLineItem

BASIC = ("CFQ7TTC0LH18", "0001")  # Microsoft 365 Business Basic
STANDARD = ("CFQ7TTC0LDPB", "0001")  # Microsoft 365 Business Standard
BASIC_LICENCE = "3b555118-da6a-4418-894f-7df1e2096870"


async def buy_licences(
    services: Services, org: OrganisationView, product: tuple[str, str], quantity: int
) -> SubscriptionRow:
    client = services.partner_center
    customer_id = org.partner_center_customer_id
    assert customer_id
    availability = next(
        item
        for item in await client.availabilities(product[0], product[1], org.country or "US")
        if item.terms and item.terms[0].duration == "P1Y"
    )
    cart = await client.create_cart(
        customer_id,
        [
            CartLineItem(
                catalog_item_id=availability.catalog_item_id or "",
                quantity=quantity,
                billing_cycle=BillingCycle.MONTHLY,
                term_duration="P1Y",
            )
        ],
    )
    assert cart.id
    result = await client.checkout(customer_id, cart.id)
    subscription_id = result.orders[0].line_items[0].subscription_id
    assert subscription_id
    subscription = await client.subscription(customer_id, subscription_id)
    sku = next(item for item in await client.skus(product[0], org.country or "US") if item.id == product[1])
    row = SubscriptionRow(
        id=subscription.id,
        organisation_id=org.id,
        customer_id=customer_id,
        offer_id=subscription.offer_id or "",
        product_id=product[0],
        sku_id=product[1],
        name=subscription.friendly_name or subscription.offer_name or product[0],
        licence_sku_id=(sku.licence_sku_id or "").lower(),
        quantity=subscription.quantity or quantity,
        status=str(subscription.status or "active"),
        term_duration=subscription.term_duration or "P1Y",
        billing_cycle=str(subscription.billing_cycle or "monthly"),
    )
    async with services.sessions.begin() as session:
        session.add(row)
    async with services.sessions() as session:
        stored = await session.scalar(select(SubscriptionRow).where(SubscriptionRow.id == row.id))
        assert stored is not None
        return stored


async def admin_caller(
    _services: Services, org: OrganisationView, roles: frozenset[str] = frozenset({"admin"})
) -> Caller:
    return Caller(
        member_id=1,
        organisation_id=org.id,
        organisation_name=org.name,
        email="alex@contoso.example",
        display_name="Alex",
        roles=roles,
    )
