"""Helpers for the subscriptions tests: buy through the real client against the sandbox, then let
the product's own sync write the mirror rows."""

from __future__ import annotations

from decimal import Decimal

from services.access import Caller
from services.container import Services
from services.organisations import OrganisationView
from services.partner_center.models import CartLineItem
from services.pricing import GLOBAL_LIST
from services.seed import PLAYGROUND_ADMIN, PLAYGROUND_APPROVER

BASIC, BASIC_SKU = "CFQ7TTC0LH18", "0001"
BASIC_LICENCE = "3b555118-da6a-4418-894f-7df1e2096870"
ARCHIVING = "CFQ7TTC0LH0J"


async def prepare_catalog_and_prices(services: Services) -> None:
    await services.catalog.sync()
    await services.pricing.import_csv(
        GLOBAL_LIST,
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        f"{BASIC},{BASIC_SKU},P1M,monthly,USD,7.20,2026-01-01,\n"
        f"{BASIC},{BASIC_SKU},P1Y,monthly,USD,6.00,2026-01-01,\n"
        f"{BASIC},{BASIC_SKU},P1Y,annual,USD,72.00,2026-01-01,\n"
        f"{ARCHIVING},0001,P1Y,monthly,USD,3.00,2026-01-01,\n"
        f"{ARCHIVING},0001,P1M,monthly,USD,3.60,2026-01-01,\n",
        actor="tests",
    )


async def buy(
    services: Services,
    org: OrganisationView,
    *,
    product: str = BASIC,
    sku: str = BASIC_SKU,
    quantity: int = 10,
    term: str = "P1Y",
    cycle: str = "monthly",
    parent: str | None = None,
) -> str:
    """Buy through the client (as another channel would) and return the new subscription id."""
    client = services.partner_center
    customer = org.partner_center_customer_id
    assert customer
    item = await services.catalog.fresh_catalog_item_id(product, sku, term, cycle)
    cart = await client.create_cart(
        customer,
        [
            CartLineItem(
                catalog_item_id=item,
                quantity=quantity,
                term_duration=term,
                billing_cycle=cycle,  # type: ignore[arg-type]
                provisioning_context={"parentSubscriptionId": parent} if parent else None,
            )
        ],
    )
    assert cart.id
    result = await client.checkout(customer, cart.id)
    assert not result.order_errors, result.order_errors
    subscription_id = result.orders[0].line_items[0].subscription_id
    assert subscription_id
    return subscription_id.lower()


async def caller(services: Services, who: tuple[str, str, str, str] = PLAYGROUND_ADMIN) -> Caller:
    from services.access import ChannelIdentity
    from services.seed import PLAYGROUND_TENANT_ID

    resolved = await services.access.resolve(ChannelIdentity(PLAYGROUND_TENANT_ID, who[3], who[2], who[1]))
    assert resolved is not None
    return resolved


async def admin(services: Services) -> Caller:
    return await caller(services, PLAYGROUND_ADMIN)


async def approver(services: Services) -> Caller:
    return await caller(services, PLAYGROUND_APPROVER)


ZERO = Decimal(0)
