"""Apply Alembic migrations at start-up, under a lock so replicas starting together do not race.

A database already at the newest revision is recognised without Alembic: the head revisions are read
from the migration files' `revision` / `down_revision` lines and compared with `alembic_version`
(importing Alembic and loading its script directory costs more than the rest of a warm start-up).
Anything else — a database behind or ahead, an empty one, migration files this reader does not
understand — goes to Alembic as before, which migrates or says what is wrong.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db import MIGRATION_LOCK, exclusive

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

# The `migrations` package sits beside `services` in a checkout and in an installed wheel alike.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# `revision: str = "0001"` / `down_revision: str | None = None` at the start of a line, as Alembic's
# template writes them. Only a plain string, None or a tuple of strings is understood.
_ASSIGNMENT = re.compile(
    r"^(?P<name>revision|down_revision|branch_labels|depends_on)\s*(?::[^=\n]*)?=\s*(?P<value>.+?)\s*$", re.MULTILINE
)


def alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _literal(value: str) -> object:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return _UNKNOWN


_UNKNOWN = object()


def script_heads(versions_dir: Path = MIGRATIONS_DIR / "versions") -> frozenset[str] | None:
    """The head revisions of the migration files in `versions_dir` (the revisions no other file names as
    its `down_revision`), or None when a file is not understood (then only Alembic can tell)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions_dir.glob("*.py"):
        found: dict[str, object] = {}
        for match in _ASSIGNMENT.finditer(path.read_text(encoding="utf-8")):
            if match["name"] in found:
                return None
            found[match["name"]] = _literal(match["value"])
        revision, down = found.get("revision", _UNKNOWN), found.get("down_revision", _UNKNOWN)
        if found.get("branch_labels") is not None or found.get("depends_on") is not None:
            return None
        if not isinstance(revision, str) or revision in revisions:
            return None
        if isinstance(down, str):
            downs: tuple[object, ...] = (down,)
        elif down is None:
            downs = ()
        elif isinstance(down, tuple):
            downs = down
        else:
            return None
        if not all(isinstance(parent, str) for parent in downs):
            return None
        revisions.add(revision)
        parents.update(str(parent) for parent in downs)
    if not revisions or not parents <= revisions:
        return None
    return frozenset(revisions - parents)


async def database_revisions(engine: AsyncEngine) -> frozenset[str] | None:
    """The revisions recorded in the database's `alembic_version`, or None when it has no such table."""
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return frozenset(str(value) for value in rows.scalars())
    except DBAPIError:
        return None


async def at_head(engine: AsyncEngine) -> bool:
    """True only when the database records exactly the migration files' head revisions."""
    heads = script_heads()
    return heads is not None and await database_revisions(engine) == heads


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")
    connection.commit()


async def upgrade_database(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several processes at once (the
    second waits for the first, then finds nothing to do).

    Alembic writes `alembic_version` after a revision's changes (in the same transaction where DDL is
    transactional), so a database that records the head has its whole schema: no lock is needed to see it."""
    if not await at_head(engine):
        async with exclusive(engine, MIGRATION_LOCK), engine.connect() as connection:
            await connection.run_sync(_upgrade)
    log.info("database schema is up to date")
