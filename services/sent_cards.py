"""The cards a task posted into a conversation (no Teams types: ids, the card as a dict, a status).

A card is *live* while its task waits for it; *replaced* when the next screen took its place in the
same message; *done* once the action it offered was carried out; *closed* when its task ended
without it (cancelled, stopped, finished elsewhere). Only a live card's click reaches its task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db import utcnow
from services.models import SentCardRow

LIVE, REPLACED, DONE, CLOSED = "live", "replaced", "done", "closed"
# A click on a card older than this is treated as a card the bot no longer knows.
KEEP_FOR = timedelta(days=30)


@dataclass(frozen=True)
class SentCard:
    conversation_id: str
    card_id: str
    activity_id: str
    task: str
    card: dict[str, Any]
    status: str
    outcome: str


def _view(row: SentCardRow) -> SentCard:
    return SentCard(
        row.conversation_id, row.card_id, row.activity_id, row.task, dict(row.card), row.status, row.outcome
    )


class SentCardStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def register(
        self, conversation_id: str, card_id: str, activity_id: str, task: str, card: dict[str, Any]
    ) -> None:
        """Remember a live card; forget this conversation's cards older than `KEEP_FOR`."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(SentCardRow).where(
                    SentCardRow.conversation_id == conversation_id, SentCardRow.created_at < utcnow() - KEEP_FOR
                )
            )
            session.add(
                SentCardRow(
                    conversation_id=conversation_id,
                    card_id=card_id,
                    activity_id=activity_id,
                    task=task,
                    card=card,
                    status=LIVE,
                    outcome="",
                )
            )

    async def find(self, conversation_id: str, card_id: str) -> SentCard | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(SentCardRow).where(
                    SentCardRow.conversation_id == conversation_id, SentCardRow.card_id == card_id
                )
            )
            return _view(row) if row is not None else None

    async def live_of_task(self, conversation_id: str, task: str) -> list[SentCard]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SentCardRow)
                .where(
                    SentCardRow.conversation_id == conversation_id,
                    SentCardRow.task == task,
                    SentCardRow.status == LIVE,
                )
                .order_by(SentCardRow.id)
            )
            return [_view(row) for row in rows]

    async def settle(self, conversation_id: str, card_id: str, status: str, outcome: str = "") -> bool:
        """Move a live card to `status`; False if it was no longer live (another click got there first)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(SentCardRow)
                .where(
                    SentCardRow.conversation_id == conversation_id,
                    SentCardRow.card_id == card_id,
                    SentCardRow.status == LIVE,
                )
                .values(status=status, outcome=outcome[:300])
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def close_all(self, conversation_id: str, outcome: str) -> int:
        """Close every live card of a conversation without touching the messages (they may be gone)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(SentCardRow)
                .where(SentCardRow.conversation_id == conversation_id, SentCardRow.status == LIVE)
                .values(status=CLOSED, outcome=outcome[:300])
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
