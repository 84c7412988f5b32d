"""The sandbox's new-commerce catalog: products → SKUs → availabilities, and the price sheet.

Data comes from `catalog.json` beside this module. JSON shapes follow Microsoft's Product, Sku and
Availability resources: a SKU's `dynamicAttributes` carry `isAddon`, `prerequisiteSkus`
("productId:skuId" of the bases an add-on needs), `hasAddOns`, `upgradeTargetOffers` and
`provisioningId` — the licence SKU GUID that `subscribedskus` reports as `productSku.id`.
What Microsoft's resources do not carry (category, product group, skuPartNumber, target type) is in
a `sandboxExtensions` object so no client mistakes it for Microsoft's contract.

Availability ids rotate, as Microsoft warns they do: each is derived from a per-process salt and
the sandbox day, and only today's and yesterday's ids are accepted. Prices are never keyed by them.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.clock import start_of_day
from sandbox.errors import CART_ITEM_ERROR, PRODUCT_NOT_FOUND, SandboxError

CATALOG_FILE = Path(__file__).with_name("catalog.json")

TERM_DESCRIPTIONS = {
    "P1M": "One-Month commitment for monthly billing",
    "P1Y": "One-Year commitment for monthly/yearly billing",
    "P3Y": "Three-Year commitment for monthly/yearly/triennial billing",
}
BILLING_PLANS = {"monthly": "Monthly", "annual": "Annual", "triennial": "Triennial"}
PRICE_SHEET_COLUMNS = (
    "ProductTitle",
    "ProductId",
    "SkuId",
    "SkuTitle",
    "Publisher",
    "SkuDescription",
    "UnitOfMeasure",
    "TermDuration",
    "BillingPlan",
    "Market",
    "Currency",
    "UnitPrice",
    "PricingTierRangeMin",
    "PricingTierRangeMax",
    "EffectiveStartDate",
    "EffectiveEndDate",
    "Tags",
    "ERP Price",
)
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ0123456789"


def _link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


@dataclass(frozen=True)
class SkuRef:
    """A product and one of its SKUs, as read from the catalog file."""

    product: dict[str, Any]
    sku: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.product['id']}:{self.sku['id']}"

    def term(self, duration: str) -> dict[str, Any] | None:
        for term in self.sku["terms"]:
            if term["duration"] == duration.upper():
                return dict(term)
        return None

    def supports(self, duration: str, billing_cycle: str) -> bool:
        term = self.term(duration)
        return term is not None and billing_cycle.lower() in term["billingCycles"]


class Catalog:
    """Read-only catalog with rotating availability ids."""

    def __init__(self, data: dict[str, Any], *, salt: bytes) -> None:
        self._data = data
        self._salt = salt
        self.currency: str = data.get("currency", "USD")
        self.publisher: str = data.get("publisher", "Microsoft Corporation")
        self.partner_discount = float(data.get("partnerDiscount", 0.2))
        self._products = {product["id"].upper(): product for product in data["products"]}
        self._refs: dict[str, SkuRef] = {}
        self._by_licence: dict[str, SkuRef] = {}
        for product in data["products"]:
            for sku in product["skus"]:
                ref = SkuRef(product, sku)
                self._refs[ref.key.upper()] = ref
                self._by_licence[sku["provisioningId"].lower()] = ref
        self._has_addons = {
            prerequisite.upper() for ref in self._refs.values() for prerequisite in ref.sku["prerequisiteSkus"]
        }

    @classmethod
    def load(cls, *, salt: bytes, path: Path = CATALOG_FILE) -> Catalog:
        return cls(json.loads(path.read_text(encoding="utf-8")), salt=salt)

    # look-ups --------------------------------------------------------------------------------

    def products(self) -> list[dict[str, Any]]:
        return list(self._data["products"])

    def product(self, product_id: str) -> dict[str, Any]:
        product = self._products.get(product_id.upper())
        if product is None:
            raise SandboxError(404, PRODUCT_NOT_FOUND, f"The product {product_id} was not found.")
        return product

    def sku(self, product_id: str, sku_id: str) -> SkuRef:
        self.product(product_id)
        ref = self._refs.get(f"{product_id}:{sku_id}".upper())
        if ref is None:
            raise SandboxError(404, PRODUCT_NOT_FOUND, f"The SKU {sku_id} of product {product_id} was not found.")
        return ref

    def find_sku(self, product_id: str, sku_id: str) -> SkuRef | None:
        return self._refs.get(f"{product_id}:{sku_id}".upper())

    def by_licence(self, licence_sku_id: str) -> SkuRef | None:
        return self._by_licence.get(licence_sku_id.lower())

    def has_addons(self, ref: SkuRef) -> bool:
        return ref.key.upper() in self._has_addons

    # availabilities --------------------------------------------------------------------------

    def availability_id(self, ref: SkuRef, duration: str, day: datetime) -> str:
        message = f"{ref.key}:{duration}:{start_of_day(day).date().isoformat()}".encode()
        digest = hmac.new(self._salt, message, hashlib.sha256).digest()
        suffix = "".join(_ID_ALPHABET[byte % len(_ID_ALPHABET)] for byte in digest[:4])
        return f"CFQ7TTC0{suffix}"

    def resolve(self, catalog_item_id: str, now: datetime) -> tuple[SkuRef, str]:
        """`productId:skuId:availabilityId` → (SKU, term duration), if the id is current.

        Ids from today or yesterday (sandbox time) are accepted; older ones are rejected the way
        Microsoft rejects a stale catalog item, so clients must fetch availabilities at purchase."""
        parts = catalog_item_id.strip().split(":")
        if len(parts) != 3 or not all(parts):
            raise SandboxError(
                400, CART_ITEM_ERROR, "Error in Cart item(s)", [f"Invalid catalog item id {catalog_item_id}"]
            )
        ref = self.find_sku(parts[0], parts[1])
        if ref is None:
            raise SandboxError(
                400, CART_ITEM_ERROR, "Error in Cart item(s)", [f"Catalog item {catalog_item_id} was not found."]
            )
        for day in (now, now - timedelta(days=1)):
            for term in ref.sku["terms"]:
                if self.availability_id(ref, term["duration"], day) == parts[2].upper():
                    return ref, term["duration"]
        raise SandboxError(
            400,
            CART_ITEM_ERROR,
            "Error in Cart item(s)",
            [f"The availability {parts[2]} is no longer valid; get the SKU's availabilities again."],
        )

    # rendering -------------------------------------------------------------------------------

    def product_json(self, product: dict[str, Any], country: str) -> dict[str, Any]:
        pid = product["id"]
        return {
            "id": pid,
            "title": product["title"],
            "description": product["description"],
            "productType": {"id": "OnlineServices", "displayName": "OnlineServices"},
            "isMicrosoftProduct": True,
            "publisherName": self.publisher,
            "links": {
                "skus": _link(f"/products/{pid}/skus?country={country}"),
                "self": _link(f"/products/{pid}?country={country}"),
            },
            "sandboxExtensions": {"category": product["category"], "productGroup": product["productGroup"]},
            "attributes": {"objectType": "Product"},
        }

    def sku_json(self, ref: SkuRef, country: str) -> dict[str, Any]:
        sku, pid = ref.sku, ref.product["id"]
        cycles: list[str] = []
        for term in sku["terms"]:
            cycles.extend(cycle for cycle in term["billingCycles"] if cycle not in cycles)
        return {
            "id": sku["id"],
            "productId": pid,
            "title": sku["title"],
            "description": sku["description"],
            "minimumQuantity": sku["minimumQuantity"],
            "maximumQuantity": sku["maximumQuantity"],
            "isTrial": False,
            "supportedBillingCycles": cycles,
            "purchasePrerequisites": ["MicrosoftCustomerAgreement"],
            "inventoryVariables": [],
            "provisioningVariables": ["ParentSubscriptionId"] if sku["isAddon"] else [],
            "actions": ["Refund"],
            "dynamicAttributes": {
                "isMicrosoftProduct": True,
                "hasConstraints": sku["maximumQuantity"] <= 300,
                "isAddon": sku["isAddon"],
                "prerequisiteSkus": list(sku["prerequisiteSkus"]),
                "hasAddOns": self.has_addons(ref),
                "isSoftwareAssuranceApplicable": False,
                "isAutoRenewable": True,
                "upgradeTargetOffers": list(sku["upgradeTargetOffers"]),
                "provisioningId": sku["provisioningId"],
                "billingType": "license",
                "unitType": "Licenses",
                "internal": False,
            },
            "links": {
                "availabilities": _link(f"/products/{pid}/skus/{sku['id']}/availabilities?country={country}"),
                "self": _link(f"/products/{pid}/skus/{sku['id']}?country={country}"),
            },
            "sandboxExtensions": {
                "skuPartNumber": sku["skuPartNumber"],
                "targetType": sku["targetType"],
                "category": ref.product["category"],
                "productGroup": ref.product["productGroup"],
                "illustrativeFields": list(sku.get("illustrative", [])),
            },
            "attributes": {"objectType": "Sku"},
        }

    def availabilities_json(self, ref: SkuRef, country: str, now: datetime) -> list[dict[str, Any]]:
        """One availability per term duration, each listing its billing cycles as terms."""
        pid, sid = ref.product["id"], ref.sku["id"]
        items = []
        for term in ref.sku["terms"]:
            availability = self.availability_id(ref, term["duration"], now)
            items.append(
                {
                    "id": availability,
                    "productId": pid,
                    "skuId": sid,
                    "catalogItemId": f"{pid}:{sid}:{availability}",
                    "defaultCurrency": {"code": self.currency, "symbol": "$"},
                    "segment": "commercial",
                    "country": country,
                    "isPurchasable": True,
                    "isRenewable": True,
                    "terms": [
                        {
                            "duration": term["duration"],
                            "description": TERM_DESCRIPTIONS[term["duration"]],
                            "billingCycle": cycle,
                            "cancellationPolicies": [
                                {
                                    "refundOptions": [
                                        {"sequenceId": 1, "type": "Full", "expiresAfter": "P1D"},
                                        {"sequenceId": 2, "type": "Partial", "expiresAfter": "P7D"},
                                    ]
                                }
                            ],
                        }
                        for cycle in term["billingCycles"]
                    ],
                    "links": {
                        "self": _link(f"/products/{pid}/skus/{sid}/availabilities/{availability}?country={country}")
                    },
                    "attributes": {"objectType": "Availability"},
                }
            )
        return items

    def price_sheet_csv(self, market: str, now: datetime) -> str:
        """Microsoft's license-based price sheet: one row per product, SKU, term and billing plan.

        `UnitPrice` (the partner's cost) and `ERP Price` (estimated retail) are for the whole term,
        as Microsoft documents; a P1Y term billed monthly is charged one twelfth per month."""
        start = start_of_day(now).replace(day=1)
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(PRICE_SHEET_COLUMNS)
        for ref in self._refs.values():
            for term in ref.sku["terms"]:
                erp = float(term["price"])
                cost = round(erp * (1 - self.partner_discount), 2)
                for cycle in term["billingCycles"]:
                    writer.writerow(
                        (
                            ref.product["title"],
                            ref.product["id"],
                            ref.sku["id"],
                            ref.sku["title"],
                            self.publisher,
                            ref.sku["description"],
                            "",
                            term["duration"],
                            BILLING_PLANS[cycle],
                            market.upper(),
                            self.currency,
                            f"{cost:.2f}",
                            "",
                            "",
                            start.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                            "9999-11-30T23:59:59.0000000Z",
                            "License",
                            f"{erp:.2f}",
                        )
                    )
        return buffer.getvalue()


def random_salt() -> bytes:
    """A fresh salt per process: availability ids change when the sandbox restarts."""
    return base64.b64encode(os.urandom(18))
