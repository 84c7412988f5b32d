"""The sandbox's persistence: a small document store in its own `sandbox_*` tables.

The sandbox must survive restarts yet stay out of the product's schema, which
only changes through Alembic migrations. So it keeps its own `MetaData`, creates its tables at
start-up, and stores every resource as a JSON document keyed by (kind, id) with a version number.
Audit records live in their own table because they are queried by date range.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.db import UtcDateTime

metadata = MetaData()

documents = Table(
    "sandbox_documents",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("customer_id", String(64), nullable=True),
    Column("data", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_sandbox_documents_kind_customer", "kind", "customer_id"),
    # Keyset paging of one customer's documents of a kind (a users page reads only its own rows)
    # and the next insertion ordinal without a table scan.
    Index("ix_sandbox_documents_kind_customer_ordinal", "kind", "customer_id", "ordinal"),
    Index("ix_sandbox_documents_ordinal", "ordinal"),
)

audit_records = Table(
    "sandbox_audit_records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=True),
    Column("operation_date", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_sandbox_audit_records_date", "operation_date"),
)


class Unit:
    """One transaction over the store. Obtained from `Store.unit()`; never outlives it."""

    def __init__(self, connection: AsyncConnection, now: datetime) -> None:
        self._connection = connection
        self._now = now

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = (
            await self._connection.execute(
                select(documents.c.data).where(and_(documents.c.kind == kind, documents.c.id == key))
            )
        ).first()
        return dict(row[0]) if row is not None else None

    async def put(self, kind: str, key: str, data: dict[str, Any], *, customer_id: str | None = None) -> int:
        """Insert or replace a document; returns its new version."""
        current = (
            await self._connection.execute(
                select(documents.c.version).where(and_(documents.c.kind == kind, documents.c.id == key))
            )
        ).first()
        if current is None:
            # Insertion order, so listings page stably in the order things were created.
            last = (await self._connection.execute(select(func.max(documents.c.ordinal)))).scalar()
            await self._connection.execute(
                insert(documents).values(
                    kind=kind,
                    id=key,
                    customer_id=customer_id,
                    data=data,
                    version=1,
                    ordinal=(last or 0) + 1,
                    created_at=self._now,
                    updated_at=self._now,
                )
            )
            return 1
        version = int(current[0]) + 1
        await self._connection.execute(
            update(documents)
            .where(and_(documents.c.kind == kind, documents.c.id == key))
            .values(data=data, version=version, customer_id=customer_id, updated_at=self._now)
        )
        return version

    async def delete(self, kind: str, key: str) -> None:
        await self._connection.execute(delete(documents).where(and_(documents.c.kind == kind, documents.c.id == key)))

    async def documents(self, kind: str, *, customer_id: str | None = None) -> list[dict[str, Any]]:
        """Documents of a kind (optionally one customer's), oldest first so paging is stable."""
        query = select(documents.c.data).where(documents.c.kind == kind)
        if customer_id is not None:
            query = query.where(documents.c.customer_id == customer_id)
        query = query.order_by(documents.c.ordinal)
        return [dict(row[0]) for row in (await self._connection.execute(query)).all()]

    async def page(
        self, kind: str, *, customer_id: str, after: int, limit: int, where: dict[str, str] | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Up to `limit` (ordinal, document) pairs of one customer's documents of a kind whose
        ordinal is above `after`, oldest first; `where` keeps those whose top-level string fields
        equal the values given. Only the page's rows are read and decoded."""
        query = select(documents.c.ordinal, documents.c.data).where(
            documents.c.kind == kind, documents.c.customer_id == customer_id, documents.c.ordinal > after
        )
        for key, value in (where or {}).items():
            query = query.where(documents.c.data[key].as_string() == value)
        rows = (await self._connection.execute(query.order_by(documents.c.ordinal).limit(limit))).all()
        return [(int(row[0]), dict(row[1])) for row in rows]

    async def find(self, kind: str, *, customer_id: str, where: dict[str, str]) -> list[dict[str, Any]]:
        """One customer's documents of a kind whose top-level string fields equal `where`
        (compared without case), decoding only the matches."""
        query = select(documents.c.data).where(documents.c.kind == kind, documents.c.customer_id == customer_id)
        for key, value in where.items():
            query = query.where(func.lower(documents.c.data[key].as_string()) == value.lower())
        return [dict(row[0]) for row in (await self._connection.execute(query.order_by(documents.c.ordinal))).all()]

    async def field_values(
        self,
        kind: str,
        *,
        customer_id: str,
        field: str,
        where: dict[str, str] | None = None,
        skip_empty: bool = False,
    ) -> list[Any]:
        """One top-level field of one customer's documents of a kind (those matching `where`),
        without decoding the whole documents. `skip_empty` leaves out documents whose field is
        missing, null or an empty list, in the database (10,000 users, most without a licence)."""
        query = select(documents.c.data[field]).where(documents.c.kind == kind, documents.c.customer_id == customer_id)
        if skip_empty:
            query = query.where(documents.c.data[field].as_string().not_in(["[]", "", "null"]))
        for key, value in (where or {}).items():
            query = query.where(documents.c.data[key].as_string() == value)
        return [row[0] for row in (await self._connection.execute(query.order_by(documents.c.ordinal))).all()]

    async def add_audit(self, record: dict[str, Any], *, operation_date: datetime) -> None:
        await self._connection.execute(
            insert(audit_records).values(
                id=record["id"], customer_id=record.get("customerId"), operation_date=operation_date, data=record
            )
        )

    async def audit_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        query = (
            select(audit_records.c.data)
            .where(and_(audit_records.c.operation_date >= start, audit_records.c.operation_date < end))
            .order_by(audit_records.c.operation_date, audit_records.c.seq)
        )
        return [dict(row[0]) for row in (await self._connection.execute(query)).all()]


class Store:
    """Opens transactions on the sandbox's tables; `create_tables` is idempotent."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_tables(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            # A store created by an earlier version has the tables but not the newer indexes.
            for index in documents.indexes:
                await connection.run_sync(index.create, checkfirst=True)

    @asynccontextmanager
    async def unit(self, now: datetime) -> AsyncIterator[Unit]:
        """A transaction: committed when the block ends normally, rolled back on any exception."""
        async with self.engine.begin() as connection:
            yield Unit(connection, now)
