"""The catalog cache: synced from the sandbox, placed in the taxonomy (operator edits kept across
syncs, unknown products in Other with an alert), licence SKUs and add-on bases — on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cli.main import build_parser
from services.catalog import OTHER, CatalogService, DefaultTaxonomy, PlacementSource
from services.container import Services
from services.errors import DomainError, InvalidInput, NotFound
from services.models import CatalogProduct

BASIC, BASIC_SKU = "CFQ7TTC0LH18", "0001"
BASIC_LICENCE = "3b555118-da6a-4418-894f-7df1e2096870"
ARCHIVING = "CFQ7TTC0LH0J"


async def test_sync_caches_products_skus_terms_licences_and_addon_bases(services: Services) -> None:
    report = await services.catalog.sync()
    assert (report.products, report.skus) == (38, 38)
    assert report.unmapped == ()

    basic = await services.catalog.product(BASIC)
    assert (basic.category, basic.product_group, basic.taxonomy_source) == ("Business", "Microsoft 365", "default")
    sku = basic.skus[0]
    assert (sku.minimum_quantity, sku.maximum_quantity, sku.licence_sku_id) == (1, 300, BASIC_LICENCE)
    assert [(term.term_duration, term.billing_cycle) for term in sku.terms] == [
        ("P1M", "monthly"),
        ("P1Y", "monthly"),
        ("P1Y", "annual"),
        ("P3Y", "monthly"),
        ("P3Y", "annual"),
        ("P3Y", "triennial"),
    ]
    assert {term.currency for term in sku.terms} == {"USD"}
    assert sku.has_addons and not sku.is_addon

    assert await services.catalog.licence_sku_id(BASIC, BASIC_SKU) == BASIC_LICENCE
    assert await services.catalog.licence_sku_for_offer(f"{BASIC}:{BASIC_SKU}:CFQ7TTC0ABCD") == BASIC_LICENCE
    assert [s.key for s in await services.catalog.skus_for_licence(BASIC_LICENCE)] == [f"{BASIC}:{BASIC_SKU}"]

    archiving = await services.catalog.product(ARCHIVING)
    assert archiving.is_addon and archiving.category == "Add-ons"
    assert {"CFQ7TTC0LH16:0001", "CFQ7TTC0LH18:0001"} <= set(archiving.skus[0].bases)
    addons = {addon.product_id for addon in await services.catalog.addons_for(BASIC, BASIC_SKU)}
    assert ARCHIVING in addons and "CFQ7TTC0MM8R" in addons and BASIC not in addons

    products = await services.catalog.products()
    assert len(products) == 38
    assert [p.category for p in products] == sorted(p.category for p in products)

    again = await services.catalog.sync()  # idempotent
    assert (again.products, again.skus, again.terms) == (report.products, report.skus, report.terms)


async def test_the_operators_placement_survives_a_sync_and_can_be_reset(services: Services) -> None:
    await services.catalog.sync()
    placed = await services.catalog.place(BASIC, "Small business", " Microsoft  365 ", actor="op")
    assert (placed.category, placed.product_group, placed.source) == ("Small business", "Microsoft 365", "operator")
    await services.catalog.sync()
    basic = await services.catalog.product(BASIC)
    assert (basic.category, basic.taxonomy_source) == ("Small business", "operator")
    reset = await services.catalog.reset_place(BASIC, actor="op")
    assert (reset.category, reset.source) == ("Business", "default")
    await services.catalog.sync()
    assert (await services.catalog.product(BASIC)).category == "Business"
    with pytest.raises(InvalidInput):
        await services.catalog.place(BASIC, "", "x", actor="op")
    with pytest.raises(NotFound):
        await services.catalog.place("CFQ7TTC0NOPE", "A", "B", actor="op")


async def test_unknown_products_land_in_other_and_alert_the_operator(services: Services) -> None:
    bare = DefaultTaxonomy({}, [], "Add-ons")  # as if Microsoft had released products we do not know
    catalog = CatalogService(services.sessions, services.partner_center, services.alerts, taxonomy=bare)
    report = await catalog.sync()
    assert len(report.unmapped) == 38
    basic = await catalog.product(BASIC)
    assert (basic.category, basic.product_group, basic.taxonomy_source) == (OTHER, OTHER, "unmapped")
    alerts = [alert for alert in await services.alerts.list() if alert.code == "catalog_unmapped"]
    assert len(alerts) == 1 and "Microsoft 365 Business Basic (CFQ7TTC0LH18)" in alerts[0].message
    # The command the alert names is one the operator CLI has.
    hint = alerts[0].message.split("`")[1]
    assert hint.startswith("cspbot catalog place ")
    args = build_parser().parse_args(["catalog", "place", BASIC, "--category", "Business", "--group", "Microsoft 365"])
    assert args.handler.__name__ == "_catalog_place"
    await catalog.sync()
    alerts = [alert for alert in await services.alerts.list() if alert.code == "catalog_unmapped"]
    assert len(alerts) == 1 and alerts[0].occurrences == 2


def test_family_rules_place_products_the_shipped_mapping_does_not_name() -> None:
    taxonomy = DefaultTaxonomy({}, DefaultTaxonomy.load()._families, "Add-ons")
    assert taxonomy.place("X1", "Microsoft 365 Business Premium and Copilot", is_addon=False).category == "Business"
    exchange = taxonomy.place("X2", "Exchange Online Kiosk", is_addon=False)
    assert (exchange.category, exchange.product_group) == ("Standalone", "Exchange")
    addon = taxonomy.place("X3", "Microsoft Teams Rooms Pro", is_addon=True)
    assert (addon.category, addon.product_group, addon.source) == ("Add-ons", "Teams", PlacementSource.DEFAULT)
    assert taxonomy.place("X4", "Dynamics 365 Sales", is_addon=False).source is PlacementSource.UNMAPPED


async def test_a_vanished_product_is_kept_inactive(services: Services) -> None:
    await services.catalog.sync()
    async with services.sessions() as session:
        session.add(CatalogProduct(id="CFQ7TTC0GONE", title="Retired", category="Business", product_group="X"))
        await session.commit()
    report = await services.catalog.sync()
    assert report.deactivated == 1
    with pytest.raises(NotFound):
        await services.catalog.product("CFQ7TTC0GONE")
    assert (await services.catalog.product("CFQ7TTC0GONE", include_inactive=True)).title == "Retired"
    async with services.sessions() as session:
        assert await session.scalar(select(CatalogProduct.active).where(CatalogProduct.id == "CFQ7TTC0GONE")) is False


async def test_a_fresh_availability_is_fetched_at_purchase_time(services: Services) -> None:
    item = await services.catalog.fresh_catalog_item_id(BASIC, BASIC_SKU, "P1Y", "monthly")
    product, sku, availability = item.split(":")
    assert (product, sku) == (BASIC, BASIC_SKU) and availability
    with pytest.raises(DomainError, match="no longer sells"):
        await services.catalog.fresh_catalog_item_id(BASIC, BASIC_SKU, "P1M", "annual")


async def test_a_failed_sync_alerts_the_operator(services: Services, sandbox) -> None:
    await sandbox.admin("POST", "/faults", {"kind": "error", "status": 503, "path": "/v1/products", "repeat": 20})
    with pytest.raises(DomainError):
        await services.catalog.sync()
    assert "catalog_sync_failed" in {alert.code for alert in await services.alerts.list()}
    assert await services.catalog.is_empty()
