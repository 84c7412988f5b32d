"""What the catalog shows: products, SKUs and their terms as frozen views, and a sync's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.db import utcnow


def offer_key(product_id: str, sku_id: str) -> str:
    """`PRODUCT:SKU`, the way Microsoft's `prerequisiteSkus` and offer ids name a SKU."""
    return f"{product_id.strip()}:{sku_id.strip()}".upper()


@dataclass(frozen=True)
class TermView:
    term_duration: str  # P1M, P1Y, P3Y
    billing_cycle: str  # monthly, annual, triennial
    description: str
    currency: str


@dataclass(frozen=True)
class SkuView:
    product_id: str
    sku_id: str
    title: str
    description: str
    minimum_quantity: int
    maximum_quantity: int
    licence_sku_id: str
    is_addon: bool
    has_addons: bool
    terms: tuple[TermView, ...] = ()
    bases: tuple[str, ...] = ()  # `PRODUCT:SKU` of the bases an add-on can be bought for

    @property
    def key(self) -> str:
        return offer_key(self.product_id, self.sku_id)

    def term(self, term_duration: str, billing_cycle: str) -> TermView | None:
        for term in self.terms:
            if term.term_duration.upper() == term_duration.upper() and term.billing_cycle == billing_cycle.lower():
                return term
        return None


@dataclass(frozen=True)
class ProductView:
    id: str
    title: str
    description: str
    category: str
    product_group: str
    taxonomy_source: str
    skus: tuple[SkuView, ...] = ()

    @property
    def is_addon(self) -> bool:
        return bool(self.skus) and all(sku.is_addon for sku in self.skus)


@dataclass(frozen=True)
class TaxonomyEntry:
    product_id: str
    title: str
    category: str
    product_group: str
    source: str


@dataclass(frozen=True)
class SyncReport:
    products: int
    skus: int
    terms: int
    deactivated: int
    unmapped: tuple[str, ...] = ()
    synced_at: datetime = field(default_factory=utcnow)
