"""Subscriptions: reading them, and changing seats, status, auto-renew and what the next term
brings, under Microsoft's new-commerce rules (refund and cancellation windows, the renewal lock)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sandbox import errors as codes
from sandbox.backend.core import (
    CANCELLATION_WINDOW_DAYS,
    LIVE,
    REFUND_WINDOW,
    RENEWAL_LOCK,
    Core,
    Resource,
    as_dict,
    as_int,
    as_text,
    normalise,
)
from sandbox.backend.licences import Licences
from sandbox.backend.seats import check_pool, check_range
from sandbox.catalog import SkuRef
from sandbox.clock import iso, parse_instant, term_end_instant
from sandbox.errors import SandboxError, invalid_input, invalid_property, not_found
from sandbox.resources import collection, etag, refundable_details, subscription_json
from sandbox.store import Unit


class Subscriptions(Resource):
    """A seat decrease checks the licences assigned (`Licences`)."""

    def __init__(self, core: Core, licences: Licences) -> None:
        super().__init__(core)
        self.licences = licences

    async def _find(self, tx: Unit, customer: dict[str, Any], subscription_id: str) -> dict[str, Any]:
        subscription = await tx.get("subscription", subscription_id.lower())
        if subscription is None or subscription["customerId"] != customer["id"]:
            raise not_found(codes.SUBSCRIPTION_NOT_FOUND, f"Subscription with id {subscription_id} not found.")
        return subscription

    async def listing(self, tx: Unit, customer_id: str, order_id: str | None) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        now = self.clock.now()
        items = await tx.documents("subscription", customer_id=customer["id"])
        if order_id:
            items = [s for s in items if s["orderId"] == order_id]
        return collection(
            [subscription_json(self.catalog, s, now) for s in items], f"/customers/{customer['id']}/subscriptions"
        )

    async def get(self, tx: Unit, customer_id: str, subscription_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        return subscription_json(self.catalog, await self._find(tx, customer, subscription_id), self.clock.now())

    async def addons(self, tx: Unit, customer_id: str, subscription_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        base = await self._find(tx, customer, subscription_id)
        now = self.clock.now()
        items = [
            subscription_json(self.catalog, s, now)
            for s in await tx.documents("subscription", customer_id=customer["id"])
            if (s.get("parentSubscriptionId") or "").lower() == base["id"]
        ]
        return collection(items, f"/customers/{customer['id']}/subscriptions/{base['id']}/addons")

    async def update(
        self, tx: Unit, customer_id: str, subscription_id: str, raw: Any, if_match: str | None
    ) -> dict[str, Any]:
        """PATCH with the full resource: quantity, status, autoRenewEnabled and
        scheduledNextTermInstructions, under Microsoft's new-commerce rules."""
        customer = await self.core.customer(tx, customer_id)
        subscription = await self._find(tx, customer, subscription_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be the full Subscription resource")
        current_etag = etag(subscription["id"], subscription["version"])
        offered = (if_match or "").strip().strip('"') or as_text(as_dict(body.get("attributes")).get("etag"))
        if offered != current_etag:
            raise SandboxError(412, codes.ETAG_INVALID, "Etag is no longer valid")
        status = subscription["status"]
        if status not in LIVE:
            raise SandboxError(
                400,
                codes.SUBSCRIPTION_DELETED,
                f"Subscription with id {subscription['id']} and {status} status cannot be updated.",
            )
        now = self.clock.now()
        before = subscription_json(self.catalog, subscription, now)
        ref = self.catalog.sku(subscription["productId"], subscription["skuId"])
        target = as_text(body.get("status")).lower() or status
        quantity = (
            as_int(body["quantity"], "quantity") if body.get("quantity") is not None else subscription["quantity"]
        )
        scheduled_before = subscription.get("scheduledNextTermInstructions")
        moves_quantity = quantity != subscription["quantity"] and target != "deleted"
        auto_renew = body.get("autoRenewEnabled")
        moves_auto_renew = isinstance(auto_renew, bool) and auto_renew != subscription["autoRenewEnabled"]
        instructions = (
            self._instructions(ref, body["scheduledNextTermInstructions"])
            if "scheduledNextTermInstructions" in body
            else scheduled_before
        )
        # The full resource sent back with a mid-term quantity change carries what was scheduled: that
        # schedule is deleted by the change, not kept by it (only instructions that differ are new ones).
        schedules = instructions != scheduled_before
        if target != "deleted" and (moves_quantity or moves_auto_renew or schedules):
            self._check_not_locked(subscription, now)
        changes: dict[str, Any] = {}
        if target != status:
            await self._change_status(tx, subscription, target, now)
            changes["Status"] = f"{status}->{target}"
        if moves_quantity:
            if status == "suspended" or target == "suspended":
                raise SandboxError(
                    400,
                    codes.SUBSCRIPTION_SUSPENDED_QUANTITY,
                    "Subscription quantity cannot be increased or decreased while subscription is being suspended",
                )
            await self._change_quantity(tx, customer, subscription, ref, quantity, now)
            changes["Quantity"] = f"{before['quantity']}->{quantity}"
            if scheduled_before is not None:
                # Microsoft: a mid-term (immediate) change deletes every change scheduled for the renewal.
                subscription["scheduledNextTermInstructions"] = None
                changes["ScheduledNextTermInstructions"] = json.dumps(None)
        if subscription["status"] == "deleted":
            pass  # a cancelled subscription keeps no renewal settings
        elif moves_auto_renew:
            subscription["autoRenewEnabled"] = auto_renew
            changes["AutoRenewEnabled"] = auto_renew
        if schedules and subscription["status"] == "active":
            subscription["scheduledNextTermInstructions"] = instructions
            changes["ScheduledNextTermInstructions"] = json.dumps(instructions)
        if isinstance(body.get("friendlyName"), str) and body["friendlyName"].strip() != subscription["friendlyName"]:
            subscription["friendlyName"] = body["friendlyName"].strip()
            changes["FriendlyName"] = subscription["friendlyName"]
        if not changes:
            return before
        subscription["version"] += 1
        await tx.put("subscription", subscription["id"], subscription, customer_id=customer["id"])
        after = subscription_json(self.catalog, subscription, now)
        await self.core.audit(
            tx,
            customer,
            "subscription",
            "update_subscription",
            after,
            old_value=before,
            data={"SubscriptionId": subscription["id"]} | changes,
        )
        return after

    async def _change_status(self, tx: Unit, subscription: dict[str, Any], target: str, now: datetime) -> None:
        status = subscription["status"]
        window_open = now <= parse_instant(subscription["cancellationAllowedUntilDate"])
        if target == "deleted":
            if not window_open:
                raise SandboxError(
                    400,
                    codes.CANCELLATION_WINDOW_PASSED,
                    f"You have passed your {CANCELLATION_WINDOW_DAYS}-day cancellation window. "
                    "We are unable to cancel your purchase",
                )
            subscription["status"] = "deleted"
            subscription["refundable"] = []
            subscription["autoRenewEnabled"] = False
            subscription["scheduledNextTermInstructions"] = None
            return
        if (status, target) not in (("active", "suspended"), ("suspended", "active")):
            raise SandboxError(
                400, codes.STATUS_CHANGE_NOT_ALLOWED, f"Asset status cannot be changed to {target} from {status}"
            )
        if self.settings.suspend_only_in_cancellation_window and not window_open:
            raise SandboxError(
                400,
                codes.CANCELLATION_WINDOW_PASSED,
                f"You have passed your {CANCELLATION_WINDOW_DAYS}-day cancellation window.",
            )
        if target == "active" and subscription.get("parentSubscriptionId"):
            parent = await tx.get("subscription", subscription["parentSubscriptionId"].lower())
            if parent is None or parent["status"] != "active":
                raise SandboxError(
                    409,
                    codes.PARENT_NOT_ACTIVE,
                    "Cannot enable a child subscription, when the parent subscription is not Active",
                )
        subscription["status"] = target
        if target == "suspended":
            # Microsoft removes scheduled changes when a new-commerce subscription is suspended.
            subscription["scheduledNextTermInstructions"] = None
            subscription["suspensionReasons"] = ["PartnerInitiated"]
        else:
            subscription["suspensionReasons"] = []

    async def _change_quantity(
        self,
        tx: Unit,
        customer: dict[str, Any],
        subscription: dict[str, Any],
        ref: SkuRef,
        quantity: int,
        now: datetime,
    ) -> None:
        check_range(ref, quantity)
        current = subscription["quantity"]
        if quantity > current:
            held = await tx.documents("subscription", customer_id=customer["id"])
            others = [s for s in held if s["id"] != subscription["id"]]
            check_pool(ref, others + [dict(subscription, quantity=0)], quantity)
            subscription["refundable"] = refundable_details(subscription, now) + [
                {"quantity": quantity - current, "allowedUntil": iso(now + REFUND_WINDOW)}
            ]
            subscription["quantity"] = quantity
            return
        decrease = current - quantity
        details = refundable_details(subscription, now)
        refundable = sum(detail["quantity"] for detail in details)
        if decrease > refundable:
            raise SandboxError(
                400,
                codes.CANNOT_DECREASE,
                "Subscription quantity cannot be decreased",
                [f"Only {refundable} seat(s) are still inside their refund window; {decrease} were asked."],
            )
        counts = (await self.licences.counts(tx, customer["id"])).get(ref.sku["provisioningId"].lower())
        consumed = counts["consumed"] if counts else 0
        active_after = (counts["active"] if counts else 0) - decrease
        if active_after < consumed:
            raise SandboxError(
                400,
                codes.CANNOT_UPDATE_QUANTITY,
                "Cannot update the seat quantity for this subscription",
                [
                    f"{consumed} licence(s) of {ref.sku['title']} are assigned; "
                    f"unassign them before reducing to {quantity}."
                ],
            )
        remaining = decrease
        for detail in reversed(details):
            taken = min(detail["quantity"], remaining)
            detail["quantity"] -= taken
            remaining -= taken
        subscription["refundable"] = [detail for detail in details if detail["quantity"] > 0]
        subscription["quantity"] = quantity

    def _check_not_locked(self, subscription: dict[str, Any], now: datetime) -> None:
        """No change to seats, scheduled changes or auto-renew in the last 24 hours before the renewal."""
        renewal = term_end_instant(parse_instant(subscription["commitmentEndDate"]))
        if renewal - RENEWAL_LOCK <= now < renewal:
            raise SandboxError(
                400,
                codes.RENEWAL_LOCKED,
                "The subscription is locked for changes in the 24 hours before its renewal",
                [f"Changes are possible again after the renewal at {iso(renewal)}."],
            )

    def _instructions(self, ref: SkuRef, raw: Any) -> dict[str, Any] | None:
        """Validated scheduledNextTermInstructions (null clears them)."""
        if raw is None:
            return None
        instructions = as_dict(raw)
        product = as_dict(instructions.get("product"))
        product_id = as_text(product.get("productId")) or ref.product["id"]
        sku_id = as_text(product.get("skuId")) or ref.sku["id"]
        target = self.catalog.find_sku(product_id, sku_id)
        if target is None or target.product["id"] != ref.product["id"]:
            raise invalid_property(
                "ScheduledNextTermInstructions", f"{product_id}:{sku_id} is not a SKU of this product."
            )
        term = as_text(product.get("termDuration")).upper()
        cycle = as_text(product.get("billingCycle")).lower()
        if not term or not cycle or not target.supports(term, cycle):
            raise invalid_property(
                "ScheduledNextTermInstructions",
                f"{target.key} is not sold with term {term or '?'} billed {cycle or '?'}.",
            )
        result: dict[str, Any] = {
            "product": {
                "productId": target.product["id"],
                "skuId": target.sku["id"],
                "availabilityId": as_text(product.get("availabilityId")),
                "billingCycle": product.get("billingCycle"),
                "termDuration": term,
            }
        }
        if product.get("promotionId"):
            result["product"]["promotionId"] = product["promotionId"]
        if instructions.get("quantity") is not None:
            quantity = as_int(instructions["quantity"], "scheduledNextTermInstructions.quantity")
            check_range(target, quantity)
            result["quantity"] = quantity
        if instructions.get("customTermEndDate"):
            result["customTermEndDate"] = instructions["customTermEndDate"]
        return result
