"""What the app does with the catalog and prices when it starts.

The catalog cache is synced before the bot answers when it is empty (so the first "add
subscription" has products), else refreshed in the background when older than `REFRESH_AFTER`.
In the embedded demo (sandbox + demo organisation) a global price list is generated from the
sandbox's price sheet with `DEMO_MARKUP` unless a global list exists, so products are offered.
Replicas starting together do this one at a time."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal

from services.catalog import CatalogService
from services.container import Services
from services.db import START_UP_LOCK, exclusive, utcnow
from services.errors import DomainError
from services.ordering import OrderingService

log = logging.getLogger(__name__)

REFRESH_AFTER = timedelta(hours=6)
DEMO_MARKUP = Decimal(15)
SEED_ACTOR = "system:seed"


async def _sync_quietly(catalog: CatalogService, ordering: OrderingService) -> None:
    try:
        await catalog.sync()
        await ordering.alert_unpriced()
    except DomainError as error:  # alerted by the sync; the bot still serves from the cache
        log.warning("catalog sync at start-up failed: %s", error.message)


async def prepare_catalog(services: Services, *, seed_demo_prices: bool) -> asyncio.Task[None] | None:
    """Sync (or schedule a refresh of) the catalog, seed the demo prices, and alert the operator
    of unpriced products. Returns the background refresh task, if one was started; the caller
    cancels it at shutdown."""
    catalog, pricing, ordering = services.catalog, services.pricing, services.ordering
    # Replicas starting together take turns here: the later ones find the prices and catalog made.
    async with exclusive(services.engine, START_UP_LOCK):
        last = await catalog.last_synced_at()
        if seed_demo_prices:
            try:
                if await pricing.ensure_default_global(DEMO_MARKUP, actor=SEED_ACTOR):
                    log.info("generated the demo's global price list (price sheet + %s%%)", DEMO_MARKUP)
            except DomainError as error:
                log.warning("could not generate the demo's global price list: %s", error.message)
        if last is None:
            await _sync_quietly(catalog, ordering)
    if last is not None and utcnow() - last > REFRESH_AFTER:
        return asyncio.create_task(_sync_quietly(catalog, ordering), name="catalog-refresh")
    return None
