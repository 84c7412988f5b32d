"""The Partner Center client against a scripted local server: retries, idempotency, polling, paging,
tolerant parsing, error mapping and what never reaches the logs. Waits go through an injected sleep
that records them, so nothing here waits on the wall clock."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from services.errors import Conflict, InvalidInput, NotFound
from services.logging_context import correlation_scope
from services.partner_center import transport
from services.partner_center.auth import Audience, TokenKind
from services.partner_center.client import PartnerCenterClient
from services.partner_center.errors import (
    AUTH_MESSAGE,
    ERROR_TABLE,
    PartnerCenterAuthError,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInvalidInput,
    PartnerCenterNotFound,
    PartnerCenterRuleViolation,
    PartnerCenterThrottled,
    PartnerCenterUnavailable,
)
from services.partner_center.models import (
    Address,
    CartLineItem,
    CartStatus,
    Contact,
    Customer,
    CustomerBillingProfile,
    CustomerCompanyProfile,
    CustomerUser,
    LicenseAssignment,
    LicenseUpdate,
    PasswordProfile,
    Subscription,
    SubscriptionStatus,
)
from services.remote_waits import serve_as
from tests.partner_center.scripted_fake import Reply, ScriptedPartnerCenter, collection, fault, serve

CUSTOMER = "dfd8cc0a-c592-468c-8461-869a38d24738"
SUBSCRIPTION = "86646af9-e80a-4aa0-da80-3fd2b792c2cc"
CART = "c1f2e1d4-0000-4000-8000-000000000001"
ORDER = "94e858b6d855"
DOMAIN = "contosoltd.onmicrosoft.com"
APP_TOKEN = "app-token-7f3a9c"
USER_TOKEN = "user-token-b81e04"
PARTNER_API_TOKEN = "partner-api-token-52d9"


class RecordingTokens:
    """Hands out a distinct token per kind and audience, so tests can see which one each call used."""

    def __init__(self) -> None:
        self.asked: list[tuple[TokenKind, Audience]] = []

    async def get_token(self, kind: TokenKind, audience: Audience = "partner_center") -> str:
        self.asked.append((kind, audience))
        if audience == "partner_api":
            return PARTNER_API_TOKEN
        return APP_TOKEN if kind == "app" else USER_TOKEN


@dataclass
class Harness:
    """The scripted server, a client pointed at it, and the waits the client asked for."""

    fake: ScriptedPartnerCenter
    url: str
    session: aiohttp.ClientSession
    sleeps: list[float] = field(default_factory=list)

    @property
    def client(self) -> PartnerCenterClient:
        if not hasattr(self, "_client"):
            self._client = self.make_client()
        return self._client

    def make_client(self, **overrides: Any) -> PartnerCenterClient:
        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        options: dict[str, Any] = {
            "base_url": self.url,
            "price_sheet_url": self.url,
            "tokens": RecordingTokens(),
            "sleep": sleep,
            # Generous: on a busy machine a local answer may take a while; the timeout test sets its own.
            "request_timeout": 30.0,
            "rng": random.Random(7),
        }
        options.update(overrides)
        return PartnerCenterClient(self.session, **options)


@pytest.fixture
async def pc() -> AsyncIterator[Harness]:
    fake = ScriptedPartnerCenter()
    async with serve(fake.app()) as url, aiohttp.ClientSession() as session:
        yield Harness(fake=fake, url=url, session=session)


def subscription_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": SUBSCRIPTION,
        "offerId": "CFQ7TTC0LH0R:0002:CFQ7TTC0K5RQ",
        "quantity": 25,
        "status": "active",
        "autoRenewEnabled": True,
        "creationDate": "2021-05-20T18:30:06Z",
        "commitmentEndDate": "2022-05-19T00:00:00Z",
        "cancellationAllowedUntilDate": "2021-05-27T18:30:06Z",
        "refundableQuantity": {
            "totalQuantity": 5,
            "details": [{"quantity": 5, "allowedUntilDateTime": "2021-05-27T18:30:06Z"}],
        },
        "billingCycle": "monthly",
        "termDuration": "P1Y",
        "orderId": ORDER,
        "attributes": {"etag": "etag-1", "objectType": "Subscription"},
    }
    body.update(changes)
    return body


def _subscription(**changes: Any) -> Subscription:
    return Subscription.model_validate(subscription_body(**changes))


def new_customer() -> Customer:
    return Customer(
        company_profile=CustomerCompanyProfile(domain=DOMAIN),
        billing_profile=CustomerBillingProfile(
            email="admin@contoso.example",
            culture="en-US",
            language="en",
            company_name="Contoso Ltd",
            default_address=Address(
                first_name="Tania",
                last_name="Carr",
                address_line1="One Microsoft Way",
                city="Redmond",
                state="WA",
                postal_code="98052",
                country="US",
                phone_number="4255550101",
            ),
        ),
    )


def created_customer(password: str = "=;;n.=s9Z") -> dict[str, Any]:
    return {
        "id": CUSTOMER,
        "companyProfile": {"tenantId": CUSTOMER, "domain": DOMAIN},
        "billingProfile": {"companyName": "Contoso Ltd"},
        "userCredentials": {"userName": "admin", "password": password},
    }


# --- Retries and MS-RequestId ---------------------------------------------------------------------


async def test_429_then_success_keeps_the_request_id_and_waits_retry_after(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}"
    pc.fake.script(
        "GET",
        path,
        Reply(
            429,
            {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."},
            {"Retry-After": "7"},
        ),
        Reply(200, {"id": CUSTOMER}),
    )

    customer = await pc.client.get_customer(CUSTOMER)

    assert customer.id == CUSTOMER
    first, second = pc.fake.requests_to("GET", path)
    assert first.request_id and first.request_id == second.request_id
    assert first.correlation_id and second.correlation_id and first.correlation_id != second.correlation_id
    assert pc.sleeps == [7.0]


async def test_each_call_is_logged_at_debug_and_a_retried_or_refused_one_at_warning(
    pc: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """At INFO (make run) a hundred successful calls say nothing; what a person must notice still shows."""
    caplog.set_level(logging.DEBUG, logger="services.partner_center")
    path = f"/v1/customers/{CUSTOMER}"
    pc.fake.script("GET", path, Reply(429, None, {"Retry-After": "1"}), Reply(503, None), Reply(200, {"id": CUSTOMER}))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/users/u1", Reply(404, fault(2000, "not found")))

    await pc.client.get_customer(CUSTOMER)
    with pytest.raises(PartnerCenterNotFound):
        await pc.client.get_user(CUSTOMER, "u1")

    calls = [
        (record.levelname, record.getMessage().split(" (attempt")[0])
        for record in caplog.records
        if "ms-request-id=" in record.getMessage()
    ]
    assert calls == [
        ("WARNING", f"Partner Center GET {path} -> 429"),
        ("WARNING", f"Partner Center GET {path} -> 503"),
        ("DEBUG", f"Partner Center GET {path} -> 200"),
        ("WARNING", f"Partner Center GET {path}/users/u1 -> 404"),
    ]


async def test_429_without_header_uses_the_seconds_in_the_body(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}"
    pc.fake.script(
        "GET",
        path,
        Reply(429, {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 12 seconds."}),
        Reply(200, {"id": CUSTOMER}),
    )
    await pc.client.get_customer(CUSTOMER)
    assert pc.sleeps == [12.0]


async def test_throttling_longer_than_the_budget_is_raised_without_waiting(pc: Harness) -> None:
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}", Reply(429, None, {"Retry-After": "120"}))

    with pytest.raises(PartnerCenterThrottled) as raised:
        await pc.client.get_customer(CUSTOMER)

    assert raised.value.retry_after == 120.0
    assert raised.value.code == "throttled"
    assert pc.sleeps == []
    assert len(pc.fake.requests) == 1


async def test_every_http_request_has_a_new_correlation_id(pc: Harness) -> None:
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}", Reply(200, {"id": CUSTOMER}))
    for _ in range(3):
        await pc.client.get_customer(CUSTOMER)
    correlation_ids = [request.correlation_id for request in pc.fake.requests]
    request_ids = [request.request_id for request in pc.fake.requests]
    assert len(set(correlation_ids)) == 3 and None not in correlation_ids
    assert len(set(request_ids)) == 3, "separate logical calls are separate requests"


async def test_a_5xx_storm_is_retried_a_bounded_number_of_times(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions"
    pc.fake.always("GET", path, Reply(503, fault(800003, "Unexpected service error")))

    with pytest.raises(PartnerCenterError) as raised:
        await pc.client.subscriptions(CUSTOMER)

    assert isinstance(raised.value, PartnerCenterUnavailable)
    assert raised.value.http_status == 503
    requests = pc.fake.requests_to("GET", path)
    assert len(requests) == 5
    assert len({request.request_id for request in requests}) == 5, "a new MS-RequestId after each 5xx answer"
    assert len(pc.sleeps) == 4
    for retry, slept in enumerate(pc.sleeps):
        ceiling = min(10.0, 0.5 * 2**retry)
        assert ceiling / 2 <= slept <= ceiling, "exponential back-off with jitter"


async def test_the_total_wait_is_bounded(pc: Harness) -> None:
    client = pc.make_client(max_attempts=50, max_total_wait=5.0, backoff_base=1.0)
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}", Reply(500, None))

    with pytest.raises(PartnerCenterUnavailable):
        await client.get_customer(CUSTOMER)

    assert sum(pc.sleeps) <= 5.0
    assert len(pc.fake.requests) < 50


async def test_a_timeout_is_retried_with_the_same_request_id(pc: Harness) -> None:
    client = pc.make_client(request_timeout=0.2)
    path = f"/v1/customers/{CUSTOMER}"
    pc.fake.script("GET", path, Reply(200, {"id": CUSTOMER}, delay=2.0), Reply(200, {"id": CUSTOMER}))

    customer = await client.get_customer(CUSTOMER)

    assert customer.id == CUSTOMER
    first, second = pc.fake.requests_to("GET", path)
    assert first.request_id == second.request_id
    assert first.correlation_id != second.correlation_id
    assert len(pc.sleeps) == 1


async def test_a_dropped_connection_is_retried_with_the_same_request_id(pc: Harness) -> None:
    path = "/v1/validations/address"
    pc.fake.script("POST", path, Reply(drop=True), Reply(200, {"status": "VerifiedShippable"}))

    result = await pc.client.validate_address(Address(address_line1="1 Microsoft Way", country="US"))

    assert result.status == "VerifiedShippable"
    first, second = pc.fake.requests_to("POST", path)
    assert first.request_id == second.request_id
    assert first.json() == second.json() == {"addressLine1": "1 Microsoft Way", "country": "US"}


# --- Creates are never repeated blindly -------------------------------------------------------------


async def test_create_customer_5xx_after_commit_finds_the_customer_with_one_post(pc: Harness) -> None:
    pc.fake.script("POST", "/v1/customers", Reply(500, fault(800003, "Unexpected service error")))
    pc.fake.script("GET", "/v1/customers", Reply(200, collection([created_customer()])))

    customer = await pc.client.create_customer(new_customer(), request_id="3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")

    assert customer.id == CUSTOMER
    assert customer.user_credentials is not None  # whatever the lookup returned
    assert len(pc.fake.requests_to("POST", "/v1/customers")) == 1
    (lookup,) = pc.fake.requests_to("GET", "/v1/customers")
    assert lookup.query["filter"] == '{"Field":"Domain","Value":"contosoltd.onmicrosoft.com","Operator":"starts_with"}'
    assert "%7B%22Field%22" in lookup.raw_path, "the filter travels URL-encoded"


async def test_create_customer_5xx_before_commit_is_retried_with_a_new_request_id(pc: Harness) -> None:
    pc.fake.script("POST", "/v1/customers", Reply(502, None), Reply(201, created_customer()))
    pc.fake.script("GET", "/v1/customers", Reply(200, collection([])))
    given = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"

    customer = await pc.client.create_customer(new_customer(), request_id=given)

    assert customer.user_credentials is not None
    assert customer.user_credentials.password == SecretStr("=;;n.=s9Z")
    first, second = pc.fake.requests_to("POST", "/v1/customers")
    assert first.request_id == given
    assert second.request_id != given
    body = first.json()
    assert body["companyProfile"] == {"domain": DOMAIN}
    assert body["billingProfile"]["defaultAddress"]["postalCode"] == "98052"


async def test_create_customer_lost_answer_looks_up_then_retries_with_the_same_request_id(pc: Harness) -> None:
    pc.fake.script("POST", "/v1/customers", Reply(drop=True), Reply(201, created_customer()))
    pc.fake.script("GET", "/v1/customers", Reply(200, collection([{"id": "other", "companyProfile": {"domain": "x"}}])))

    await pc.client.create_customer(new_customer())

    first, second = pc.fake.requests_to("POST", "/v1/customers")
    assert first.request_id == second.request_id
    assert len(pc.fake.requests_to("GET", "/v1/customers")) == 1


async def test_out_of_retries_a_create_still_looks_once_more_before_failing(pc: Harness) -> None:
    client = pc.make_client(max_attempts=2)
    pc.fake.always("POST", "/v1/customers", Reply(500, None))
    pc.fake.script("GET", "/v1/customers", Reply(200, collection([])), Reply(200, collection([created_customer()])))

    customer = await client.create_customer(new_customer())

    assert customer.id == CUSTOMER
    assert len(pc.fake.requests_to("POST", "/v1/customers")) == 2
    assert len(pc.fake.requests_to("GET", "/v1/customers")) == 2


async def test_create_user_5xx_after_commit_finds_the_user(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/users"
    pc.fake.script("POST", path, Reply(503, None))
    pc.fake.script(
        "GET",
        path,
        Reply(
            200,
            collection(
                [{"id": "u0", "userPrincipalName": f"other@{DOMAIN}"}],
                next_token="p2",
                next_uri=f"/customers/{CUSTOMER}/users?seekOperation=next",
            ),
        ),
        Reply(200, collection([{"id": "u1", "userPrincipalName": f"JDoe@{DOMAIN}"}])),
    )

    user = await pc.client.create_user(
        CUSTOMER, CustomerUser(user_principal_name=f"jdoe@{DOMAIN}", usage_location="US", display_name="Jane Doe")
    )

    assert user.id == "u1"
    assert len(pc.fake.requests_to("POST", path)) == 1


async def test_delete_user_whose_answer_was_lost_counts_as_deleted(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/users/u1"
    pc.fake.script("DELETE", path, Reply(500, None))
    pc.fake.script("GET", path, Reply(404, fault(60002, "User object ID isn't found")))

    await pc.client.delete_user(CUSTOMER, "u1")

    assert len(pc.fake.requests_to("DELETE", path)) == 1


def ordered_cart() -> dict[str, Any]:
    return {
        "id": CART,
        "creationTimestamp": "2021-05-20T18:29:00Z",
        "expirationTimestamp": "2021-05-20T18:44:00Z",
        "status": "Ordered",
        "lineItems": [
            {"id": 0, "catalogItemId": "CFQ7TTC0LH0R:0002:CFQ7TTC0K5RQ", "quantity": 25, "billingCycle": "monthly"}
        ],
    }


async def test_checkout_5xx_after_commit_returns_the_orders_without_a_second_checkout(pc: Harness) -> None:
    checkout = f"/v1/customers/{CUSTOMER}/carts/{CART}/checkout"
    pc.fake.script("POST", checkout, Reply(500, None))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/carts/{CART}", Reply(200, ordered_cart()))
    older = subscription_body(id="older", orderId="older-order", creationDate="2020-01-01T00:00:00Z")
    pc.fake.script(
        "GET", f"/v1/customers/{CUSTOMER}/subscriptions", Reply(200, collection([older, subscription_body()]))
    )
    pc.fake.script(
        "GET",
        f"/v1/customers/{CUSTOMER}/orders/{ORDER}",
        Reply(200, {"id": ORDER, "status": "completed", "lineItems": [{"subscriptionId": SUBSCRIPTION}]}),
    )

    result = await pc.client.checkout(CUSTOMER, CART)

    assert [order.id for order in result.orders] == [ORDER]
    assert result.orders[0].line_items[0].subscription_id == SUBSCRIPTION
    assert len(pc.fake.requests_to("POST", checkout)) == 1
    assert pc.fake.requests_to("GET", f"/v1/customers/{CUSTOMER}/orders/older-order") == []


async def test_checkout_5xx_before_commit_checks_the_cart_then_buys_once(pc: Harness) -> None:
    checkout = f"/v1/customers/{CUSTOMER}/carts/{CART}/checkout"
    done = {"orders": [{"id": ORDER, "status": "pending"}], "orderErrors": []}
    pc.fake.script("POST", checkout, Reply(503, None), Reply(200, done))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/carts/{CART}", Reply(200, {**ordered_cart(), "status": "Active"}))

    result = await pc.client.checkout(CUSTOMER, CART)

    assert result.orders[0].id == ORDER
    assert len(pc.fake.requests_to("POST", checkout)) == 2


async def test_checkout_of_an_already_submitted_cart_returns_its_orders(pc: Harness) -> None:
    checkout = f"/v1/customers/{CUSTOMER}/carts/{CART}/checkout"
    pc.fake.script("POST", checkout, Reply(400, fault(800065, "can't check out an already submitted cart")))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/carts/{CART}", Reply(200, ordered_cart()))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/subscriptions", Reply(200, collection([subscription_body()])))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/orders/{ORDER}", Reply(200, {"id": ORDER}))

    result = await pc.client.checkout(CUSTOMER, CART)

    assert result.orders[0].id == ORDER
    assert len(pc.fake.requests_to("POST", checkout)) == 1


async def test_ordered_cart_without_visible_subscriptions_is_not_bought_again(pc: Harness) -> None:
    checkout = f"/v1/customers/{CUSTOMER}/carts/{CART}/checkout"
    pc.fake.script("POST", checkout, Reply(500, None))
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}/carts/{CART}", Reply(200, ordered_cart()))
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}/subscriptions", Reply(200, collection([])))

    with pytest.raises(PartnerCenterError) as raised:
        await pc.client.checkout(CUSTOMER, CART)

    assert raised.value.code == "checkout_unconfirmed"
    assert len(pc.fake.requests_to("POST", checkout)) == 1


async def test_cart_lines_are_numbered_and_add_ons_carry_their_parent(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/carts"
    pc.fake.script("POST", path, Reply(201, {"id": CART, "status": "Active", "lineItems": []}))
    base = CartLineItem(catalog_item_id="CFQ7TTC0LCHC:0002:CFQ7TTC0KFFN", quantity=10, billing_cycle="monthly")
    addon = CartLineItem(
        catalog_item_id="CFQ7TTC0LH0R:0002:CFQ7TTC0K5RQ",
        quantity=2,
        billing_cycle="annual",
        term_duration="P1Y",
        provisioning_context={"parentSubscriptionId": SUBSCRIPTION},
    )

    cart = await pc.client.create_cart(CUSTOMER, [base, addon])

    assert cart.status == CartStatus.ACTIVE
    (request,) = pc.fake.requests_to("POST", path)
    lines = request.json()["lineItems"]
    assert [line["id"] for line in lines] == [0, 1]
    assert lines[1]["provisioningContext"] == {"parentSubscriptionId": SUBSCRIPTION}
    assert lines[1]["termDuration"] == "P1Y" and lines[0]["billingCycle"] == "monthly"


# --- Subscriptions: If-Match and 202 polling ---------------------------------------------------------


async def test_update_subscription_sends_if_match_and_polls_a_202_to_completion(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}"
    operation = f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}/operations/op-1"
    pc.fake.script("GET", path, Reply(200, subscription_body()))
    pc.fake.script("PATCH", path, Reply(202, None, {"Location": operation.removeprefix("/v1")}))
    pc.fake.script(
        "GET",
        operation,
        Reply(202, None, {"Retry-After": "3"}),
        Reply(202, None),
        Reply(200, subscription_body(quantity=30, attributes={"etag": "etag-2"})),
    )

    current = await pc.client.subscription(CUSTOMER, SUBSCRIPTION)
    updated = await pc.client.update_subscription(CUSTOMER, current.model_copy(update={"quantity": 30}))

    assert updated.quantity == 30 and updated.etag == "etag-2"
    (patch,) = pc.fake.requests_to("PATCH", path)
    assert patch.headers["If-Match"] == "etag-1"
    sent = patch.json()
    assert sent["quantity"] == 30 and sent["id"] == SUBSCRIPTION and sent["refundableQuantity"]["totalQuantity"] == 5
    assert len(pc.fake.requests_to("GET", operation)) == 3
    assert pc.sleeps == [1.0, 3.0, 1.0], "poll interval, then the Retry-After Microsoft asked for"


async def test_polling_gives_up_after_the_poll_timeout(pc: Harness) -> None:
    client = pc.make_client(poll_timeout=4.0)
    path = f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}"
    pc.fake.script("PATCH", path, Reply(202, None, {"Location": f"{pc.url}/v1/operations/op-9"}))
    pc.fake.always("GET", "/v1/operations/op-9", Reply(202, None))

    with pytest.raises(PartnerCenterError) as raised:
        await client.update_subscription(CUSTOMER, _subscription(status="suspended"))

    assert raised.value.code == "still_processing"
    assert sum(pc.sleeps) <= 4.0


async def test_update_subscription_5xx_after_commit_returns_the_changed_subscription(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}"
    pc.fake.script("PATCH", path, Reply(500, None))
    pc.fake.script("GET", path, Reply(200, subscription_body(status="suspended", attributes={"etag": "etag-2"})))

    updated = await pc.client.update_subscription(CUSTOMER, _subscription(status="suspended"))

    assert updated.status == SubscriptionStatus.SUSPENDED
    assert len(pc.fake.requests_to("PATCH", path)) == 1


async def test_update_subscription_5xx_with_a_change_made_elsewhere_is_a_conflict(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}"
    pc.fake.script("PATCH", path, Reply(500, None))
    pc.fake.script("GET", path, Reply(200, subscription_body(quantity=40, attributes={"etag": "etag-9"})))

    with pytest.raises(PartnerCenterConflict) as raised:
        await pc.client.update_subscription(CUSTOMER, _subscription(quantity=30))

    assert raised.value.code == "etag_mismatch"
    assert len(pc.fake.requests_to("PATCH", path)) == 1


async def test_an_etag_mismatch_is_a_conflict(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}"
    pc.fake.script("PATCH", path, Reply(412, fault(412, "Precondition failed")))

    with pytest.raises(PartnerCenterConflict) as raised:
        await pc.client.update_subscription(CUSTOMER, _subscription(quantity=30))

    assert raised.value.code == "etag_mismatch"
    assert isinstance(raised.value, Conflict)
    assert raised.value.http_status == 412


# --- Paging -------------------------------------------------------------------------------------------


async def test_users_are_read_over_three_pages_with_the_continuation_header(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/users"
    next_uri = f"/customers/{CUSTOMER}/users?size=2&seekOperation=next"

    def user(n: int) -> dict[str, Any]:
        return {"id": f"user-{n}", "userPrincipalName": f"u{n}@{DOMAIN}", "state": "active"}

    pc.fake.script(
        "GET",
        path,
        Reply(200, collection([user(1), user(2)], next_token="token-page-2", next_uri=next_uri)),
        Reply(200, collection([user(3), user(4)], next_token="token-page-3", next_uri=next_uri)),
        Reply(200, collection([user(5)])),
    )

    users = [user async for user in pc.client.users(CUSTOMER, page_size=2)]

    assert [item.id for item in users] == [f"user-{n}" for n in range(1, 6)]
    first, second, third = pc.fake.requests_to("GET", path)
    assert first.query == {"size": "2"} and "MS-ContinuationToken" not in first.headers
    assert second.headers["MS-ContinuationToken"] == "token-page-2"
    assert third.headers["MS-ContinuationToken"] == "token-page-3"
    assert second.query == {"size": "2", "seekOperation": "next"}
    assert all(request.headers["Authorization"] == f"Bearer {USER_TOKEN}" for request in (first, second, third))


async def test_users_page_by_page(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/users"
    pc.fake.script(
        "GET",
        path,
        Reply(200, collection([{"id": "a"}], next_token="t2", next_uri=f"/customers/{CUSTOMER}/users")),
        Reply(200, collection([{"id": "b"}])),
    )
    first = await pc.client.users_page(CUSTOMER, page_size=1)
    assert first.continuation == "t2"
    second = await pc.client.users_page(CUSTOMER, next_link=first.next_link)
    assert [user.id for user in second.items] == ["b"] and second.next_link is None
    assert pc.fake.requests_to("GET", path)[1].headers["MS-ContinuationToken"] == "t2"


async def test_a_link_to_another_host_is_not_followed(pc: Harness) -> None:
    pc.fake.script(
        "GET",
        f"/v1/customers/{CUSTOMER}/users",
        Reply(200, collection([{"id": "a"}], next_token="t", next_uri="https://evil.example/steal")),
    )
    with pytest.raises(PartnerCenterError) as raised:
        _ = [user async for user in pc.client.users(CUSTOMER)]
    assert raised.value.code == "bad_response"
    assert len(pc.fake.requests) == 1


# --- Tolerant parsing ------------------------------------------------------------------------------------


async def test_unknown_fields_and_statuses_parse(pc: Harness) -> None:
    items = [
        subscription_body(id="a", status="expired"),
        subscription_body(id="b", status="disabled", brandNewField={"x": 1}),
        subscription_body(id="c", status="somethingNew", billingCycle="biennial"),
    ]
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/subscriptions", Reply(200, collection(items)))

    subscriptions = await pc.client.subscriptions(CUSTOMER)

    assert [item.status for item in subscriptions] == ["expired", "disabled", "somethingNew"]
    assert subscriptions[0].status is SubscriptionStatus.EXPIRED
    assert subscriptions[1].status is SubscriptionStatus.DISABLED
    assert subscriptions[2].status is not None and not subscriptions[2].status.is_known
    assert subscriptions[2].billing_cycle == "biennial"
    assert subscriptions[1].model_extra == {"brandNewField": {"x": 1}}
    assert subscriptions[1].to_wire()["brandNewField"] == {"x": 1}, "a full-resource PATCH keeps unknown fields"


async def test_an_unreadable_answer_is_a_domain_error(pc: Harness) -> None:
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/subscriptions/{SUBSCRIPTION}", Reply(200, {"quantity": 3}))
    with pytest.raises(PartnerCenterError) as raised:
        await pc.client.subscription(CUSTOMER, SUBSCRIPTION)
    assert raised.value.code == "bad_response"


async def test_a_users_page_is_followed_before_its_users_are_read_and_unreadable_users_are_a_domain_error(
    pc: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The sync asks for the next page before checking this one's users; a user that does not match
    the model is still Microsoft's unreadable answer, reported as such (field locations only logged)."""
    secret_name = "jane.private@contoso.example"
    pc.fake.script(
        "GET",
        f"/v1/customers/{CUSTOMER}/users",
        Reply(200, collection([{"id": "a"}, {"id": {"nested": secret_name}}], next_token="t2", next_uri="/x")),
    )
    page = await pc.client.users_page(CUSTOMER, page_size=2)
    assert len(page) == 2 and page.next_link is not None and page.continuation == "t2"
    with pytest.raises(PartnerCenterError) as raised:
        _ = page.items
    assert raised.value.code == "bad_response"
    assert "did not match its model at ['1.id']" in caplog.text and secret_name not in caplog.text


