"""/api/messages with an App ID configured: inbound Bot Framework JWTs and the outbound token.

No network: inbound tokens are signed with a local RSA key that a fake `SigningKeySource` hands
to the SDK's validator, and the outbound token comes from a fake token provider plugged into the
SDK's core `ConnectionManager`, configured with the same `SERVICE_CONNECTION` settings as
production (`connection_settings`). The fake connector speaks https on 127.0.0.1 with a certificate
of the tests' own CA, and CONNECTOR_HOSTS names 127.0.0.1: production's rule (https to a listed host)
is what the tests go through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from azure.core.credentials import AccessToken
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from microsoft_agents.hosting.core import MessageFactory
from microsoft_agents.hosting.core.authorization import AgentAuthConfiguration, ConnectionManager

from bot.auth import BOT_FRAMEWORK_ISSUER, connection_settings
from cards.billing import FILE_CONSENT
from services.ledger import LedgerEvent
from services.outbound_hosts import HostNotAllowed
from services.seed import DEMO_SLUG, PLAYGROUND_ADMIN, PLAYGROUND_TENANT_ID
from services.settings import Settings
from tests.billing.ledger_fixtures import event
from tests.conftest import TlsConnector, message, runtime_of
from tests.fakes import FakeConnector, card_of, card_text

APP_ID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
TENANT_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
APP_PASSWORD = "s3cret-value"
KID = "test-signing-key"
OUTBOUND_TOKEN = "outbound-test-token"
BOT_FRAMEWORK_JWKS = "https://login.botframework.com/v1/.well-known/keys"

AUTH_SETTINGS: dict[str, Any] = {
    "_env_file": None,  # a developer's .env must not change these tests
    "microsoft_app_id": APP_ID,
    "microsoft_app_password": APP_PASSWORD,
    "microsoft_app_tenant_id": TENANT_ID,
    "seed_demo_organisation": True,  # off by default with an app id; the tests chat as its admin
    "connector_hosts": "127.0.0.1",  # the fake connector (https, the tests' CA); "localhost" is not listed
}
# Entra issuers the SDK accepts with VALIDATE_ISSUER on: the bot's own tenant, and a Microsoft first-party
# tenant it always trusts. Any app there can get a token whose audience is the bot's app id.
TENANT_ISSUER_V1 = f"https://sts.windows.net/{TENANT_ID}/"
TENANT_ISSUER_V2 = f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"
FIRST_PARTY_TENANT = "d6d49420-f39b-4df7-a1dc-d59a935871db"
FIRST_PARTY_ISSUER = f"https://sts.windows.net/{FIRST_PARTY_TENANT}/"


# ---- keys and tokens ------------------------------------------------------------------------
def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SIGNING_KEY = _new_key()
OTHER_KEY = _new_key()  # same kid, different key: a forger who knows the kid


def _public_jwk(key: rsa.RSAPrivateKey, kid: str) -> jwt.PyJWK:
    data = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    data.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwt.PyJWK(data)


@dataclass
class FakeSigningKeys:
    """A `SigningKeySource` holding one public key; records which JWKS document was asked for."""

    keys: dict[str, jwt.PyJWK] = field(default_factory=lambda: {KID: _public_jwk(SIGNING_KEY, KID)})
    asked: list[str] = field(default_factory=list)

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> jwt.PyJWK:
        self.asked.append(jwks_uri)
        key = self.keys.get(header.get("kid", ""))
        if key is None:
            raise jwt.PyJWKClientError(f'Unable to find a signing key that matches: "{header.get("kid")}"')
        return key


def mint(
    service_url: str | None,
    *,
    key: Any = SIGNING_KEY,
    algorithm: str = "RS256",
    kid: str | None = KID,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A Bot Framework channel token; `claims` override, `drop` removes claims."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": BOT_FRAMEWORK_ISSUER,
        "aud": APP_ID,
        "serviceurl": service_url,
        "nbf": now - 60,
        "exp": now + 3600,
    }
    payload.update(claims)
    for name in drop:
        payload.pop(name, None)
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


# ---- outbound token provider ------------------------------------------------------------------
class FakeTokenProvider:
    """The outbound (bot -> connector) token provider: a fixed token, no MSAL, no network."""

    def __init__(self, configuration: AgentAuthConfiguration) -> None:
        self._configuration = configuration
        self.requests: list[tuple[str, list[str]]] = []

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._configuration

    async def get_access_token(self, resource_url: str, scopes: list[str], _force_refresh: bool = False) -> str:
        self.requests.append((resource_url, list(scopes or [])))
        return OUTBOUND_TOKEN

    def get_token_credential(self) -> Any:
        class _Credential:
            async def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
                return AccessToken(OUTBOUND_TOKEN, int(time.time()) + 3600)

        return _Credential()


def fake_connections() -> tuple[ConnectionManager, list[FakeTokenProvider]]:
    """The core ConnectionManager with production's SERVICE_CONNECTION settings and a fake provider."""
    providers: list[FakeTokenProvider] = []

    def factory(configuration: AgentAuthConfiguration) -> FakeTokenProvider:
        provider = FakeTokenProvider(configuration)
        providers.append(provider)
        return provider

    settings = Settings(**AUTH_SETTINGS)
    manager = ConnectionManager(
        factory, CONNECTIONS={"SERVICE_CONNECTION": {"SETTINGS": connection_settings(settings)}}
    )
    return manager, providers


