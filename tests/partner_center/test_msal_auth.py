"""Real MSAL against a local fake Microsoft Entra authority over HTTPS (a test CA from trustme).

MSAL is synchronous and runs in a worker thread, so the fake authority is an aiohttp server on the
test's own event loop. No network, no Microsoft account."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from aiohttp import web

from services.partner_center.auth import SCOPES, MsalTokenProvider, StaticTokenProvider
from services.partner_center.errors import PartnerCenterAuthError
from tests.partner_center.scripted_fake import serve

TENANT = "4b1ed5e6-0000-4000-8000-00000000cafe"
CLIENT_ID = "9a7c4d0e-0000-4000-8000-0000000000a1"
CLIENT_SECRET = "client-secret-Zq8!x"
FIRST_REFRESH_TOKEN = "refresh-token-initial-Xy7"


@dataclass
class FakeAuthority:
    """Serves OIDC discovery and the v2 token endpoint for one tenant; records token requests."""

    base_url: str = ""
    expires_in: int = 3600
    token_requests: list[dict[str, str]] = field(default_factory=list)
    other_requests: list[str] = field(default_factory=list)
    failures: deque[dict[str, Any]] = field(default_factory=deque)
    issued: list[str] = field(default_factory=list)
    delay: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/{TENANT}/v2.0/.well-known/openid-configuration", self._discovery)
        app.router.add_post(f"/{TENANT}/oauth2/v2.0/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._unexpected)
        return app

    async def _discovery(self, _request: web.Request) -> web.Response:
        root = f"{self.base_url}/{TENANT}"
        return web.json_response(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.token_requests.append(form)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            return web.json_response(self.failures.popleft(), status=400)
        number = len(self.token_requests)
        access_token = f"access-token-{number}-{form.get('grant_type')}"
        self.issued.append(access_token)
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": access_token}
        if form.get("grant_type") == "refresh_token":
            body["refresh_token"] = f"rolled-refresh-token-{number}"
            body["scope"] = form.get("scope", "")
        return web.json_response(body)

    async def _unexpected(self, request: web.Request) -> web.Response:
        self.other_requests.append(f"{request.method} {request.path}")
        return web.json_response({"error": "not_found"}, status=404)


@dataclass
class Authority:
    fake: FakeAuthority
    url: str
    ca_file: Path


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def authority(certificate_authority: trustme.CA, tmp_path: Path) -> AsyncIterator[Authority]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "test-ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    fake = FakeAuthority()
    async with serve(fake.app(), ssl_context=server_context) as url:
        fake.base_url = url
        yield Authority(fake=fake, url=url, ca_file=ca_file)


def trusting_session(ca_file: Path) -> requests.Session:
    """What MSAL uses for HTTP, trusting only the test CA (and ignoring REQUESTS_CA_BUNDLE)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    return session


def provider(authority: Authority, **overrides: Any) -> MsalTokenProvider:
    options: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": FIRST_REFRESH_TOKEN,
        "authority": authority.url,
        "http_client": trusting_session(authority.ca_file),
    }
    options.update(overrides)
    return MsalTokenProvider(**options)


async def test_client_credentials_token_is_acquired_and_cached(authority: Authority) -> None:
    tokens = provider(authority)

    first = await tokens.get_token("app")
    second = await tokens.get_token("app")

    assert first == second == authority.fake.issued[0]
    (request,) = authority.fake.token_requests
    assert request["grant_type"] == "client_credentials"
    assert request["client_id"] == CLIENT_ID and request["client_secret"] == CLIENT_SECRET
    assert request["scope"] == SCOPES["partner_center"]
    assert authority.fake.other_requests == [], "no instance discovery or other calls to Microsoft"


async def test_a_token_near_expiry_is_renewed(authority: Authority) -> None:
    authority.fake.expires_in = 120  # inside the 5-minute renewal margin from the start
    tokens = provider(authority)

    first = await tokens.get_token("app")
    second = await tokens.get_token("app")

    assert first != second
    assert len(authority.fake.token_requests) == 2


async def test_the_cache_follows_its_clock(authority: Authority) -> None:
    now = [1000.0]
    tokens = provider(authority, clock=lambda: now[0])

    first = await tokens.get_token("app")
    now[0] += 3600 - 300 - 1  # still just outside the renewal margin
    assert await tokens.get_token("app") == first
    assert len(authority.fake.token_requests) == 1


