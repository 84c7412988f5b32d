"""Access tokens for Partner Center.

Microsoft allows two kinds of sign-in: app-only (client credentials) for customers, catalog, carts,
orders and subscriptions, and app+user (the "secure application model": a refresh token a partner
admin obtained once with MFA) for users, licences, agreements and the price sheet. Tokens are
cached per kind and audience and renewed some minutes before they expire; one asyncio.Lock makes
concurrent callers share a single acquisition. MSAL is synchronous (it uses `requests`), so its
calls run in a worker thread and never block the event loop. Tokens, secrets and refresh tokens
are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from services.i18n import _
from services.partner_center.errors import (
    AUTH_MESSAGE,
    PartnerCenterAuthError,
    PartnerCenterUnavailable,
)

logger = logging.getLogger(__name__)

TokenKind = Literal["app", "app_user"]
# Partner Center's REST API and Microsoft's partner API host (price sheets) are different audiences.
Audience = Literal["partner_center", "partner_api"]

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
SCOPES: Mapping[Audience, str] = MappingProxyType(
    {
        "partner_center": "https://api.partnercenter.microsoft.com/.default",
        "partner_api": "https://api.partner.microsoft.com/.default",
    }
)


class TokenProvider(Protocol):
    """Where the client gets a bearer token for each call."""

    async def get_token(self, kind: TokenKind, audience: Audience = "partner_center") -> str: ...


class StaticTokenProvider:
    """A fixed token, for the built-in sandbox (which needs no Microsoft sign-in) and tests.

    Never use it against Microsoft: real tokens expire within the hour.
    """

    def __init__(self, token: str = "sandbox-token") -> None:
        self._token = SecretStr(token)

    async def get_token(self, kind: TokenKind, audience: Audience = "partner_center") -> str:  # noqa: ARG002 - one token for every kind and audience
        return self._token.get_secret_value()


@dataclass(slots=True)
class _CachedToken:
    value: SecretStr
    expires_at: float


class MsalTokenProvider:
    """App-only and app+user tokens from Microsoft Entra ID through MSAL.

    `refresh_token` is the secure-application-model token; Microsoft rolls it on each use, and the
    newest one is kept in memory and handed to `on_refresh_token` (if given) so it can be stored.
    `http_client` is handed to MSAL (a `requests.Session`, e.g. one trusting a test CA); a session's
    own `verify` is the reliable place for that, as `requests` lets REQUESTS_CA_BUNDLE override it
    unless the session has `trust_env = False`.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str | SecretStr,
        refresh_token: str | SecretStr | None = None,
        authority: str = DEFAULT_AUTHORITY,
        refresh_margin: float = 300.0,
        http_client: Any = None,
        timeout: float = 30.0,
        on_refresh_token: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        if isinstance(refresh_token, str):
            refresh_token = SecretStr(refresh_token) if refresh_token else None
        self._refresh_token: SecretStr | None = refresh_token
        self._authority = f"{authority.rstrip('/')}/{tenant_id}"
        self._refresh_margin = refresh_margin
        self._http_client = http_client
        self._timeout = timeout
        self._on_refresh_token = on_refresh_token
        self._clock = clock
        self._cache: dict[tuple[TokenKind, Audience], _CachedToken] = {}
        self._lock = asyncio.Lock()
        self._app: Any = None  # msal.ConfidentialClientApplication, built on first use (it does I/O)

    def _fresh(self, key: tuple[TokenKind, Audience]) -> str | None:
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at - self._refresh_margin > self._clock():
            return cached.value.get_secret_value()
        return None

    async def get_token(self, kind: TokenKind, audience: Audience = "partner_center") -> str:
        key = (kind, audience)
        token = self._fresh(key)
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh(key)  # another caller may have renewed it while we waited
            if token is not None:
                return token
            if kind == "app_user" and self._refresh_token is None:
                logger.error("Partner Center app+user call needs PARTNER_CENTER_REFRESH_TOKEN, which is not set")
                raise PartnerCenterAuthError(_(AUTH_MESSAGE), code="auth_failed")
            started = self._clock()
            refresh_token = self._refresh_token if kind == "app_user" else None
            result = await asyncio.to_thread(self._acquire, kind, SCOPES[audience], refresh_token)
            access_token = self._check(result, kind)
            expires_in = _seconds(result.get("expires_in"))
            self._cache[key] = _CachedToken(SecretStr(access_token), started + expires_in)
            logger.info(
                "Partner Center %s token acquired for %s (valid %d s, source %s)",
                kind,
                audience,
                expires_in,
                result.get("token_source", "identity_provider"),
            )
            rolled = result.get("refresh_token")
            if kind == "app_user" and isinstance(rolled, str) and rolled:
                await self._keep_refresh_token(rolled)
            return access_token

    def _acquire(self, kind: TokenKind, scope: str, refresh_token: SecretStr | None) -> dict[str, Any]:
        """Runs in a worker thread: MSAL does blocking HTTP."""
        try:
            app = self._application()
            if refresh_token is None:
                result = app.acquire_token_for_client(scopes=[scope])
            else:
                result = app.acquire_token_by_refresh_token(refresh_token.get_secret_value(), scopes=[scope])
        except OSError as error:  # includes every `requests` error: the sign-in service is unreachable
            logger.warning("Microsoft sign-in service unreachable (%s)", type(error).__name__)
            raise PartnerCenterUnavailable(
                _("Microsoft's sign-in service is not responding right now. Please try again in a few minutes.")
            ) from None
        except Exception as error:  # noqa: BLE001 - MSAL's failures are untyped (ValueError for an unknown tenant or a bad authority): all end the sign-in
            logger.error("Partner Center %s sign-in failed before a token was issued (%s)", kind, type(error).__name__)
            raise PartnerCenterAuthError(_(AUTH_MESSAGE)) from None
        return result if isinstance(result, dict) else {}

    def _application(self) -> Any:
        if self._app is None:
            import msal  # imported lazily: only real deployments need it loaded

            kwargs: dict[str, Any] = {
                "client_credential": self._client_secret.get_secret_value(),
                "authority": self._authority,
                "timeout": self._timeout,
                # No call to Microsoft's instance-discovery endpoint: the authority is configured,
                # and this keeps a local test authority (or a sovereign cloud) working.
                "instance_discovery": False,
            }
            if self._http_client is not None:
                kwargs["http_client"] = self._http_client
            self._app = msal.ConfidentialClientApplication(self._client_id, **kwargs)
        return self._app

    def _check(self, result: dict[str, Any], kind: TokenKind) -> str:
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        # Log Microsoft's error name and AADSTS numbers only: descriptions can echo request details.
        logger.error(
            "Partner Center %s token refused by Microsoft: %s %s",
            kind,
            result.get("error", "no_token"),
            result.get("error_codes", ""),
        )
        raise PartnerCenterAuthError(_(AUTH_MESSAGE))

    async def _keep_refresh_token(self, token: str) -> None:
        self._refresh_token = SecretStr(token)
        if self._on_refresh_token is None:
            return
        try:
            await self._on_refresh_token(token)
        except Exception:  # storing it is best effort: the old token still works for a while
            logger.exception("Could not store the rolled Partner Center refresh token")


def _seconds(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
