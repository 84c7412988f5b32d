"""A fresh PostgreSQL database for one benchmark run (BENCH_POSTGRES_DSN, default the test server's
`test` database as the admin connection), dropped afterwards whatever happens."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

POSTGRES_ADMIN_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def postgres_database(prefix: str) -> AsyncIterator[tuple[str, str]]:
    """(SQLAlchemy URL, name) of a new database `<prefix>_<random>`; dropped when the block ends."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield (
            POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name,
            name,
        )
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
