"""Inbound authentication of /api/messages and the SDK connection settings.

The SDK's aiohttp middleware is not used: it would guard every route (health, sandbox), accepts
tokens without `exp`, and only logs a `serviceurl` claim that does not match the activity. This
module validates through the SDK's `JwtTokenValidator` (signature, audience, issuer allow-list on)
and then accepts only what Teams sends: a Bot Framework token (the SDK also accepts Entra issuers of
the bot's tenant and Microsoft's first-party tenants, whose tokens name no service URL), with an
expiry, within TOKEN_CLOCK_SKEW_SECONDS of this clock (the SDK allows 300 s and has no setting for
it), and a `serviceurl` claim equal to the activity's `serviceUrl`. Every failure is a 401, never a
500.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from microsoft_agents.hosting.core import ClaimsIdentity
from microsoft_agents.hosting.core.authorization import (
    AccessTokenProviderBase,
    AgentAuthConfiguration,
    AuthTypes,
    ConnectionManager,
    Connections,
)
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator

from services.settings import Settings

_WHITESPACE = re.compile(r"\s")  # a token never holds any
log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"


class SigningKeySource(Protocol):
    """Finds the public key of a token (the SDK fetches JWKS; tests use a local key)."""

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> Any: ...


class AuthenticationFailed(Exception):
    """The request is not from the Bot Framework channel for this bot."""


def connection_settings(settings: Settings) -> dict[str, Any]:
    """The SDK's `SERVICE_CONNECTION` settings derived from our settings (see the README table)."""
    if not settings.authenticated:
        return {"ANONYMOUS_ALLOWED": True}
    return {
        "AUTHTYPE": "ClientSecret",
        "CLIENTID": settings.microsoft_app_id,
        "CLIENTSECRET": settings.microsoft_app_password.get_secret_value(),
        "TENANTID": settings.microsoft_app_tenant_id,
        "VALIDATE_ISSUER": True,
    }


class DeferredMsalAuth:
    """The SDK's `MsalAuth` for an anonymous connection, made when first used. The local mode sends its replies
    without a token, so it never is, and MSAL (with `requests`) is not imported at all: it was a tenth of the
    start-up time. Every member but `configuration` is the real provider's."""

    def __init__(self, configuration: AgentAuthConfiguration) -> None:
        self._configuration = configuration
        self._provider: AccessTokenProviderBase | None = None

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._configuration

    def _real(self) -> AccessTokenProviderBase:
        if self._provider is None:
            from microsoft_agents.authentication.msal import MsalAuth

            self._provider = MsalAuth(self._configuration)
        return self._provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


def token_provider(configuration: AgentAuthConfiguration) -> AccessTokenProviderBase:
    """What the SDK's `MsalConnectionManager` makes for a connection (`MsalAuth`); for an anonymous one, made
    on first use. An authenticated bot needs MSAL for its first reply, so it is loaded at start-up."""
    if configuration.ANONYMOUS_ALLOWED:
        return DeferredMsalAuth(configuration)  # meets the Protocol by delegation (__getattr__)
    from microsoft_agents.authentication.msal import MsalAuth

    return MsalAuth(configuration)


def build_connections(settings: Settings) -> Connections:
    """The SDK's `MsalConnectionManager`, with MSAL loaded only when a connection can ask for a token."""
    if not settings.authenticated:
        return ConnectionManager(
            token_provider, CONNECTIONS={"SERVICE_CONNECTION": {"SETTINGS": connection_settings(settings)}}
        )
    config = AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=settings.microsoft_app_id,
        tenant_id=settings.microsoft_app_tenant_id,
        client_secret=settings.microsoft_app_password.get_secret_value(),
        validate_issuer=True,
    )
    return ConnectionManager(token_provider, connections_configurations={"SERVICE_CONNECTION": config})


def _comparable(url: str) -> tuple[str, str, int | None, str, str] | None:
    """Scheme, host, port, path (without a trailing slash) and query, for comparing two spellings of one
    URL (scheme and host are case-insensitive); None for a URL that cannot be parsed (it matches nothing)."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
        return scheme, (parts.hostname or "").lower().rstrip("."), port, parts.path.rstrip("/"), parts.query
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class RequestAuthenticator:
    """Validates the bearer token of one request and the activity it carries."""

    config: AgentAuthConfiguration
    signing_keys: SigningKeySource | None = None
    clock_skew_seconds: float = 60.0

    def _validator(self) -> JwtTokenValidator:
        validator = JwtTokenValidator(self.config)
        if self.signing_keys is not None:
            validator._jwk_client_manager = self.signing_keys  # type: ignore[assignment]
        return validator

    async def authenticate(self, authorization: str | None) -> ClaimsIdentity:
        if not authorization:
            if self.config.ANONYMOUS_ALLOWED:
                return ClaimsIdentity()
            raise AuthenticationFailed("Authorization header not found")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or _WHITESPACE.search(token):
            raise AuthenticationFailed("Invalid authorization header format")
        try:
            identity = await self._validator().validate_token(token)
        except Exception as error:  # noqa: BLE001 - PyJWT, ValueError, key look-up: all mean "not authenticated" (401)
            log.warning("rejected a token: %s", type(error).__name__)
            raise AuthenticationFailed("Invalid token or authentication failed.") from None
        self._check_lifetime(identity.claims)
        if identity.claims.get("iss") != BOT_FRAMEWORK_ISSUER:
            log.warning("rejected a token that the Bot Framework did not issue")
            raise AuthenticationFailed("Only the Bot Framework channel (Teams) may call this endpoint.")
        return identity

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """`exp` required; `exp`, `nbf` and `iat` within our skew (the SDK's validator allowed 300 s)."""
        now, skew = time.time(), self.clock_skew_seconds  # the wall clock, as PyJWT's own check uses
        expires, not_before, issued = _number(claims.get("exp")), _number(claims.get("nbf")), _number(claims.get("iat"))
        if expires is None:
            log.warning("rejected a token without an expiry")
            raise AuthenticationFailed("Invalid token or authentication failed.")
        if now > expires + skew or (not_before is not None and now < not_before - skew):
            log.warning("rejected a token outside its lifetime (clock skew allowed: %s s)", skew)
            raise AuthenticationFailed("Invalid token or authentication failed.")
        if issued is not None and issued > now + skew:
            log.warning("rejected a token issued in the future (clock skew allowed: %s s)", skew)
            raise AuthenticationFailed("Invalid token or authentication failed.")

    @staticmethod
    def check_service_url(identity: ClaimsIdentity, service_url: str | None) -> None:
        """A channel token names the service URL it was issued for; the activity must name the same."""
        if identity.allow_anonymous:
            return
        claim = identity.claims.get("serviceurl")
        if not isinstance(claim, str) or not claim:
            log.warning("rejected a token that names no service URL")
            raise AuthenticationFailed("The token does not name a service URL.")
        claimed = _comparable(claim)
        if not service_url or claimed is None or claimed != _comparable(service_url):
            log.warning("rejected an activity whose serviceUrl does not match its token")
            raise AuthenticationFailed("The activity's service URL does not match its token.")