@dataclass
class AuthBot:
    client: TestClient
    connector: FakeConnector
    url: str
    keys: FakeSigningKeys
    providers: list[FakeTokenProvider]

    async def post(
        self, body: Any = None, *, authorization: str | None = None, raw: bytes | None = None, keep_alive: bool = True
    ) -> Any:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        if not keep_alive:
            headers["Connection"] = "close"
        data = raw if raw is not None else json.dumps(body).encode()
        return await self.client.post("/api/messages", data=data, headers=headers)

    def outbound_token_requests(self) -> int:
        return sum(len(provider.requests) for provider in self.providers)


StartBot = Callable[..., Awaitable[AuthBot]]


@pytest.fixture
def start_bot(make_bot: Any, tls_connector: TlsConnector) -> StartBot:
    """The authenticated bot; keyword arguments are settings on top of AUTH_SETTINGS."""

    async def _start(**settings: Any) -> AuthBot:
        keys = FakeSigningKeys()
        connections, providers = fake_connections()
        client = await make_bot(
            settings={**AUTH_SETTINGS, **settings},
            connections=connections,
            signing_keys=keys,
            connector_tls=tls_connector.trust,
        )
        return AuthBot(client, tls_connector.fake, tls_connector.url, keys, providers)

    return _start


@pytest.fixture
async def bot(start_bot: StartBot) -> AuthBot:
    return await start_bot()


def test_wiring_equals_production() -> None:
    """The test connection manager is configured exactly like production's SERVICE_CONNECTION."""
    manager, providers = fake_connections()
    config = manager.get_default_connection_configuration()
    assert config.CLIENT_ID == APP_ID
    assert config.TENANT_ID == TENANT_ID
    assert config.CLIENT_SECRET == APP_PASSWORD
    assert config.VALIDATE_ISSUER is True
    assert config.ANONYMOUS_ALLOWED is False
    assert len(providers) == 1 and providers[0].configuration is config


# ---- rejected requests ---------------------------------------------------------------------
# Each case: (url of the fake connector) -> (Authorization header or None, body or raw bytes).
Case = Callable[[str], tuple[str | None, Any]]


def _hs256(url: str) -> str:
    return mint(url, key="a-shared-secret-that-is-long-enough-for-hs256", algorithm="HS256")


