"""Every reference fixture (Microsoft's documented JSON) parses into its model, keeping the fields the
client and the bot rely on. The fixtures live outside the repository, next to it, in `shared/`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, SecretStr

from services.partner_center.auth import StaticTokenProvider
from services.partner_center.client import PartnerCenterClient
from services.partner_center.errors import error_from_response
from services.partner_center.models import (
    Address,
    AddressValidationResult,
    AddressValidationStatus,
    ApiFault,
    Availability,
    BillingCycle,
    Cart,
    CartCheckoutResult,
    CountryValidationRules,
    Customer,
    CustomerUser,
    LicenseUpdate,
    Order,
    OrderStatus,
    PriceSheetRow,
    Sku,
    SubscribedSku,
    Subscription,
    SubscriptionStatus,
    ThrottledFault,
    UserState,
)
from tests.partner_center.scripted_fake import Reply, ScriptedPartnerCenter, serve

REPO_ROOT = Path(__file__).resolve().parents[2]
# Microsoft's reference JSON, copied from ../shared/reference/partner-center/fixtures/ so a clone is
# self-contained (tests/partner_center/test_fixture_copies.py keeps the copies equal).
FIXTURES = REPO_ROOT / "tests" / "partner_center" / "fixtures"


def fixture(name: str) -> Any:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"Reference fixture {path} is missing: copy it from ../shared/reference/partner-center/fixtures/")
    return json.loads(path.read_text(encoding="utf-8"))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# Each fixture with the model it belongs to and the facts that must survive parsing.
Check = Callable[[Any], None]


def _subscription(model: Subscription) -> None:
    assert model.id == "86646af9-e80a-4aa0-da80-3fd2b792c2cc"
    assert model.offer_id == "CFQ7TTC0LH0R:0002:CFQ7TTC0K5RQ" and model.sku_key == "CFQ7TTC0LH0R:0002"
    assert model.quantity == 25 and model.status is SubscriptionStatus.ACTIVE
    assert model.auto_renew_enabled is True
    assert model.commitment_end_date == utc(2022, 5, 19)
    assert model.cancellation_allowed_until_date == utc(2021, 5, 27, 18, 30, 6)
    assert model.refundable_quantity is not None and model.refundable_quantity.total_quantity == 5
    detail = model.refundable_quantity.details[0]
    assert (detail.quantity, detail.allowed_until_date_time) == (5, utc(2021, 5, 27, 18, 30, 6))
    instructions = model.scheduled_next_term_instructions
    assert instructions is not None and instructions.quantity == 20
    assert instructions.product is not None and instructions.product.billing_cycle is BillingCycle.MONTHLY
    assert (instructions.product.product_id, instructions.product.sku_id) == ("CFQ7TTC0LH0R", "0002")
    assert model.billing_cycle is BillingCycle.MONTHLY and model.term_duration == "P1Y"
    assert model.order_id == "94e858b6d855" and model.parent_subscription_id is None
    assert model.etag == "eyJpZCI6Ijg2NjQ2YWY5IiwidmVyc2lvbiI6M30="
    assert model.refund_options and model.refund_options[0].expires_at == utc(2021, 5, 27, 18, 30, 6)


def _legacy_addon(model: Subscription) -> None:
    assert model.parent_subscription_id == "1C2B75C1-74A5-472A-A729-7F8CEFC477F9"
    assert model.quantity == 2 and model.status is SubscriptionStatus.ACTIVE
    assert model.etag and model.etag.startswith("eyJ")


def _suspend_request(model: Subscription) -> None:
    # Microsoft's example is PascalCase; the model reads any casing.
    assert model.id == "83ef9d05-4169-4ef9-9657-0e86b1eab1de"
    assert model.status is SubscriptionStatus.SUSPENDED and model.auto_renew_enabled is False
    assert model.etag == "<etag>" and model.model_extra == {}


def _customer_response(model: Customer) -> None:
    assert model.id == "dfd8cc0a-c592-468c-8461-869a38d24738"
    assert model.domain == "contosoltd.onmicrosoft.com"
    assert model.company_profile is not None and model.company_profile.tenant_id == model.id
    assert model.user_credentials is not None and model.user_credentials.user_name == "admin"
    assert model.user_credentials.password == SecretStr("=;;n.=s9Z")
    assert "=;;n.=s9Z" not in repr(model) and "=;;n.=s9Z" not in str(model)
    assert model.billing_profile is not None and model.billing_profile.default_address is not None
    assert model.billing_profile.default_address.postal_code == "98052"


def _customer_request(model: Customer) -> None:
    assert model.domain == "contosoltd.onmicrosoft.com"
    assert model.billing_profile is not None and model.billing_profile.company_name == "Contoso Ltd"
    wire = model.to_wire()
    assert wire["billingProfile"]["defaultAddress"]["phoneNumber"] == "4255550101"
    assert wire["companyProfile"] == {"domain": "contosoltd.onmicrosoft.com"}


def _country(model: CountryValidationRules) -> None:
    assert model.iso2_code == "PT" and model.is_state_required is False
    assert model.postal_code_regex == r"^\d{4}(-\d{3})?$"
    assert model.supported_cultures_list[0] == "pt-PT" and model.supported_languages_list[0] == "en"
    assert model.vat_id_regex == r"^PT[\d]{9,9}$" and model.country_calling_codes_list == ["351"]


def _address_response(model: AddressValidationResult) -> None:
    assert model.status is AddressValidationStatus.VERIFIED_SHIPPABLE
    assert model.suggested_addresses[0].postal_code == "98052-8300"
    assert model.original_address is not None and model.original_address.city == "Redmond"


def _address_request(model: Address) -> None:
    assert (model.address_line1, model.city, model.state, model.postal_code, model.country) == (
        "1 Microsoft Way",
        "Redmond",
        "WA",
        "98052",
        "US",
    )


def _availability(model: Availability) -> None:
    assert model.id == "CFQ7TTC0K5RQ" and model.catalog_item_id == "CFQ7TTC0LH0R:0002:CFQ7TTC0K5RQ"
    assert model.is_purchasable is True
    term = model.terms[0]
    assert term.duration == "P1Y" and term.billing_cycle is BillingCycle.MONTHLY
    options = term.cancellation_policies[0].refund_options
    assert [(option.sequence_id, option.type, option.expires_after) for option in options] == [
        (1, "Full", "P1D"),
        (2, "Partial", "P7D"),
    ]


def _cart_request(model: Cart) -> None:
    line = model.line_items[0]
    assert (line.catalog_item_id, line.quantity, line.billing_cycle, line.term_duration) == (
        "CFQ7TTC0LH0R:0002:CFQ7TTC0K5RQ",
        25,
        BillingCycle.MONTHLY,
        "P1Y",
    )


def _addon_cart(model: Cart) -> None:
    line = model.line_items[0]
    assert line.parent_subscription_id == "97555B61-7461-477A-A98C-9C76148783E4"
    assert line.billing_cycle is BillingCycle.ANNUAL


def _checkout(model: CartCheckoutResult) -> None:
    order = model.orders[0]
    assert order.id == "94e858b6d855" and order.status is OrderStatus.PENDING
    line = order.line_items[0]
    assert line.subscription_id == "86646af9-e80a-4aa0-da80-3fd2b792c2cc" and line.quantity == 25
    assert model.order_errors == []


def _order_response(model: Order) -> None:
    assert model.id == "3eddcac6-63b2-4c40-b0b6-f47e18301492"
    assert model.line_items[0].subscription_id == "42226ED6-070A-4E0F-B80C-4CDFB3E97AA7"


def _order_request(model: Order) -> None:
    assert model.line_items[0].offer_id and model.line_items[0].quantity


def _subscribed_sku(model: SubscribedSku) -> None:
    assert (model.available_units, model.active_units, model.consumed_units) == (4, 5, 1)
    assert model.product_sku.id == "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
    assert model.product_sku.license_group_id == "group1" and len(model.service_plans) == 2


def _user_request(model: CustomerUser) -> None:
    assert model.usage_location == "US" and model.user_principal_name == "jdoe@contosoltd.onmicrosoft.com"
    assert model.password_profile is not None and model.password_profile.password == SecretStr("abCD123*")
    assert "abCD123*" not in repr(model)
    assert model.to_wire()["passwordProfile"] == {"password": "abCD123*", "forceChangePassword": True}


def _user_response(model: CustomerUser) -> None:
    assert model.id == "4b10bf41-ab11-40e3-8c53-cd67849b50de" and model.state is UserState.ACTIVE
    assert model.last_directory_sync_time is None


def _licence_assign(model: LicenseUpdate) -> None:
    assert model.licenses_to_assign is not None
    assert model.licenses_to_assign[0].sku_id == "f8a1db68-be16-40ed-86d5-cb42ce701560"
    assert model.licenses_to_remove is None


def _licence_remove(model: LicenseUpdate) -> None:
    assert model.licenses_to_remove == ["f8a1db68-be16-40ed-86d5-cb42ce701560"]


def _licence_response(model: LicenseUpdate) -> None:
    assert model.licenses_to_assign and model.license_warnings == []


def _license_fault(model: ApiFault) -> None:
    assert model.code == "60012" and model.source == "PartnerFD" and model.data
    error = error_from_response(400, fixture("error-license-quota-exceeded.json"))
    assert error.code == "60012"


def _throttled(model: ThrottledFault) -> None:
    assert model.status_code == 429 and "57 seconds" in (model.message or "")


MODELS: dict[str, tuple[type[BaseModel], Check]] = {
    "subscription.json": (Subscription, _subscription),
    "subscription-legacy-addon.json": (Subscription, _legacy_addon),
    "subscription-patch-suspend-request.json": (Subscription, _suspend_request),
    "customer-create-response.json": (Customer, _customer_response),
    "customer-create-request.json": (Customer, _customer_request),
    "country-validation-rules.json": (CountryValidationRules, _country),
    "address-validation-response.json": (AddressValidationResult, _address_response),
    "address-validation-request.json": (Address, _address_request),
    "availability.json": (Availability, _availability),
    "cart-create-request.json": (Cart, _cart_request),
    "addon-cart-request.json": (Cart, _addon_cart),
    "cart-checkout-response.json": (CartCheckoutResult, _checkout),
    "order-create-response.json": (Order, _order_response),
    "order-create-request.json": (Order, _order_request),
    "addon-order-patch-request.json": (Order, _order_request),
    "subscribedsku.json": (SubscribedSku, _subscribed_sku),
    "user-create-request.json": (CustomerUser, _user_request),
    "user-create-response.json": (CustomerUser, _user_response),
    "licenseupdates-request.json": (LicenseUpdate, _licence_assign),
    "licenseupdates-remove-request.json": (LicenseUpdate, _licence_remove),
    "licenseupdates-response.json": (LicenseUpdate, _licence_response),
    "error-license-quota-exceeded.json": (ApiFault, _license_fault),
    "error-throttled-429.json": (ThrottledFault, _throttled),
}

UNUSED = "the product does not read it (billing is rated from the ledger; no webhooks or offer categories)"

# Fixtures that are not a JSON body of this client, with the reason and where they are checked instead.
NOT_MODELS = {
    "domain-availability.http.json": "an HTTP exchange (HEAD, no body): replayed against the client below",
    "graph-billed-recon-export-request.json": "a Microsoft Graph billing request, not a Partner Center call",
    "offer-categories-response.json": UNUSED,
    "invoice.json": UNUSED,
    "invoice-lineitem-office.json": UNUSED,
    "invoice-lineitem-onetime-nce.json": UNUSED,
    "webhook-subscription-updated.json": UNUSED,
}


def test_every_fixture_is_accounted_for() -> None:
    if not FIXTURES.is_dir():
        pytest.fail(
            f"Reference fixtures not found at {FIXTURES}: copy it from ../shared/reference/partner-center/fixtures/"
        )
    present = {path.name for path in FIXTURES.glob("*.json")}
    assert present == set(MODELS) | set(NOT_MODELS), "a new fixture needs a model (or a stated reason) here"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixture_parses_into_its_model(name: str) -> None:
    model_class, check = MODELS[name]
    model = model_class.model_validate(fixture(name))
    check(model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_keeps_every_field(name: str) -> None:
    """What Microsoft sent comes back out (camelCase), so a full-resource PATCH loses nothing."""
    model_class, _ = MODELS[name]
    original = fixture(name)
    wire = model_class.model_validate(original).to_wire()

    def keys(document: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(document, dict):
            for key, value in document.items():
                if value is not None:
                    found.add(key.lower())
                    found |= keys(value)
        elif isinstance(document, list):
            for item in document:
                found |= keys(item)
        return found

    assert keys(original) <= keys(wire)


def test_sku_with_microsofts_dynamic_attributes() -> None:
    """Shape of Microsoft's NCE SKU (get-a-sku-by-id): add-on relations and the licence SKU id."""
    sku = Sku.model_validate(
        {
            "id": "0001",
            "productId": "CFQ7TTC0LH18",
            "title": "Microsoft 365 Business Basic",
            "description": "Best for businesses that need professional email...",
            "minimumQuantity": 1,
            "maximumQuantity": 300,
            "isTrial": False,
            "supportedBillingCycles": ["annual", "monthly"],
            "purchasePrerequisites": ["MicrosoftCloudAgreement"],
            "actions": ["Refund"],
            "dynamicAttributes": {
                "isMicrosoftProduct": True,
                "hasConstraints": True,
                "isAddon": False,
                "prerequisiteSkus": [],
                "upgradeTargetOffers": ["CFQ7TTC0LDPB:0001"],
                "provisioningId": "3b555118-da6a-4418-894f-7df1e2096870",
                "internal": False,
            },
        }
    )
    assert (sku.minimum_quantity, sku.maximum_quantity) == (1, 300)
    assert sku.supported_billing_cycles == [BillingCycle.ANNUAL, BillingCycle.MONTHLY]
    assert sku.is_addon is False and sku.prerequisite_skus == []
    assert sku.licence_sku_id == "3b555118-da6a-4418-894f-7df1e2096870"
    assert sku.dynamic_attributes is not None and sku.dynamic_attributes.model_extra == {
        "hasConstraints": True,
        "internal": False,
    }
    addon = Sku.model_validate(
        {"id": "0002", "dynamicAttributes": {"isAddon": True, "prerequisiteSkus": ["CFQ7TTC0LCHC:0002"]}}
    )
    assert addon.is_addon and addon.prerequisite_skus == ["CFQ7TTC0LCHC:0002"]


