"""Named leases in the database: only one replica at a time runs the work a lease guards."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db import utcnow
from services.models import SyncLease


class LeaseService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, owner: str | None = None) -> None:
        self._sessions = sessions
        self.owner = owner or f"replica-{uuid.uuid4().hex[:12]}"

    async def acquire(self, name: str, seconds: float) -> bool:
        """Take (or extend) the lease for `seconds`; False while another owner holds an unexpired one."""
        now = utcnow()
        expires = now + timedelta(seconds=seconds)
        async with self._sessions() as session:
            result = await session.execute(
                update(SyncLease)
                .where(
                    SyncLease.name == name,
                    or_(SyncLease.owner == self.owner, SyncLease.expires_at < now),
                )
                .values(owner=self.owner, expires_at=expires)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                await session.commit()
                return True
            session.add(SyncLease(name=name, owner=self.owner, expires_at=expires))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
            return True

    async def release(self, name: str) -> None:
        async with self._sessions() as session:
            await session.execute(
                update(SyncLease)
                .where(SyncLease.name == name, SyncLease.owner == self.owner)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
