"""Clients for the Bot Connector service that keep their connections between turns.

The SDK's `RestChannelServiceClientFactory` gives every turn two new HTTP sessions (one for the Bot
Connector at the activity's service URL, one for the user-token service), each with its own connection
pool: every reply opens a new TCP (and, against Teams, TLS) connection, which is closed again when the
turn ends, and every client looks up the SDK's package version on disk for its User-Agent. That is a
large share of a turn's CPU and, against Teams, a handshake of latency per turn.

`KeepAliveClientFactory` is that factory with one connection pool for the application's life: each
client still gets its own session (a client's headers, its token among them, are its own), but the
sessions share one `TCPConnector`, so connections are kept alive and reused; the User-Agent is worked
out once. Tokens are obtained exactly as the SDK's factory obtains them (without its OpenTelemetry span
around making a client, which this app does not export); agentic and Copilot Studio requests are left
to the SDK's own path unchanged.

Every connector client of a turn or a proactive message is made here, so this is where the service URL
is checked against CONNECTOR_HOSTS before a token is even asked for: a client for any other host is
refused (`HostNotAllowed`), and the bot's token never leaves for it.
"""

from __future__ import annotations

import ssl
from types import SimpleNamespace

from aiohttp import (
    ClientSession,
    TCPConnector,
    TraceConfig,
    TraceRequestEndParams,
    TraceRequestExceptionParams,
    TraceRequestStartParams,
)
from microsoft_agents.activity import RoleTypes
from microsoft_agents.hosting.core import RestChannelServiceClientFactory, TurnContext
from microsoft_agents.hosting.core.authorization import AccessTokenProviderBase, ClaimsIdentity, Connections
from microsoft_agents.hosting.core.connector import ConnectorClientBase, get_product_info
from microsoft_agents.hosting.core.connector.client import UserTokenClient
from microsoft_agents.hosting.core.connector.client.agent_sign_in import AgentSignIn
from microsoft_agents.hosting.core.connector.client.connector_client import (
    AttachmentsOperations,
    ConversationsOperations,
)
from microsoft_agents.hosting.core.connector.client.user_token import UserToken
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from services.outbound_hosts import HostAllowList
from services.remote_waits import RemoteWaiter, current_waiter

# How many connections the pool keeps open at once (all hosts together); turns beyond it wait for one.
CONNECTION_LIMIT = 100
# An idle connection is dropped after this long, before the far end can drop it: a reply POSTed over a
# connection the server is closing at that instant would fail, and aiohttp retries only idempotent
# requests. Below Node's default of 5 s (the Agents Playground) and far below Azure's ~4 minutes (Teams'
# Bot Connector); turns in a busy app still share connections.
IDLE_CONNECTION_SECONDS = 4.0


async def _request_started(_session: ClientSession, trace: SimpleNamespace, _params: TraceRequestStartParams) -> None:
    """A request to the channel is out: the turn it is sent for waits, and stops counting as working."""
    waiter = current_waiter()
    trace.waiter = waiter
    if waiter is not None:
        waiter.remote_call_started()


async def _request_ended(
    _session: ClientSession, trace: SimpleNamespace, _params: TraceRequestEndParams | TraceRequestExceptionParams
) -> None:
    waiter: RemoteWaiter | None = getattr(trace, "waiter", None)
    if waiter is not None:
        waiter.remote_call_ended()


def _channel_wait_tracing() -> TraceConfig:
    """Marks the turn being served waiting while one of its requests to the channel is out
    (services/remote_waits.py)."""
    tracing = TraceConfig()
    tracing.on_request_start.append(_request_started)
    tracing.on_request_end.append(_request_ended)
    tracing.on_request_exception.append(_request_ended)
    tracing.freeze()
    return tracing


def _with_json_and_token(session: ClientSession, token: str) -> ClientSession:
    """The headers the SDK's client constructors set (an empty or one-character token means anonymous)."""
    session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
    if len(token) > 1:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