# --- Error mapping ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
async def test_every_mapped_error_code(pc: Harness, code: str) -> None:
    status = 403 if code in {"13605", "800088"} else 409 if code in {"800060", "800064"} else 400
    description = "Internal detail: Subscription 0c39d6d5 account 1f58acd7 raw text"
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}", Reply(status, fault(int(code), description)))

    with pytest.raises(PartnerCenterError) as raised:
        await pc.client.get_customer(CUSTOMER)

    error_class, message, error_field = ERROR_TABLE[code]
    assert type(raised.value) is error_class
    assert raised.value.code == code
    assert raised.value.message == message == str(raised.value)
    assert raised.value.field == error_field
    assert raised.value.http_status == status
    assert raised.value.description == description
    assert "Internal detail" not in raised.value.message
    assert raised.value.request_id == pc.fake.requests[0].request_id


@pytest.mark.usefixtures("pc")
async def test_the_reference_classes_of_key_codes() -> None:
    assert ERROR_TABLE["800090"][0] is PartnerCenterRuleViolation
    assert ERROR_TABLE["900117"][0] is PartnerCenterRuleViolation
    assert ERROR_TABLE["2001"][0] is PartnerCenterRuleViolation
    assert issubclass(ERROR_TABLE["2002"][0], InvalidInput) and ERROR_TABLE["2002"][2] == "quantity"
    assert ERROR_TABLE["60012"][0] is PartnerCenterRuleViolation
    assert ERROR_TABLE["13605"][0] is PartnerCenterRuleViolation
    assert {ERROR_TABLE[code][2] for code in ("600049", "600050", "600002")} == {"organizationRegistrationNumber"}
    assert ERROR_TABLE["600051"][2] == "phoneNumber"


