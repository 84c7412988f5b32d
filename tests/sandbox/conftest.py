"""Fixtures for the sandbox's own tests: the app on a temp SQLite file with a frozen clock, driven
with raw HTTP through aiohttp's test client (no client library — these tests pin the wire format)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from sandbox import SandboxClock, SandboxSettings, create_sandbox_app
from sandbox.store import documents
from services.db import create_engine

TOKEN = "sandbox-test-token"
START = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
MCA_TEMPLATE = "117a77b0-9360-443b-8795-c6dedc750cf9"

BASIC = ("CFQ7TTC0LH18", "0001")
STANDARD = ("CFQ7TTC0LDPB", "0001")
E3 = ("CFQ7TTC0LFLX", "0001")
TEAMS_PHONE = ("CFQ7TTC0LH0T", "0001")
COPILOT = ("CFQ7TTC0MM8R", "0002")
BASIC_LICENCE = "3b555118-da6a-4418-894f-7df1e2096870"


class Api:
    """Raw HTTP against the sandbox with the bearer token, plus the few flows most tests need."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None, auth: bool = True
    ) -> tuple[int, Any, Any]:
        sent = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
        sent.update(headers or {})
        kwargs: dict[str, Any] = {"headers": sent}
        if body is not None:
            kwargs["json"] = body
        response = await self.client.request(method, path, **kwargs)
        text = await response.text()
        data: Any = None
        if text and response.content_type == "application/json":
            data = await response.json()
        elif text:
            data = text
        return response.status, data, response.headers

    async def ok(self, method: str, path: str, body: Any = None, *, status: int = 200, **kwargs: Any) -> Any:
        got, data, _ = await self.call(method, path, body, **kwargs)
        assert got == status, f"{method} {path}: expected {status}, got {got}: {data}"
        return data

    async def fails(self, method: str, path: str, body: Any = None, *, status: int, code: int, **kwargs: Any) -> Any:
        got, data, _ = await self.call(method, path, body, **kwargs)
        assert got == status, f"{method} {path}: expected {status}, got {got}: {data}"
        assert isinstance(data, dict) and data.get("code") == code, f"expected code {code}, got {data}"
        assert set(data) == {"code", "description", "data", "source"}
        return data

    async def admin(self, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
        return await self.ok(method, f"/_sandbox{path}", body, status=status)

    async def new_customer(self, prefix: str | None = None, **overrides: Any) -> dict[str, Any]:
        body = customer_request(prefix or f"cust{uuid.uuid4().hex[:10]}", **overrides)
        return await self.ok("POST", "/v1/customers", body, status=201)

    async def attest(self, customer_id: str) -> None:
        await self.ok(
            "POST",
            f"/v1/customers/{customer_id}/agreements",
            {
                "primaryContact": {"firstName": "Tania", "lastName": "Carr", "email": "tania@example.com"},
                "templateId": MCA_TEMPLATE,
                "dateAgreed": "2025-03-10T00:00:00Z",
                "type": "MicrosoftCustomerAgreement",
            },
            status=201,
        )

    async def catalog_item(self, product: tuple[str, str], term: str = "P1Y", country: str = "US") -> str:
        items = await self.ok("GET", f"/v1/products/{product[0]}/skus/{product[1]}/availabilities?country={country}")
        for item in items["items"]:
            if item["terms"][0]["duration"] == term:
                return str(item["catalogItemId"])
        raise AssertionError(f"{product} has no {term} availability")

    async def cart(
        self,
        customer_id: str,
        product: tuple[str, str],
        quantity: int,
        *,
        term: str = "P1Y",
        cycle: str = "monthly",
        parent: str | None = None,
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": 0,
            "catalogItemId": await self.catalog_item(product, term),
            "quantity": quantity,
            "billingCycle": cycle,
            "termDuration": term,
        }
        if parent:
            line["provisioningContext"] = {"ParentSubscriptionId": parent}
        return await self.ok("POST", f"/v1/customers/{customer_id}/carts", {"lineItems": [line]}, status=201)

    async def buy(self, customer_id: str, product: tuple[str, str], quantity: int, **kwargs: Any) -> dict[str, Any]:
        """Cart + checkout; returns the new subscription."""
        cart = await self.cart(customer_id, product, quantity, **kwargs)
        result = await self.ok("POST", f"/v1/customers/{customer_id}/carts/{cart['id']}/checkout", {}, status=201)
        assert result["orderErrors"] == [], result["orderErrors"]
        subscription_id = result["orders"][0]["lineItems"][0]["subscriptionId"]
        return await self.subscription(customer_id, subscription_id)

    async def subscription(self, customer_id: str, subscription_id: str) -> dict[str, Any]:
        subscription: dict[str, Any] = await self.ok(
            "GET", f"/v1/customers/{customer_id}/subscriptions/{subscription_id}"
        )
        return subscription

    async def patch(self, subscription: dict[str, Any], **changes: Any) -> Any:
        """PATCH the full resource with `changes`, carrying its e-tag in If-Match."""
        return await self.ok(
            "PATCH",
            subscription_path(subscription),
            dict(subscription, **changes),
            headers={"If-Match": subscription["attributes"]["etag"]},
        )

    async def patch_fails(
        self, subscription: dict[str, Any], changes: dict[str, Any], *, status: int, code: int
    ) -> Any:
        """PATCH with `changes` (and the current e-tag) and expect Microsoft's error `code`."""
        return await self.fails(
            "PATCH",
            subscription_path(subscription),
            dict(subscription, **changes),
            status=status,
            code=code,
            headers={"If-Match": subscription["attributes"]["etag"]},
        )

    async def advance(self, duration: str) -> dict[str, Any]:
        moved: dict[str, Any] = await self.admin("POST", "/clock", {"advance": duration})
        return moved


def subscription_path(subscription: dict[str, Any]) -> str:
    """`/v1` + the subscription's self link (Microsoft's links omit the version prefix)."""
    return f"/v1{subscription['links']['self']['uri']}"


def customer_request(prefix: str, *, country: str = "US", **overrides: Any) -> dict[str, Any]:
    """A valid creation request in Microsoft's PascalCase, per country, with overrides by key."""
    addresses = {
        "US": {"AddressLine1": "1 Microsoft Way", "City": "Redmond", "State": "WA", "PostalCode": "98052"},
        "GB": {"AddressLine1": "2 Kingdom Street", "City": "London", "PostalCode": "W2 6BD"},
        "DE": {"AddressLine1": "Walter-Gropius-Strasse 5", "City": "Munich", "PostalCode": "80807"},
        "HU": {
            "AddressLine1": "Szepvolgyi ut 39",
            "City": "Budapest",
            "PostalCode": "1037",
            "PhoneNumber": "3612345678",
        },
        "BR": {"AddressLine1": "Avenida Paulista 1000", "City": "Sao Paulo", "State": "SP", "PostalCode": "01310-100"},
        "PT": {"AddressLine1": "Rua do Fial 12", "City": "Lisboa", "PostalCode": "1990-024"},
    }
    cultures = {"US": "en-US", "GB": "en-GB", "DE": "de-DE", "HU": "hu-HU", "BR": "pt-BR", "PT": "pt-PT"}
    address = {"FirstName": "Tania", "LastName": "Carr", "Country": country, "PhoneNumber": "4255550101"}
    address.update(addresses[country])
    address.update({key: value for key, value in overrides.items() if key in address or key in ("State", "City")})
    company: dict[str, Any] = {"Domain": f"{prefix}.onmicrosoft.com"}
    if "OrganizationRegistrationNumber" in overrides:
        company["OrganizationRegistrationNumber"] = overrides["OrganizationRegistrationNumber"]
    for key in [key for key, value in address.items() if value is None]:
        del address[key]
    return {
        "CompanyProfile": company,
        "BillingProfile": {
            "Culture": overrides.get("Culture", cultures[country]),
            "Email": "admin@example.com",
            "Language": overrides.get("Language", "en"),
            "CompanyName": f"{prefix.title()} Ltd",
            "DefaultAddress": address,
        },
    }


@pytest.fixture
def clock() -> SandboxClock:
    return SandboxClock(frozen_at=START)


@pytest.fixture
def sandbox_settings() -> SandboxSettings:
    return SandboxSettings(availability_salt="sandbox-tests", fault_seed=7)


@pytest.fixture
def sandbox_db(tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}"


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Awaitable[TestClient]],
    sandbox_db: str,
    clock: SandboxClock,
    sandbox_settings: SandboxSettings,
) -> Api:
    app = create_sandbox_app(database_url=sandbox_db, accepted_token=TOKEN, clock=clock, settings=sandbox_settings)
    return Api(await aiohttp_client(app))


async def stored_documents(database_url: str) -> str:
    """Everything the sandbox keeps as documents (idempotent answers, operations, resources), as text."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(documents.c.kind, documents.c.data))).all()
    finally:
        await engine.dispose()
    return "\n".join(f"{kind}: {json.dumps(data)}" for kind, data in rows)


@pytest.fixture
async def customer(api: Api) -> dict[str, Any]:
    """A customer who has attested the Microsoft Customer Agreement."""
    created = await api.new_customer()
    await api.attest(created["id"])
    return created
