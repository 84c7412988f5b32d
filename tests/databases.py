"""The tests' databases: migrated once per test process, copied for each test.

SQLite: the template is a migrated file; a test gets a file copy. PostgreSQL: the template is a
migrated database; a test gets `CREATE DATABASE … TEMPLATE` of it, made on a helper thread while
the previous test runs, and dropped there after the test — so neither waits on the test's path.

Other people's test runs share the PostgreSQL server, so every database a test process makes is
named `cspbot_test_<owner>_…`, and the process holds the advisory lock of <owner> while it runs.
At start-up, databases whose owner's lock is free (their run ended without dropping them) are
dropped; so are `cspbot_test_*` databases named otherwise that nobody is connected to and whose
files have not changed for `UNOWNED_STALE_AFTER`. At the end, nothing of this process's may remain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import re
import secrets
import shutil
import threading
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from services.db import create_engine
from services.migrate import upgrade_database

log = logging.getLogger(__name__)

T = TypeVar("T")

PREFIX = "cspbot_test_"
# The advisory-lock namespace (first key) of "a test process that owns databases"; the second key
# is the owner id in the database names.
OWNER_LOCK_NAMESPACE = 0x0C5B_7E57
_OWNED = re.compile(rf"{PREFIX}([0-9a-f]{{8}})_.+")
# No test keeps a database for anywhere near this long; a run at a debugger's prompt may.
UNOWNED_STALE_AFTER = timedelta(hours=1)
# PostgreSQL 15 checkpoints for every DROP DATABASE, and concurrent drops share one checkpoint:
# dropping a few at once is several times faster than one after another.
CONCURRENT_DROPS = 4


def run_in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion on a private event loop in another thread (from sync code,
    without touching the event loop of the thread that calls)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# --- SQLite ----------------------------------------------------------------------------------------


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def migrate_sqlite_template(path: Path) -> None:
    """Migrate a new SQLite file and fold its write-ahead log into it, so the file alone is a copy."""
    engine = create_engine(sqlite_url(path))
    try:
        await upgrade_database(engine)
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()
    assert_self_contained(path)


def assert_self_contained(path: Path) -> None:
    """A closed SQLite file whose write-ahead log is empty: copying the file copies the database."""
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, f"{wal} still holds pages a copy would miss"


def copy_sqlite_template(template: Path, path: Path) -> str:
    """A copy of `template` at `path`; returns its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return sqlite_url(path)