@pytest.mark.parametrize(
    ("status", "body", "error_class", "code"),
    [
        (401, fault(800001, "Partner Token missing"), PartnerCenterAuthError, "auth_failed"),
        (401, None, PartnerCenterAuthError, "auth_failed"),
        (403, fault(2032, "Access denied"), PartnerCenterAuthError, "auth_failed"),
        (403, None, PartnerCenterAuthError, "auth_failed"),
        (404, fault(1000, "Not found"), PartnerCenterNotFound, "not_found"),
        (409, fault(99999, "Conflict"), PartnerCenterConflict, "99999"),
        (400, fault(600050, "bad reg"), PartnerCenterInvalidInput, "600050"),
        (400, fault(123456, "Something new"), PartnerCenterError, "123456"),
        (400, "not json at all", PartnerCenterError, "partner_center_error"),
        (501, fault(0, "Exception not defined"), PartnerCenterUnavailable, "unavailable"),
    ],
)
async def test_http_status_mapping(pc: Harness, status: int, body: Any, error_class: type, code: str) -> None:
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}", Reply(status, body))

    with pytest.raises(PartnerCenterError) as raised:
        await pc.client.get_customer(CUSTOMER)

    assert type(raised.value) is error_class
    assert raised.value.code == code
    if error_class is PartnerCenterAuthError:
        assert raised.value.message == AUTH_MESSAGE
        assert "credentials expired or lack permission" in raised.value.message
    if error_class is PartnerCenterNotFound:
        assert isinstance(raised.value, NotFound)
    assert len(pc.fake.requests) == 1, "client errors are not retried"


