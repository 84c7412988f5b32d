"""Carts, checkout, orders and the new-commerce subscription rules with their error codes."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import BASIC, COPILOT, E3, STANDARD, TEAMS_PHONE, Api, subscription_path


async def test_buying_needs_the_customer_agreement(api: Api) -> None:
    created = await api.new_customer()
    cart = await api.cart(created["id"], BASIC, 3)
    checkout = f"/v1/customers/{created['id']}/carts/{cart['id']}/checkout"
    await api.fails("POST", checkout, {}, status=403, code=13605)
    await api.attest(created["id"])
    result = await api.ok("POST", checkout, {}, status=201)
    assert len(result["orders"]) == 1


async def test_cart_checkout_order_and_subscription_shapes(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    cart = await api.cart(cid, BASIC, 5)
    assert cart["status"] == "Active" and cart["expirationTimestamp"] > cart["creationTimestamp"]
    assert cart["lineItems"][0]["orderGroup"] == "0"
    result = await api.ok("POST", f"/v1/customers/{cid}/carts/{cart['id']}/checkout", {}, status=201)
    order = result["orders"][0]
    assert result["orderErrors"] == []
    assert order["status"] == "pending" and order["billingCycle"] == "monthly"
    line = order["lineItems"][0]
    assert (line["quantity"], line["termDuration"], line["transactionType"]) == (5, "P1Y", "New")

    ordered = await api.ok("GET", f"/v1/customers/{cid}/carts/{cart['id']}")
    assert ordered["status"] == "Ordered" and ordered["orders"][0]["id"] == order["id"]
    assert (await api.ok("GET", f"/v1/customers/{cid}/orders/{order['id']}"))["status"] == "completed"
    await api.fails("GET", f"/v1/customers/{cid}/orders/nope", status=404, code=20000)
    await api.fails("GET", f"/v1/customers/{cid}/carts/nope", status=404, code=800008)

    subscription = await api.subscription(cid, line["subscriptionId"])
    assert subscription["offerId"] == line["offerId"]
    assert subscription["creationDate"] == "2025-03-10T09:00:00Z"
    assert subscription["effectiveStartDate"] == "2025-03-10T00:00:00Z"
    assert subscription["commitmentEndDate"] == "2026-03-09T00:00:00Z"
    assert subscription["cancellationAllowedUntilDate"] == "2025-03-17T09:00:00Z"
    assert subscription["billingCycleEndDate"] == "2025-04-09T00:00:00Z"
    assert subscription["refundableQuantity"] == {
        "totalQuantity": 5,
        "details": [{"quantity": 5, "allowedUntilDateTime": "2025-03-17T09:00:00Z"}],
    }
    assert subscription["autoRenewEnabled"] is True and subscription["status"] == "active"
    listing = await api.ok("GET", f"/v1/customers/{cid}/subscriptions")
    assert [s["id"] for s in listing["items"]] == [subscription["id"]]
    by_order = await api.ok("GET", f"/v1/customers/{cid}/subscriptions?order_id={order['id']}")
    assert by_order["totalCount"] == 1
    await api.fails("GET", f"/v1/customers/{cid}/subscriptions/nope", status=404, code=20003)


async def test_checkout_is_idempotent_per_request_id(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    cart = await api.cart(cid, BASIC, 2)
    path = f"/v1/customers/{cid}/carts/{cart['id']}/checkout"
    headers = {"MS-RequestId": "5d0a1c77-3c2f-4d4e-8f1a-9b2c3d4e5f60"}
    first = await api.ok("POST", path, {}, status=201, headers=headers)
    again = await api.ok("POST", path, {}, status=201, headers=headers)
    assert again == first
    assert (await api.ok("GET", f"/v1/customers/{cid}/subscriptions"))["totalCount"] == 1
    await api.fails("POST", path, {}, status=400, code=800065, headers={"MS-RequestId": "a-new-one"})


async def test_cart_line_rules(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    item = await api.catalog_item(BASIC, "P1Y")
    carts = f"/v1/customers/{cid}/carts"

    def cart(**line: Any) -> dict[str, Any]:
        base = {"id": 0, "catalogItemId": item, "quantity": 1, "billingCycle": "monthly", "termDuration": "P1Y"}
        return {"lineItems": [dict(base, **line)]}

    await api.fails("POST", carts, cart(quantity=301), status=400, code=2002)
    await api.fails("POST", carts, cart(quantity=0), status=400, code=2002)
    await api.fails("POST", carts, cart(billingCycle="triennial"), status=400, code=800009)
    await api.fails("POST", carts, cart(termDuration="P1M"), status=400, code=800009)
    await api.fails("POST", carts, cart(catalogItemId="CFQ7TTC0NOPE:0001:CFQ7TTC0AAAA"), status=400, code=800009)
    await api.fails("POST", carts, {"lineItems": []}, status=400, code=800002)
    await api.ok("POST", carts, cart(quantity=300), status=201)


async def test_business_seat_maximum_is_pooled_per_customer(api: Api, customer: dict[str, Any]) -> None:
    await api.buy(customer["id"], BASIC, 250)
    answer = await api.fails(
        "POST",
        f"/v1/customers/{customer['id']}/carts",
        {"lineItems": [{"id": 0, "catalogItemId": await api.catalog_item(BASIC, "P1M"), "quantity": 60,
                        "billingCycle": "monthly", "termDuration": "P1M"}]},
        status=403,
        code=800088,
    )  # fmt: skip
    assert "remaining limit of 50" in answer["description"]


async def test_addons_need_an_active_base_of_a_prerequisite_sku(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    base = await api.buy(cid, BASIC, 10)
    e3 = await api.buy(cid, E3, 5)
    item = await api.catalog_item(TEAMS_PHONE, "P1Y")
    carts = f"/v1/customers/{cid}/carts"

    def cart(parent: str | None) -> dict[str, Any]:
        line: dict[str, Any] = {"id": 0, "catalogItemId": item, "quantity": 2, "billingCycle": "monthly",
                                "termDuration": "P1Y"}  # fmt: skip
        if parent is not None:
            line["ProvisioningContext"] = {"ParentSubscriptionId": parent}
        return {"lineItems": [line]}

    await api.fails("POST", carts, cart(None), status=400, code=800009)
    await api.fails("POST", carts, cart("not-a-subscription"), status=400, code=800029)
    phone = await api.buy(cid, TEAMS_PHONE, 2, parent=base["id"])
    assert phone["parentSubscriptionId"] == base["id"]
    assert phone["links"]["parentSubscription"]["uri"].endswith(base["id"])
    addons = await api.ok("GET", f"/v1/customers/{cid}/subscriptions/{base['id']}/addons")
    assert [s["id"] for s in addons["items"]] == [phone["id"]]
    assert (await api.ok("GET", f"/v1/customers/{cid}/subscriptions/{e3['id']}/addons"))["totalCount"] == 0
    copilot = await api.buy(cid, COPILOT, 1, parent=e3["id"])
    assert copilot["status"] == "active"

    await api.patch(await api.subscription(cid, base["id"]), status="suspended")
    await api.fails("POST", carts, cart(base["id"]), status=409, code=27009)
    await api.patch(await api.subscription(cid, phone["id"]), status="suspended")
    await api.patch_fails(await api.subscription(cid, phone["id"]), {"status": "active"}, status=409, code=27009)


async def test_quantity_rises_anytime_and_falls_only_by_refundable_seats(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, STANDARD, 10)
    await api.advance("P3D")
    raised = await api.patch(subscription, quantity=14)
    assert raised["quantity"] == 14
    details = raised["refundableQuantity"]["details"]
    assert [d["quantity"] for d in details] == [10, 4]
    assert details[1]["allowedUntilDateTime"] == "2025-03-20T09:00:00Z"  # its own 168 hours
    lowered = await api.patch(raised, quantity=8)
    assert lowered["quantity"] == 8 and lowered["refundableQuantity"]["totalQuantity"] == 8

    await api.advance("P5D")  # the purchase's window is over; nothing is refundable any more
    current = await api.subscription(cid, subscription["id"])
    assert current["refundableQuantity"] == {"totalQuantity": 0, "details": []}
    assert current["refundOptions"] == [] and "cancel" not in current["actions"]
    await api.patch_fails(current, {"quantity": 7}, status=400, code=800090)
    more = await api.patch(current, quantity=9)
    assert more["refundableQuantity"]["totalQuantity"] == 1
    await api.patch_fails(more, {"quantity": 7}, status=400, code=800090)
    assert (await api.patch(more, quantity=8))["quantity"] == 8
    await api.patch_fails(await api.subscription(cid, subscription["id"]), {"quantity": 301}, status=400, code=2002)


async def test_quantity_never_falls_below_assigned_licences(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 3)
    admin = (await api.ok("GET", f"/v1/customers/{cid}/users"))["items"][0]["id"]
    other = await api.ok(
        "POST",
        f"/v1/customers/{cid}/users",
        {"usageLocation": "US", "userPrincipalName": f"jo@{customer['companyProfile']['domain']}",
         "displayName": "Jo", "passwordProfile": {"password": "Str0ng!pass", "forceChangePassword": True}},
        status=201,
    )  # fmt: skip
    for user in (admin, other["id"]):
        await api.ok(
            "POST",
            f"/v1/customers/{cid}/users/{user}/licenseupdates",
            {"LicensesToAssign": [{"SkuId": "3b555118-da6a-4418-894f-7df1e2096870", "ExcludedPlans": None}]},
            status=201,
        )
    assert (await api.patch(subscription, quantity=2))["quantity"] == 2
    answer = await api.patch_fails(
        await api.subscription(cid, subscription["id"]), {"quantity": 1}, status=400, code=800095
    )
    assert "2 licence(s)" in answer["data"][0]


async def test_suspended_quantity_is_frozen_and_reactivation_works(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 4)
    suspended = await api.patch(subscription, status="suspended")
    assert suspended["status"] == "suspended" and suspended["suspensionReasons"] == ["PartnerInitiated"]
    await api.patch_fails(suspended, {"quantity": 6}, status=400, code=2001)
    await api.advance("P30D")  # suspend and reactivate stay possible after the cancellation window
    current = await api.subscription(cid, subscription["id"])
    active = await api.patch(current, status="active")
    assert active["status"] == "active" and active["suspensionReasons"] == []
    assert (await api.patch(active, quantity=6))["quantity"] == 6
    skus = await api.ok("GET", f"/v1/customers/{cid}/subscribedskus")
    assert skus["items"][0]["activeUnits"] == 6


async def test_cancel_only_inside_the_cancellation_window(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    early = await api.buy(cid, BASIC, 2)
    late = await api.buy(cid, STANDARD, 2)
    await api.advance("P6D")
    cancelled = await api.patch(early, status="deleted")
    assert cancelled["status"] == "deleted" and cancelled["autoRenewEnabled"] is False
    await api.patch_fails(cancelled, {"quantity": 3}, status=400, code=2011)
    await api.advance("P2D")
    late_now = await api.subscription(cid, late["id"])
    answer = await api.patch_fails(late_now, {"status": "deleted"}, status=400, code=900117)
    assert "7-day cancellation window" in answer["description"]


async def test_patch_needs_the_current_etag(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 2)
    path = subscription_path(subscription)
    await api.fails("PATCH", path, dict(subscription, quantity=3, attributes={}), status=412, code=2055)
    updated = await api.patch(subscription, quantity=3)
    assert updated["attributes"]["etag"] != subscription["attributes"]["etag"]
    await api.fails(
        "PATCH", path, dict(subscription, quantity=4), status=412, code=2055,
        headers={"If-Match": subscription["attributes"]["etag"]},
    )  # fmt: skip
    body_etag = dict(updated, quantity=4)  # no If-Match: the resource's own attributes.etag counts
    assert (await api.ok("PATCH", path, body_etag))["quantity"] == 4


async def test_auto_renew_and_next_term_instructions_are_validated(api: Api, customer: dict[str, Any]) -> None:
    subscription = await api.buy(customer["id"], BASIC, 5)
    off = await api.patch(subscription, autoRenewEnabled=False)
    assert off["autoRenewEnabled"] is False
    bad = {"product": {"productId": BASIC[0], "skuId": BASIC[1], "billingCycle": "triennial", "termDuration": "P1Y"}}
    await api.patch_fails(off, {"scheduledNextTermInstructions": bad}, status=400, code=27002)
    good = {"product": {"productId": BASIC[0], "skuId": BASIC[1], "billingCycle": "Annual", "termDuration": "P1Y"},
            "quantity": 3}  # fmt: skip
    scheduled = await api.patch(off, scheduledNextTermInstructions=good, autoRenewEnabled=True)
    assert scheduled["scheduledNextTermInstructions"]["quantity"] == 3
    assert scheduled["scheduledNextTermInstructions"]["product"]["termDuration"] == "P1Y"
    suspended = await api.patch(scheduled, status="suspended")
    assert "scheduledNextTermInstructions" not in suspended  # Microsoft drops them on suspension


async def test_an_expired_cart_cannot_be_checked_out(api: Api, customer: dict[str, Any]) -> None:
    cart = await api.cart(customer["id"], BASIC, 1)
    assert cart["expirationTimestamp"] == "2025-03-10T09:15:00Z"
    await api.advance("PT16M")
    answer = await api.fails(
        "POST", f"/v1/customers/{customer['id']}/carts/{cart['id']}/checkout", {}, status=400, code=800002
    )
    assert "expired" in answer["description"]
