"""Contract tests: the sandbox's answers carry every field name of Microsoft's reference examples
(copied into `tests/partner_center/fixtures/` from the shared reference), and it accepts the reference requests as sent
(PascalCase included). Extra fields are allowed; a missing one is a contract break."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxSettings
from tests.sandbox.conftest import BASIC, TEAMS_PHONE, Api, customer_request

REPO_ROOT = Path(__file__).resolve().parents[2]
# Microsoft's reference JSON, copied from ../shared/reference/partner-center/fixtures/ so a clone is
# self-contained (tests/partner_center/test_fixture_copies.py keeps the copies equal).
FIXTURES = REPO_ROOT / "tests" / "partner_center" / "fixtures"
POWER_BI_PRO = ("CFQ7TTC0LHSF", "0001")  # the licence SKU (f8a1db68-…) the licence fixtures use


def fixture(name: str) -> Any:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"reference fixture {name} is missing: expected it under {FIXTURES}")
    return json.loads(path.read_text(encoding="utf-8"))


def missing_fields(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Field paths present in `expected` but absent from `actual` (lists compared by first item)."""
    missing: list[str] = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where} (not an object)"]
        for key, value in expected.items():
            if key not in actual:
                missing.append(f"{where}.{key}")
            elif value is not None:
                missing += missing_fields(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected:
        if not isinstance(actual, list) or not actual:
            return [f"{where}[] (empty or not a list)"]
        missing += missing_fields(expected[0], actual[0], f"{where}[0]")
    return missing


def assert_contract(fixture_name: str, actual: Any) -> None:
    gaps = missing_fields(fixture(fixture_name), actual)
    assert not gaps, f"{fixture_name}: the sandbox's answer lacks {gaps}"


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(availability_salt="contract")


async def test_customer_creation_and_country_rules(api: Api) -> None:
    request = fixture("customer-create-request.json")
    request["CompanyProfile"]["Domain"] = "contractcorp.onmicrosoft.com"
    assert_contract("customer-create-response.json", await api.ok("POST", "/v1/customers", request, status=201))
    assert_contract("country-validation-rules.json", await api.ok("GET", "/v1/countryvalidationrules/PT"))


async def test_address_validation(api: Api) -> None:
    answer = await api.ok("POST", "/v1/validations/address", fixture("address-validation-request.json"))
    assert answer["status"] == "VerifiedShippable"
    assert_contract("address-validation-response.json", answer)


async def test_availability(api: Api) -> None:
    items = await api.ok("GET", f"/v1/products/{BASIC[0]}/skus/{BASIC[1]}/availabilities?country=US")
    assert_contract("availability.json", items["items"][1])


async def test_checkout_subscription_and_suspension_requests(api: Api, customer: dict[str, Any]) -> None:
    cid = customer["id"]
    request = fixture("cart-create-request.json")
    request["lineItems"][0].update(catalogItemId=await api.catalog_item(BASIC, "P1Y"), quantity=2)
    cart = await api.ok("POST", f"/v1/customers/{cid}/carts", request, status=201)
    result = await api.ok("POST", f"/v1/customers/{cid}/carts/{cart['id']}/checkout", {}, status=201)
    assert_contract("cart-checkout-response.json", result)

    subscription_id = result["orders"][0]["lineItems"][0]["subscriptionId"]
    subscription = await api.subscription(cid, subscription_id)
    instructions = {
        "product": {"productId": BASIC[0], "skuId": BASIC[1], "availabilityId": subscription["offerId"].split(":")[2],
                    "billingCycle": "Monthly", "termDuration": "P1Y"},
        "quantity": 1,
    }  # fmt: skip
    scheduled = await api.patch(subscription, scheduledNextTermInstructions=instructions)
    assert_contract("subscription.json", scheduled)

    addon = fixture("addon-cart-request.json")
    addon["LineItems"][0]["CatalogItemId"] = await api.catalog_item(TEAMS_PHONE, "P1Y")
    addon["LineItems"][0]["ProvisioningContext"]["ParentSubscriptionId"] = subscription_id
    addon["LineItems"][0]["BillingCycle"] = "monthly"
    addon_cart = await api.ok("POST", f"/v1/customers/{cid}/carts", addon, status=201)
    assert addon_cart["lineItems"][0]["provisioningContext"] == {"parentSubscriptionId": subscription_id}

    suspend = fixture("subscription-patch-suspend-request.json")
    suspend.update(Id=subscription_id, Quantity=2, OrderId=scheduled["orderId"])
    suspend["Attributes"]["Etag"] = scheduled["attributes"]["etag"]
    suspended = await api.ok("PATCH", f"/v1/customers/{cid}/subscriptions/{subscription_id}", suspend)
    assert suspended["status"] == "suspended" and suspended["autoRenewEnabled"] is False


async def test_users_licences_and_their_errors(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    await api.buy(cid, POWER_BI_PRO, 1)
    request = fixture("user-create-request.json")
    request["userPrincipalName"] = f"jdoe@{domain}"
    user = await api.ok("POST", f"/v1/customers/{cid}/users", request, status=201)
    assert_contract("user-create-response.json", user)

    update = fixture("licenseupdates-request.json")
    assigned = await api.ok("POST", f"/v1/customers/{cid}/users/{user['id']}/licenseupdates", update, status=201)
    assert_contract("licenseupdates-response.json", assigned)
    skus = await api.ok("GET", f"/v1/customers/{cid}/subscribedskus")
    assert_contract("subscribedsku.json", skus["items"][0])

    admin = next(u for u in (await api.ok("GET", f"/v1/customers/{cid}/users"))["items"] if u["id"] != user["id"])
    exhausted = await api.fails(
        "POST", f"/v1/customers/{cid}/users/{admin['id']}/licenseupdates", update, status=400, code=60012
    )
    assert_contract("error-license-quota-exceeded.json", exhausted)
    removal = fixture("licenseupdates-remove-request.json")
    await api.ok("POST", f"/v1/customers/{cid}/users/{user['id']}/licenseupdates", removal, status=201)


async def test_throttled_answer(api: Api) -> None:
    await api.admin("POST", "/faults", {"kind": "throttle", "path": "/v1/agreements", "retryAfter": 57}, status=201)
    status, body, headers = await api.call("GET", "/v1/agreements")
    assert status == 429 and headers["Retry-After"] == "57"
    assert body == fixture("error-throttled-429.json")
    assert_contract("error-throttled-429.json", body)


def test_the_contract_check_itself_finds_gaps() -> None:
    assert missing_fields({"a": {"b": 1}, "c": [{"d": 1}]}, {"a": {}, "c": []}) == [
        "$.a.b",
        "$.c[] (empty or not a list)",
    ]
    assert missing_fields({"a": None}, {"a": 3}) == []
    assert customer_request("x")["CompanyProfile"]["Domain"] == "x.onmicrosoft.com"