async def test_the_license_quota_fixture_maps_to_no_licences_left(pc: Harness) -> None:
    body = {
        "code": 60012,
        "description": "We're sorry, it looks like you've run out of licenses.",
        "data": ["LicenseQuotaExceededException : Subscription with Account 0c39d6d5 does not have any available"],
        "source": "PartnerFD",
    }
    pc.fake.script("POST", f"/v1/customers/{CUSTOMER}/users/user-1/licenseupdates", Reply(400, body))

    with pytest.raises(PartnerCenterRuleViolation) as raised:
        await pc.client.update_user_licenses(
            CUSTOMER, "user-1", LicenseUpdate(licenses_to_assign=[LicenseAssignment(sku_id="f8a1db68")])
        )

    assert raised.value.code == "60012"
    assert "no free licences" in raised.value.message


# --- Which token each call uses ------------------------------------------------------------------------------


async def test_users_licences_agreements_and_price_sheet_use_app_user_tokens(pc: Harness) -> None:
    fake = pc.fake
    fake.always("GET", f"/v1/customers/{CUSTOMER}/subscriptions", Reply(200, collection([])))
    fake.always("GET", f"/v1/customers/{CUSTOMER}/subscribedskus", Reply(200, collection([])))
    fake.always("GET", f"/v1/customers/{CUSTOMER}/users/u1/licenses", Reply(200, collection([])))
    fake.always(
        "GET",
        "/v1/agreements",
        Reply(200, collection([{"templateId": "tpl-old", "versionRank": 1}, {"templateId": "tpl", "versionRank": 0}])),
    )
    fake.always("POST", f"/v1/customers/{CUSTOMER}/agreements", Reply(201, {"templateId": "tpl"}))
    sheet = "/v1.0/sales/pricesheets(Market='US',PricesheetView='updatedlicensebased')/$value"
    fake.always("GET", sheet, Reply(200, "ProductId,SkuId,UnitPrice\nCFQ7TTC0LH18,0001,4.80\n"))

    await pc.client.subscriptions(CUSTOMER)
    await pc.client.subscribed_skus(CUSTOMER)
    await pc.client.user_licenses(CUSTOMER, "u1")
    agreement = await pc.client.accept_agreement(
        CUSTOMER, Contact(first_name="Tania", last_name="Carr", email="tania@contoso.example")
    )
    rows = await pc.client.price_sheet("US")

    auth = {request.path: request.headers["Authorization"] for request in fake.requests}
    assert auth[f"/v1/customers/{CUSTOMER}/subscriptions"] == f"Bearer {APP_TOKEN}"
    assert auth[f"/v1/customers/{CUSTOMER}/subscribedskus"] == f"Bearer {USER_TOKEN}"
    assert auth[f"/v1/customers/{CUSTOMER}/users/u1/licenses"] == f"Bearer {USER_TOKEN}"
    assert auth["/v1/agreements"] == f"Bearer {USER_TOKEN}"
    assert auth[sheet] == f"Bearer {PARTNER_API_TOKEN}"
    assert agreement.template_id == "tpl"
    (posted,) = fake.requests_to("POST", f"/v1/customers/{CUSTOMER}/agreements")
    sent = posted.json()
    assert sent["templateId"] == "tpl" and sent["type"] == "MicrosoftCustomerAgreement"
    assert sent["primaryContact"] == {"firstName": "Tania", "lastName": "Carr", "email": "tania@contoso.example"}
    assert "dateAgreed" in sent
    assert rows[0].sku_key == "CFQ7TTC0LH18:0001" and str(rows[0].unit_price) == "4.80"
    (sheet_request,) = fake.requests_to("GET", sheet)
    assert sheet_request.raw_path.endswith("(Market='US',PricesheetView='updatedlicensebased')/$value")


