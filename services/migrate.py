"""Apply Alembic migrations at start-up, under a lock so replicas starting together do not race."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# An arbitrary constant shared by every replica: the key of the PostgreSQL advisory lock.
MIGRATION_LOCK_KEY = 0x0C5B_0717


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Session-level lock: a second replica waits here until the first has finished.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            command.upgrade(_alembic_config(connection), "head")
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
    else:
        # SQLite: BEGIN IMMEDIATE takes the database's write lock for the whole upgrade.
        command.upgrade(_alembic_config(connection), "head")
        connection.commit()


async def upgrade_database(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several processes at once."""
    async with engine.connect() as connection:
        await connection.run_sync(_upgrade)
    log.info("database schema is up to date")
