"""Apply Alembic migrations at start-up, under a lock so replicas starting together do not race."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db import MIGRATION_LOCK, exclusive

log = logging.getLogger(__name__)

# The `migrations` package sits beside `services` in a checkout and in an installed wheel alike.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
    connection.commit()


async def upgrade_database(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several processes at once (the
    second waits for the first, then finds nothing to do)."""
    async with exclusive(engine, MIGRATION_LOCK), engine.connect() as connection:
        await connection.run_sync(_upgrade)
    log.info("database schema is up to date")