async def test_refresh_token_flow_rolls_the_refresh_token(authority: Authority) -> None:
    authority.fake.expires_in = 60
    stored: list[str] = []

    async def store(token: str) -> None:
        stored.append(token)

    tokens = provider(authority, on_refresh_token=store)

    first = await tokens.get_token("app_user")
    second = await tokens.get_token("app_user")
    price_api = await tokens.get_token("app_user", "partner_api")

    assert len({first, second, price_api}) == 3
    first_request, second_request, third_request = authority.fake.token_requests
    assert first_request["grant_type"] == "refresh_token"
    assert first_request["refresh_token"] == FIRST_REFRESH_TOKEN
    assert second_request["refresh_token"] == "rolled-refresh-token-1"
    assert third_request["refresh_token"] == "rolled-refresh-token-2"
    assert SCOPES["partner_center"] in first_request["scope"].split()
    assert "offline_access" in first_request["scope"].split()
    assert SCOPES["partner_api"] in third_request["scope"].split()
    assert stored == ["rolled-refresh-token-1", "rolled-refresh-token-2", "rolled-refresh-token-3"]


async def test_app_and_app_user_tokens_are_kept_apart(authority: Authority) -> None:
    tokens = provider(authority)
    app = await tokens.get_token("app")
    user = await tokens.get_token("app_user")
    assert app != user
    assert await tokens.get_token("app") == app and await tokens.get_token("app_user") == user
    assert [request["grant_type"] for request in authority.fake.token_requests] == [
        "client_credentials",
        "refresh_token",
    ]


async def test_concurrent_callers_share_one_token_request(authority: Authority) -> None:
    authority.fake.delay = 0.05  # keep the first request in flight while the others arrive
    tokens = provider(authority)

    results = await asyncio.gather(*(tokens.get_token("app") for _ in range(20)))

    assert len(set(results)) == 1
    assert len(authority.fake.token_requests) == 1


async def test_a_refused_token_is_an_auth_error_without_secrets(
    authority: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    authority.fake.failures.append(
        {
            "error": "invalid_grant",
            "error_description": f"AADSTS70008: The refresh token has expired. Token: {FIRST_REFRESH_TOKEN}",
            "error_codes": [70008],
        }
    )
    tokens = provider(authority)

    with pytest.raises(PartnerCenterAuthError) as raised:
        await tokens.get_token("app_user")

    assert raised.value.code == "auth_failed"
    assert "credentials expired or lack permission" in raised.value.message
    assert FIRST_REFRESH_TOKEN not in str(raised.value) and raised.value.__cause__ is None
    assert "invalid_grant" in caplog.text and "70008" in caplog.text
    assert FIRST_REFRESH_TOKEN not in caplog.text and CLIENT_SECRET not in caplog.text


async def test_an_unknown_tenant_is_an_auth_error(authority: Authority) -> None:
    tokens = provider(authority, tenant_id="no-such-tenant")
    with pytest.raises(PartnerCenterAuthError):
        await tokens.get_token("app")
    assert authority.fake.token_requests == []


async def test_app_user_without_a_refresh_token_is_an_auth_error(authority: Authority) -> None:
    tokens = provider(authority, refresh_token=None)
    with pytest.raises(PartnerCenterAuthError):
        await tokens.get_token("app_user")
    assert authority.fake.token_requests == []


async def test_no_token_or_secret_is_logged(authority: Authority, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authority.fake.expires_in = 60
    tokens = provider(authority)

    await tokens.get_token("app")
    await tokens.get_token("app_user")
    await tokens.get_token("app_user")

    logged = caplog.text + " ".join(repr(record.args) for record in caplog.records)
    secrets = [CLIENT_SECRET, FIRST_REFRESH_TOKEN, *authority.fake.issued]
    secrets += [f"rolled-refresh-token-{n}" for n in range(1, 4)]
    for secret in secrets:
        assert secret not in logged
    assert "token acquired" in caplog.text
    assert CLIENT_SECRET not in repr(tokens.__dict__)


async def test_static_tokens_are_for_the_sandbox() -> None:
    tokens = StaticTokenProvider("sandbox")
    assert await tokens.get_token("app") == await tokens.get_token("app_user", "partner_api") == "sandbox"
