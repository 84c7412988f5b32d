"""The PostgreSQL pool checks a connection before use only after it sat idle (services/db.py): one
used a moment ago goes straight back to work, one the server dropped while idle is replaced unseen."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from services import db
from services.db import create_engine

pytestmark = pytest.mark.postgres


def _count_pings(engine: Any) -> list[int]:
    dialect = engine.sync_engine.dialect
    pings: list[int] = []
    real_ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return bool(real_ping(dbapi_connection))

    dialect.do_ping = counted
    return pings


async def test_a_connection_used_a_moment_ago_is_not_pinged(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        pings = _count_pings(engine)
        for _ in range(5):
            async with engine.connect() as connection:
                assert await connection.scalar(text("SELECT 1")) == 1
        assert pings == []
    finally:
        await engine.dispose()


async def test_a_connection_dropped_while_idle_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    other = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        pings = _count_pings(engine)
        async with engine.connect() as connection:
            backend = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with other.connect() as admin:  # the server drops the pooled connection (a restart, a proxy)
            assert await admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        monkeypatch.setattr(db, "IDLE_SECONDS_BEFORE_PING", 0.0)  # it has now sat idle long enough

        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != backend
        assert pings == [1]
    finally:
        await engine.dispose()
        await other.dispose()
