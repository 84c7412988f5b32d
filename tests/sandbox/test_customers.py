"""Customer creation under each country's rules, the generated admin, look-ups, agreements, and
Microsoft's idempotency for a repeated creation."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.sandbox.conftest import Api, customer_request, stored_documents


async def test_creation_returns_generated_admin_credentials_and_the_admin_user(api: Api) -> None:
    created = await api.ok("POST", "/v1/customers", customer_request("acmecorp"), status=201)
    assert created["companyProfile"]["domain"] == "acmecorp.onmicrosoft.com"
    assert created["companyProfile"]["tenantId"] == created["id"]
    assert created["billingProfile"]["culture"] == "en-US"
    credentials = created["userCredentials"]
    assert credentials["userName"] == "admin@acmecorp.onmicrosoft.com"
    password = credentials["password"]
    assert len(password) >= 12
    assert any(c.isupper() for c in password) and any(c.islower() for c in password)
    assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)

    users = await api.ok("GET", f"/v1/customers/{created['id']}/users")
    assert [user["userPrincipalName"] for user in users["items"]] == ["admin@acmecorp.onmicrosoft.com"]
    assert users["items"][0]["usageLocation"] == "US"
    assert (await api.call("HEAD", "/v1/domains/acmecorp.onmicrosoft.com"))[0] == 200

    fetched = await api.ok("GET", f"/v1/customers/{created['id']}")
    assert "userCredentials" not in fetched
    assert fetched["relationshipToPartner"] == "reseller"
    await api.fails("GET", "/v1/customers/00000000-0000-4000-8000-000000000000", status=404, code=60003)


async def test_a_taken_domain_is_refused(api: Api) -> None:
    answer = await api.fails("POST", "/v1/customers", customer_request("contoso"), status=409, code=27002)
    assert any("DomainNotAvailable" in line for line in answer["data"])
    await api.ok("POST", "/v1/customers", customer_request("twicecorp"), status=201)
    await api.fails("POST", "/v1/customers", customer_request("twicecorp"), status=409, code=27002)


@pytest.mark.parametrize(
    ("country", "overrides", "status", "code", "needle"),
    [
        ("US", {"State": None}, 400, 27002, "State"),
        ("US", {"State": "ZZ"}, 400, 27002, "StateInvalid"),
        ("US", {"PostalCode": "ABC12"}, 400, 27002, "PostalCodeInvalid"),
        ("US", {"PostalCode": None}, 400, 27002, "PostalCode"),
        ("US", {"City": None}, 400, 27002, "City"),
        ("US", {"Culture": "de-DE"}, 400, 27002, "Culture"),
        ("US", {"AddressLine1": "Microsoft Way"}, 201, 0, ""),  # premises partial is still an address
        ("US", {"AddressLine1": "1 Main Street", "PostalCode": "98052"}, 201, 0, ""),
        ("US", {"OrganizationRegistrationNumber": "12345678"}, 400, 600002, ""),
        ("GB", {}, 201, 0, ""),  # no state in Great Britain
        ("GB", {"PostalCode": "12345"}, 400, 27002, "PostalCodeInvalid"),
        ("DE", {"Language": "de"}, 201, 0, ""),
        ("PT", {"PostalCode": "1990"}, 201, 0, ""),
        ("HU", {}, 400, 600049, ""),
        ("HU", {"OrganizationRegistrationNumber": "01-09-12"}, 400, 600050, ""),
        ("HU", {"OrganizationRegistrationNumber": "01-09-123456", "PhoneNumber": None}, 400, 600051, ""),
        ("HU", {"OrganizationRegistrationNumber": "01-09-123456"}, 201, 0, ""),
        ("BR", {}, 400, 600049, ""),
        ("BR", {"OrganizationRegistrationNumber": "12.345.678/0001-95"}, 201, 0, ""),
        ("BR", {"OrganizationRegistrationNumber": "12.345.678/0001-95", "State": None}, 400, 27002, "State"),
    ],
)
async def test_country_rules_are_enforced_with_microsofts_codes(
    api: Api, country: str, overrides: dict[str, object], status: int, code: int, needle: str
) -> None:
    body = customer_request(f"rule{abs(hash((country, json.dumps(overrides)))) % 10**9}", country=country, **overrides)
    if status == 201:
        created = await api.ok("POST", "/v1/customers", body, status=201)
        assert created["billingProfile"]["defaultAddress"]["country"] == country
        return
    answer = await api.fails("POST", "/v1/customers", body, status=status, code=code)
    if needle:
        assert any(needle in line for line in answer["data"]), answer


async def test_malformed_requests_are_refused(api: Api) -> None:
    bad_domain = customer_request("bad")
    bad_domain["CompanyProfile"]["Domain"] = "not a domain"
    await api.fails("POST", "/v1/customers", bad_domain, status=400, code=27002)
    status, body, _ = await api.call("POST", "/v1/customers", headers={"Content-Type": "application/json"})
    assert status == 400 and body["code"] == 800002
    no_country = customer_request("nocountry")
    no_country["BillingProfile"]["DefaultAddress"]["Country"] = "ZZ"
    answer = await api.fails("POST", "/v1/customers", no_country, status=400, code=27002)
    assert "No validation rules" in answer["data"][1]


async def test_repeated_creation_with_the_same_request_id_returns_the_first_tenant(api: Api, sandbox_db: str) -> None:
    body = customer_request("oncecorp")
    headers = {"MS-RequestId": "0e1b7d3c-4a5f-4b9b-9d57-2f4f6bb1a001"}
    first = await api.ok("POST", "/v1/customers", body, status=201, headers=headers)
    again = await api.ok("POST", "/v1/customers", body, status=201, headers=headers)
    # The same tenant. Its first password was never stored, so the repeat gives the admin a new one.
    assert {**again, "userCredentials": None} == {**first, "userCredentials": None}
    assert again["userCredentials"]["userName"] == first["userCredentials"]["userName"]
    password = again["userCredentials"]["password"]
    assert password != first["userCredentials"]["password"] and len(password) >= 12
    assert any(c.isupper() for c in password) and any(c.isdigit() for c in password)
    records = (await api.ok("GET", "/v1/auditrecords?startDate=2025-03-01"))["items"]
    assert [r["operationType"] for r in records] == ["add_customer", "update_customer_user_password"]
    stored = await stored_documents(sandbox_db)
    assert "oncecorp" in stored and first["userCredentials"]["password"] not in stored and password not in stored
    listing = await api.ok("GET", "/v1/customers")
    assert [c["companyProfile"]["domain"] for c in listing["items"]].count("oncecorp.onmicrosoft.com") == 1
    await api.fails(
        "POST", "/v1/customers", body, status=409, code=27002, headers={"MS-RequestId": "another-request-id"}
    )


async def test_customers_filter_by_domain_prefix_and_page(api: Api) -> None:
    for name in ("alphaone", "alphatwo", "betaone"):
        await api.new_customer(name)
    spec = json.dumps({"Field": "Domain", "Value": "ALPHA", "Operator": "starts_with"})
    found = await api.ok("GET", f"/v1/customers?size=0&filter={urllib.parse.quote(spec)}")
    assert sorted(c["companyProfile"]["domain"] for c in found["items"]) == [
        "alphaone.onmicrosoft.com",
        "alphatwo.onmicrosoft.com",
    ]
    by_name = json.dumps({"Field": "CompanyName", "Value": "beta", "Operator": "starts_with"})
    assert (await api.ok("GET", f"/v1/customers?filter={urllib.parse.quote(by_name)}"))["totalCount"] == 1
    first_page = await api.ok("GET", "/v1/customers?size=2")
    assert first_page["totalCount"] == 2 and "next" in first_page["links"]
    token = first_page["links"]["next"]["headers"][0]["value"]
    rest = await api.ok("GET", first_page["links"]["next"]["uri"].replace("/customers", "/v1/customers", 1),
                        headers={"MS-ContinuationToken": token})  # fmt: skip
    assert rest["totalCount"] == 1 and "next" not in rest["links"]
    filtered = await api.ok("GET", f"/v1/customers?size=1&filter={urllib.parse.quote(spec)}")
    following = filtered["links"]["next"]
    second = await api.ok(
        "GET", "/v1" + following["uri"], headers={"MS-ContinuationToken": following["headers"][0]["value"]}
    )
    assert [c["companyProfile"]["domain"] for c in filtered["items"] + second["items"]] == [
        "alphaone.onmicrosoft.com",
        "alphatwo.onmicrosoft.com",
    ], "the next link keeps the filter"
    assert "next" not in second["links"]
    wrong = json.dumps({"Field": "Domain", "Value": "a", "Operator": "equals"})
    await api.fails("GET", f"/v1/customers?filter={urllib.parse.quote(wrong)}", status=400, code=800002)


async def test_agreements_are_attested_and_listed(api: Api) -> None:
    created = await api.new_customer("attestcorp")
    path = f"/v1/customers/{created['id']}/agreements"
    assert (await api.ok("GET", path))["totalCount"] == 0
    await api.attest(created["id"])
    agreements = await api.ok("GET", path)
    assert agreements["totalCount"] == 1
    assert agreements["items"][0]["type"] == "MicrosoftCustomerAgreement"
    assert agreements["items"][0]["primaryContact"]["email"] == "tania@example.com"
    wrong = {"primaryContact": {"firstName": "A", "lastName": "B", "email": "a@b.c"}, "templateId": "nope",
             "dateAgreed": "2025-03-10T00:00:00Z", "type": "MicrosoftCustomerAgreement"}  # fmt: skip
    await api.fails("POST", path, wrong, status=400, code=27002)
