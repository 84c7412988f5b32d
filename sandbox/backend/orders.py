"""Carts and orders: a cart checked out becomes one order per billing cycle and its subscriptions."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sandbox import errors as codes
from sandbox.backend.core import (
    CANCELLATION_WINDOW_DAYS,
    REFUND_WINDOW,
    Core,
    Resource,
    as_dict,
    as_int,
    as_text,
    normalise,
)
from sandbox.backend.seats import check_parent, check_pool, check_range
from sandbox.backend.terms import Terms
from sandbox.catalog import SkuRef
from sandbox.clock import commitment_end, iso, parse_instant, start_of_day
from sandbox.errors import SandboxError, invalid_input, not_found
from sandbox.resources import cart_json, order_json
from sandbox.store import Unit


class Orders(Resource):
    """A checkout records each new subscription's term end with `Terms`."""

    def __init__(self, core: Core, terms: Terms) -> None:
        super().__init__(core)
        self.terms = terms

    async def create_cart(self, tx: Unit, customer_id: str, raw: Any) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        body = normalise(raw)
        lines = as_dict(body).get("lineItems") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not lines:
            raise invalid_input("a cart needs lineItems")
        now = self.clock.now()
        subscriptions = await tx.documents("subscription", customer_id=customer["id"])
        cycles: list[str] = []
        items = []
        for index, raw_line in enumerate(lines):
            line = as_dict(raw_line)
            ref, duration = self.catalog.resolve(as_text(line.get("catalogItemId")), now)
            term = as_text(line.get("termDuration")).upper() or duration
            cycle = as_text(line.get("billingCycle")).lower()
            if term != duration or not ref.supports(term, cycle):
                raise SandboxError(
                    400,
                    codes.CART_ITEM_ERROR,
                    "Error in Cart item(s)",
                    [f"lineItem {index}: {ref.key} is not sold with term {term or '?'} billed {cycle or '?'}"],
                )
            quantity = as_int(line.get("quantity"), "quantity")
            check_range(ref, quantity)
            check_pool(ref, subscriptions, quantity)
            context = {k: v for k, v in as_dict(line.get("provisioningContext")).items() if isinstance(v, str)}
            check_parent(ref, subscriptions, context.get("parentSubscriptionId"))
            if cycle not in cycles:
                cycles.append(cycle)
            items.append(
                {
                    "id": as_int(line.get("id", index), "id"),
                    "catalogItemId": as_text(line.get("catalogItemId")),
                    "friendlyName": as_text(line.get("friendlyName")) or ref.sku["title"],
                    "quantity": quantity,
                    "currencyCode": self.catalog.currency,
                    "billingCycle": cycle,
                    "termDuration": term,
                    "provisioningContext": context,
                    "orderGroup": str(cycles.index(cycle)),
                }
            )
        cart = {
            "id": str(uuid.uuid4()),
            "customerId": customer["id"],
            "creationTimestamp": iso(now),
            "lastModifiedTimestamp": iso(now),
            "expirationTimestamp": iso(now + self.settings.cart_lifetime),
            "lastModifiedUser": self.settings.partner_user,
            "status": "Active",
            "lineItems": items,
            "orderIds": [],
        }
        await tx.put("cart", cart["id"], cart, customer_id=customer["id"])
        await self.core.audit(tx, customer, "cart", "create_cart", cart_json(cart), data={"CartId": cart["id"]})
        return cart_json(cart)

    async def cart(self, tx: Unit, customer_id: str, cart_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        cart = await tx.get("cart", cart_id.lower())
        if cart is None or cart["customerId"] != customer["id"]:
            raise not_found(codes.CART_NOT_FOUND, f"Cart {cart_id} was not found.")
        orders = [await tx.get("order", oid) for oid in cart.get("orderIds", [])]
        return cart_json(cart, [order_json(o, status="completed") for o in orders if o] if cart["orderIds"] else None)

    async def checkout(self, tx: Unit, customer_id: str, cart_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        cart = await tx.get("cart", cart_id.lower())
        if cart is None or cart["customerId"] != customer["id"]:
            raise not_found(codes.CART_NOT_FOUND, f"Cart {cart_id} was not found.")
        if cart["status"] != "Active":
            raise SandboxError(
                400, codes.CART_ALREADY_SUBMITTED, f"Cannot check out an already submitted cart {cart_id}."
            )
        now = self.clock.now()
        if now > parse_instant(cart["expirationTimestamp"]):
            raise invalid_input(f"cart {cart_id} expired at {cart['expirationTimestamp']}; create a new cart")
        if not customer["agreements"]:
            raise SandboxError(
                403,
                codes.AGREEMENT_MISSING,
                "Either a partner confirmation of the customer acceptance of the Microsoft Customer Agreement must be "
                "provided or the customer must accept the Microsoft Customer Agreement in the Microsoft Admin Center "
                "before you can complete this purchase",
            )
        subscriptions = await tx.documents("subscription", customer_id=customer["id"])
        orders: list[dict[str, Any]] = []
        order_errors: list[dict[str, Any]] = []
        groups: dict[str, list[dict[str, Any]]] = {}
        for line in cart["lineItems"]:
            groups.setdefault(line["orderGroup"], []).append(line)
        for group, lines in groups.items():
            order_id = secrets.token_hex(6)
            order_lines: list[dict[str, Any]] = []
            for line in lines:
                product_id, sku_id, availability = line["catalogItemId"].split(":")
                ref = self.catalog.sku(product_id, sku_id)
                try:
                    check_pool(ref, subscriptions, line["quantity"])
                    check_parent(ref, subscriptions, line["provisioningContext"].get("parentSubscriptionId"))
                except SandboxError as error:
                    order_errors.append({"orderGroupId": group, "code": error.code, "description": error.description})
                    continue
                subscription = new_subscription(customer, order_id, ref, availability, line, now)
                subscriptions.append(subscription)
                await tx.put("subscription", subscription["id"], subscription, customer_id=customer["id"])
                order_lines.append(
                    {
                        "lineItemNumber": len(order_lines),
                        "offerId": line["catalogItemId"],
                        "subscriptionId": subscription["id"],
                        "parentSubscriptionId": subscription["parentSubscriptionId"],
                        "termDuration": line["termDuration"],
                        "transactionType": "New",
                        "friendlyName": line["friendlyName"],
                        "quantity": line["quantity"],
                        "partnerIdOnRecord": None,
                        "provisioningContext": line["provisioningContext"],
                    }
                )
                self.terms.note_term_end(subscription)
            if not order_lines:
                continue
            order = {
                "id": order_id,
                "customerId": customer["id"],
                "billingCycle": lines[0]["billingCycle"],
                "currencyCode": self.catalog.currency,
                "lineItems": order_lines,
                "creationDate": iso(now),
                "status": "pending",
                "cartId": cart["id"],
            }
            await tx.put("order", order_id, order, customer_id=customer["id"])
            rendered = order_json(order)
            orders.append(rendered)
            await self.core.audit(
                tx,
                customer,
                "order",
                "create_order",
                rendered,
                data={"OrderId": order_id, "BillingCycle": order["billingCycle"]}
                | {f"SubscriptionId-{line['lineItemNumber']}": line["subscriptionId"] for line in order_lines}
                | {f"Quantity-{line['lineItemNumber']}": line["quantity"] for line in order_lines},
            )
        cart["status"] = "Ordered"
        cart["orderIds"] = [order["id"] for order in orders]
        cart["lastModifiedTimestamp"] = iso(now)
        await tx.put("cart", cart["id"], cart, customer_id=customer["id"])
        return {"orders": orders, "orderErrors": order_errors, "attributes": {"objectType": "CartCheckoutResult"}}

    async def order(self, tx: Unit, customer_id: str, order_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        order = await tx.get("order", order_id.lower())
        if order is None or order["customerId"] != customer["id"]:
            raise not_found(codes.ORDER_NOT_FOUND, f"Order {order_id} was not found.")
        return order_json(order, status="completed")


def new_subscription(
    customer: dict[str, Any],
    order_id: str,
    ref: SkuRef,
    availability: str,
    line: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    start = start_of_day(now)
    return {
        "id": str(uuid.uuid4()),
        "customerId": customer["id"],
        "orderId": order_id,
        "productId": ref.product["id"],
        "skuId": ref.sku["id"],
        "availabilityId": availability,
        "provisioningId": ref.sku["provisioningId"],
        "offerName": ref.sku["title"],
        "friendlyName": line["friendlyName"],
        "quantity": line["quantity"],
        "status": "active",
        "autoRenewEnabled": True,
        "billingCycle": line["billingCycle"],
        "termDuration": line["termDuration"],
        "creationDate": iso(now),
        "effectiveStartDate": iso(start),
        "commitmentEndDate": iso(commitment_end(start, line["termDuration"])),
        "cancellationAllowedUntilDate": iso(now + timedelta(days=CANCELLATION_WINDOW_DAYS)),
        "refundable": [{"quantity": line["quantity"], "allowedUntil": iso(now + REFUND_WINDOW)}],
        "scheduledNextTermInstructions": None,
        "parentSubscriptionId": line["provisioningContext"].get("parentSubscriptionId"),
        "suspensionReasons": [],
        "country": customer["billingProfile"].get("defaultAddress", {}).get("country", "US"),
        "version": 1,
    }