UNAUTHORIZED: dict[str, Case] = {
    "no-authorization-header": lambda url: (None, message("menu", service_url=url)),
    "basic-scheme": lambda url: ("Basic xyz", message("menu", service_url=url)),
    "bearer-without-token": lambda url: ("Bearer", message("menu", service_url=url)),
    "bearer-blank-token": lambda url: ("Bearer   ", message("menu", service_url=url)),
    "garbage-token": lambda url: ("Bearer not-a-jwt", message("menu", service_url=url)),
    "garbage-three-part-token": lambda url: ("Bearer aaa.bbb.ccc", message("menu", service_url=url)),
    "token-with-space": lambda url: (f"Bearer {mint(url)} extra", message("menu", service_url=url)),
    "signed-by-another-key-same-kid": lambda url: (
        f"Bearer {mint(url, key=OTHER_KEY)}",
        message("menu", service_url=url),
    ),
    "unknown-kid": lambda url: (f"Bearer {mint(url, kid='someone-elses-key')}", message("menu", service_url=url)),
    "no-kid": lambda url: (f"Bearer {mint(url, kid=None)}", message("menu", service_url=url)),
    "hs256": lambda url: (f"Bearer {_hs256(url)}", message("menu", service_url=url)),
    "alg-none": lambda url: (
        f"Bearer {mint(url, key=None, algorithm='none')}",
        message("menu", service_url=url),
    ),
    "wrong-audience": lambda url: (
        f"Bearer {mint(url, aud=str(uuid.uuid4()))}",
        message("menu", service_url=url),
    ),
    "audience-as-list": lambda url: (f"Bearer {mint(url, aud=[APP_ID])}", message("menu", service_url=url)),
    "no-audience": lambda url: (f"Bearer {mint(url, drop=('aud',))}", message("menu", service_url=url)),
    "wrong-issuer": lambda url: (
        f"Bearer {mint(url, iss='https://issuer.example.com')}",
        message("menu", service_url=url),
    ),
    "expired-1h-ago": lambda url: (
        f"Bearer {mint(url, exp=int(time.time()) - 3600, nbf=int(time.time()) - 7200)}",
        message("menu", service_url=url),
    ),
    "not-valid-for-another-hour": lambda url: (
        f"Bearer {mint(url, nbf=int(time.time()) + 3600, exp=int(time.time()) + 7200)}",
        message("menu", service_url=url),
    ),
    "no-exp-claim": lambda url: (f"Bearer {mint(url, drop=('exp',))}", message("menu", service_url=url)),
    # The SDK's validator allows 300 s of clock skew; TOKEN_CLOCK_SKEW_SECONDS (default 60) is what counts.
    "expired-2-minutes-ago": lambda url: (
        f"Bearer {mint(url, exp=int(time.time()) - 120, nbf=int(time.time()) - 3600)}",
        message("menu", service_url=url),
    ),
    "valid-only-in-2-minutes": lambda url: (
        f"Bearer {mint(url, nbf=int(time.time()) + 120, exp=int(time.time()) + 3600)}",
        message("menu", service_url=url),
    ),
    "issued-2-minutes-from-now": lambda url: (
        f"Bearer {mint(url, iat=int(time.time()) + 120)}",
        message("menu", service_url=url),
    ),
    # Teams never sends an Entra token; without a serviceurl claim one would let its app pick the serviceUrl.
    "tenant-issuer-v1-without-serviceurl": lambda url: (
        f"Bearer {mint(url, iss=TENANT_ISSUER_V1, tid=TENANT_ID, drop=('serviceurl',))}",
        message("menu", service_url=url),
    ),
    "tenant-issuer-v2-without-serviceurl": lambda url: (
        f"Bearer {mint(url, iss=TENANT_ISSUER_V2, tid=TENANT_ID, drop=('serviceurl',))}",
        message("menu", service_url=url),
    ),
    "tenant-issuer-with-matching-serviceurl": lambda url: (
        f"Bearer {mint(url, iss=TENANT_ISSUER_V2, tid=TENANT_ID)}",
        message("menu", service_url=url),
    ),
    "first-party-tenant-issuer": lambda url: (
        f"Bearer {mint(url, iss=FIRST_PARTY_ISSUER, tid=FIRST_PARTY_TENANT, drop=('serviceurl',))}",
        message("menu", service_url=url),
    ),
    "serviceurl-claim-mismatch": lambda url: (
        f"Bearer {mint('https://smba.trafficmanager.net/amer/')}",
        message("menu", service_url=url),
    ),
    "serviceurl-claim-other-port": lambda url: (
        f"Bearer {mint('https://127.0.0.1:1/')}",
        message("menu", service_url=url),
    ),
    "serviceurl-claim-other-path": lambda url: (f"Bearer {mint(url + 'emea/')}", message("menu", service_url=url)),
    "serviceurl-claim-http-for-https": lambda url: (
        f"Bearer {mint(url.replace('https://', 'http://'))}",
        message("menu", service_url=url),
    ),
    "serviceurl-claim-not-a-string": lambda url: (
        f"Bearer {mint(url, serviceurl=[url])}",
        message("menu", service_url=url),
    ),
    "bot-framework-token-without-serviceurl": lambda url: (
        f"Bearer {mint(url, drop=('serviceurl',))}",
        message("menu", service_url=url),
    ),
    "activity-without-serviceurl": lambda url: (
        f"Bearer {mint(url)}",
        {k: v for k, v in message("menu", service_url=url).items() if k != "serviceUrl"},
    ),
    # A malformed serviceUrl with an otherwise valid token: still "not this token's service URL".
    "activity-serviceurl-bad-port": lambda url: (
        f"Bearer {mint(url)}",
        message("menu", service_url="http://127.0.0.1:notaport/"),
    ),
    "activity-serviceurl-bad-ipv6": lambda url: (
        f"Bearer {mint(url)}",
        message("menu", service_url="http://[::1/"),
    ),
    # Authentication comes first: a bad body without a token is a 401, not a 400.
    "malformed-body-without-token": lambda _url: (None, b"{not json"),
}


