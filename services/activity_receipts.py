"""Receipts of the activities the bot has taken on, so a re-delivered activity is dropped.

Teams re-sends an activity that got no answer in time, with the same id, possibly to another
replica. The first delivery inserts a receipt keyed by (channel id, conversation id, activity id)
— stored as its SHA-256, so the key's length is bounded whatever the channel sends — and only the
insert that wins the primary key takes the activity on. Receipts are kept for `RETENTION`, far
longer than any channel retries, and swept by the instances that record new ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db import utcnow
from services.models import ActivityReceipt

RETENTION = timedelta(hours=24)
SWEEP_EVERY = timedelta(minutes=10)


def receipt_key(channel_id: str, conversation_id: str, activity_id: str) -> str:
    return hashlib.sha256("\n".join((channel_id, conversation_id, activity_id)).encode()).hexdigest()


class ActivityReceipts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = utcnow,
        retention: timedelta = RETENTION,
        sweep_every: timedelta = SWEEP_EVERY,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._retention = retention
        self._sweep_every = sweep_every
        self._next_sweep: datetime | None = None

    async def take(self, key: str) -> bool:
        """Record the activity; False when it was recorded before (a re-delivery, here or elsewhere)."""
        now = self._clock()
        async with self._sessions() as session:
            session.add(ActivityReceipt(key=key, received_at=now))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + self._sweep_every
            await self.sweep()
        return True

    async def release(self, key: str) -> None:
        """Forget the activity, so its re-delivery is taken on (its first run was cut off unanswered)."""
        async with self._sessions.begin() as session:
            await session.execute(delete(ActivityReceipt).where(ActivityReceipt.key == key))

    async def sweep(self) -> int:
        """Remove the receipts older than the retention; how many went."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(ActivityReceipt).where(ActivityReceipt.received_at < self._clock() - self._retention)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]
