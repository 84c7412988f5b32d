"""Start-up: the empty catalog cache is synced before the bot answers, and the embedded demo gets a
global price list from the sandbox's price sheet once (never over an existing global list)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import update

from services.container import Services
from services.db import utcnow
from services.models import CatalogProduct
from services.pricing import GLOBAL_LIST
from startup.catalog import DEMO_MARKUP, REFRESH_AFTER, prepare_catalog
from tests.conftest import runtime_of


async def test_the_demo_starts_with_a_catalog_and_a_global_price_list(make_bot) -> None:
    client = await make_bot(cold_start=True)
    services = runtime_of(client).services
    assert len(await services.catalog.products()) == 38
    lists = await services.pricing.lists()
    assert [(item.name, item.is_global) for item in lists] == [(GLOBAL_LIST, True)] and lists[0].entries > 100
    assert "unpriced_products" not in {alert.code for alert in await services.alerts.list()}


async def test_prepare_is_idempotent_and_keeps_an_operators_global_list(sqlite_services: Services) -> None:
    services = sqlite_services
    await services.pricing.import_csv(
        GLOBAL_LIST,
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        "CFQ7TTC0LH18,0001,P1M,monthly,EUR,9.99,2026-01-01,\n",
        actor="op",
    )
    assert await prepare_catalog(services, seed_demo_prices=True) is None
    assert (await services.pricing.lists())[0].entries == 1
    assert not await services.catalog.is_empty()
    assert "unpriced_products" in {alert.code for alert in await services.alerts.list()}  # the operator's list is short
    # A fresh cache is not synced again; a stale one is refreshed in the background.
    assert await prepare_catalog(services, seed_demo_prices=False) is None
    async with services.sessions() as session:
        await session.execute(update(CatalogProduct).values(synced_at=utcnow() - REFRESH_AFTER * 2))
        await session.commit()
    refresh = await prepare_catalog(services, seed_demo_prices=False)
    assert refresh is not None
    await refresh
    last = await services.catalog.last_synced_at()
    assert last is not None and utcnow() - last < REFRESH_AFTER
    assert DEMO_MARKUP == Decimal(15) and timedelta(hours=1) < REFRESH_AFTER
