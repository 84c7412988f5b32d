"""Inbound authentication of /api/messages and the SDK connection settings.

The SDK's aiohttp middleware is not used: it would guard every route (health, sandbox), accepts
tokens without `exp`, and only logs a `serviceurl` claim that does not match the activity. This
module does the same validation through the SDK's `JwtTokenValidator` (issuer allow-list on) and
adds those two checks. Every failure is a 401, never a 500.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core import ClaimsIdentity
from microsoft_agents.hosting.core.authorization import AgentAuthConfiguration, AuthTypes, Connections
from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator

from services.settings import Settings

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


def build_connections(settings: Settings) -> Connections:
    if not settings.authenticated:
        return MsalConnectionManager(CONNECTIONS={"SERVICE_CONNECTION": {"SETTINGS": connection_settings(settings)}})
    config = AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=settings.microsoft_app_id,
        tenant_id=settings.microsoft_app_tenant_id,
        client_secret=settings.microsoft_app_password.get_secret_value(),
        validate_issuer=True,
    )
    return MsalConnectionManager(connections_configurations={"SERVICE_CONNECTION": config})


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """Scheme, host and port; None for a URL that cannot be parsed (it then matches nothing)."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


@dataclass
class RequestAuthenticator:
    """Validates the bearer token of one request and the activity it carries."""

    config: AgentAuthConfiguration
    signing_keys: SigningKeySource | None = None

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
        if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
            raise AuthenticationFailed("Invalid authorization header format")
        try:
            identity = await self._validator().validate_token(token)
        except Exception as error:  # PyJWT, ValueError, key look-up: all mean "not authenticated"
            log.warning("rejected a token: %s", type(error).__name__)
            raise AuthenticationFailed("Invalid token or authentication failed.") from None
        if "exp" not in identity.claims:
            log.warning("rejected a token without an expiry")
            raise AuthenticationFailed("Invalid token or authentication failed.")
        return identity

    @staticmethod
    def check_service_url(identity: ClaimsIdentity, service_url: str | None) -> None:
        """A channel token names the service URL it was issued for; the activity must match it."""
        if identity.allow_anonymous:
            return
        claim = identity.claims.get("serviceurl")
        issuer = identity.claims.get("iss")
        if claim is None:
            if issuer == BOT_FRAMEWORK_ISSUER and service_url:
                raise AuthenticationFailed("The token does not name a service URL.")
            return
        claimed = _origin(str(claim))
        if not service_url or claimed is None or claimed != _origin(service_url):
            log.warning("rejected an activity whose serviceUrl does not match its token")
            raise AuthenticationFailed("The activity's service URL does not match its token.")
