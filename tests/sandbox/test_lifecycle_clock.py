"""The sandbox clock and what happens at the end of a term: renewal (with the scheduled next-term
instructions, a new cancellation window and fresh refundable seats), expiry of subscriptions still
suspended, and the end of subscriptions not set to auto-renew."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sandbox.runtime import RUNTIME
from tests.sandbox.conftest import BASIC, STANDARD, Api


async def test_clock_reads_moves_and_refuses_nonsense(api: Api) -> None:
    assert await api.admin("GET", "/clock") == {"now": "2025-03-10T09:00:00Z", "frozen": True}
    moved = await api.advance("P1M2DT3H")
    assert moved["now"] == "2025-04-12T12:00:00Z"
    assert moved["termEnds"] == {"renewed": [], "expiredSuspended": [], "endedNotRenewing": []}
    assert (await api.admin("POST", "/clock", {"set": "2025-05-01T00:00:00Z"}))["now"] == "2025-05-01T00:00:00Z"
    await api.fails("POST", "/_sandbox/clock", {"advance": "one month"}, status=400, code=800002)
    await api.fails("POST", "/_sandbox/clock", {}, status=400, code=800002)


async def test_renewal_applies_scheduled_instructions_with_a_new_window(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 10)
    instructions = {
        "product": {"productId": BASIC[0], "skuId": BASIC[1], "billingCycle": "annual", "termDuration": "P1Y"},
        "quantity": 7,
    }
    await api.patch(subscription, scheduledNextTermInstructions=instructions)

    await api.admin("POST", "/clock", {"set": "2026-03-09T23:59:00Z"})  # still the last day of the term
    assert (await api.subscription(cid, subscription["id"]))["commitmentEndDate"] == "2026-03-09T00:00:00Z"
    moved = await api.admin("POST", "/clock", {"set": "2026-03-10T00:00:00Z"})
    assert moved["termEnds"]["renewed"] == [subscription["id"]]

    renewed = await api.subscription(cid, subscription["id"])
    assert renewed["status"] == "active"
    assert renewed["quantity"] == 7 and renewed["billingCycle"] == "annual"
    assert renewed["effectiveStartDate"] == "2026-03-10T00:00:00Z"
    assert renewed["commitmentEndDate"] == "2027-03-09T00:00:00Z"
    assert renewed["cancellationAllowedUntilDate"] == "2026-03-17T00:00:00Z"
    assert renewed["refundableQuantity"] == {
        "totalQuantity": 7,
        "details": [{"quantity": 7, "allowedUntilDateTime": "2026-03-17T00:00:00Z"}],
    }
    assert "scheduledNextTermInstructions" not in renewed
    assert (await api.patch(renewed, quantity=5))["quantity"] == 5  # renewed seats are refundable again

    audit = await api.ok("GET", "/v1/auditrecords?startDate=2026-03-01")
    reasons = [
        entry["value"] for record in audit["items"] for entry in record["customizedData"] if entry["key"] == "Reason"
    ]
    assert "Renewed" in reasons


async def test_term_end_expires_suspended_and_ends_non_renewing(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    suspended = await api.buy(cid, BASIC, 2, term="P1M", cycle="monthly")
    not_renewing = await api.buy(cid, STANDARD, 3, term="P1M", cycle="monthly")
    renewing = await api.buy(cid, BASIC, 1, term="P1M", cycle="monthly")
    await api.patch(suspended, status="suspended")
    await api.patch(not_renewing, autoRenewEnabled=False)
    assert renewing["commitmentEndDate"] == "2025-04-09T00:00:00Z"

    moved = await api.advance("P1M")
    assert moved["termEnds"] == {
        "renewed": [renewing["id"]],
        "expiredSuspended": [suspended["id"]],
        "endedNotRenewing": [not_renewing["id"]],
    }
    assert (await api.subscription(cid, suspended["id"]))["status"] == "expired"
    ended = await api.subscription(cid, not_renewing["id"])
    assert ended["status"] == "expired" and ended["actions"] == []
    await api.patch_fails(ended, {"quantity": 4}, status=400, code=2011)
    skus = await api.ok("GET", f"/v1/customers/{cid}/subscribedskus")
    assert {item["productSku"]["skuPartNumber"]: item["totalUnits"] for item in skus["items"]} == {
        "O365_BUSINESS_ESSENTIALS": 1
    }


async def test_a_long_jump_renews_a_monthly_term_once_per_month(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    monthly = await api.buy(cid, BASIC, 4, term="P1M", cycle="monthly")
    moved = await api.advance("P1Y")
    assert moved["termEnds"]["renewed"].count(monthly["id"]) == 12
    current = await api.subscription(cid, monthly["id"])
    assert current["effectiveStartDate"] == "2026-03-10T00:00:00Z"
    assert current["commitmentEndDate"] == "2026-04-09T00:00:00Z"


async def test_api_calls_also_roll_terms_that_ended(api: Api, customer: dict[str, Any]) -> None:
    """Time passing on its own (a running clock) is seen by the next call, not only by the admin endpoint."""
    cid = customer["id"]
    subscription = await api.buy(cid, BASIC, 2, term="P1M", cycle="monthly")
    await api.patch(subscription, autoRenewEnabled=False)
    api.client.app[RUNTIME].backend.clock.set(datetime(2025, 5, 1, tzinfo=UTC))  # as real time would move
    assert (await api.subscription(cid, subscription["id"]))["status"] == "expired"


async def test_billing_cycle_end_follows_the_clock(api: Api, customer: dict[str, Any]) -> None:
    subscription = await api.buy(customer["id"], BASIC, 1)
    assert subscription["billingCycleEndDate"] == "2025-04-09T00:00:00Z"
    await api.advance("P40D")
    assert (await api.subscription(customer["id"], subscription["id"]))["billingCycleEndDate"] == "2025-05-09T00:00:00Z"
    annual = await api.buy(customer["id"], STANDARD, 1, cycle="annual")
    assert annual["billingCycleEndDate"] == annual["commitmentEndDate"]
