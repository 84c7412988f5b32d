"""Fault injection (429, 5xx, latency, dropped connections, 5xx after commit, 202 + Location) and
per-customer throttling — each observable over raw HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sandbox import SandboxSettings
from tests.sandbox.conftest import BASIC, Api, customer_request, stored_documents


async def test_throttle_fault_on_the_nth_call(api: Api, customer: dict[str, Any]) -> None:
    path = f"/v1/customers/{customer['id']}/subscriptions"
    rule = await api.admin(
        "POST", "/faults", {"kind": "throttle", "method": "GET", "path": "/v1/customers/*/subscriptions",
                            "nth": 2, "retryAfter": 57}, status=201,
    )  # fmt: skip
    assert (await api.call("GET", path))[0] == 200
    status, body, headers = await api.call("GET", path)
    assert status == 429 and headers["Retry-After"] == "57"
    assert body == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."}
    assert (await api.call("GET", path))[0] == 200
    assert (await api.call("GET", f"/v1/customers/{customer['id']}"))[0] == 200  # another path: not matched
    listed = next(f for f in (await api.admin("GET", "/faults"))["faults"] if f["id"] == rule["id"])
    assert (listed["id"], listed["matched"], listed["fired"]) == (rule["id"], 3, 1)


async def test_a_5xx_storm_then_recovery(api: Api) -> None:
    await api.admin("POST", "/faults", {"kind": "error", "path": "/v1/products", "repeat": 3, "status": 503},
                    status=201)  # fmt: skip
    statuses = [(await api.call("GET", "/v1/products?country=US"))[0] for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    _, body, _ = await api.call("GET", "/v1/products?country=US")
    assert isinstance(body, dict) and body["totalCount"] >= 30


async def test_faults_by_rate(api: Api) -> None:
    await api.admin("POST", "/faults", {"kind": "error", "path": "/v1/countryvalidationrules/*", "rate": 1.0},
                    status=201)  # fmt: skip
    await api.admin("POST", "/faults", {"kind": "throttle", "path": "/v1/agreements", "rate": 0.0}, status=201)
    assert {(await api.call("GET", "/v1/countryvalidationrules/US"))[0] for _ in range(3)} == {500}
    assert {(await api.call("GET", "/v1/agreements"))[0] for _ in range(3)} == {200}
    await api.admin("DELETE", "/faults", status=204)
    assert (await api.call("GET", "/v1/countryvalidationrules/US"))[0] == 200


async def test_latency_delays_but_answers(api: Api) -> None:
    rule = await api.admin("POST", "/faults", {"kind": "latency", "path": "/v1/agreements", "latencyMs": 20},
                           status=201)  # fmt: skip
    assert (await api.call("GET", "/v1/agreements"))[0] == 200
    faults = {f["id"]: f for f in (await api.admin("GET", "/faults"))["faults"]}
    assert faults[rule["id"]]["fired"] == 1
    await api.admin("DELETE", f"/faults/{rule['id']}", status=204)
    assert rule["id"] not in {f["id"] for f in (await api.admin("GET", "/faults"))["faults"]}
    await api.fails("DELETE", f"/_sandbox/faults/{rule['id']}", status=404, code=1000)


async def test_a_dropped_connection_changes_nothing(api: Api) -> None:
    await api.admin("POST", "/faults", {"kind": "drop", "method": "POST", "path": "/v1/customers"}, status=201)
    with pytest.raises(aiohttp.ClientError):
        await api.call("POST", "/v1/customers", customer_request("dropped"))
    assert (await api.ok("GET", "/v1/customers"))["totalCount"] == 0
    await api.ok("POST", "/v1/customers", customer_request("dropped"), status=201)


async def test_a_dropped_answer_after_commit_is_replayed_for_the_same_request_id(api: Api) -> None:
    await api.admin("POST", "/faults", {"kind": "drop_after_commit", "method": "POST", "path": "/v1/customers"},
                    status=201)  # fmt: skip
    headers = {"MS-RequestId": "7a1d3c55-0b6e-4f0e-9c1a-3c5e7f9a1b2d"}
    with pytest.raises(aiohttp.ClientError):
        await api.call("POST", "/v1/customers", customer_request("committed"), headers=headers)
    replayed = await api.ok("POST", "/v1/customers", customer_request("committed"), status=201, headers=headers)
    assert replayed["companyProfile"]["domain"] == "committed.onmicrosoft.com"
    assert (await api.ok("GET", "/v1/customers"))["totalCount"] == 1


async def test_a_5xx_after_commit_leaves_the_order_placed_once(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    cart = await api.cart(cid, BASIC, 4)
    checkout = f"/v1/customers/{cid}/carts/{cart['id']}/checkout"
    await api.admin("POST", "/faults", {"kind": "error_after_commit", "method": "POST", "path": "*/checkout"},
                    status=201)  # fmt: skip
    headers = {"MS-RequestId": "c4b2a1f0-1111-4222-8333-944455556666"}
    failed = await api.fails("POST", checkout, {}, status=500, code=800003, headers=headers)
    assert "after commit" in failed["description"]
    looked_up = await api.ok("GET", f"/v1/customers/{cid}/carts/{cart['id']}")
    assert looked_up["status"] == "Ordered"  # the purchase happened: a careful client stops here
    replay = await api.ok("POST", checkout, {}, status=201, headers=headers)
    assert replay["orders"][0]["id"] == looked_up["orders"][0]["id"]
    await api.fails("POST", checkout, {}, status=400, code=800065, headers={"MS-RequestId": "fresh-id"})
    assert (await api.ok("GET", f"/v1/customers/{cid}/subscriptions"))["totalCount"] == 1


async def test_accepted_answers_202_and_the_location_completes(api: Api, customer: dict[str, Any]) -> None:
    subscription = await api.buy(customer["id"], BASIC, 3)
    await api.admin(
        "POST", "/faults", {"kind": "accepted", "method": "PATCH", "path": "/v1/customers/*/subscriptions/*",
                            "retryAfter": 0, "polls": 1}, status=201,
    )  # fmt: skip
    status, body, headers = await api.call(
        "PATCH",
        f"/v1/customers/{customer['id']}/subscriptions/{subscription['id']}",
        dict(subscription, quantity=5),
        headers={"If-Match": subscription["attributes"]["etag"]},
    )
    assert status == 202 and body is None and headers["Retry-After"] == "0"
    location = headers["Location"]
    assert location.startswith("/v1/operations/")
    polled = await api.call("GET", location)
    assert polled[0] == 202 and polled[2]["Location"] == location
    done = await api.ok("GET", location)
    assert done["quantity"] == 5 and done["id"] == subscription["id"]
    assert (await api.subscription(customer["id"], subscription["id"]))["quantity"] == 5


async def test_an_accepted_creation_keeps_no_password_while_it_waits(api: Api, sandbox_db: str) -> None:
    await api.admin("POST", "/faults", {"kind": "accepted", "method": "POST", "path": "/v1/customers",
                                        "retryAfter": 0, "polls": 1}, status=201)  # fmt: skip
    status, _, headers = await api.call("POST", "/v1/customers", customer_request("waitcorp"))
    assert status == 202
    stored = await stored_documents(sandbox_db)
    assert "waitcorp" in stored and '"password":' not in stored
    assert (await api.call("GET", headers["Location"]))[0] == 202
    done = await api.ok("GET", headers["Location"], status=201)
    assert done["companyProfile"]["domain"] == "waitcorp.onmicrosoft.com"
    assert done["userCredentials"]["userName"] == "admin@waitcorp.onmicrosoft.com"
    assert len(done["userCredentials"]["password"]) >= 12


async def test_invalid_faults_are_refused_and_admin_calls_are_never_faulted(api: Api) -> None:
    await api.fails("POST", "/_sandbox/faults", {"kind": "explode"}, status=400, code=800002)
    await api.fails("POST", "/_sandbox/faults", {"kind": "error", "status": 404}, status=400, code=800002)
    await api.fails("POST", "/_sandbox/faults", {"kind": "error", "nth": 0}, status=400, code=800002)
    await api.admin("POST", "/faults", {"kind": "error", "path": "*", "rate": 1.0}, status=201)
    assert (await api.call("GET", "/_sandbox/clock"))[0] == 200
    assert (await api.call("GET", "/v1/agreements"))[0] == 500


async def test_throttling_is_per_customer_and_refills_on_the_sandbox_clock(api: Api) -> None:
    first = await api.new_customer("throttleone")
    second = await api.new_customer("throttletwo")
    assert (await api.admin("GET", "/throttle"))["enabled"] is False
    await api.admin("POST", "/throttle", {"enabled": True, "capacity": 2, "refillPerSecond": 0.5})
    path = f"/v1/customers/{first['id']}/subscriptions"
    assert [(await api.call("GET", path))[0] for _ in range(2)] == [200, 200]
    status, body, headers = await api.call("GET", path)
    assert status == 429 and headers["Retry-After"] == "2" and body["statusCode"] == 429
    assert (await api.call("GET", f"/v1/customers/{second['id']}/subscriptions"))[0] == 200
    assert (await api.call("GET", "/_sandbox/clock"))[0] == 200
    await api.advance("PT2S")
    assert (await api.call("GET", path))[0] == 200
    await api.fails("POST", "/_sandbox/throttle", {"capacity": 0}, status=400, code=800002)


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    """Faults can also be configured through settings (here: one 503 on the first product call)."""
    return SandboxSettings(
        availability_salt="sandbox-tests",
        faults=({"kind": "error", "method": "GET", "path": "/v1/products/CFQ7TTC0LCHC", "status": 503},),
    )


async def test_faults_from_settings(api: Api) -> None:
    assert (await api.call("GET", "/v1/products/CFQ7TTC0LCHC?country=US"))[0] == 503
    assert (await api.call("GET", "/v1/products/CFQ7TTC0LCHC?country=US"))[0] == 200