def _without_conversation(url: str) -> dict[str, Any]:
    activity = message("menu", service_url=url)
    del activity["conversation"]
    return activity


BAD_REQUEST: dict[str, Case] = {
    "malformed-json": lambda url: (f"Bearer {mint(url)}", b'{"type": "message", '),
    "not-utf8": lambda url: (f"Bearer {mint(url)}", b'{"type": "\xff\xfe"}'),
    "empty-body": lambda url: (f"Bearer {mint(url)}", b""),
    "json-array": lambda url: (f"Bearer {mint(url)}", [message("menu", service_url=url)]),
    "json-null": lambda url: (f"Bearer {mint(url)}", None),
    "json-string": lambda url: (f"Bearer {mint(url)}", "message"),
    "no-conversation": lambda url: (f"Bearer {mint(url)}", _without_conversation(url)),
    "conversation-without-id": lambda url: (
        f"Bearer {mint(url)}",
        {**message("menu", service_url=url), "conversation": {"conversationType": "personal"}},
    ),
    "no-type": lambda url: (
        f"Bearer {mint(url)}",
        {k: v for k, v in message("menu", service_url=url).items() if k != "type"},
    ),
    "type-is-a-number": lambda url: (f"Bearer {mint(url)}", {**message("menu", service_url=url), "type": 5}),
    "conversation-is-a-string": lambda url: (
        f"Bearer {mint(url)}",
        {**message("menu", service_url=url), "conversation": "personal-chat-alex"},
    ),
    "conversation-id-is-a-number": lambda url: (
        f"Bearer {mint(url)}",
        {**message("menu", service_url=url), "conversation": {"id": 5}},
    ),
    "text-is-an-object": lambda url: (f"Bearer {mint(url)}", {**message("menu", service_url=url), "text": {}}),
}


def _claimed_and_named(service_url: str) -> tuple[str, Any]:
    """A Bot Framework token for `service_url` and an activity naming it: only the host rule is left."""
    return f"Bearer {mint(service_url)}", message("menu", service_url=service_url)


