"""The catalog cache: Microsoft's products and SKUs synced into the database and placed in our
category → product group taxonomy. `service.py` holds `CatalogService` (sync, reads, placement),
`views.py` the views it returns, `taxonomy.py` the default placement."""

from services.catalog.service import CatalogService
from services.catalog.taxonomy import OTHER, DefaultTaxonomy, Placement, PlacementSource
from services.catalog.views import ProductView, SkuView, SyncReport, TaxonomyEntry, TermView, offer_key

__all__ = [
    "OTHER",
    "CatalogService",
    "DefaultTaxonomy",
    "Placement",
    "PlacementSource",
    "ProductView",
    "SkuView",
    "SyncReport",
    "TaxonomyEntry",
    "TermView",
    "offer_key",
]
