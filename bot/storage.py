"""The SDK's `Storage` over the app's SQL database, with e-tag optimistic concurrency.

Items are written as JSON (see `state_codec`). Every read stamps the item with `e_tag` (the row's
version). A write with that e-tag succeeds only if nobody wrote in between; `"*"` or no e-tag
writes unconditionally; `CREATE_ONLY` writes only if the key does not exist yet. A lost race
raises `StateConflictError`, which the bot turns into one retry of the turn.
"""

from __future__ import annotations

import hashlib
from typing import Any

from microsoft_agents.hosting.core.storage import Storage, StoreItem
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import state_codec
from services.db import utcnow
from services.models import BotStateRow

ANY_ETAG = "*"
CREATE_ONLY = ""
MAX_PLAIN_KEY = 500
_READ_STATE = select(BotStateRow.key, BotStateRow.data, BotStateRow.version).where(
    BotStateRow.key.in_(bindparam("keys", expanding=True))
)


def _dialect_insert(session: AsyncSession) -> Any:
    """INSERT … ON CONFLICT exists in both SQLite and PostgreSQL, under dialect-specific constructs (each
    loaded with its engine: a bot on SQLite never imports the PostgreSQL dialect)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


class StateConflictError(Exception):
    """Another turn wrote this state since it was read (e-tag mismatch)."""


def _row_key(key: str) -> str:
    """Keys are stored as they are; very long ones (rare Teams ids) by their hash."""
    if len(key) <= MAX_PLAIN_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _stamp(item: Any, version: int) -> None:
    try:
        item.e_tag = str(version)
    except AttributeError:  # an item type that refuses new attributes still works, without e-tags
        pass


class SqlStorage(Storage):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        engine = sessions.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("SqlStorage needs a session factory bound to an AsyncEngine")
        self._engine = engine

    async def read(self, keys: list[str], *, target_cls: type[Any], **_kwargs: Any) -> dict[str, Any]:
        if not keys:
            raise ValueError("Storage.read(): keys are required")
        by_row_key = {_row_key(k): k for k in keys}
        # A plain connection and a statement built once: every turn reads state, and the ORM session's
        # own work (identity map, rollback on close) is most of that read's cost.
        async with self._engine.connect() as connection:
            rows = await connection.execute(_READ_STATE, {"keys": list(by_row_key)})
            found: dict[str, Any] = {}
            for row_key, data, version in rows:
                item = target_cls.from_json_to_store_item(state_codec.loads(data))
                _stamp(item, version)
                found[by_row_key[row_key]] = item
            return found

    async def write(self, changes: dict[str, StoreItem]) -> None:
        if not changes:
            raise ValueError("Storage.write(): changes are required")
        versions: dict[str, int] = {}
        async with self._sessions() as session:
            try:
                for key, item in changes.items():
                    payload = item.store_item_to_json() if isinstance(item, StoreItem) else item
                    data = state_codec.dumps(payload)
                    versions[key] = await self._write_one(session, _row_key(key), data, getattr(item, "e_tag", None))
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise StateConflictError("bot state was created concurrently") from None
            except BaseException:
                await session.rollback()
                raise
        for key, item in changes.items():
            _stamp(item, versions[key])

    @staticmethod
    async def _write_one(session: AsyncSession, key: str, data: str, e_tag: str | None) -> int:
        now = utcnow()
        if e_tag == CREATE_ONLY:
            await session.execute(insert(BotStateRow).values(key=key, data=data, version=1, updated_at=now))
            return 1
        if e_tag is None or e_tag == ANY_ETAG:
            # One statement, so concurrent unconditional writers cannot both "insert".
            upsert = _dialect_insert(session)(BotStateRow).values(key=key, data=data, version=1, updated_at=now)
            upsert = upsert.on_conflict_do_update(
                index_elements=[BotStateRow.key],
                set_={"data": data, "version": BotStateRow.version + 1, "updated_at": now},
            ).returning(BotStateRow.version)
            return int((await session.execute(upsert)).scalar_one())
        try:
            expected = int(e_tag)
        except ValueError:
            raise StateConflictError(f"malformed e-tag {e_tag!r}") from None
        result = await session.execute(
            update(BotStateRow)
            .where(BotStateRow.key == key, BotStateRow.version == expected)
            .values(data=data, version=expected + 1, updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StateConflictError("bot state changed since it was read")
        return expected + 1

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("Storage.delete(): keys are required")
        async with self._sessions.begin() as session:
            await session.execute(delete(BotStateRow).where(BotStateRow.key.in_([_row_key(k) for k in keys])))
