"""Alerts: what needs a person (unpriced products, undeliverable mail, expired credentials,
failed syncs). One open alert per dedup key; raising it again counts another occurrence."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db import utcnow
from services.errors import InvalidInput, NotFound
from services.models import Alert

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class AlertView:
    id: int
    code: str
    severity: str
    message: str
    organisation_id: int | None
    status: str
    occurrences: int
    created_at: datetime
    last_seen_at: datetime
    acknowledged_by: str


def _view(alert: Alert) -> AlertView:
    return AlertView(
        id=alert.id,
        code=alert.code,
        severity=alert.severity,
        message=alert.message,
        organisation_id=alert.organisation_id,
        status=alert.status,
        occurrences=alert.occurrences,
        created_at=alert.created_at,
        last_seen_at=alert.last_seen_at,
        acknowledged_by=alert.acknowledged_by,
    )


class AlertService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def raise_alert(
        self,
        code: str,
        message: str,
        *,
        dedup_key: str | None = None,
        severity: str = "warning",
        organisation_id: int | None = None,
    ) -> AlertView:
        if severity not in SEVERITIES:
            raise InvalidInput(f"Alert severity must be one of {', '.join(SEVERITIES)}.")
        key = dedup_key or code
        async with self._sessions.begin() as session:
            alert = await session.scalar(select(Alert).where(Alert.dedup_key == key, Alert.status == "open").limit(1))
            if alert is None:
                alert = Alert(
                    code=code,
                    severity=severity,
                    dedup_key=key,
                    message=message,
                    organisation_id=organisation_id,
                )
                session.add(alert)
                log.warning("alert raised: %s: %s", code, message)
            else:
                alert.occurrences += 1
                alert.last_seen_at = utcnow()
                alert.message = message
            await session.flush()
            return _view(alert)

    async def list(self, *, include_acknowledged: bool = False) -> list[AlertView]:
        query = select(Alert).order_by(Alert.id)
        if not include_acknowledged:
            query = query.where(Alert.status == "open")
        async with self._sessions() as session:
            return [_view(a) for a in await session.scalars(query)]

    async def acknowledge(self, alert_id: int, *, actor: str) -> AlertView:
        async with self._sessions.begin() as session:
            alert = await session.get(Alert, alert_id)
            if alert is None:
                raise NotFound(f"No alert #{alert_id}.")
            if alert.status != "open":
                raise InvalidInput(f"Alert #{alert_id} was already acknowledged by {alert.acknowledged_by}.")
            alert.status = "acknowledged"
            alert.acknowledged_by = actor
            alert.acknowledged_at = utcnow()
            await session.flush()
            return _view(alert)

    async def open_count(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "open"))
            return int(count or 0)
