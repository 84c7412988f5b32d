"""Utilities (domains, country rules, address validation), the catalog, the price sheet, and the
edge behaviour every call shares (bearer token, correlation headers, Microsoft's error body)."""

from __future__ import annotations

import csv
import io

import pytest

from tests.sandbox.conftest import BASIC, COPILOT, TEAMS_PHONE, Api


async def test_every_call_needs_the_bearer_token(api: Api) -> None:
    missing = await api.fails("GET", "/v1/products?country=US", status=401, code=800001, auth=False)
    assert "token" in missing["description"].lower()
    await api.fails(
        "GET", "/v1/products?country=US", status=401, code=400, auth=False, headers={"Authorization": "Bearer nope"}
    )
    await api.fails("GET", "/_sandbox/clock", status=401, code=800001, auth=False)


async def test_correlation_and_request_ids_are_echoed(api: Api) -> None:
    headers = {"MS-CorrelationId": "c0ffee00-0000-4000-8000-000000000001", "MS-RequestId": "r-1"}
    status, _, answered = await api.call("GET", "/v1/countryvalidationrules/US", headers=headers)
    assert status == 200
    assert answered["MS-CorrelationId"] == headers["MS-CorrelationId"]
    assert answered["MS-RequestId"] == "r-1"
    status, _, answered = await api.call("GET", "/v1/nothing-here", headers=headers)
    assert status == 404 and answered["MS-CorrelationId"] == headers["MS-CorrelationId"]


async def test_domain_availability_is_a_head_call(api: Api) -> None:
    taken, body, _ = await api.call("HEAD", "/v1/domains/contoso.onmicrosoft.com")
    assert (taken, body) == (200, None)
    assert (await api.call("HEAD", "/v1/domains/FABRIKAM.onmicrosoft.com"))[0] == 200
    assert (await api.call("HEAD", "/v1/domains/surely-free-name.onmicrosoft.com"))[0] == 404


@pytest.mark.parametrize(
    ("country", "state_required", "postal"),
    [
        ("US", True, "98052"),
        ("CA", True, "K1A 0B1"),
        ("GB", False, "SW1A 1AA"),
        ("IE", False, "D02 X285"),
        ("AU", True, "2000"),
        ("DE", False, "10115"),
        ("FR", False, "75008"),
        ("NL", False, "1012 AB"),
        ("SE", False, "111 22"),
        ("PT", False, "1990-024"),
        ("IN", True, "560001"),
        ("JP", False, "100-0001"),
        ("BR", True, "01310-100"),
        ("HU", False, "1037"),
        ("UA", False, "01001"),
    ],
)
async def test_country_rules_have_real_postal_patterns(
    api: Api, country: str, state_required: bool, postal: str
) -> None:
    import re

    rules = await api.ok("GET", f"/v1/countryvalidationrules/{country.lower()}")
    assert rules["iso2Code"] == country
    assert rules["isStateRequired"] is state_required
    assert rules["defaultCulture"] == rules["supportedCulturesList"][0]
    assert re.match(rules["postalCodeRegex"], postal)
    assert not re.match(rules["postalCodeRegex"], "ABCDEFGHIJ")
    assert rules["attributes"] == {"objectType": "CountryValidationRules"}


async def test_registration_number_requirement_is_a_named_sandbox_extension(api: Api) -> None:
    hungary = await api.ok("GET", "/v1/countryvalidationrules/HU")
    assert hungary["sandboxExtensions"]["organizationRegistrationNumberRequired"] is True
    assert hungary["sandboxExtensions"]["phoneNumberRequired"] is True
    us = await api.ok("GET", "/v1/countryvalidationrules/US")
    assert us["sandboxExtensions"]["organizationRegistrationNumberRequired"] is False
    await api.fails("GET", "/v1/countryvalidationrules/XX", status=404, code=1000)


