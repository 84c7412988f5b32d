"""Refused Microsoft credentials reach the operator as an alert (`partner_center_auth`), through the
client's `on_auth_failure` hook that `build_services` wires to the alert service. The user still
gets the plain error; the alert names the setting to fix and never a token."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.container import PARTNER_CENTER_AUTH_ALERT, Services, build_services
from services.db import create_engine
from services.partner_center import (
    MsalTokenProvider,
    PartnerCenterAuthError,
    PartnerCenterClient,
    PartnerCenterNotFound,
    StaticTokenProvider,
)
from services.partner_center.auth import TokenKind
from services.partner_center.errors import AUTH_MESSAGE
from services.settings import Settings
from tests.conftest import Sandbox

WRONG_TOKEN = "expired-token-3f9a1c77"
CLIENT_SECRET = "client-secret-b7e2d0"


async def _no_wait(_: float) -> None:
    return None


async def services_with(client: PartnerCenterClient, sqlite_url: str, outbox: Path) -> Services:
    engine = create_engine(sqlite_url)
    return build_services(engine, Settings(database_url=sqlite_url, mail_outbox_dir=outbox), client)


async def test_a_refused_app_token_raises_one_alert_and_counts_repeats(
    sandbox: Sandbox, sqlite_url: str, outbox: Path
) -> None:
    client = PartnerCenterClient(
        sandbox.session, base_url=sandbox.url, price_sheet_url=sandbox.url, tokens=StaticTokenProvider(WRONG_TOKEN)
    )
    services = await services_with(client, sqlite_url, outbox)
    try:
        with pytest.raises(PartnerCenterAuthError) as refused:
            await services.partner_center.get_customer("6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e")
        assert refused.value.message == AUTH_MESSAGE, "the user sees the plain message, not the operator's"
        with pytest.raises(PartnerCenterAuthError):
            await services.partner_center.products("US")

        (alert,) = await services.alerts.list()
        assert (alert.code, alert.severity, alert.occurrences) == (PARTNER_CENTER_AUTH_ALERT, "error", 2)
        assert "PARTNER_CENTER_CLIENT_SECRET" in alert.message and "HTTP 401" in alert.message
        assert "MS-RequestId" in alert.message and "docs/partner-center.md" in alert.message
        assert WRONG_TOKEN not in alert.message and "Bearer" not in alert.message
    finally:
        await services.engine.dispose()


async def test_a_missing_or_expired_refresh_token_alerts_about_the_app_user_sign_in(
    sandbox: Sandbox, sqlite_url: str, outbox: Path
) -> None:
    tokens = MsalTokenProvider(
        tenant_id="7c9a1d2e-0000-4000-8000-000000000001",
        client_id="5d3e2f1a-0000-4000-8000-000000000002",
        client_secret=CLIENT_SECRET,
        refresh_token=None,  # app+user calls are refused before any network call
    )
    client = PartnerCenterClient(sandbox.session, base_url=sandbox.url, price_sheet_url=sandbox.url, tokens=tokens)
    services = await services_with(client, sqlite_url, outbox)
    try:
        with pytest.raises(PartnerCenterAuthError):
            await services.partner_center.subscribed_skus("6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e")

        (alert,) = await services.alerts.list()
        assert alert.code == PARTNER_CENTER_AUTH_ALERT
        assert "PARTNER_CENTER_REFRESH_TOKEN" in alert.message and "at sign-in" in alert.message
        assert CLIENT_SECRET not in alert.message
    finally:
        await services.engine.dispose()


async def test_other_refusals_raise_no_alert(sandbox: Sandbox, sqlite_url: str, outbox: Path) -> None:
    services = await services_with(sandbox.client, sqlite_url, outbox)
    try:
        with pytest.raises(PartnerCenterNotFound):
            await services.partner_center.get_customer("6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e")
        assert await services.partner_center.domain_is_taken("contoso.onmicrosoft.com")
        assert await services.alerts.list() == []
    finally:
        await services.engine.dispose()


async def test_a_failing_hook_does_not_hide_the_error(sandbox: Sandbox) -> None:
    told: list[TokenKind] = []

    async def broken(_error: PartnerCenterAuthError, kind: TokenKind) -> None:
        told.append(kind)
        raise RuntimeError("the alert store is down")

    client = PartnerCenterClient(
        sandbox.session,
        base_url=sandbox.url,
        price_sheet_url=sandbox.url,
        tokens=StaticTokenProvider(WRONG_TOKEN),
        sleep=_no_wait,
        on_auth_failure=broken,
    )
    with pytest.raises(PartnerCenterAuthError):
        await client.country_rules("US")
    assert told == ["app"]
