"""Replicas starting together on one fresh database: every start-up write (migrations, the built-in
sandbox's tables and seeded domains, the demo organisation, the demo price list, the first catalog
sync) happens once, nothing fails, and every replica serves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sandbox import start_sandbox
from services.container import Services, build_services
from services.db import create_engine, create_session_factory
from services.migrate import upgrade_database
from services.models import AuditEntry, CatalogProduct, Organisation, PriceEntryRow, PriceList
from services.seed import seed_demo_organisation
from services.settings import Settings
from startup.catalog import prepare_catalog
from tests.conftest import Sandbox
from tests.replicas import Replicas, fresh_postgres_database

pytestmark = pytest.mark.postgres


async def _counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:

        async def count(query) -> int:  # type: ignore[no-untyped-def]
            return int(await session.scalar(query) or 0)

        return {
            "organisations": await count(select(func.count()).select_from(Organisation)),
            "price lists": await count(select(func.count()).select_from(PriceList)),
            "prices generated": await count(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "price_list.generate")
            ),
            "catalog syncs": await count(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "catalog.sync")
            ),
            "products": await count(select(func.count()).select_from(CatalogProduct)),
            "prices": await count(select(func.count()).select_from(PriceEntryRow)),
        }


async def _start_up(services: Services) -> None:
    """What a replica writes when it starts in the embedded demo (app.py's `_serve`)."""
    await seed_demo_organisation(services.organisations)
    assert await prepare_catalog(services, seed_demo_prices=True) is None  # synced now, no refresh pending


async def test_two_replicas_preparing_at_once_write_everything_once(
    postgres_url: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    engines = [create_engine(postgres_url) for _ in range(2)]
    try:
        await asyncio.gather(*(upgrade_database(engine) for engine in engines))
        settings = Settings(database_url=postgres_url, mail_outbox_dir=tmp_path / "outbox")
        replicas = [build_services(engine, settings, sandbox.client, sandbox.microsoft_clock) for engine in engines]

        await asyncio.gather(*(_start_up(services) for services in replicas))

        counts = await _counts(replicas[0].sessions)
        products = len(await sandbox.client.products("US"))
        assert counts == {
            "organisations": 1,
            "price lists": 1,
            "prices generated": 1,  # the later replica found the list made
            "catalog syncs": 1,  # ... and the catalog synced
            "products": products,
            "prices": counts["prices"],
        }
        assert counts["prices"] > products
    finally:
        for engine in engines:
            await engine.dispose()


async def test_catalog_syncs_running_at_once_both_succeed(database_url: str, sandbox: Sandbox, tmp_path: Path) -> None:
    """A replica's sync and the operator's `cspbot catalog sync` at the same moment, on SQLite and PostgreSQL."""
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        await upgrade_database(engines[0])
        settings = Settings(database_url=database_url, mail_outbox_dir=tmp_path / "outbox")
        replicas = [build_services(engine, settings, sandbox.client, sandbox.microsoft_clock) for engine in engines]

        reports = await asyncio.gather(*(services.catalog.sync() for services in replicas))

        products = len(await sandbox.client.products("US"))
        assert [report.products for report in reports] == [products, products]
        counts = await _counts(replicas[0].sessions)
        assert (counts["catalog syncs"], counts["products"]) == (2, products)
        assert len(await replicas[1].catalog.products()) == products
    finally:
        for engine in engines:
            await engine.dispose()


async def test_two_sandboxes_starting_at_once_on_one_database(postgres_url: str) -> None:
    """Each `python app.py` on PostgreSQL starts its built-in sandbox in the shared database."""
    started = await asyncio.gather(
        *(start_sandbox(database_url=postgres_url, accepted_token="t") for _ in range(2)), return_exceptions=True
    )
    try:
        assert not [error for error in started if isinstance(error, BaseException)]
    finally:
        for running in started:
            if not isinstance(running, BaseException):
                await running.close()


async def test_two_app_processes_started_at_the_same_instant_on_a_fresh_database_both_serve(tmp_path: Path) -> None:
    replicas = Replicas(tmp_path)
    async with fresh_postgres_database() as database_url:
        try:
            started = [replicas.start_app(name, database_url) for name in ("a", "b")]
            async with aiohttp.ClientSession() as session:
                health = await asyncio.gather(*(replica.wait_healthy(session) for replica in started))
            assert [answer["database"] for answer in health] == ["ok", "ok"]
            assert all(replica.alive() for replica in started)
            for replica in started:
                assert "Traceback" not in replica.log(), replica.log()[-4000:]
        finally:
            replicas.kill_all()
        engine = create_engine(database_url)
        try:
            counts = await _counts(create_session_factory(engine))
        finally:
            await engine.dispose()
    once = ("organisations", "price lists", "prices generated", "catalog syncs")
    assert {name: counts[name] for name in once} == dict.fromkeys(once, 1)
