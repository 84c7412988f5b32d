"""Open the Partner Center client the settings ask for: Microsoft's API with MSAL tokens, or the
built-in sandbox started on a loopback port (the embedded default). Either way it is the same
`PartnerCenterClient`, so the product's code path does not depend on the back end."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp

from services.partner_center.auth import MsalTokenProvider, StaticTokenProvider, TokenProvider
from services.partner_center.client import PartnerCenterClient
from services.partner_center.sandbox import start_sandbox
from services.settings import Settings

log = logging.getLogger(__name__)


def msal_tokens(settings: Settings) -> TokenProvider:
    refresh_token = settings.partner_center_refresh_token.get_secret_value() or None
    return MsalTokenProvider(
        tenant_id=settings.partner_center_tenant_id,
        client_id=settings.partner_center_client_id,
        client_secret=settings.partner_center_client_secret,
        refresh_token=refresh_token,
        authority=settings.partner_center_authority,
    )


@asynccontextmanager
async def open_partner_center(settings: Settings) -> AsyncIterator[PartnerCenterClient]:
    """The client (and, in sandbox mode, the running sandbox) for the lifetime of the block."""
    async with aiohttp.ClientSession() as session:
        if not settings.uses_partner_center_sandbox:
            log.info("Partner Center: %s", settings.partner_center_url)
            yield PartnerCenterClient(
                session,
                base_url=settings.partner_center_url,
                price_sheet_url=settings.partner_center_price_sheet_url,
                tokens=msal_tokens(settings),
                request_timeout=settings.partner_center_timeout_seconds,
            )
            return
        # A fresh secret per start: only this process's client can call its sandbox.
        token = secrets.token_urlsafe(32)
        sandbox = await start_sandbox(
            database_url=settings.sandbox_database_url,
            accepted_token=token,
            port=settings.partner_center_sandbox_port,
        )
        log.info("Partner Center: the built-in sandbox at %s", sandbox.url)
        try:
            yield PartnerCenterClient(
                session,
                base_url=sandbox.url,
                price_sheet_url=sandbox.url,
                tokens=StaticTokenProvider(token),
                request_timeout=settings.partner_center_timeout_seconds,
                clock=sandbox.clock.now,
            )
        finally:
            await sandbox.close()


PartnerCenterOpener = Callable[[Settings], AbstractAsyncContextManager[PartnerCenterClient]]