# The token and the activity agree, but the host is not https to CONNECTOR_HOSTS: refused before any work.
NOT_A_CONNECTOR: dict[str, Case] = {
    "evil-host": lambda _url: _claimed_and_named("https://evil.example/"),
    "listed-host-over-http": lambda url: _claimed_and_named(url.replace("https://", "http://")),
    "loopback-name-not-listed": lambda url: _claimed_and_named(url.replace("127.0.0.1", "localhost")),
    "listed-ip-as-a-name-suffix": lambda _url: _claimed_and_named("https://evil.127.0.0.1/"),
    "teams-host-as-a-prefix": lambda _url: _claimed_and_named("https://smba.trafficmanager.net.evil.example/amer/"),
    "user-info-before-the-host": lambda url: _claimed_and_named(url.replace("https://", "https://evil.example@")),
}


async def _until_done(tasks: set[asyncio.Task[Any]]) -> None:
    """Until every one of `tasks` has finished (bounded)."""
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks, return_exceptions=True)


async def _assert_rejected(bot: AuthBot, case: Case, status: int) -> None:
    authorization, body = case(bot.url)
    tasks_before = asyncio.all_tasks()
    # Without keep-alive, the server's task for the connection ends with the response too.
    if isinstance(body, bytes):
        response = await bot.post(authorization=authorization, raw=body, keep_alive=False)
    else:
        response = await bot.post(body, authorization=authorization, keep_alive=False)
    started = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    assert response.status == status, await response.text()
    assert "error" in await response.json()
    await _until_done(started)  # whatever handling the request set off has run: nothing was sent later either
    assert bot.connector.received == []
    assert bot.connector.authorizations == []
    assert bot.outbound_token_requests() == 0


@pytest.mark.parametrize("name", list(UNAUTHORIZED))
async def test_rejected_with_401(bot: AuthBot, name: str) -> None:
    await _assert_rejected(bot, UNAUTHORIZED[name], 401)


@pytest.mark.parametrize("name", list(BAD_REQUEST))
async def test_malformed_body_with_valid_token_is_400(bot: AuthBot, name: str) -> None:
    await _assert_rejected(bot, BAD_REQUEST[name], 400)


@pytest.mark.parametrize("name", list(NOT_A_CONNECTOR))
async def test_a_service_url_outside_connector_hosts_is_400_even_with_a_matching_claim(bot: AuthBot, name: str) -> None:
    await _assert_rejected(bot, NOT_A_CONNECTOR[name], 400)


async def test_bad_token_is_401_even_in_a_burst(bot: AuthBot) -> None:
    """Concurrent bad requests all fail cleanly (no shared validator state leaks between them)."""
    activity = message("menu", service_url=bot.url)
    bad = [mint(bot.url, key=OTHER_KEY), mint(bot.url, aud="x"), "garbage", mint(bot.url, drop=("exp",))]
    responses = await asyncio.gather(*(bot.post(activity, authorization=f"Bearer {token}") for token in bad * 3))
    assert [response.status for response in responses] == [401] * len(bad) * 3
    assert bot.connector.received == []


# ---- accepted requests ---------------------------------------------------------------------
async def test_valid_token_reaches_the_bot_and_the_reply_carries_the_outbound_token(bot: AuthBot) -> None:
    response = await bot.post(message("menu", service_url=bot.url), authorization=f"Bearer {mint(bot.url)}")
    assert response.status == 202, await response.text()
    await bot.connector.wait_for(1)
    card = card_of(bot.connector.messages()[0])
    assert card is not None
    text = card_text(card)
    assert "What would you like to do?" in text
    assert "Contoso" in text and "Alex Wilber" in text
    # Every outbound call (typing and the reply) used the provider's token, never the inbound one.
    assert bot.connector.authorizations
    assert set(bot.connector.authorizations) == {f"Bearer {OUTBOUND_TOKEN}"}
    assert bot.outbound_token_requests() >= 1
    # Bot Framework tokens are checked against the Bot Framework's keys.
    assert bot.keys.asked and set(bot.keys.asked) == {BOT_FRAMEWORK_JWKS}


