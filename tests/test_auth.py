"""/api/messages with an App ID configured: inbound Bot Framework JWTs and the outbound token.

No network: inbound tokens are signed with a local RSA key that a fake `SigningKeySource` hands
to the SDK's validator, and the outbound token comes from a fake token provider plugged into the
SDK's core `ConnectionManager`, configured with the same `SERVICE_CONNECTION` settings as
production (`connection_settings`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from azure.core.credentials import AccessToken
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from microsoft_agents.hosting.core.authorization import AgentAuthConfiguration, ConnectionManager

from bot.auth import BOT_FRAMEWORK_ISSUER, connection_settings
from services.seed import PLAYGROUND_ADMIN, PLAYGROUND_TENANT_ID
from services.settings import Settings
from tests.conftest import message
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
}


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

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        self.requests.append((resource_url, list(scopes or [])))
        return OUTBOUND_TOKEN

    def get_token_credential(self) -> Any:
        class _Credential:
            async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
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


@pytest.fixture
def start_bot(make_bot: Any, connector: tuple[FakeConnector, str]) -> Callable[[], Awaitable[AuthBot]]:
    async def _start() -> AuthBot:
        fake, url = connector
        keys = FakeSigningKeys()
        connections, providers = fake_connections()
        client = await make_bot(settings=AUTH_SETTINGS, connections=connections, signing_keys=keys)
        return AuthBot(client, fake, url, keys, providers)

    return _start


@pytest.fixture
async def bot(start_bot: Callable[[], Awaitable[AuthBot]]) -> AuthBot:
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
    "serviceurl-claim-mismatch": lambda url: (
        f"Bearer {mint('https://smba.trafficmanager.net/amer/')}",
        message("menu", service_url=url),
    ),
    "serviceurl-claim-other-port": lambda url: (
        f"Bearer {mint('http://127.0.0.1:1/')}",
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
    "malformed-body-without-token": lambda url: (None, b"{not json"),
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