async def test_price_sheet_rows_with_microsofts_columns(pc: Harness) -> None:
    columns = (
        "ProductTitle,ProductId,SkuId,SkuTitle,Publisher,SkuDescription,UnitOfMeasure,TermDuration,BillingPlan,"
        "Market,Currency,UnitPrice,PricingTierRangeMin,PricingTierRangeMax,EffectiveStartDate,EffectiveEndDate,"
        "Tags,ERP Price,Segment"
    )
    good = (
        'Microsoft 365 Business Basic,CFQ7TTC0LH18,1,Microsoft 365 Business Basic,Microsoft Corporation,"Best for, '
        'businesses",,P1Y,Annual,US,USD,72,,,2/1/2023 0:00,11/30/9999 23:59,License,90,Commercial'
    )
    bad = "Broken,CFQ7TTC0XXXX,0001,,,,,P1M,Monthly,US,USD,not-a-price,,,,,,,"
    sheet = "/v1.0/sales/pricesheets(Market='US',PricesheetView='updatedlicensebased')/$value"
    pc.fake.script("GET", sheet, Reply(200, ("\ufeff" + "\n".join([columns, good, bad]) + "\n").encode()))

    rows = await pc.client.price_sheet("US")

    (row,) = rows
    assert row.sku_key == "CFQ7TTC0LH18:0001"
    assert (row.term_duration, row.billing_plan, row.currency) == ("P1Y", "Annual", "USD")
    assert str(row.unit_price) == "72" and str(row.erp_price) == "90"
    assert row.effective_start_date is not None and row.effective_start_date.year == 2023
    assert row.sku_description == "Best for, businesses"