def test_price_sheet_row_accepts_iso_dates_and_unknown_columns() -> None:
    row = PriceSheetRow.model_validate(
        {
            "ProductId": "CFQ7TTC0HD7P",
            "SkuId": "0001",
            "UnitPrice": "10.5",
            "EffectiveStartDate": "2021-11-01T00:00:00.0000000Z",
            "EffectiveEndDate": "9999-11-30T23:59:59.0000000Z",
            "EndofSaleDate": "",
            "ChangeIndicator": "Unchanged",
        }
    )
    assert row.effective_start_date == utc(2021, 11, 1) and row.end_of_sale_date is None
    assert row.model_extra == {"ChangeIndicator": "Unchanged"}


@pytest.fixture
async def replay() -> AsyncIterator[tuple[ScriptedPartnerCenter, PartnerCenterClient]]:
    fake = ScriptedPartnerCenter()
    async with serve(fake.app()) as url, aiohttp.ClientSession() as session:
        yield fake, PartnerCenterClient(session, base_url=url, price_sheet_url=url, tokens=StaticTokenProvider())


async def test_domain_availability_exchange(replay: tuple[ScriptedPartnerCenter, PartnerCenterClient]) -> None:
    fake, client = replay
    exchange = fixture("domain-availability.http.json")
    taken, free = exchange["responseWhenDomainTaken"], exchange["responseWhenDomainAvailable"]
    path = "/v1/domains/contoso.onmicrosoft.com"
    fake.script("HEAD", path, Reply(taken["status"]), Reply(free["status"]))

    assert await client.domain_is_taken("contoso.onmicrosoft.com") is True
    assert await client.domain_is_taken("contoso.onmicrosoft.com") is False

    request = fake.requests_to("HEAD", path)[0]
    for header in exchange["request"]["headers"]:
        assert header in request.headers, f"the documented request carries {header}"
    assert request.headers["Accept"] == "application/json" and request.headers["X-Locale"] == "en-US"


def test_any_key_casing_with_and_without_the_fast_path() -> None:
    exact = Subscription.model_validate({"id": "s1", "quantity": 3, "attributes": {"etag": "e1"}})
    mixed = Subscription.model_validate(
        {"Id": "s1", "quantity": 3, "AUTORENEWENABLED": True, "Attributes": {"Etag": "e1"}, "brandNew": 1}
    )
    assert (exact.id, exact.quantity, exact.etag) == ("s1", 3, "e1")
    assert (mixed.id, mixed.quantity, mixed.auto_renew_enabled, mixed.etag) == ("s1", 3, True, "e1")
    assert mixed.model_extra == {"brandNew": 1}
    by_name = Subscription.model_validate({"id": "s1", "auto_renew_enabled": False})
    assert by_name.auto_renew_enabled is False
