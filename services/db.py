"""Database engine, sessions, the shared declarative base, and the locks processes sharing one
database take turns with.

SQLite (the embedded default) runs with WAL and a busy timeout so the bot, its job runner and the
operator CLI can use one file at once; PostgreSQL is the scale-out target.

A pooled PostgreSQL connection is checked before use only when it has sat idle in the pool for
IDLE_SECONDS_BEFORE_PING or longer (a server restart, a proxy's idle timeout): SQLAlchemy's own
`pool_pre_ping` checks at every check-out, and with asyncpg that is three round trips (BEGIN, a
query, ROLLBACK) — a turn checks out a connection several times, so most of its database round trips
were pings of connections used milliseconds before.
"""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event, exc, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

SQLITE_BUSY_TIMEOUT_MS = 10_000
IDLE_SECONDS_BEFORE_PING = 5.0
_IDLE_SINCE = "idle_since"  # in a pooled connection's `info`: when it was last checked in

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; for SQLite the file's folder is created and WAL + busy timeout are set."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_connections_idle_in_the_pool(engine)
    return engine


def _ping_connections_idle_in_the_pool(engine: AsyncEngine) -> None:
    """Check a pooled connection at check-out if it sat idle IDLE_SECONDS_BEFORE_PING or longer; a dead
    one is dropped and another taken (SQLAlchemy's pool retries a check-out that raises
    `DisconnectionError`), so the caller never sees it."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _note_idle_since(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_SECONDS_BEFORE_PING:
            return  # new, or used a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError("a pooled connection did not answer its ping") from error
        if not alive:
            raise exc.DisconnectionError("a pooled connection did not answer its ping")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Alembic's filter: the Partner Center sandbox keeps its own `sandbox_*` tables (created by
    itself) in the bot's database when they share one; migrations neither manage nor drop them."""
    return not (type_ == "table" and name is not None and name.startswith("sandbox_"))


@dataclass(frozen=True)
class DatabaseLock:
    """A lock shared by every process (and engine) on one database: a PostgreSQL advisory lock on
    `key`; on a SQLite file, `flock` on the file `<database>.<name>-lock` beside it, or SQLite's own
    write lock for one transaction."""

    name: str
    key: int


# Every lock the app takes, in one place so that their keys stay distinct.
MIGRATION_LOCK = DatabaseLock("migrate", 0x0C5B_0717)
START_UP_LOCK = DatabaseLock("start-up", 0x0C5B_0718)
CATALOG_SYNC_LOCK = DatabaseLock("catalog-sync", 0x0C5B_0719)
SANDBOX_START_LOCK = DatabaseLock("sandbox-start", 0x0C5B_071A)


@asynccontextmanager
async def exclusive(engine: AsyncEngine, lock: DatabaseLock) -> AsyncIterator[None]:
    """Run the block while no other process or engine on this database holds `lock` (replicas
    starting together take turns). It may span many transactions; waiting blocks nothing else."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            # A session-level lock lives as long as its session: a connection that may still hold it
            # is closed, never handed back to the pool.
            try:
                await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock.key})
            except BaseException:
                await connection.invalidate()
                raise
            try:
                yield
            finally:
                try:
                    await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock.key})
                except BaseException:
                    await connection.invalidate()
                    raise
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    # SQLite has no advisory locks: a lock file beside the database, taken off the event loop.
    handle = await asyncio.to_thread(open, f"{database}.{lock.name}-lock", "a+")
    try:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


async def lock_transaction(session: AsyncSession, lock: DatabaseLock) -> None:
    """Make this session's transaction wait for every other one holding `lock`, in any process, and
    hold it until commit or rollback. Call it first, so that what the transaction reads afterwards
    includes what the previous holder committed. PostgreSQL: a transaction-level advisory lock;
    SQLite: its one write lock, taken now (`BEGIN IMMEDIATE`) rather than at the first write."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock.key})
    elif dialect == "sqlite":
        await session.execute(text("BEGIN IMMEDIATE"))