async def test_lowercase_bearer_scheme_and_trailing_space_are_accepted(bot: AuthBot) -> None:
    response = await bot.post(message("menu", service_url=bot.url), authorization=f"bearer {mint(bot.url)} ")
    assert response.status == 202
    await bot.connector.wait_for(1)


async def test_serviceurl_claim_matches_case_insensitively(bot: AuthBot) -> None:
    response = await bot.post(message("menu", service_url=bot.url), authorization=f"Bearer {mint(bot.url.upper())}")
    assert response.status == 202
    await bot.connector.wait_for(1)


async def test_from_id_alone_does_not_identify_a_caller_when_authenticated(bot: AuthBot) -> None:
    """`from.id` is trusted only in local mode: without aadObjectId the demo admin's id is nobody."""
    _, _, user_id, _ = PLAYGROUND_ADMIN
    activity = message("menu", service_url=bot.url, user_id=user_id, aad_object_id=None, tenant_id=PLAYGROUND_TENANT_ID)
    response = await bot.post(activity, authorization=f"Bearer {mint(bot.url)}")
    assert response.status == 202
    await bot.connector.wait_for(1)
    card = card_of(bot.connector.messages()[0])
    assert card is not None
    text = card_text(card)
    assert "not registered" in text
    assert "What would you like to do?" not in text and "Contoso" not in text


async def test_aad_object_id_of_another_tenant_is_not_the_demo_admin(bot: AuthBot) -> None:
    _, _, user_id, object_id = PLAYGROUND_ADMIN
    activity = message(
        "menu", service_url=bot.url, user_id=user_id, aad_object_id=object_id, tenant_id=str(uuid.uuid4())
    )
    response = await bot.post(activity, authorization=f"Bearer {mint(bot.url)}")
    assert response.status == 202
    await bot.connector.wait_for(1)
    card = card_of(bot.connector.messages()[0])
    assert card is not None
    assert "not registered" in card_text(card)


async def test_a_token_expired_within_the_configured_clock_skew_is_accepted(start_bot: StartBot) -> None:
    bot = await start_bot(token_clock_skew_seconds=180)
    now = int(time.time())
    expired_2_minutes_ago = mint(bot.url, exp=now - 120, nbf=now - 3600, iat=now - 3600)
    response = await bot.post(message("menu", service_url=bot.url), authorization=f"Bearer {expired_2_minutes_ago}")
    assert response.status == 202, await response.text()
    await bot.connector.wait_for(1)