@pytest.mark.parametrize(
    ("address", "status"),
    [
        (
            {"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "WA", "PostalCode": "98052"},
            "VerifiedShippable",
        ),
        ({"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "WA"}, "NotValidated"),
        ({"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "WA", "PostalCode": "9805"}, "None"),
        ({"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "ZZ", "PostalCode": "98052"}, "None"),
        ({"AddressLine1": "1 Microsoft Way", "State": "WA", "PostalCode": "98052"}, "None"),
        ({"AddressLine1": "Microsoft Way", "City": "Redmond", "State": "WA", "PostalCode": "98052"}, "PremisesPartial"),
        (
            {"AddressLine1": "1 Microsft Way", "City": "Redmond", "State": "WA", "PostalCode": "98052"},
            "InteractionRequired",
        ),
        ({"AddressLine1": "PO Box 97017", "City": "Redmond", "State": "WA", "PostalCode": "98073"}, "Verified"),
    ],
)
async def test_address_validation_follows_the_documented_rules(api: Api, address: dict[str, str], status: str) -> None:
    answer = await api.ok("POST", "/v1/validations/address", dict(address, Country="US"))
    assert answer["status"] == status
    assert answer["originalAddress"]["addressLine1"] == address["AddressLine1"]
    if status in ("None", "NotValidated", "PremisesPartial"):
        assert answer["suggestedAddresses"] == []


async def test_address_suggestions(api: Api) -> None:
    shippable = await api.ok(
        "POST",
        "/v1/validations/address",
        {"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "wa", "PostalCode": "98052", "Country": "us"},
    )
    suggestion = shippable["suggestedAddresses"][0]
    assert suggestion["state"] == "WA" and suggestion["country"] == "US"
    assert suggestion["postalCode"].startswith("98052-") and len(suggestion["postalCode"]) == 10
    again = await api.ok(
        "POST",
        "/v1/validations/address",
        {"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "WA", "PostalCode": "98052", "Country": "US"},
    )
    assert again["suggestedAddresses"][0]["postalCode"] == suggestion["postalCode"]  # deterministic
    street = await api.ok(
        "POST",
        "/v1/validations/address",
        {"AddressLine1": "10 Downing St", "City": "London", "PostalCode": "SW1A 2AA", "Country": "GB"},
    )
    assert street["status"] == "InteractionRequired"
    assert street["suggestedAddresses"][0]["addressLine1"] == "10 Downing Street"
    unknown = await api.ok("POST", "/v1/validations/address", {"AddressLine1": "1 Main", "Country": "ZZ"})
    assert unknown["status"] == "NotValidated"


async def test_relationship_request_and_agreement_metadata(api: Api) -> None:
    request = await api.ok("GET", "/v1/customers/relationshiprequests")
    assert request["url"].startswith("https://admin.microsoft.com/Adminportal/Home?invType=ResellerRelationship")
    assert "partnerId=" in request["url"] and request["url"].endswith("#/BillingAccounts/partner-invitation")
    metadata = await api.ok("GET", "/v1/agreements?agreementType=MicrosoftCustomerAgreement")
    assert metadata["totalCount"] == 1
    assert metadata["items"][0]["templateId"] == "117a77b0-9360-443b-8795-c6dedc750cf9"
    assert metadata["attributes"] == {"objectType": "Collection"}


async def test_catalog_has_realistic_products_skus_and_addon_relations(api: Api) -> None:
    products = await api.ok("GET", "/v1/products?country=US&targetView=OnlineServices&targetSegment=commercial")
    assert products["totalCount"] >= 30
    titles = {item["title"] for item in products["items"]}
    for expected in (
        "Microsoft 365 Business Basic",
        "Microsoft 365 Business Premium",
        "Office 365 E3",
        "Microsoft 365 E5",
        "Microsoft 365 F3",
        "Exchange Online (Plan 1)",
        "Microsoft Teams Essentials",
        "Visio Plan 2",
        "Project Plan 3",
        "Power BI Pro",
        "Microsoft Defender for Business",
        "Microsoft Intune Plan 1",
        "Microsoft Entra ID P2",
        "Microsoft 365 Copilot",
        "Office 365 Extra File Storage",
    ):
        assert expected in titles
    assert all(item["id"].startswith("CFQ7TTC0") for item in products["items"])
    assert {item["sandboxExtensions"]["category"] for item in products["items"]} >= {"Productivity", "Security"}

    basic = await api.ok("GET", f"/v1/products/{BASIC[0]}/skus/{BASIC[1]}?country=US")
    assert (basic["minimumQuantity"], basic["maximumQuantity"]) == (1, 300)
    assert basic["dynamicAttributes"]["isAddon"] is False
    assert basic["dynamicAttributes"]["hasAddOns"] is True
    assert basic["dynamicAttributes"]["provisioningId"] == "3b555118-da6a-4418-894f-7df1e2096870"
    assert basic["sandboxExtensions"]["skuPartNumber"] == "O365_BUSINESS_ESSENTIALS"

    phone = await api.ok("GET", f"/v1/products/{TEAMS_PHONE[0]}/skus?country=US")
    addon = phone["items"][0]["dynamicAttributes"]
    assert addon["isAddon"] is True and f"{BASIC[0]}:{BASIC[1]}" in addon["prerequisiteSkus"]

    product = await api.ok("GET", f"/v1/products/{COPILOT[0]}?country=US")
    assert product["productType"]["id"] == "OnlineServices"
    assert (await api.ok("GET", "/v1/products?country=US&targetView=Azure"))["totalCount"] == 0
    await api.fails("GET", "/v1/products/CFQ7TTC0XXXX?country=US", status=404, code=400013)
    await api.fails("GET", "/v1/products?country=ZZ", status=400, code=800070)


async def test_availabilities_offer_terms_and_rotate_daily(api: Api) -> None:
    path = f"/v1/products/{BASIC[0]}/skus/{BASIC[1]}/availabilities?country=US"
    today = await api.ok("GET", path)
    terms = {(term["duration"], term["billingCycle"]) for item in today["items"] for term in item["terms"]}
    assert terms == {
        ("P1M", "monthly"),
        ("P1Y", "monthly"),
        ("P1Y", "annual"),
        ("P3Y", "monthly"),
        ("P3Y", "annual"),
        ("P3Y", "triennial"),
    }
    first = today["items"][0]
    assert first["catalogItemId"] == f"{BASIC[0]}:{BASIC[1]}:{first['id']}"
    single = await api.ok("GET", f"/v1/products/{BASIC[0]}/skus/{BASIC[1]}/availabilities/{first['id']}?country=US")
    assert single["id"] == first["id"]

    await api.advance("P1D")
    tomorrow = await api.ok("GET", path)
    assert {item["id"] for item in tomorrow["items"]}.isdisjoint({item["id"] for item in today["items"]})
    await api.advance("P1D")
    customer = await api.new_customer()
    stale = {
        "lineItems": [
            {
                "id": 0,
                "catalogItemId": first["catalogItemId"],
                "quantity": 1,
                "billingCycle": "monthly",
                "termDuration": first["terms"][0]["duration"],
            }
        ]
    }
    await api.fails("POST", f"/v1/customers/{customer['id']}/carts", stale, status=400, code=800009)


async def test_price_sheet_is_microsofts_csv_with_term_prices(api: Api) -> None:
    status, text, headers = await api.call(
        "GET", "/v1.0/sales/pricesheets(Market='US',PricesheetView='updatedlicensebased')/$value"
    )
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "ProductTitle", "ProductId", "SkuId", "SkuTitle", "Publisher", "SkuDescription", "UnitOfMeasure",
        "TermDuration", "BillingPlan", "Market", "Currency", "UnitPrice", "PricingTierRangeMin",
        "PricingTierRangeMax", "EffectiveStartDate", "EffectiveEndDate", "Tags", "ERP Price",
    ]  # fmt: skip
    basic = {(r["TermDuration"], r["BillingPlan"]): r for r in rows if (r["ProductId"], r["SkuId"]) == BASIC}
    assert basic[("P1Y", "Monthly")]["ERP Price"] == "72.00"  # 6.00 a month for a year
    assert basic[("P1Y", "Annual")]["ERP Price"] == "72.00"
    assert basic[("P1M", "Monthly")]["ERP Price"] == "7.20"
    assert basic[("P3Y", "Triennial")]["ERP Price"] == "216.00"
    assert basic[("P1Y", "Monthly")]["UnitPrice"] == "57.60"  # the partner's cost, ERP less 20 %
    assert {row["Currency"] for row in rows} == {"USD"} and {row["Market"] for row in rows} == {"US"}
    assert len({(row["ProductId"], row["SkuId"]) for row in rows}) >= 30
    await api.fails("GET", "/v1.0/sales/pricesheets(Market='US',PricesheetView='azure_consumption')/$value",
                    status=400, code=800002)  # fmt: skip
