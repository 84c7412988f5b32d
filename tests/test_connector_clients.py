"""Connector clients keep their connections: replies of many turns and proactive messages travel over
one kept-alive connection, and the pooled clients are set up exactly as the SDK's own."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientSession
from microsoft_agents.activity import Activity, ConversationAccount
from microsoft_agents.hosting.core import MessageFactory
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from microsoft_agents.hosting.core.connector.client import UserTokenClient
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.auth import build_connections
from bot.connector_clients import KeepAliveClientFactory, _PooledTeamsConnectorClient, _PooledUserTokenClient
from services.outbound_hosts import HostAllowList, HostNotAllowed, OutboundHosts
from services.settings import Settings
from tests.conftest import message, runtime_of

TOKEN = "a-connector-token"


def _local_factory() -> KeepAliveClientFactory:
    """The factory as the unauthenticated local mode builds it (loopback connectors allowed)."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return KeepAliveClientFactory(build_connections(settings), OutboundHosts.from_settings(settings).connector)


def _anonymous() -> ClaimsIdentity:
    return ClaimsIdentity({}, True)


async def test_replies_of_many_turns_and_proactive_messages_share_one_connection(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    for count, text in enumerate(("menu", "help", "menu"), start=1):
        response = await client.post("/api/messages", json=message(text, service_url=url))
        assert response.status == 202
        await fake.wait_for(count)
    await runtime_of(client).messenger.send("personal-chat-alex", MessageFactory.text("Your job is done."))
    await fake.wait_for(4)
    assert len(fake.peers) == 4
    assert len(set(fake.peers)) == 1, f"a new connection per turn: {fake.peers}"


async def test_a_closed_factory_lets_go_of_its_connections_and_opens_new_ones_when_used_again(connector):
    fake, url = connector
    factory = _local_factory()
    reply = Activity(type="message", text="hello", conversation=ConversationAccount(id="c1"))

    first = await factory.create_connector_client(None, _anonymous(), url, "audience", use_anonymous=True)
    await first.conversations.send_to_conversation("c1", reply)
    pool = first.client.connector
    assert pool is not None
    await first.close()  # what the adapter does at the end of each turn: the pool stays open
    assert not pool.closed
    await factory.close()
    assert pool.closed

    second = await factory.create_connector_client(None, _anonymous(), url, "audience", use_anonymous=True)
    await second.conversations.send_to_conversation("c1", reply)
    await second.close()
    await factory.close()
    await fake.wait_for(2)
    assert len(set(fake.peers)) == 2


def _setup(client: Any) -> tuple[set[str], dict[str, str], str]:
    session: ClientSession = client.client
    headers = {
        name: session.headers.get(name, "") for name in ("Accept", "Content-Type", "User-Agent", "Authorization")
    }
    return set(vars(client)), headers, str(session._base_url)


async def test_the_pooled_connector_client_is_set_up_as_the_sdks_own():
    """Guards the hand-written constructor against an SDK upgrade that adds to `ConnectorClient.__init__`."""
    endpoint = "https://smba.trafficmanager.net/emea/"
    sdk_client = TeamsConnectorClient(endpoint=endpoint, token=TOKEN)
    ours = _PooledTeamsConnectorClient(ClientSession(base_url=endpoint), TOKEN)
    try:
        sdk_attributes, sdk_headers, sdk_url = _setup(sdk_client)
        our_attributes, our_headers, our_url = _setup(ours)
        assert our_attributes == sdk_attributes
        assert our_url == sdk_url
        # The User-Agent comes from the factory's session; everything else from the constructor.
        assert {**our_headers, "User-Agent": ""} == {**sdk_headers, "User-Agent": ""}
        assert sdk_headers["Authorization"] == f"Bearer {TOKEN}"
    finally:
        await sdk_client.close()
        await ours.close()


async def test_the_pooled_user_token_client_is_set_up_as_the_sdks_own():
    endpoint = "https://api.botframework.com/"
    sdk_client = UserTokenClient(endpoint=endpoint, token=TOKEN, app_id="app-id")
    ours = _PooledUserTokenClient(ClientSession(base_url=endpoint), TOKEN, "app-id")
    try:
        sdk_attributes, sdk_headers, _ = _setup(sdk_client)
        our_attributes, our_headers, _ = _setup(ours)
        assert our_attributes == sdk_attributes
        assert {**our_headers, "User-Agent": ""} == {**sdk_headers, "User-Agent": ""}
        assert ours._app_id == "app-id"
    finally:
        await sdk_client.close()
        await ours.close()


async def test_the_factory_gives_every_client_the_sdks_user_agent(connector):
    _, url = connector
    factory = _local_factory()
    sdk_client = TeamsConnectorClient(endpoint=url, token="")
    ours = await factory.create_connector_client(None, _anonymous(), url, "audience", use_anonymous=True)
    try:
        assert ours.client.headers["User-Agent"] == sdk_client.client.headers["User-Agent"]
        assert ours.client.headers["User-Agent"].startswith("agents-sdk-py/")
    finally:
        await sdk_client.close()
        await ours.close()
        await factory.close()


class _CountingTokenProvider:
    def __init__(self) -> None:
        self.asked = 0

    async def get_access_token(self, _resource_url: str, _scopes: list[str], _force_refresh: bool = False) -> str:
        self.asked += 1
        return TOKEN


class _OneProvider:
    def __init__(self, provider: _CountingTokenProvider) -> None:
        self._provider = provider

    def get_token_provider(self, _claims_identity: ClaimsIdentity, _service_url: str) -> _CountingTokenProvider:
        return self._provider


@pytest.mark.parametrize(
    "service_url",
    ["https://evil.example/", "http://smba.trafficmanager.net/amer/", "https://127.0.0.1:8443/", "", "not a url"],
)
async def test_no_connector_client_and_no_token_for_a_host_outside_the_allow_list(service_url: str) -> None:
    """The one place every turn's and every proactive message's connector client is made refuses a host
    CONNECTOR_HOSTS does not allow before it asks for a token."""
    provider = _CountingTokenProvider()
    hosts = HostAllowList("connector", "CONNECTOR_HOSTS", ("smba.trafficmanager.net",))
    factory = KeepAliveClientFactory(_OneProvider(provider), hosts)  # type: ignore[arg-type]
    identity = ClaimsIdentity({"aud": "app-id"}, False)
    with pytest.raises(HostNotAllowed):
        await factory.create_connector_client(None, identity, service_url, "https://api.botframework.com")
    assert provider.asked == 0
    allowed = await factory.create_connector_client(
        None, identity, "https://smba.trafficmanager.net/amer/", "https://api.botframework.com"
    )
    try:
        assert provider.asked == 1 and allowed.client.headers["Authorization"] == f"Bearer {TOKEN}"
    finally:
        await allowed.close()
        await factory.close()
