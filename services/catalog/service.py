"""The catalog cache: Microsoft's products, SKUs and what they can be bought with, synced from
Partner Center into the database (at start-up and on demand), placed in our category → product
group taxonomy.

What it keeps per SKU: quantity bounds, the licence SKU its seats are pooled in (Microsoft's
`dynamicAttributes.provisioningId`, the offer ↔ licence-SKU mapping subscriptions and licences
need), the add-on flag and the bases an add-on fits, and its terms × billing frequencies (from its
availabilities). Availability ids rotate, so they are never stored: `fresh_catalog_item_id` asks
Microsoft right before a purchase.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.alerts import AlertService
from services.catalog.taxonomy import OTHER, DefaultTaxonomy, Placement, PlacementSource, clean_name
from services.catalog.views import (
    ProductView,
    SkuView,
    SyncReport,
    TaxonomyEntry,
    TermView,
    offer_key,
)
from services.db import CATALOG_SYNC_LOCK, lock_transaction, utcnow
from services.errors import Conflict, DomainError, NotFound
from services.i18n import _, ngettext
from services.models import CatalogAddonBase, CatalogProduct, CatalogSku, CatalogTaxonomyRow, CatalogTerm
from services.partner_center import PartnerCenterClient, PartnerCenterError
from services.partner_center.models import Availability, Product, Sku

log = logging.getLogger(__name__)

SYNC_ACTOR = "system:catalog-sync"
SYNC_CONCURRENCY = 8
UNMAPPED_ALERT = "catalog_unmapped"
SYNC_FAILED_ALERT = "catalog_sync_failed"


@dataclass
class _Fetched:
    product: Product
    skus: list[tuple[Sku, list[Availability]]]


def _sku_view(row: CatalogSku, terms: Iterable[CatalogTerm], bases: Iterable[CatalogAddonBase]) -> SkuView:
    order = {"P1M": 0, "P1Y": 1, "P2Y": 2, "P3Y": 3}
    cycles = {"monthly": 0, "annual": 1, "triennial": 2}
    return SkuView(
        product_id=row.product_id,
        sku_id=row.sku_id,
        title=row.title,
        description=row.description,
        minimum_quantity=row.minimum_quantity,
        maximum_quantity=row.maximum_quantity,
        licence_sku_id=row.licence_sku_id,
        is_addon=row.is_addon,
        has_addons=row.has_addons,
        terms=tuple(
            TermView(term.term_duration, term.billing_cycle, term.description, term.currency)
            for term in sorted(
                terms, key=lambda t: (order.get(t.term_duration, 9), cycles.get(t.billing_cycle, 9), t.billing_cycle)
            )
        ),
        bases=tuple(sorted(offer_key(base.base_product_id, base.base_sku_id) for base in bases)),
    )


class CatalogService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        partner_center: PartnerCenterClient,
        alerts: AlertService,
        *,
        country: str = "US",
        taxonomy: DefaultTaxonomy | None = None,
    ) -> None:
        self._sessions = sessions
        self._partner_center = partner_center
        self._alerts = alerts
        self.country = country
        self._default = taxonomy or DefaultTaxonomy.load()

    # --- sync ------------------------------------------------------------------------------------

    async def sync(self, *, actor: str = SYNC_ACTOR) -> SyncReport:
        """Fetch the catalog from Partner Center and replace the cache with it (one transaction).
        Products that disappeared are kept, inactive (subscriptions still name them)."""
        try:
            fetched = await self._fetch()
        except PartnerCenterError as error:
            await self._alerts.raise_alert(
                SYNC_FAILED_ALERT,
                _("The catalog could not be read from Partner Center: {message}", message=error.message),
                severity="error",
            )
            raise
        report = await self._store(fetched, actor=actor)
        if report.unmapped:
            await self._alerts.raise_alert(
                UNMAPPED_ALERT,
                _(
                    "Shown under '{OTHER}' for want of a place in the catalog taxonomy: {plural}, {join}. "
                    "Place each with `cspbot catalog place PRODUCT_ID --category NAME --group NAME`.",
                    OTHER=OTHER,
                    plural=ngettext("{n} product", "{n} products", len(report.unmapped)),
                    join=", ".join(report.unmapped[:20]),
                ),
                dedup_key=UNMAPPED_ALERT,
            )
        log.info(
            "catalog synced: %d products, %d SKUs, %d terms, %d deactivated, %d unmapped",
            report.products,
            report.skus,
            report.terms,
            report.deactivated,
            len(report.unmapped),
        )
        return report

    async def _fetch(self) -> list[_Fetched]:
        client, country = self._partner_center, self.country
        limit = asyncio.Semaphore(SYNC_CONCURRENCY)

        async def availabilities(sku: Sku, product_id: str) -> tuple[Sku, list[Availability]]:
            async with limit:
                return sku, await client.availabilities(product_id, sku.id, country)

        async def one(product: Product) -> _Fetched:
            async with limit:
                skus = await client.skus(product.id, country)
            pairs = await asyncio.gather(*(availabilities(sku, product.id) for sku in skus))
            return _Fetched(product, list(pairs))

        products = await client.products(country)
        return list(await asyncio.gather(*(one(product) for product in products)))

    async def _store(self, fetched: list[_Fetched], *, actor: str) -> SyncReport:
        now = utcnow()
        unmapped: list[str] = []
        sku_count = term_count = 0
        async with self._sessions() as session:
            # Another sync (a replica starting, the CLI) stores first; this one then reads its rows.
            await lock_transaction(session, CATALOG_SYNC_LOCK)
            overrides = {row.product_id: row for row in await session.scalars(select(CatalogTaxonomyRow))}
            products = {row.id: row for row in await session.scalars(select(CatalogProduct))}
            skus = {(row.product_id, row.sku_id): row for row in await session.scalars(select(CatalogSku))}
            seen_products: set[str] = set()
            seen_skus: set[tuple[str, str]] = set()
            await session.execute(delete(CatalogTerm))
            await session.execute(delete(CatalogAddonBase))
            for item in fetched:
                product_id = item.product.id.strip().upper()
                title = (item.product.title or product_id).strip()[:200]
                is_addon = bool(item.skus) and all(sku.is_addon for sku, _unused in item.skus)
                placement = self._place(product_id, title, is_addon, overrides.get(product_id))
                if placement.source is PlacementSource.UNMAPPED:
                    unmapped.append(f"{title} ({product_id})")
                product = products.get(product_id)
                if product is None:
                    product = CatalogProduct(id=product_id)
                    session.add(product)
                    products[product_id] = product
                product.title = title
                product.description = item.product.description or ""
                product.category = placement.category
                product.product_group = placement.product_group
                product.taxonomy_source = placement.source.value
                product.active = True
                product.synced_at = now
                seen_products.add(product_id)
                await session.flush()
                for sku, availabilities in item.skus:
                    key = (product_id, sku.id.strip().upper())
                    if key in seen_skus:
                        continue
                    seen_skus.add(key)
                    sku_count += 1
                    row = skus.get(key)
                    if row is None:
                        row = CatalogSku(product_id=key[0], sku_id=key[1])
                        session.add(row)
                        skus[key] = row
                    row.title = (sku.title or title).strip()[:200]
                    row.description = sku.description or ""
                    row.minimum_quantity = max(1, sku.minimum_quantity or 1)
                    row.maximum_quantity = max(row.minimum_quantity, sku.maximum_quantity or row.minimum_quantity)
                    row.licence_sku_id = (sku.licence_sku_id or "").strip().lower()
                    row.is_addon = sku.is_addon
                    row.has_addons = bool(sku.dynamic_attributes and sku.dynamic_attributes.has_add_ons)
                    row.active = True
                    row.synced_at = now
                    await session.flush()
                    terms_seen: set[tuple[str, str]] = set()
                    for availability in availabilities:
                        if availability.is_purchasable is False:
                            continue
                        currency = (availability.default_currency.code or "") if availability.default_currency else ""
                        for term in availability.terms:
                            if not term.duration or not term.billing_cycle:
                                continue
                            term_key = (term.duration.strip().upper(), str(term.billing_cycle).lower())
                            if term_key in terms_seen:
                                continue
                            terms_seen.add(term_key)
                            term_count += 1
                            session.add(
                                CatalogTerm(
                                    product_id=key[0],
                                    sku_id=key[1],
                                    term_duration=term_key[0],
                                    billing_cycle=term_key[1],
                                    description=(term.description or "")[:200],
                                    currency=currency.upper()[:3],
                                )
                            )
                    for base in dict.fromkeys(value.strip().upper() for value in sku.prerequisite_skus):
                        parts = base.split(":")
                        if len(parts) >= 2 and parts[0] and parts[1]:
                            session.add(
                                CatalogAddonBase(
                                    addon_product_id=key[0],
                                    addon_sku_id=key[1],
                                    base_product_id=parts[0],
                                    base_sku_id=parts[1],
                                )
                            )
            deactivated = 0
            for product_id, product in products.items():
                if product_id not in seen_products and product.active:
                    product.active = False
                    deactivated += 1
            for key, sku_row in skus.items():
                if key not in seen_skus:
                    sku_row.active = False
            audit.record(
                session,
                actor=actor,
                action="catalog.sync",
                organisation_id=None,
                target=self.country,
                after={"products": len(seen_products), "skus": sku_count, "deactivated": deactivated},
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise Conflict(_("Another catalog sync ran at the same moment; run it again.")) from None
        return SyncReport(len(seen_products), sku_count, term_count, deactivated, tuple(unmapped), now)

    def _place(self, product_id: str, title: str, is_addon: bool, override: CatalogTaxonomyRow | None) -> Placement:
        if override is not None:
            return Placement(override.category, override.product_group, PlacementSource.OPERATOR)
        return self._default.place(product_id, title, is_addon=is_addon)

    # --- reading ---------------------------------------------------------------------------------

    async def products(self, *, include_inactive: bool = False) -> list[ProductView]:
        """Every cached product with its SKUs and terms, ordered by category, group and title."""
        async with self._sessions() as session:
            query = select(CatalogProduct)
            sku_query = select(CatalogSku)
            if not include_inactive:
                query = query.where(CatalogProduct.active.is_(True))
                sku_query = sku_query.where(CatalogSku.active.is_(True))
            products = list(await session.scalars(query))
            skus = list(await session.scalars(sku_query.order_by(CatalogSku.product_id, CatalogSku.sku_id)))
            terms = list(await session.scalars(select(CatalogTerm)))
            bases = list(await session.scalars(select(CatalogAddonBase)))
        return self._views(products, skus, terms, bases)

    async def product(self, product_id: str, *, include_inactive: bool = False) -> ProductView:
        product_id = product_id.strip().upper()
        async with self._sessions() as session:
            product = await session.get(CatalogProduct, product_id)
            if product is None or (not product.active and not include_inactive):
                raise NotFound(_("That product is not in the catalog."))
            sku_query = select(CatalogSku).where(CatalogSku.product_id == product_id)
            if not include_inactive:
                sku_query = sku_query.where(CatalogSku.active.is_(True))
            skus = list(await session.scalars(sku_query.order_by(CatalogSku.sku_id)))
            terms = list(await session.scalars(select(CatalogTerm).where(CatalogTerm.product_id == product_id)))
            bases = list(
                await session.scalars(select(CatalogAddonBase).where(CatalogAddonBase.addon_product_id == product_id))
            )
        return self._views([product], skus, terms, bases)[0]

    async def sku(self, product_id: str, sku_id: str, *, include_inactive: bool = False) -> SkuView:
        product = await self.product(product_id, include_inactive=include_inactive)
        for sku in product.skus:
            if sku.sku_id == sku_id.strip().upper():
                return sku
        raise NotFound(_("That product is not in the catalog."))

    async def licence_sku_id(self, product_id: str, sku_id: str) -> str | None:
        """The licence SKU (subscribed SKU id) a product/SKU's seats are pooled in, if known."""
        async with self._sessions() as session:
            row = await session.get(CatalogSku, (product_id.strip().upper(), sku_id.strip().upper()))
        if row is None or not row.licence_sku_id:
            return None
        return row.licence_sku_id

    async def licence_sku_for_offer(self, offer_id: str) -> str | None:
        """The licence SKU of a subscription's offer id (`product:sku[:availability]`)."""
        parts = offer_id.split(":")
        if len(parts) < 2:
            return None
        return await self.licence_sku_id(parts[0], parts[1])

    async def skus_for_licence(self, licence_sku_id: str) -> list[SkuView]:
        """The product/SKUs whose seats are pooled in one licence SKU."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(CatalogSku).where(CatalogSku.licence_sku_id == licence_sku_id.strip().lower())
                )
            )
        return [await self.sku(row.product_id, row.sku_id, include_inactive=True) for row in rows]

    async def addons_for(self, product_id: str, sku_id: str) -> list[SkuView]:
        """Active add-on SKUs that can be bought for a base SKU."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(CatalogAddonBase).where(
                        CatalogAddonBase.base_product_id == product_id.strip().upper(),
                        CatalogAddonBase.base_sku_id == sku_id.strip().upper(),
                    )
                )
            )
        addons: list[SkuView] = []
        for row in rows:
            try:
                addons.append(await self.sku(row.addon_product_id, row.addon_sku_id))
            except NotFound:
                continue
        return sorted(addons, key=lambda sku: (sku.title, sku.key))

    async def is_empty(self) -> bool:
        async with self._sessions() as session:
            return await session.scalar(select(CatalogProduct.id).limit(1)) is None

    async def last_synced_at(self) -> datetime | None:
        async with self._sessions() as session:
            return await session.scalar(select(func.max(CatalogProduct.synced_at)))

    async def fresh_catalog_item_id(self, product_id: str, sku_id: str, term_duration: str, billing_cycle: str) -> str:
        """Microsoft's current `product:sku:availability` for a term and billing frequency, asked
        right now (availability ids rotate). Raises a DomainError when it is not sold any more."""
        for availability in await self._partner_center.availabilities(product_id, sku_id, self.country):
            if availability.is_purchasable is False:
                continue
            for term in availability.terms:
                if (term.duration or "").upper() == term_duration.upper() and str(
                    term.billing_cycle or ""
                ).lower() == billing_cycle.lower():
                    return availability.catalog_item_id or f"{product_id}:{sku_id}:{availability.id}"
        raise DomainError(
            _("Microsoft no longer sells this product with that term and billing frequency. Pick another."),
            code="not_available",
        )

    # --- taxonomy (operator) ---------------------------------------------------------------------

    async def taxonomy(self) -> list[TaxonomyEntry]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(CatalogProduct)
                .where(CatalogProduct.active.is_(True))
                .order_by(CatalogProduct.category, CatalogProduct.product_group, CatalogProduct.title)
            )
            return [
                TaxonomyEntry(row.id, row.title, row.category, row.product_group, row.taxonomy_source) for row in rows
            ]

    async def place(self, product_id: str, category: str, product_group: str, *, actor: str) -> TaxonomyEntry:
        """The operator places a product (kept across syncs)."""
        product_id = product_id.strip().upper()
        category = clean_name(category, "category")
        product_group = clean_name(product_group, _("product group"))
        async with self._sessions() as session:
            product = await session.get(CatalogProduct, product_id)
            if product is None:
                raise NotFound(
                    _("No product {product_id} in the catalog; run `cspbot catalog sync` first.", product_id=product_id)
                )
            before = {"category": product.category, "product_group": product.product_group}
            row = await session.get(CatalogTaxonomyRow, product_id)
            if row is None:
                session.add(
                    CatalogTaxonomyRow(
                        product_id=product_id, category=category, product_group=product_group, updated_by=actor
                    )
                )
            else:
                row.category, row.product_group, row.updated_by = category, product_group, actor
            product.category, product.product_group = category, product_group
            product.taxonomy_source = PlacementSource.OPERATOR.value
            audit.record(
                session,
                actor=actor,
                action="catalog.taxonomy.set",
                organisation_id=None,
                target=product_id,
                before=before,
                after={"category": category, "product_group": product_group},
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise Conflict(_("The product was placed by someone else at the same moment; try again.")) from None
            return TaxonomyEntry(product_id, product.title, category, product_group, product.taxonomy_source)

    async def reset_place(self, product_id: str, *, actor: str) -> TaxonomyEntry:
        """Drop the operator's placement: back to the shipped mapping (or Other)."""
        product_id = product_id.strip().upper()
        async with self._sessions() as session:
            product = await session.get(CatalogProduct, product_id)
            if product is None:
                raise NotFound(_("No product {product_id} in the catalog.", product_id=product_id))
            row = await session.get(CatalogTaxonomyRow, product_id)
            if row is not None:
                await session.delete(row)
            is_addon = bool(
                await session.scalar(
                    select(CatalogSku.sku_id).where(CatalogSku.product_id == product_id, CatalogSku.is_addon.is_(False))
                )
                is None
            )
            placement = self._default.place(product_id, product.title, is_addon=is_addon)
            before = {"category": product.category, "product_group": product.product_group}
            product.category, product.product_group = placement.category, placement.product_group
            product.taxonomy_source = placement.source.value
            audit.record(
                session,
                actor=actor,
                action="catalog.taxonomy.reset",
                organisation_id=None,
                target=product_id,
                before=before,
                after={"category": placement.category, "product_group": placement.product_group},
            )
            await session.commit()
            return TaxonomyEntry(
                product_id, product.title, placement.category, placement.product_group, product.taxonomy_source
            )

    # --- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _views(
        products: list[CatalogProduct],
        skus: list[CatalogSku],
        terms: list[CatalogTerm],
        bases: list[CatalogAddonBase],
    ) -> list[ProductView]:
        terms_by: dict[tuple[str, str], list[CatalogTerm]] = {}
        for term in terms:
            terms_by.setdefault((term.product_id, term.sku_id), []).append(term)
        bases_by: dict[tuple[str, str], list[CatalogAddonBase]] = {}
        for base in bases:
            bases_by.setdefault((base.addon_product_id, base.addon_sku_id), []).append(base)
        skus_by: dict[str, list[SkuView]] = {}
        for sku in skus:
            key = (sku.product_id, sku.sku_id)
            skus_by.setdefault(sku.product_id, []).append(_sku_view(sku, terms_by.get(key, []), bases_by.get(key, [])))
        views = [
            ProductView(
                id=product.id,
                title=product.title,
                description=product.description,
                category=product.category,
                product_group=product.product_group,
                taxonomy_source=product.taxonomy_source,
                skus=tuple(skus_by.get(product.id, [])),
            )
            for product in products
        ]
        return sorted(views, key=lambda view: (view.category, view.product_group, view.title, view.id))
