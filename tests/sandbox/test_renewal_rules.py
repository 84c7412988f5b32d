"""Microsoft's rules around a renewal, on the sandbox's clock: an immediate (mid-term) quantity change
deletes the changes scheduled for the renewal; seats, scheduled changes and auto-renew are locked in
the last 24 hours before the renewal; monthly, annual and three-year terms renew at their own end;
every renewal opens a new 168-hour refund window for all its seats; users carry a last sign-in."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import BASIC, Api

LOCKED = 900190


def _next_term(quantity: int, cycle: str = "annual", term: str = "P1Y") -> dict[str, Any]:
    return {
        "product": {"productId": BASIC[0], "skuId": BASIC[1], "billingCycle": cycle, "termDuration": term},
        "quantity": quantity,
    }


async def test_a_mid_term_quantity_change_deletes_the_scheduled_changes(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 10)
    scheduled = await api.patch(subscription, scheduledNextTermInstructions=_next_term(6))
    assert scheduled["scheduledNextTermInstructions"]["quantity"] == 6
    # The full resource goes back with the change, carrying the schedule: it is deleted all the same.
    raised = await api.patch(scheduled, quantity=12)
    assert raised["quantity"] == 12 and "scheduledNextTermInstructions" not in raised
    assert "scheduledNextTermInstructions" not in await api.subscription(cid, subscription["id"])
    # A new schedule sent together with the change is a new instruction, and kept.
    rescheduled = await api.patch(raised, quantity=11, scheduledNextTermInstructions=_next_term(8))
    assert rescheduled["quantity"] == 11 and rescheduled["scheduledNextTermInstructions"]["quantity"] == 8
    audit = await api.ok("GET", "/v1/auditrecords?startDate=2025-03-01")
    deleted = [
        record
        for record in audit["items"]
        if any(e["key"] == "ScheduledNextTermInstructions" and e["value"] == "null" for e in record["customizedData"])
    ]
    assert len(deleted) == 1  # the deletion is on Microsoft's record


async def test_changes_are_locked_in_the_last_24_hours_before_the_renewal(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 10, term="P1M", cycle="monthly")
    assert subscription["commitmentEndDate"] == "2025-04-09T00:00:00Z"  # renews at 2025-04-10T00:00Z
    await api.admin("POST", "/clock", {"set": "2025-04-08T23:59:59Z"})  # a second before the lock
    before_lock = await api.patch(await api.subscription(cid, subscription["id"]), quantity=11)
    await api.admin("POST", "/clock", {"set": "2025-04-09T00:00:00Z"})  # 24 hours before the renewal
    current = await api.subscription(cid, subscription["id"])
    assert current["attributes"]["etag"] == before_lock["attributes"]["etag"]
    answer = await api.patch_fails(current, {"quantity": 12}, status=400, code=LOCKED)
    assert "2025-04-10T00:00:00Z" in answer["data"][0]
    await api.patch_fails(current, {"autoRenewEnabled": False}, status=400, code=LOCKED)
    await api.patch_fails(
        current, {"scheduledNextTermInstructions": _next_term(5, "monthly", "P1M")}, status=400, code=LOCKED
    )
    # What is not a change of seats or renewal (a suspension) is not locked.
    suspended = await api.patch(current, status="suspended")
    resumed = await api.patch(suspended, status="active")
    await api.admin("POST", "/clock", {"set": "2025-04-10T00:00:00Z"})  # renewed: changes are open again
    renewed = await api.subscription(cid, subscription["id"])
    assert renewed["effectiveStartDate"] == "2025-04-10T00:00:00Z" and renewed["quantity"] == resumed["quantity"]
    assert (await api.patch(renewed, quantity=12))["quantity"] == 12


async def test_each_term_renews_at_its_own_end_with_a_new_refund_window(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    monthly = await api.buy(cid, BASIC, 2, term="P1M", cycle="monthly")
    annual = await api.buy(cid, BASIC, 3, term="P1Y", cycle="annual")
    triennial = await api.buy(cid, BASIC, 4, term="P3Y", cycle="annual")
    assert triennial["commitmentEndDate"] == "2028-03-09T00:00:00Z"
    moved = await api.admin("POST", "/clock", {"set": "2026-03-10T00:00:00Z"})
    assert moved["termEnds"]["renewed"].count(monthly["id"]) == 12
    assert moved["termEnds"]["renewed"].count(annual["id"]) == 1 and triennial["id"] not in moved["termEnds"]["renewed"]
    renewed = await api.subscription(cid, annual["id"])
    assert renewed["refundableQuantity"]["details"] == [{"quantity": 3, "allowedUntilDateTime": "2026-03-17T00:00:00Z"}]
    still = await api.subscription(cid, triennial["id"])
    assert still["effectiveStartDate"] == "2025-03-10T00:00:00Z" and still["refundableQuantity"]["totalQuantity"] == 0
    moved = await api.admin("POST", "/clock", {"set": "2028-03-10T00:00:00Z"})
    assert triennial["id"] in moved["termEnds"]["renewed"]
    again = await api.subscription(cid, triennial["id"])
    assert again["commitmentEndDate"] == "2031-03-09T00:00:00Z" and again["refundableQuantity"]["totalQuantity"] == 4


async def test_users_carry_their_last_sign_in(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    admin = (await api.ok("GET", f"/v1/customers/{cid}/users"))["items"][0]
    assert admin["signInActivity"] == {"lastSignInDateTime": "2025-03-10T09:00:00Z"}  # when it was created
    await api.advance("P40D")
    signed = await api.admin("POST", f"/customers/{cid}/users/{admin['id']}/signins", {})
    assert signed["signInActivity"]["lastSignInDateTime"] == "2025-04-19T09:00:00Z"
    earlier = await api.admin("POST", f"/customers/{cid}/users/{admin['id']}/signins", {"at": "2025-04-01T08:00:00Z"})
    assert earlier["signInActivity"]["lastSignInDateTime"] == "2025-04-01T08:00:00Z"
    listed = (await api.ok("GET", f"/v1/customers/{cid}/users"))["items"][0]
    assert listed["signInActivity"]["lastSignInDateTime"] == "2025-04-01T08:00:00Z"
    await api.fails("POST", f"/_sandbox/customers/{cid}/users/{admin['id']}/signins", {"at": "soon"}, status=400,
                    code=800002)  # fmt: skip
