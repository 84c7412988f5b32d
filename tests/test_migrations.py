"""Migrations: the only way the schema changes, safe to run from several replicas at once, and in
step with the models."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

import services.models  # noqa: F401  (tables on the metadata)
from services.db import Base, create_engine, include_name
from services.migrate import upgrade_database


async def test_replicas_starting_together_migrate_once(empty_database_url):
    engines = [create_engine(empty_database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade_database(engine) for engine in engines))
        await upgrade_database(engines[0])  # and again: a no-op
        async with engines[0].connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert len(versions) == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_migrations_match_the_models(empty_database_url):
    engine = create_engine(empty_database_url)
    try:
        await upgrade_database(engine)

        def _diff(connection):
            context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
            return compare_metadata(context, Base.metadata)

        async with engine.connect() as connection:
            differences = await connection.run_sync(_diff)
        assert differences == [], f"models and migrations differ; write a migration: {differences}"
    finally:
        await engine.dispose()


async def test_sqlite_runs_with_wal_and_a_busy_timeout(empty_sqlite_url):
    engine = create_engine(empty_sqlite_url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()
