"""Stored conversation references: where the bot can write later (jobs, approvals).

Only conversations with a member of an organisation are stored: proactive messages only ever go
to members, and a stranger's first message must not grow the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.errors import Conflict, NotFound
from services.models import ConversationReferenceRow


async def organisation_channel(session: AsyncSession, organisation_id: int, conversation_id: str) -> str:
    """A conversation the operator may pick as an organisation's channel (approvals, warnings): one
    the bot was added to and knows, not another organisation's. Returns its stored id."""
    reference = await session.scalar(
        select(ConversationReferenceRow).where(ConversationReferenceRow.conversation_id == conversation_id.strip())
    )
    if reference is None:
        raise NotFound(
            "The bot has no conversation with that id. Add the bot to the team, mention it once in "
            "the channel, then use the channel's conversation id."
        )
    if reference.organisation_id not in (None, organisation_id):
        raise Conflict("That channel belongs to another organisation.")
    return reference.conversation_id


@dataclass(frozen=True)
class StoredReference:
    conversation_id: str
    conversation_type: str
    organisation_id: int | None
    member_id: int | None
    reference: Mapping[str, Any]


def _view(row: ConversationReferenceRow) -> StoredReference:
    return StoredReference(
        row.conversation_id, row.conversation_type, row.organisation_id, row.member_id, dict(row.reference)
    )


class ConversationReferenceService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def save(
        self,
        conversation_id: str,
        reference: Mapping[str, Any],
        *,
        conversation_type: str,
        organisation_id: int,
        member_id: int | None,
    ) -> None:
        """Insert or refresh; a 1:1 chat remembers its member, a channel only its organisation."""
        try:
            await self._save(conversation_id, reference, conversation_type, organisation_id, member_id)
        except IntegrityError:  # another replica inserted it a moment ago: refresh that row
            await self._save(conversation_id, reference, conversation_type, organisation_id, member_id)

    async def _save(
        self,
        conversation_id: str,
        reference: Mapping[str, Any],
        conversation_type: str,
        organisation_id: int,
        member_id: int | None,
    ) -> None:
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(ConversationReferenceRow).where(ConversationReferenceRow.conversation_id == conversation_id)
            )
            if row is None:
                row = ConversationReferenceRow(conversation_id=conversation_id)
                session.add(row)
            row.reference = dict(reference)
            row.conversation_type = conversation_type
            row.organisation_id = organisation_id
            if member_id is not None and conversation_type == "personal":
                row.member_id = member_id

    async def get(self, conversation_id: str) -> StoredReference | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ConversationReferenceRow).where(ConversationReferenceRow.conversation_id == conversation_id)
            )
            return _view(row) if row is not None else None

    async def personal_chat_of(self, member_id: int) -> StoredReference | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(ConversationReferenceRow)
                .where(
                    ConversationReferenceRow.member_id == member_id,
                    ConversationReferenceRow.conversation_type == "personal",
                )
                .order_by(ConversationReferenceRow.updated_at.desc())
                .limit(1)
            )
            return _view(row) if row is not None else None