class SqliteCopy:
    """A test's SQLite database, copied from a template, which knows whether anything has opened it
    since (SQLite in WAL mode keeps `-wal` and `-shm` files beside a database while it is open)."""

    def __init__(self, template: Path, path: Path) -> None:
        self.path = path
        self.url = copy_sqlite_template(template, path)
        self._as_copied = self._stat()

    def _stat(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_size, stat.st_mtime_ns

    def untouched(self) -> bool:
        """Nothing has opened it since it was copied (or has, and changed nothing)."""
        if any(self.path.with_name(self.path.name + suffix).exists() for suffix in ("-wal", "-shm")):
            return False
        return self._stat() == self._as_copied

    def replace_with(self, template: Path) -> None:
        """Become a copy of another template; only while `untouched()` (nothing has it open)."""
        assert self.untouched(), f"{self.path} is in use or changed; it cannot be replaced"
        copy_sqlite_template(template, self.path)
        self._as_copied = self._stat()


# --- PostgreSQL ------------------------------------------------------------------------------------


def _signed_int32(owner: str) -> int:
    return int.from_bytes(bytes.fromhex(owner), "big", signed=True)


class PostgresTestDatabases:
    """This test process's PostgreSQL databases, made and dropped on a helper thread.

    `open()` takes the owner lock, starts the clean-up of stale databases in the background and
    builds the migrated template. `await take()` (from any event loop) gives a copy of the template,
    `await take_empty()` a database without schema; `give_back(name)` drops it later. `close()` drops
    the rest and returns what it still finds of this process's."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.owner = secrets.token_hex(4)
        self.prefix = f"{PREFIX}{self.owner}_"
        self.template = f"{self.prefix}template"
        self._base_url = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres-test-databases", daemon=True)
        self._maker: asyncpg.Connection | None = None  # holds the owner lock; makes databases
        self._making: asyncio.Lock | None = None  # one statement at a time on `_maker`
        self._droppers: asyncpg.Pool | None = None
        self._drops: asyncio.Queue[str] | None = None
        self._dropping: asyncio.Task[None] | None = None
        self._stale_cleanup: asyncio.Task[None] | None = None
        self._closing = False
        self._next_copies: dict[str, asyncio.Future[str]] = {}  # template -> its copy made ahead
        self._made = 0
        self._snapshots: list[str] = []  # copies kept as templates of their own until the end
        self.outstanding: set[str] = set()  # taken and not yet dropped

    def url_of(self, name: str) -> str:
        return f"{self._base_url}/{name}"

    # -- from the tests' side (any thread, any loop) --

    def open(self) -> None:
        self._thread.start()
        try:
            self._run(self._open())
        except BaseException:
            self.close()
            raise

    async def take(self) -> str:
        """A new database copied from the migrated template (made while the previous test ran)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._take(self.template), self._loop))

    async def take_copy_of(self, template: str) -> str:
        """A new database copied from `template` (one of `keep_as_template`)."""
        assert template in self._snapshots, f"{template} is not a template of this process"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._take(template), self._loop))

    def keep_as_template(self, name: str) -> None:
        """`name` (taken, set up, every connection to it closed) becomes a template for
        `take_copy_of`; it is dropped at the end with the migrated template."""
        self._snapshots.append(name)

    async def take_empty(self) -> str:
        """A new database with no schema at all."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._create(template=None), self._loop))

    def give_back(self, name: str) -> None:
        """Drop `name` soon, on the helper thread (the test does not wait for it)."""
        self._loop.call_soon_threadsafe(self._queue_drop, name)

    def close(self) -> list[str]:
        """Drop every database of this process (the template too) and stop the helper thread.
        Returns the databases of this process still found on the server afterwards."""
        try:
            if self._thread.is_alive():
                return self._run(self._close())
            return []
        finally:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join()
            self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # -- on the helper thread --

    async def _open(self) -> None:
        self._maker = await asyncpg.connect(self.admin_dsn)
        self._making = asyncio.Lock()
        self._droppers = await asyncpg.create_pool(self.admin_dsn, min_size=0, max_size=CONCURRENT_DROPS)
        await self._maker.execute("SELECT pg_advisory_lock($1::int, $2::int)", OWNER_LOCK_NAMESPACE, self._owner_key)
        self._drops = asyncio.Queue()
        self._dropping = asyncio.create_task(self._drop_queued())
        self._stale_cleanup = asyncio.create_task(self._drop_stale())
        await self._maker.execute(f'CREATE DATABASE "{self.template}"')
        engine = create_engine(self.url_of(self.template))
        try:
            await upgrade_database(engine)
        finally:
            await engine.dispose()

    @property
    def _owner_key(self) -> int:
        return _signed_int32(self.owner)

    async def _create(self, *, template: str | None) -> str:
        assert self._maker is not None and self._making is not None
        self._made += 1
        name = f"{self.prefix}{self._made}"
        self.outstanding.add(name)
        async with self._making:
            await self._maker.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    async def _take(self, template: str) -> str:
        copy = self._next_copies.pop(template, None) or asyncio.ensure_future(self._create(template=template))
        name = await copy
        self._next_copies[template] = asyncio.ensure_future(self._create(template=template))
        return name

    def _queue_drop(self, name: str) -> None:
        assert self._drops is not None
        self._drops.put_nowait(name)

    async def _drop_queued(self) -> None:
        """Drop what the tests gave back, up to `CONCURRENT_DROPS` at once."""
        assert self._drops is not None
        while True:
            batch = [await self._drops.get()]
            while not self._drops.empty() and len(batch) < CONCURRENT_DROPS:
                batch.append(self._drops.get_nowait())
            dropped = await asyncio.gather(*(self._drop(name, force=True) for name in batch))
            for name, done in zip(batch, dropped, strict=True):
                if done:
                    self.outstanding.discard(name)
                self._drops.task_done()

    async def _drop(self, name: str, *, force: bool) -> bool:
        """`force` ends the connections to it first; without it, a database in use stays."""
        assert self._droppers is not None
        try:
            async with self._droppers.acquire() as connection:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}"' + (" WITH (FORCE)" if force else ""))
            return True
        except asyncpg.PostgresError as error:
            log.log(logging.WARNING if force else logging.INFO, "test database %s not dropped: %s", name, error)
            return False

    async def _drop_stale(self) -> None:
        """Drop other runs' leftovers in the background, a few at a time (there may be hundreds):
        first those whose owner has ended, then unowned ones."""
        assert self._droppers is not None
        async with self._droppers.acquire() as connection:
            names = [
                row["datname"]
                for row in await connection.fetch(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", PREFIX
                )
            ]
            ended = await self._ended_owners_databases(connection, names)
            unowned = await self._unowned_untouched(connection, [name for name in names if not _OWNED.fullmatch(name)])
        # Several processes starting together then mostly pick different ones.
        random.shuffle(ended)
        random.shuffle(unowned)
        stale = ended + unowned
        for start in range(0, len(stale), CONCURRENT_DROPS):
            if self._closing:  # the rest waits for the next run; a DROP is not interrupted
                return
            await asyncio.gather(*(self._drop(name, force=False) for name in stale[start : start + CONCURRENT_DROPS]))

    async def _ended_owners_databases(self, connection: asyncpg.Connection, names: list[str]) -> list[str]:
        by_owner: dict[str, list[str]] = {}
        for name in names:
            owned = _OWNED.fullmatch(name)
            if owned and owned.group(1) != self.owner:
                by_owner.setdefault(owned.group(1), []).append(name)
        ended: list[str] = []
        for owner, databases in by_owner.items():
            key = _signed_int32(owner)
            # An owner takes its lock before it makes any database: if the lock is free, it has ended.
            if await connection.fetchval("SELECT pg_try_advisory_lock($1::int, $2::int)", OWNER_LOCK_NAMESPACE, key):
                await connection.execute("SELECT pg_advisory_unlock($1::int, $2::int)", OWNER_LOCK_NAMESPACE, key)
                ended += databases
        return ended

    async def _unowned_untouched(self, connection: asyncpg.Connection, names: list[str]) -> list[str]:
        """Of `names`, those whose files have not changed for `UNOWNED_STALE_AFTER`."""
        if not names:
            return []
        try:
            rows = await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])"
                " AND (pg_stat_file('base/' || oid)).modification < now() - $2::interval",
                names,
                UNOWNED_STALE_AFTER,
            )
        except asyncpg.PostgresError:  # no right to read the server's files (not a superuser)
            return []
        return [row["datname"] for row in rows]

    async def _close(self) -> list[str]:
        self._closing = True
        if self._stale_cleanup is not None:
            await asyncio.gather(self._stale_cleanup, return_exceptions=True)
        for name in await asyncio.gather(*self._next_copies.values(), return_exceptions=True):
            if isinstance(name, str):
                self._queue_drop(name)
        if self._drops is not None:
            for name in (self.template, *self._snapshots):
                self._queue_drop(name)
            await self._drops.join()
        if self._dropping is not None:
            self._dropping.cancel()
            await asyncio.gather(self._dropping, return_exceptions=True)
        remaining: list[str] = []
        if self._maker is not None:
            remaining = [
                row["datname"]
                for row in await self._maker.fetch(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname", self.prefix
                )
            ]
            for name in remaining:  # reported by the caller; still, leave nothing behind
                await self._maker.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await self._maker.close()
        if self._droppers is not None:
            await self._droppers.close()
        return remaining