# ---- where the bot sends its token -------------------------------------------------------------
async def test_a_stored_reference_to_another_host_is_never_sent_to(
    bot: AuthBot, connector: tuple[FakeConnector, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A conversation reference stored with a host CONNECTOR_HOSTS does not allow (stored before the
    list changed, or by hand) gets no message and no token; the same reference on the listed host does."""
    plain_http, plain_url = connector
    runtime = runtime_of(bot.client)
    conversations = runtime.services.conversations

    async def store(conversation_id: str, service_url: str) -> None:
        reference = {
            "channelId": "msteams",
            "serviceUrl": service_url,
            "conversation": {"id": conversation_id, "conversationType": "personal"},
            "bot": {"id": "28:bot-id", "name": "CSP Bot"},
            "user": {"id": "user-id-0", "name": "Alex Wilber"},
        }
        await conversations.save(
            conversation_id, reference, conversation_type="personal", organisation_id=None, member_id=None
        )

    await store("chat-over-http", plain_url)  # 127.0.0.1 is listed, but not over http
    await store("chat-on-an-unlisted-name", bot.url.replace("127.0.0.1", "localhost"))  # the same server
    await store("chat-on-the-listed-host", bot.url)
    caplog.set_level(logging.WARNING, logger="services.outbound_hosts")
    for refused in ("chat-over-http", "chat-on-an-unlisted-name"):
        with pytest.raises(HostNotAllowed):
            await runtime.messenger.send(refused, MessageFactory.text("Your job is done."))
    assert plain_http.received == [] and plain_http.authorizations == []
    assert bot.connector.received == [] and bot.connector.authorizations == []
    assert bot.outbound_token_requests() == 0
    assert {r.getMessage().split(":")[0] for r in caplog.records} == {
        "refused to send to 127.0.0.1",
        "refused to send to localhost",
    }

    await runtime.messenger.send("chat-on-the-listed-host", MessageFactory.text("Your job is done."))
    await bot.connector.wait_for(1)
    assert bot.connector.authorizations == [f"Bearer {OUTBOUND_TOKEN}"]


async def test_a_file_upload_over_http_is_refused_when_authenticated(bot: AuthBot, aiohttp_server: Any) -> None:
    """Teams' file consent names the upload URL; authenticated, only https to FILE_UPLOAD_HOSTS (loopback
    http is for the local mode, where the billing tests upload to one)."""
    uploads: list[bytes] = []

    async def put(request: web.Request) -> web.Response:
        uploads.append(await request.read())
        return web.json_response({"id": "file-1"}, status=201)

    onedrive = web.Application()
    onedrive.router.add_put("/upload/{name}", put)
    server = await aiohttp_server(onedrive)

    async def invoke(name: str, value: dict[str, Any]) -> None:
        activity = message(None, service_url=bot.url)
        activity.update(type="invoke", name=name, value=value)
        response = await bot.post(activity, authorization=f"Bearer {mint(bot.url)}")
        assert response.status == 200, await response.text()

    # A bill to export: the organisation had a subscription that month.
    services = runtime_of(bot.client).services
    org = await services.organisations.get(DEMO_SLUG)
    await services.ledger.record(event(LedgerEvent.PURCHASE, date(2025, 12, 1), 0, 3, organisation_id=org.id))
    month = "2026-01"
    data = {"verb": "billing_export", "format": "csv", "first_month": month, "last_month": month}
    await invoke("adaptiveCard/action", {"action": {"type": "Action.Execute", "verb": "billing_export", "data": data}})
    await bot.connector.wait_for(1)
    (consent,) = bot.connector.messages()[-1]["attachments"]
    assert consent["contentType"] == FILE_CONSENT
    upload_info = {"name": "bills.csv", "uploadUrl": f"http://127.0.0.1:{server.port}/upload/x", "uniqueId": "u"}
    accept = {"type": "fileUpload", "action": "accept", "context": consent["content"]["acceptContext"]}
    await invoke("fileConsent/invoke", {**accept, "uploadInfo": upload_info})
    await bot.connector.wait_for(2)
    assert "upload address" in bot.connector.messages()[-1]["text"]
    assert uploads == []


# ---- secrets never reach the logs ------------------------------------------------------------
async def test_tokens_and_password_are_not_logged(
    start_bot: Callable[[], Awaitable[AuthBot]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("microsoft_agents", "bot", "services", "cspbot", "aiohttp", "app"):
        caplog.set_level(logging.DEBUG, logger=name)
    bot = await start_bot()  # start-up (connection manager, migrations, seed) logs too
    valid = mint(bot.url)
    forged = mint(bot.url, key=OTHER_KEY)
    no_exp = mint(bot.url, drop=("exp",))

    ok = await bot.post(message("menu", service_url=bot.url), authorization=f"Bearer {valid}")
    assert ok.status == 202
    await bot.connector.wait_for(1)
    for token in (forged, no_exp):
        rejected = await bot.post(message("menu", service_url=bot.url), authorization=f"Bearer {token}")
        assert rejected.status == 401

    assert caplog.records, "expected some log output at DEBUG"
    secrets = {
        "inbound token": valid,
        "forged token": forged,
        "token without exp": no_exp,
        "inbound token signature": valid.rsplit(".", 1)[1],
        "app password": APP_PASSWORD,
        "outbound token": OUTBOUND_TOKEN,
    }
    for record in caplog.records:
        rendered = record.getMessage()
        if record.exc_info:
            rendered += logging.Formatter().formatException(record.exc_info)
        rendered += repr(getattr(record, "__dict__", {}))
        for label, secret in secrets.items():
            assert secret not in rendered, f"{label} appears in a log record of {record.name}: {rendered[:300]}"