class _PooledTeamsConnectorClient(TeamsConnectorClient):
    """The SDK's Teams connector client on a session it is given, set up as `ConnectorClient.__init__`
    does (SDK 1.9.0) without that constructor's per-client look-up of the User-Agent."""

    def __init__(self, session: ClientSession, token: str) -> None:
        self.client = _with_json_and_token(session, token)
        self._attachments = AttachmentsOperations(session)
        self._conversations = ConversationsOperations(session)


class _PooledUserTokenClient(UserTokenClient):
    """The SDK's user-token client on a session it is given (as `UserTokenClient.__init__` in SDK 1.9.0)."""

    def __init__(self, session: ClientSession, token: str, app_id: str | None) -> None:
        self._app_id = app_id
        self.client = _with_json_and_token(session, token)
        self._agent_sign_in = AgentSignIn(session)
        self._user_token = UserToken(session)


class KeepAliveClientFactory(RestChannelServiceClientFactory):
    """`RestChannelServiceClientFactory` whose clients share one kept-alive connection pool.

    Connector clients are made only for service URLs that `connector_hosts` allows. `tls` replaces the
    system's trusted CAs for those connections (tests with their own CA). Call `close()` when the
    application stops (the clients' own `close()` leaves the pool open)."""

    def __init__(
        self, connection_manager: Connections, connector_hosts: HostAllowList, *, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(connection_manager)
        self._connector_hosts = connector_hosts
        self._tls = tls
        self._user_agent = get_product_info()
        self._pool: TCPConnector | None = None
        self._tracing = [_channel_wait_tracing()]

    def _session(self, endpoint: str) -> ClientSession:
        if self._pool is None or self._pool.closed:
            self._pool = TCPConnector(
                limit=CONNECTION_LIMIT, keepalive_timeout=IDLE_CONNECTION_SECONDS, ssl=self._tls or True
            )
        if not endpoint.endswith("/"):
            endpoint += "/"
        return ClientSession(
            base_url=endpoint,
            connector=self._pool,
            connector_owner=False,
            headers={"User-Agent": self._user_agent},
            trace_configs=self._tracing,
        )

    async def create_connector_client(
        self,
        context: TurnContext | None,
        claims_identity: ClaimsIdentity,
        service_url: str,
        audience: str,
        scopes: list[str] | None = None,
        use_anonymous: bool = False,
    ) -> ConnectorClientBase:
        self._connector_hosts.check(service_url)
        activity = context.activity if context is not None else None
        if (
            not service_url
            or not audience
            or (activity is not None and activity.is_agentic_request())
            or (activity is not None and activity.recipient and activity.recipient.role == RoleTypes.connector_user)
        ):
            # The SDK's own path: its argument checks, agentic tokens, Copilot Studio's connector.
            return await super().create_connector_client(
                context, claims_identity, service_url, audience, scopes, use_anonymous
            )
        provider: AccessTokenProviderBase = (
            self._ANONYMOUS_TOKEN_PROVIDER
            if use_anonymous
            else self._connection_manager.get_token_provider(claims_identity, service_url)
        )
        token = await provider.get_access_token(audience, scopes or claims_identity.get_token_scope())
        return _PooledTeamsConnectorClient(self._session(service_url), token)

    async def create_user_token_client(
        self,
        context: TurnContext,
        claims_identity: ClaimsIdentity,
        use_anonymous: bool = False,
    ) -> UserTokenClient:
        if use_anonymous:
            return _PooledUserTokenClient(self._session(self._token_service_endpoint), "", claims_identity.get_app_id())
        if context.activity.is_agentic_request():
            return await super().create_user_token_client(context, claims_identity, use_anonymous)
        provider = self._connection_manager.get_token_provider(claims_identity, self._token_service_endpoint)
        token = await provider.get_access_token(self._token_service_audience, claims_identity.get_token_scope())
        if not token:
            raise ValueError("Failed to obtain token for user token client")
        return _PooledUserTokenClient(self._session(self._token_service_endpoint), token, claims_identity.get_app_id())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
