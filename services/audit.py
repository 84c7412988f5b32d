"""The audit log: every change, with who made it, when, and the state before and after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.logging_context import current_correlation_id
from services.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    organisation_id: int | None,
    target: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction, so it commits (or not) with the change."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        organisation_id=organisation_id,
        target=target,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        correlation_id=current_correlation_id(),
    )
    session.add(entry)
    return entry


async def entries_for(session: AsyncSession, organisation_id: int, limit: int = 100) -> list[AuditEntry]:
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.organisation_id == organisation_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    return list(rows)
