"""Seat rules shared by carts, checkout and quantity changes: a SKU's range, the per-customer pool
of a product SKU, and an add-on's parent."""

from __future__ import annotations

from typing import Any

from sandbox import errors as codes
from sandbox.backend.core import LIVE
from sandbox.catalog import SkuRef
from sandbox.errors import SandboxError


def check_range(ref: SkuRef, quantity: int) -> None:
    low, high = ref.sku["minimumQuantity"], ref.sku["maximumQuantity"]
    if not low <= quantity <= high:
        raise SandboxError(
            400,
            codes.QUANTITY_OUT_OF_RANGE,
            "Subscription quantity is not within minimum and maximum allowed quantity",
            [f"{ref.key} allows {low} to {high} licences; {quantity} was asked."],
        )


def check_pool(ref: SkuRef, subscriptions: list[dict[str, Any]], extra: int) -> None:
    """Seat maximums are pooled per customer across subscriptions of the same product SKU."""
    held = sum(
        s["quantity"]
        for s in subscriptions
        if s["status"] in LIVE and f"{s['productId']}:{s['skuId']}".upper() == ref.key.upper()
    )
    remaining = ref.sku["maximumQuantity"] - held
    if extra > remaining:
        raise SandboxError(
            403,
            codes.SEAT_LIMIT_EXCEEDED,
            f"The requested number of {extra} seat/s exceeded the remaining limit of {max(remaining, 0)} seats "
            f"allowed per subscription for the CatalogID - {ref.key}",
        )


def check_parent(ref: SkuRef, subscriptions: list[dict[str, Any]], parent_id: str | None) -> None:
    """Add-ons need an active base subscription of one of their prerequisite SKUs."""
    if not ref.sku["isAddon"]:
        return
    if not parent_id:
        raise SandboxError(
            400,
            codes.CART_ITEM_ERROR,
            "Error in Cart item(s)",
            [f"{ref.key} is an add-on: provisioningContext.ParentSubscriptionId is required."],
        )
    parent = next((s for s in subscriptions if s["id"].lower() == parent_id.lower()), None)
    if parent is None or f"{parent['productId']}:{parent['skuId']}".upper() not in {
        key.upper() for key in ref.sku["prerequisiteSkus"]
    }:
        raise SandboxError(
            400, codes.ADDON_NOT_RELATED, "The add-on is not related to the specified parent subscription"
        )
    if parent["status"] != "active":
        raise SandboxError(
            409,
            codes.PARENT_NOT_ACTIVE,
            "Cannot enable a child subscription, when the parent subscription is not Active",
        )
