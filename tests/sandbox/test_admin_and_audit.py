"""The admin endpoint's relationship acceptance and changes "elsewhere", and the audit records every
mutation leaves (API or admin), read through `GET /v1/auditrecords`."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from tests.sandbox.conftest import BASIC, BASIC_LICENCE, Api

TENANT = "6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"


async def audit(api: Api, **query: str) -> list[dict[str, Any]]:
    text = urllib.parse.urlencode({"startDate": "2025-03-01", **query})
    return list((await api.ok("GET", f"/v1/auditrecords?{text}"))["items"])


async def test_admin_index_lists_the_endpoints(api: Api) -> None:
    index = await api.admin("GET", "")
    assert "POST /_sandbox/relationships/accept" in index["endpoints"]


async def test_accepting_a_relationship_creates_the_customer(api: Api) -> None:
    accepted = await api.admin(
        "POST",
        "/relationships/accept",
        {"tenantId": TENANT, "companyName": "Relecloud", "domain": "relecloud.onmicrosoft.com", "country": "GB"},
        status=201,
    )
    assert accepted["id"] == TENANT and accepted["relationshipToPartner"] == "reseller"
    fetched = await api.ok("GET", f"/v1/customers/{TENANT}")
    assert fetched["companyProfile"]["domain"] == "relecloud.onmicrosoft.com"
    users = await api.ok("GET", f"/v1/customers/{TENANT}/users")
    assert [u["userPrincipalName"] for u in users["items"]] == ["admin@relecloud.onmicrosoft.com"]
    assert (await api.ok("GET", f"/v1/customers/{TENANT}/agreements"))["totalCount"] == 0
    (record,) = await audit(api)
    assert (record["operationType"], record["resourceType"]) == ("create_partner_relationship", "partner_relationship")
    await api.fails(
        "POST",
        "/_sandbox/relationships/accept",
        {"tenantId": TENANT, "companyName": "Again", "domain": "other.onmicrosoft.com"},
        status=409,
        code=27002,
    )
    await api.fails("POST", "/_sandbox/relationships/accept", {"tenantId": "nope"}, status=400, code=800002)


async def test_changes_elsewhere_are_visible_and_audited(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    await api.buy(cid, BASIC, 2)
    user = await api.admin(
        "POST",
        f"/customers/{cid}/users",
        {"userPrincipalName": f"kim@{domain}", "displayName": "Kim", "usageLocation": "US"},
        status=201,
    )
    assert "passwordProfile" not in user
    await api.admin("POST", f"/customers/{cid}/users/{user['id']}/licenses", {"assign": [BASIC_LICENCE]})
    assert (await api.ok("GET", f"/v1/customers/{cid}/subscribedskus"))["items"][0]["consumedUnits"] == 1
    renamed = await api.admin(
        "PATCH", f"/customers/{cid}/users/{user['id']}", {"userPrincipalName": f"kimberly@{domain}"}
    )
    assert renamed["userPrincipalName"] == f"kimberly@{domain}"
    await api.admin("POST", f"/customers/{cid}/users/{user['id']}/licenses", {"remove": [BASIC_LICENCE]})
    await api.admin("DELETE", f"/customers/{cid}/users/{user['id']}", status=204)
    assert [u["userPrincipalName"] for u in (await api.ok("GET", f"/v1/customers/{cid}/users"))["items"]] == [
        f"admin@{domain}"
    ]

    elsewhere = [r for r in await audit(api) if r["applicationId"] == "Microsoft 365 admin center"]
    assert [r["operationType"] for r in elsewhere] == [
        "create_customer_user",
        "update_customer_user_licenses",
        "update_customer_user_principal_name",
        "update_customer_user_licenses",
        "delete_customer_user",
    ]
    assert {r["userPrincipalName"] for r in elsewhere} == {f"admin@{domain}"}
    licence_added = elsewhere[1]
    assert {"key": "AddedLicenseSkuId-0", "value": BASIC_LICENCE} in licence_added["customizedData"]
    await api.fails("POST", f"/_sandbox/customers/{cid}/users/{user['id']}/licenses", {}, status=404, code=60002)


async def test_every_api_mutation_is_audited_in_microsofts_shape(api: Api) -> None:
    created = await api.new_customer("auditcorp")
    cid = created["id"]
    await api.attest(cid)
    subscription = await api.buy(cid, BASIC, 3)
    await api.patch(subscription, quantity=4)
    domain = created["companyProfile"]["domain"]
    user = await api.ok(
        "POST",
        f"/v1/customers/{cid}/users",
        {"usageLocation": "US", "userPrincipalName": f"lee@{domain}", "displayName": "Lee",
         "passwordProfile": {"password": "Str0ng!pass"}},
        status=201,
    )  # fmt: skip
    await api.ok("POST", f"/v1/customers/{cid}/users/{user['id']}/licenseupdates",
                 {"licensesToAssign": [{"skuId": BASIC_LICENCE}]}, status=201)  # fmt: skip
    await api.ok("PATCH", f"/v1/customers/{cid}/users/{user['id']}", {"displayName": "Lee Chen"})
    await api.call("DELETE", f"/v1/customers/{cid}/users/{user['id']}")

    records = await audit(api)
    assert [r["operationType"] for r in records] == [
        "add_customer",
        "create_customer_agreement",
        "create_cart",
        "create_order",
        "update_subscription",
        "create_customer_user",
        "update_customer_user_licenses",
        "update_customer_user",
        "delete_customer_user",
    ]
    first = records[0]
    assert set(first) >= {
        "id", "partnerId", "customerId", "customerName", "userPrincipalName", "applicationId", "resourceType",
        "resourceNewValue", "operationType", "operationDate", "operationStatus", "customizedData", "attributes",
    }  # fmt: skip
    assert first["customerName"] == "Auditcorp Ltd" and first["operationStatus"] == "succeeded"
    assert "password" not in first["resourceNewValue"].lower()  # credentials are never audited
    update = records[4]
    assert json.loads(update["resourceOldValue"])["quantity"] == 3
    assert json.loads(update["resourceNewValue"])["quantity"] == 4


async def test_audit_records_filter_window_and_paging(api: Api) -> None:
    one = await api.new_customer("auditone")
    await api.new_customer("audittwo")
    await api.advance("P10D")
    await api.new_customer("auditthree")
    spec = json.dumps({"Field": "CustomerId", "Value": one["id"], "Operator": "equals"})
    assert [r["customerId"] for r in await audit(api, filter=spec)] == [one["id"]]
    by_type = json.dumps({"Field": "ResourceType", "Value": "Customer", "Operator": "equals"})
    assert len(await audit(api, filter=by_type)) == 3
    assert len(await audit(api, endDate="2025-03-10")) == 2  # a date-only end includes the whole day
    assert len(await audit(api, startDate="2025-03-15")) == 1

    page = await api.ok("GET", "/v1/auditrecords?startDate=2025-03-01&size=2")
    token = page["links"]["next"]["headers"][0]["value"]
    rest = await api.ok("GET", "/v1" + page["links"]["next"]["uri"], headers={"MS-ContinuationToken": token})
    assert page["totalCount"] == 2 and rest["totalCount"] == 1
    await api.advance("P100D")
    await api.fails("GET", "/v1/auditrecords?startDate=2025-03-01", status=400, code=800002)