# --- Secrets never logged --------------------------------------------------------------------------------------


async def test_tokens_and_passwords_never_reach_the_logs(pc: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin_password = "Adm1n-Gen3rated-P@ss"
    user_password = "N3w-Us3r-P@ssw0rd"
    pc.fake.script("POST", "/v1/customers", Reply(500, None), Reply(201, created_customer(admin_password)))
    pc.fake.script("GET", "/v1/customers", Reply(200, collection([])))
    pc.fake.script(
        "POST",
        f"/v1/customers/{CUSTOMER}/users",
        Reply(201, {"id": "u1", "passwordProfile": {"password": user_password, "forceChangePassword": True}}),
    )
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/users/u1", Reply(401, fault(800001, "token expired")))

    with correlation_scope("turn-42"):
        customer = await pc.client.create_customer(new_customer())
        user = await pc.client.create_user(
            CUSTOMER,
            CustomerUser(
                user_principal_name=f"jdoe@{DOMAIN}",
                display_name="Jane Doe",
                usage_location="US",
                password_profile=PasswordProfile(password=SecretStr(user_password), force_change_password=True),
            ),
        )
        with pytest.raises(PartnerCenterAuthError) as raised:
            await pc.client.get_user(CUSTOMER, "u1")

    (created,) = pc.fake.requests_to("POST", f"/v1/customers/{CUSTOMER}/users")
    assert created.json()["passwordProfile"]["password"] == user_password, "the request itself carries it"
    assert admin_password not in repr(customer) and user_password not in repr(user)
    assert user_password not in str(raised.value) and USER_TOKEN not in repr(raised.value.__dict__)
    logged = caplog.text + " ".join(repr(record.args) for record in caplog.records)
    for secret in (admin_password, user_password, APP_TOKEN, USER_TOKEN, "Bearer"):
        assert secret not in logged
    request_lines = [record for record in caplog.records if "ms-correlation-id=" in record.getMessage()]
    assert len(request_lines) == 5
    for record in request_lines:
        assert "correlation=turn-42" in record.getMessage()
    assert any(request.correlation_id in caplog.text for request in pc.fake.requests if request.correlation_id)


# --- More edges: a throttled create, paging of every collection, unknown enum values ------------------------


async def test_a_throttled_checkout_is_retried_with_the_same_request_id_without_a_lookup(pc: Harness) -> None:
    checkout = f"/v1/customers/{CUSTOMER}/carts/{CART}/checkout"
    done = {"orders": [{"id": ORDER, "status": "pending"}], "orderErrors": []}
    pc.fake.script("POST", checkout, Reply(429, None, {"Retry-After": "2"}), Reply(201, done))

    result = await pc.client.checkout(CUSTOMER, CART, request_id="5e0c7a1b-2d3f-4a5b-8c6d-7e8f9a0b1c2d")

    assert result.orders[0].id == ORDER
    first, second = pc.fake.requests_to("POST", checkout)
    assert first.request_id == second.request_id == "5e0c7a1b-2d3f-4a5b-8c6d-7e8f9a0b1c2d"
    assert pc.fake.requests_to("GET", f"/v1/customers/{CUSTOMER}/carts/{CART}") == [], "a 429 was not processed"
    assert pc.sleeps == [2.0]


async def test_every_collection_follows_its_pages(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions"
    pc.fake.script(
        "GET",
        path,
        Reply(
            200,
            collection([subscription_body(id="s1")], next_token="t2", next_uri=f"/customers/{CUSTOMER}/subscriptions"),
        ),
        Reply(200, collection([subscription_body(id="s2")])),
    )
    assert [item.id for item in await pc.client.subscriptions(CUSTOMER)] == ["s1", "s2"]
    assert pc.fake.requests_to("GET", path)[1].headers["MS-ContinuationToken"] == "t2"


async def test_audit_records_send_the_query_once_and_follow_the_next_link(pc: Harness) -> None:
    fake = pc.fake
    record = {"id": "r1", "operationType": "update_subscription", "customerId": CUSTOMER, "brandNew": 1}
    fake.script(
        "GET",
        "/v1/auditrecords",
        Reply(200, collection([record], next_token="a2", next_uri="/auditrecords?size=1&seekOperation=Next&filter=x")),
        Reply(200, collection([dict(record, id="r2", operationType="somethingNewer")])),
    )

    records = [
        item
        async for item in pc.client.audit_records(
            datetime(2026, 11, 1, tzinfo=UTC).date(),
            size=1,
            filter={"Field": "CustomerId", "Value": CUSTOMER, "Operator": "equals"},
        )
    ]

    assert [(item.id, item.operation_type) for item in records] == [
        ("r1", "update_subscription"),
        ("r2", "somethingNewer"),
    ]
    first, second = fake.requests_to("GET", "/v1/auditrecords")
    assert first.query == {
        "startDate": "2026-11-01",
        "size": "1",
        "filter": f'{{"Field":"CustomerId","Value":"{CUSTOMER}","Operator":"equals"}}',
    }
    assert second.query == {"size": "1", "seekOperation": "Next", "filter": "x"}, "the link, not our query again"
    assert second.headers["MS-ContinuationToken"] == "a2"


async def test_a_repeated_page_link_stops_the_listing(pc: Harness) -> None:
    path = f"/v1/customers/{CUSTOMER}/subscriptions"
    looping = collection([subscription_body()], next_token="same", next_uri=f"/customers/{CUSTOMER}/subscriptions")
    pc.fake.always("GET", path, Reply(200, looping))

    subscriptions = await pc.client.subscriptions(CUSTOMER)

    assert len(subscriptions) == 2 and len(pc.fake.requests_to("GET", path)) == 2


async def test_unknown_enum_values_parse_in_every_resource(pc: Harness) -> None:
    fake = pc.fake
    fake.script("GET", f"/v1/customers/{CUSTOMER}/carts/{CART}", Reply(200, {"id": CART, "status": "Processing"}))
    fake.script(
        "GET", f"/v1/customers/{CUSTOMER}/orders/{ORDER}", Reply(200, {"id": ORDER, "status": "provisioning", "x": 1})
    )
    fake.script("POST", "/v1/validations/address", Reply(200, {"status": "PartiallyVerified", "newField": True}))
    fake.script("GET", f"/v1/customers/{CUSTOMER}/users/u1", Reply(200, {"id": "u1", "state": "disabled"}))

    cart = await pc.client.get_cart(CUSTOMER, CART)
    order = await pc.client.get_order(CUSTOMER, ORDER)
    verdict = await pc.client.validate_address(Address(country="US"))
    user = await pc.client.get_user(CUSTOMER, "u1")

    assert cart.status == "Processing" and cart.status is not None and not cart.status.is_known
    assert order.status == "provisioning" and order.model_extra == {"x": 1}
    assert verdict.status == "PartiallyVerified"
    assert user.state == "disabled"


# --- Throttling shared by concurrent calls, and the call observer -----------------------------------


async def test_while_one_call_waits_out_a_429_other_calls_to_that_customer_wait_too(pc: Harness) -> None:
    """A concurrent sync must not keep knocking on a customer Microsoft has throttled; calls to
    another customer are not held back."""
    other = "0a1b2c3d-0000-4000-8000-00000000abcd"
    waiting, released = asyncio.Event(), asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the throttled call's Retry-After wait, held by the test
        waits.append(seconds)
        waiting.set()
        await released.wait()

    client = pc.make_client(sleep=sleep)
    path = f"/v1/customers/{CUSTOMER}"
    pc.fake.script("GET", path, Reply(429, None, {"Retry-After": "9"}))
    pc.fake.always("GET", path, Reply(200, {"id": CUSTOMER}))
    pc.fake.always("GET", f"/v1/customers/{other}", Reply(200, {"id": other}))
    pc.fake.always("GET", f"{path}/users/u1", Reply(200, {"id": "u1"}))

    throttled = asyncio.create_task(client.get_customer(CUSTOMER))
    await waiting.wait()  # the 429 arrived and the call is waiting out its Retry-After
    held = asyncio.create_task(client.get_user(CUSTOMER, "u1"))
    for _ in range(3):  # round trips to another customer go through meanwhile (not held back)
        assert (await client.get_customer(other)).id == other
    assert not held.done() and pc.fake.requests_to("GET", f"{path}/users/u1") == []

    released.set()
    assert (await throttled).id == CUSTOMER and (await held).id == "u1"
    assert waits == [9.0]  # one Retry-After wait; the held call waited with it, not on its own
    assert len(pc.fake.requests_to("GET", path)) == 2


async def test_every_attempt_is_told_to_the_observer_by_operation_without_ids(pc: Harness) -> None:
    seen: list[tuple[str, str]] = []
    client = pc.make_client(on_call=lambda operation, outcome, _seconds: seen.append((operation, outcome)))
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}/users/u1/licenses", Reply(429, None, {"Retry-After": "1"}))
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}/users/u1/licenses", Reply(200, collection([])))
    pc.fake.always("HEAD", f"/v1/domains/{DOMAIN}", Reply(404))
    pc.fake.always("GET", f"/v1/customers/{CUSTOMER}/users/u2", Reply(404, fault(2000, "not found")))

    await client.user_licenses(CUSTOMER, "u1")
    assert not await client.domain_is_taken(DOMAIN)
    with pytest.raises(PartnerCenterNotFound):
        await client.get_user(CUSTOMER, "u2")

    assert seen == [
        ("GET customers/{id}/users/{id}/licenses", "429"),
        ("GET customers/{id}/users/{id}/licenses", "200"),
        ("HEAD domains/{id}", "404"),
        ("GET customers/{id}/users/{id}", "404"),
    ]
    assert not any(CUSTOMER in operation or DOMAIN in operation for operation, _ in seen)


