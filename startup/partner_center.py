"""Open the Partner Center client the settings ask for: Microsoft's API with MSAL tokens, or the
built-in sandbox started on a loopback port (the embedded default). Either way it is the same
`PartnerCenterClient`, so the product's code path does not depend on the back end. Beside it comes
Microsoft's "now" (`services.clock.Clock`): the system clock, or the sandbox's movable clock, which
`build_services` hands to the services that decide by the date."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from services.clock import SYSTEM_CLOCK, Clock
from services.partner_center.auth import MsalTokenProvider, StaticTokenProvider, TokenProvider
from services.partner_center.client import PartnerCenterClient
from services.settings import Settings

if TYPE_CHECKING:
    from sandbox.admin_file import SandboxAdmin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartnerCenter:
    """An open Partner Center: the client, and Microsoft's "now" as the back end keeps it."""

    client: PartnerCenterClient
    clock: Clock = SYSTEM_CLOCK


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
async def open_partner_center(settings: Settings, *, admin_file: Path | None = None) -> AsyncIterator[PartnerCenter]:
    """The client (and, in sandbox mode, the running sandbox) for the lifetime of the block. With
    `admin_file`, a started sandbox's address and admin token are published there while it runs."""
    async with aiohttp.ClientSession() as session:
        if not settings.uses_partner_center_sandbox:
            log.info("Partner Center: %s", settings.partner_center_url)
            yield PartnerCenter(
                PartnerCenterClient(
                    session,
                    base_url=settings.partner_center_url,
                    price_sheet_url=settings.partner_center_price_sheet_url,
                    tokens=msal_tokens(settings),
                    request_timeout=settings.partner_center_timeout_seconds,
                )
            )
            return
        # Imported only here: a bot calling Microsoft's API never loads the sandbox.
        from sandbox import start_sandbox
        from sandbox.admin_file import SandboxAdmin, withdraw_admin_file

        # A fresh secret per start: only this process's client can call its sandbox.
        token = secrets.token_urlsafe(32)
        sandbox = await start_sandbox(
            database_url=settings.sandbox_database_url,
            accepted_token=token,
            port=settings.partner_center_sandbox_port,
        )
        log.info("Partner Center: the built-in sandbox at %s", sandbox.url)
        admin = SandboxAdmin(sandbox.url, token)
        if admin_file is not None:
            _publish(admin_file, admin)
        try:
            yield PartnerCenter(
                PartnerCenterClient(
                    session,
                    base_url=sandbox.url,
                    price_sheet_url=sandbox.url,
                    tokens=StaticTokenProvider(token),
                    request_timeout=settings.partner_center_timeout_seconds,
                ),
                Clock(sandbox.clock.now),
            )
        finally:
            if admin_file is not None:
                withdraw_admin_file(admin_file, admin)
            await sandbox.close()


def _publish(path: Path, admin: SandboxAdmin) -> None:
    from sandbox.admin_file import publish_admin_file

    try:
        publish_admin_file(path, admin)
    except OSError as error:
        # The bot works without it; only `cspbot sandbox clock|fault` cannot find the sandbox.
        log.warning(
            "Could not write the sandbox's admin file %s (%s): cspbot sandbox clock|fault will not find it",
            path,
            error.strerror or type(error).__name__,
        )
    else:
        log.debug("The sandbox's admin address and token are in %s (cspbot sandbox clock|fault)", path)


def open_bot_partner_center(settings: Settings) -> AbstractAsyncContextManager[PartnerCenter]:
    """As the bot opens it: a built-in sandbox is published in `settings.sandbox_admin_file` so the
    operator can move its clock and inject faults. (The CLI's own short-lived sandbox is not.)"""
    return open_partner_center(settings, admin_file=settings.sandbox_admin_file)


PartnerCenterOpener = Callable[[Settings], AbstractAsyncContextManager[PartnerCenter]]
