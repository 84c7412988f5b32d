"""Idempotency keys: stored before a side effect, so a repeated request finds the first result.

A card instance (or a re-delivered activity) carries one key; the first caller stores it together
with the resource it is about to create, every later caller gets that same resource back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.errors import Conflict
from services.models import IdempotencyKey


@dataclass(frozen=True)
class KeyRecord:
    key: str
    purpose: str
    organisation_id: int | None
    resource_type: str
    resource_id: str
    first_use: bool


class IdempotencyService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim(
        self, key: str, *, purpose: str, organisation_id: int | None, resource_type: str, resource_id: str
    ) -> KeyRecord:
        """Store the key with its resource, or return what the first use stored.

        A key reused for another purpose or organisation is refused: ids from payloads are never
        trusted across organisations.
        """
        async with self._sessions() as session:
            row = IdempotencyKey(
                key=key,
                purpose=purpose,
                organisation_id=organisation_id,
                resource_type=resource_type,
                resource_id=resource_id,
            )
            session.add(row)
            try:
                await session.commit()
                return KeyRecord(key, purpose, organisation_id, resource_type, resource_id, first_use=True)
            except IntegrityError:
                await session.rollback()
            existing = await session.get(IdempotencyKey, key)
            if existing is None:  # deleted between the two statements: treat as a conflict, retry later
                raise Conflict("That request is being handled; try again in a moment.")
            if existing.purpose != purpose or existing.organisation_id != organisation_id:
                raise Conflict("That request id belongs to something else.")
            return KeyRecord(
                existing.key,
                existing.purpose,
                existing.organisation_id,
                existing.resource_type,
                existing.resource_id,
                first_use=False,
            )

    async def release(self, key: str, *, organisation_id: int | None) -> None:
        """Free a key whose side effect did not happen (Microsoft refused it), so the same card can
        try again instead of being told it was done."""
        async with self._sessions() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.key == key, IdempotencyKey.organisation_id == organisation_id
                )
            )
            await session.commit()