def test_operation_names_keep_only_partner_centers_words() -> None:
    from services.partner_center.transport import operation_of

    assert operation_of("get", "https://api.partner.microsoft.com/v1.0/sales/pricesheets(Market='US')/$value") == (
        "GET sales/pricesheets/{id}"
    )
    assert operation_of("POST", f"http://x/v1/customers/{CUSTOMER}/carts/{CART}/checkout?a=b") == (
        "POST customers/{id}/carts/{id}/checkout"
    )
    assert operation_of("GET", "http://x/v1/countryvalidationrules/US") == "GET countryvalidationrules/{id}"


async def test_a_slow_call_marks_the_turn_it_serves_waiting_until_the_answer(
    pc: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on turns working (bot/overload.py) leaves out a turn waiting long for Partner Center;
    a quick answer never marks it (the turn goes straight on working)."""
    monkeypatch.setattr(transport, "WORKING_WHILE_WAITING_SECONDS", 0.05)
    customer = {"id": CUSTOMER}
    pc.fake.script("GET", f"/v1/customers/{CUSTOMER}", Reply(200, customer), Reply(200, customer, delay=0.5))
    seen: list[tuple[str, int]] = []

    class Waiter:
        def remote_call_started(self) -> None:
            seen.append(("waiting", len(pc.fake.requests)))

        def remote_call_ended(self) -> None:
            seen.append(("working", len(pc.fake.requests)))

    async def a_turn() -> None:
        serve_as(Waiter())
        await pc.client.get_customer(CUSTOMER)  # answered at once
        await pc.client.get_customer(CUSTOMER)  # answered after 0.5 s

    await asyncio.create_task(a_turn())  # a task: its own context, as a request's handler has
    assert seen == [("waiting", 2), ("working", 2)]
