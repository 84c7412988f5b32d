"""With the built-in sandbox, Microsoft's "now" is the sandbox's movable clock: the app's services
(billing's "today", the dates of the bot's own ledger entries) follow it, so moving the sandbox's
clock a month on and asking "billing last month" bills what was bought before the move."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp

from services.container import build_services
from services.db import create_engine
from services.migrate import upgrade_database
from services.partner_center import PartnerCenterClient, StaticTokenProvider
from services.settings import Settings
from startup.partner_center import open_partner_center
from tests.conftest import SANDBOX_TOKEN, Sandbox, link_demo_customer
from tests.subscription_fixtures import admin, prepare_catalog_and_prices


async def test_the_embedded_sandbox_client_carries_the_sandbox_clock(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        partner_center_sandbox_database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}",
    )
    assert settings.uses_partner_center_sandbox
    async with open_partner_center(settings) as opened:
        client = opened.client
        before = opened.clock.now()
        token = await client._tokens.get_token("app")  # the sandbox admin endpoint takes the client's token
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{client._base_url}/_sandbox/clock",
                json={"advance": "P1M"},
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 200
        assert opened.clock.now() - before > timedelta(days=27)


async def test_billing_and_the_ledger_follow_the_sandbox_clock(tmp_path: Path, sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        client = PartnerCenterClient(
            session,
            base_url=sandbox.url,
            price_sheet_url=sandbox.url,
            tokens=StaticTokenProvider(SANDBOX_TOKEN),
            poll_interval=0.01,
        )
        url = f"sqlite+aiosqlite:///{tmp_path / 'clock.sqlite3'}"
        engine = create_engine(url)
        await upgrade_database(engine)
        try:
            services = build_services(
                engine, Settings(_env_file=None, database_url=url), client, sandbox.microsoft_clock
            )  # type: ignore[call-arg]
            await link_demo_customer(services)
            await prepare_catalog_and_prices(services)
            me = await admin(services)
            quote = await services.ordering.quote(me, "CFQ7TTC0LH18:0001", "P1Y:monthly", "10")
            await services.ordering.place_order(me, quote, uuid.uuid4().hex, notify_conversation_id=None)
            assert await services.jobs.run_pending() == 1
            (sid,) = [
                s.id
                for s in await client.subscriptions(
                    (await services.organisations.get("contoso")).partner_center_customer_id or ""
                )
            ]
            await services.subscriptions.sync(me.organisation_id)
            sandbox.clock.advance(timedelta(days=1))  # 17 Nov (sandbox time, whatever the wall clock says)
            plan = await services.subscription_changes.plan_quantity(me, sid, "12")
            await services.subscription_changes.change_quantity(me, sid, "12", etag=plan.etag, key="k")
            entries = await services.ledger.entries(me.organisation_id)
            assert [e.effective_at.date().isoformat() for e in entries] == ["2026-11-16", "2026-11-17"]
            sandbox.clock.advance(timedelta(days=16))  # 3 Dec
            november = await services.billing.last_month(me)
            assert (november.cycle.start.isoformat(), november.cycle.end.isoformat()) == ("2026-11-01", "2026-11-30")
            # 10 × 6.00 × 15/30 = 30.00; +2 on 17 Nov: 2 × 6.00 × 14/30 = 5.60
            assert [(line.charge_type.value, str(line.amount)) for line in november.lines] == [
                ("prorata_purchase", "30.00"),
                ("prorata_increase", "5.60"),
            ]
            assert november.totals == {"USD": Decimal("35.60")}
        finally:
            await engine.dispose()
