"""Customer users (paged with a continuation token), subscribed SKUs and licence assignment."""

from __future__ import annotations

from typing import Any

from tests.sandbox.conftest import BASIC, BASIC_LICENCE, E3, Api, stored_documents


def new_user(domain: str, name: str, *, location: str | None = "US") -> dict[str, Any]:
    body: dict[str, Any] = {
        "userPrincipalName": f"{name}@{domain}",
        "firstName": name.title(),
        "lastName": "Doe",
        "displayName": f"{name.title()} Doe",
        "passwordProfile": {"password": "abCD123*", "forceChangePassword": True},
        "attributes": {"objectType": "CustomerUser"},
    }
    if location is not None:
        body["usageLocation"] = location
    return body


async def test_users_are_created_read_renamed_and_deleted(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    users = f"/v1/customers/{cid}/users"
    created = await api.ok("POST", users, new_user(domain, "jane"), status=201)
    assert created["userPrincipalName"] == f"jane@{domain}" and created["state"] == "active"
    assert created["passwordProfile"] == {"forceChangePassword": True, "password": "abCD123*"}
    fetched = await api.ok("GET", f"{users}/{created['id']}")
    assert "passwordProfile" not in fetched and fetched["usageLocation"] == "US"

    renamed = await api.ok("PATCH", f"{users}/{created['id']}", {"displayName": "Jane Q. Doe",
                                                                  "userPrincipalName": f"jq@{domain}"})  # fmt: skip
    assert (renamed["displayName"], renamed["userPrincipalName"]) == ("Jane Q. Doe", f"jq@{domain}")
    status, _, _ = await api.call("DELETE", f"{users}/{created['id']}")
    assert status == 204
    await api.fails("GET", f"{users}/{created['id']}", status=404, code=60002)
    assert [u["userPrincipalName"] for u in (await api.ok("GET", users))["items"]] == [f"admin@{domain}"]


async def test_a_repeated_user_creation_answers_the_first_user_with_the_password_it_carries(
    api: Api, customer: dict[str, Any], sandbox_db: str
) -> None:
    users = f"/v1/customers/{customer['id']}/users"
    headers = {"MS-RequestId": "3f0c2a9e-7b1d-4e5f-a6b7-c8d9e0f1a2b3"}
    body = new_user(customer["companyProfile"]["domain"], "rita")
    first = await api.ok("POST", users, body, status=201, headers=headers)
    again = await api.ok("POST", users, body, status=201, headers=headers)
    assert again == first and again["passwordProfile"]["password"] == "abCD123*"
    assert len((await api.ok("GET", users))["items"]) == 2  # the admin and Rita, once
    stored = await stored_documents(sandbox_db)
    assert "rita@" in stored and "abCD123*" not in stored


async def test_user_creation_rules(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    users = f"/v1/customers/{cid}/users"
    missing = await api.fails("POST", users, new_user(domain, "nolocation", location=None), status=400, code=27002)
    assert "UsageLocation" in missing["data"][0]
    await api.fails("POST", users, new_user("elsewhere.onmicrosoft.com", "x"), status=400, code=27002)
    weak = new_user(domain, "weak")
    weak["passwordProfile"]["password"] = "password"
    await api.fails("POST", users, weak, status=400, code=27002)
    await api.ok("POST", users, new_user(domain, "twin"), status=201)
    await api.fails("POST", users, new_user(domain, "twin"), status=409, code=27002)


async def test_users_page_with_a_continuation_token(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    for index in range(6):
        await api.ok("POST", f"/v1/customers/{cid}/users", new_user(domain, f"user{index}"), status=201)
    seen: list[str] = []
    page = await api.ok("GET", f"/v1/customers/{cid}/users?size=3")
    pages = 1
    while True:
        seen += [user["id"] for user in page["items"]]
        assert page["totalCount"] == len(page["items"]) <= 3
        following = page["links"].get("next")
        if following is None:
            break
        assert following["method"] == "GET"
        (header,) = following["headers"]
        assert header["key"] == "MS-ContinuationToken" and header["value"]
        page = await api.ok("GET", "/v1" + following["uri"], headers={"MS-ContinuationToken": header["value"]})
        pages += 1
    assert pages == 3 and len(seen) == len(set(seen)) == 7  # the admin and six users
    await api.fails(
        "GET", f"/v1/customers/{cid}/users?size=3", status=400, code=800002, headers={"MS-ContinuationToken": "junk"}
    )


async def test_users_pages_hold_their_place_when_users_change_between_pages(api: Api, customer: dict[str, Any]) -> None:
    """The token names the last user's position (not an offset): deleting a user already listed
    neither skips nor repeats anyone; a user created meanwhile comes on a later page; a listing
    that ends exactly on a page boundary has no next link."""
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    users = f"/v1/customers/{cid}/users"
    made = [await api.ok("POST", users, new_user(domain, f"user{index}"), status=201) for index in range(5)]
    first = await api.ok("GET", f"{users}?size=3")
    listed = [user["id"] for user in first["items"]]
    assert listed[1:] == [made[0]["id"], made[1]["id"]]  # the admin first, in creation order
    status, _, _ = await api.call("DELETE", f"{users}/{made[0]['id']}")
    assert status == 204
    late = await api.ok("POST", users, new_user(domain, "late"), status=201)
    (header,) = first["links"]["next"]["headers"]
    second = await api.ok("GET", f"{users}?size=3", headers={"MS-ContinuationToken": header["value"]})
    assert [user["id"] for user in second["items"]] == [made[2]["id"], made[3]["id"], made[4]["id"]]
    (header,) = second["links"]["next"]["headers"]
    third = await api.ok("GET", f"{users}?size=3", headers={"MS-ContinuationToken": header["value"]})
    assert [user["id"] for user in third["items"]] == [late["id"]] and "next" not in third["links"]
    exact = await api.ok("GET", f"{users}?size=6")  # admin + 5 active users (one deleted)
    assert len(exact["items"]) == 6 and "next" not in exact["links"]


async def test_subscribed_skus_follow_subscriptions_and_assignments(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    basic = await api.buy(cid, BASIC, 3)
    await api.buy(cid, BASIC, 2, term="P1M")
    await api.buy(cid, E3, 1)
    user = await api.ok("POST", f"/v1/customers/{cid}/users", new_user(domain, "ann"), status=201)
    assigned = await api.ok(
        "POST",
        f"/v1/customers/{cid}/users/{user['id']}/licenseupdates",
        {"LicensesToAssign": [{"ExcludedPlans": None, "SkuId": BASIC_LICENCE}], "LicensesToRemove": None,
         "LicenseWarnings": None, "Attributes": {"ObjectType": "LicenseUpdate"}},
        status=201,
    )  # fmt: skip
    assert assigned == {
        "licensesToAssign": [{"skuId": BASIC_LICENCE}],
        "licenseWarnings": [],
        "attributes": {"objectType": "LicenseUpdate"},
    }
    skus = {
        item["productSku"]["id"]: item for item in (await api.ok("GET", f"/v1/customers/{cid}/subscribedskus"))["items"]
    }
    basic_sku = skus[BASIC_LICENCE]
    assert (basic_sku["totalUnits"], basic_sku["activeUnits"], basic_sku["consumedUnits"]) == (5, 5, 1)
    assert basic_sku["availableUnits"] == 4 and basic_sku["productSku"]["skuPartNumber"] == "O365_BUSINESS_ESSENTIALS"
    assert skus["05e9a617-0261-4cee-bb44-138d3ef5d965"]["productSku"]["skuPartNumber"] == "SPE_E3"

    await api.patch(basic, status="suspended")
    basic_sku = next(
        item
        for item in (await api.ok("GET", f"/v1/customers/{cid}/subscribedskus"))["items"]
        if item["productSku"]["id"] == BASIC_LICENCE
    )
    assert (basic_sku["activeUnits"], basic_sku["suspendedUnits"], basic_sku["totalUnits"]) == (2, 3, 5)
    licences = await api.ok("GET", f"/v1/customers/{cid}/users/{user['id']}/licenses")
    assert [item["productSku"]["id"] for item in licences["items"]] == [BASIC_LICENCE]
    assert (await api.ok("GET", f"/v1/customers/{cid}/subscribedskus?licenseGroupIds=Group2"))["totalCount"] == 0


async def test_assigning_without_a_free_unit_fails_with_60012(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    await api.buy(cid, BASIC, 1)
    first = await api.ok("POST", f"/v1/customers/{cid}/users", new_user(domain, "first"), status=201)
    second = await api.ok("POST", f"/v1/customers/{cid}/users", new_user(domain, "second"), status=201)
    update = {"licensesToAssign": [{"skuId": BASIC_LICENCE}]}
    await api.ok("POST", f"/v1/customers/{cid}/users/{first['id']}/licenseupdates", update, status=201)
    answer = await api.fails(
        "POST", f"/v1/customers/{cid}/users/{second['id']}/licenseupdates", update, status=400, code=60012
    )
    assert "does not have any available licenses left" in answer["data"][0]
    removal = {"LicensesToRemove": [BASIC_LICENCE]}
    removed = await api.ok("POST", f"/v1/customers/{cid}/users/{first['id']}/licenseupdates", removal, status=201)
    assert removed["licensesToRemove"] == [BASIC_LICENCE]
    await api.ok("POST", f"/v1/customers/{cid}/users/{second['id']}/licenseupdates", update, status=201)
    unbought = {"licensesToAssign": [{"skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965"}]}
    await api.fails("POST", f"/v1/customers/{cid}/users/{first['id']}/licenseupdates", unbought, status=400, code=60012)


async def test_assigning_needs_a_usage_location(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    await api.buy(cid, BASIC, 2)
    # Users created elsewhere (in the customer's own admin centre) may have no usage location.
    user = await api.admin("POST", f"/customers/{cid}/users", new_user(domain, "nomad", location=None), status=201)
    update = {"licensesToAssign": [{"skuId": BASIC_LICENCE}]}
    path = f"/v1/customers/{cid}/users/{user['id']}/licenseupdates"
    answer = await api.fails("POST", path, update, status=400, code=27002)
    assert "usage location" in answer["data"][1]
    await api.ok("PATCH", f"/v1/customers/{cid}/users/{user['id']}", {"usageLocation": "GB"})
    await api.ok("POST", path, update, status=201)


async def test_deleting_a_user_frees_its_licences(api: Api, customer: dict[str, Any]) -> None:
    cid, domain = customer["id"], customer["companyProfile"]["domain"]
    await api.buy(cid, BASIC, 1)
    user = await api.ok("POST", f"/v1/customers/{cid}/users", new_user(domain, "leaver"), status=201)
    await api.ok("POST", f"/v1/customers/{cid}/users/{user['id']}/licenseupdates",
                 {"licensesToAssign": [{"skuId": BASIC_LICENCE}]}, status=201)  # fmt: skip
    await api.call("DELETE", f"/v1/customers/{cid}/users/{user['id']}")
    sku = (await api.ok("GET", f"/v1/customers/{cid}/subscribedskus"))["items"][0]
    assert (sku["consumedUnits"], sku["availableUnits"]) == (0, 1)
