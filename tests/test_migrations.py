"""Migrations: the only way the schema changes, safe to run from several replicas at once, and in
step with the models."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

import services.models  # noqa: F401  (tables on the metadata)
from services.db import Base, create_engine, create_session_factory, include_name
from services.migrate import alembic_config, upgrade_database
from services.models import ConversationReferenceRow, Organisation


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


async def test_the_conversations_strangers_left_are_forgotten(empty_database_url):
    """Revision 0009: references stored for callers who were no member (no organisation) are removed;
    a member's are kept."""
    engine = create_engine(empty_database_url)

    def upgrade_to(revision: str):
        def run(connection):
            command.upgrade(alembic_config(connection), revision)
            connection.commit()

        return run

    try:
        async with engine.connect() as connection:
            await connection.run_sync(upgrade_to("0008"))
        async with create_session_factory(engine).begin() as session:
            org = Organisation(slug="fabrikam", name="Fabrikam")
            session.add(org)
            await session.flush()
            for conversation_id, organisation_id in (("a:member", org.id), ("a:stranger", None)):
                session.add(
                    ConversationReferenceRow(
                        conversation_id=conversation_id, organisation_id=organisation_id, reference={"x": 1}
                    )
                )
        async with engine.connect() as connection:
            await connection.run_sync(upgrade_to("head"))
            kept = (await connection.execute(text("SELECT conversation_id FROM conversation_references"))).scalars()
            assert list(kept) == ["a:member"]
    finally:
        await engine.dispose()
