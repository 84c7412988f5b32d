"""An organisation's warning settings: stored per organisation, changed by its admins in chat or by
the operator in the CLI. Every value is checked here, once, with a message that says what is allowed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.billing.cycles import parse_timezone
from services.conversations import organisation_channel
from services.errors import InvalidInput
from services.i18n import _
from services.models import WarningSettingRow
from services.warnings.rules import Kind, WarningSettings

KIND_NAMES = {
    "seat_window": Kind.SEAT_WINDOW,
    "seat-window": Kind.SEAT_WINDOW,
    "seats": Kind.SEAT_WINDOW,
    "renewal": Kind.RENEWAL,
    "renewals": Kind.RENEWAL,
    "idle": Kind.IDLE,
    "idle_licences": Kind.IDLE,
    "idle-licences": Kind.IDLE,
    "idle_licenses": Kind.IDLE,
}
_OFFER = re.compile(r"^[A-Z0-9]{4,40}:[A-Z0-9]{1,10}$")
_QUIET = re.compile(r"^(\d{1,2})(?::00)?\s*-\s*(\d{1,2})(?::00)?$")
MAX_LEADS = 5


def parse_kind(value: str) -> Kind:
    kind = KIND_NAMES.get(value.strip().lower())
    if kind is None:
        raise InvalidInput(
            _("Unknown warning {value!r}; the warnings are seat_window, renewal and idle_licences.", value=value),
            field="kind",
        )
    return kind


def parse_leads(value: str | Iterable[Any]) -> tuple[int, ...]:
    """'30,7' → (30, 7): days before a renewal, each 1–365, at most five."""
    parts = [part.strip() for part in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    leads: list[int] = []
    for part in parts:
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 365:
            raise InvalidInput(
                _("Lead times are whole days from 1 to 365, separated by commas (for example 30,7)."), field="leads"
            )
        leads.append(int(part))
    if not leads or len(leads) > MAX_LEADS:
        raise InvalidInput(
            _("Give from one to {MAX_LEADS} lead times (for example 30,7).", MAX_LEADS=MAX_LEADS), field="leads"
        )
    return tuple(sorted(set(leads), reverse=True))


def parse_whole(value: Any, *, low: int, high: int, field: str, what: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidInput(
            _("{what} is a whole number from {low} to {high}.", what=what, low=low, high=high), field=field
        )
    return int(text)


def parse_quiet(value: str) -> tuple[int | None, int | None]:
    """'20-08' → (20, 8): quiet from 20:00 to 08:00 in the organisation's time zone; 'off' → none."""
    text = value.strip().lower()
    if text in ("", "off", "none"):
        return None, None
    match = _QUIET.match(text)
    if match is None or not all(0 <= int(group) <= 23 for group in match.groups()) or match[1] == match[2]:
        raise InvalidInput(
            _("Quiet hours are two different hours of the day, for example 20-08 (20:00 to 08:00), or off."),
            field="quiet",
        )
    return int(match[1]), int(match[2])


def parse_offers(value: str | Iterable[str]) -> frozenset[str]:
    """'CFQ7TTC0LH18:0001, …' → the offers (PRODUCT:SKU) left out of idle warnings; '' → none."""
    parts = [part.strip().upper() for part in value.split(",")] if isinstance(value, str) else list(value)
    offers = {part.strip().upper() for part in parts if part.strip()}
    wrong = sorted(offer for offer in offers if not _OFFER.match(offer))
    if wrong:
        raise InvalidInput(
            _("{join}: an offer is written PRODUCT:SKU, for example CFQ7TTC0LH18:0001.", join=", ".join(wrong)),
            field="excluded",
        )
    return frozenset(offers)


def _from_row(row: WarningSettingRow | None) -> WarningSettings:
    if row is None:
        return WarningSettings()
    return WarningSettings(
        enabled=frozenset(Kind(kind) for kind in row.enabled if kind in {k.value for k in Kind}),
        renewal_lead_days=tuple(int(lead) for lead in row.renewal_lead_days) or WarningSettings.renewal_lead_days,
        seat_window_hours=row.seat_window_hours,
        idle_days=row.idle_days,
        excluded_skus=frozenset(row.excluded_skus or ()),
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        timezone=row.timezone or "UTC",
    )


def settings_record(settings: WarningSettings) -> dict[str, Any]:
    """The settings as the audit log (and the CLI's JSON) shows them."""
    return {
        "enabled": sorted(kind.value for kind in settings.enabled),
        "renewal_lead_days": list(settings.renewal_lead_days),
        "seat_window_hours": settings.seat_window_hours,
        "idle_days": settings.idle_days,
        "excluded_skus": sorted(settings.excluded_skus),
        "quiet_hours": None if settings.quiet_start is None else f"{settings.quiet_start:02d}-{settings.quiet_end:02d}",
        "timezone": settings.timezone,
    }


class WarningSettingsStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, organisation_id: int) -> WarningSettings:
        async with self._sessions() as session:
            return _from_row(await session.get(WarningSettingRow, organisation_id))

    async def all(self) -> dict[int, WarningSettings]:
        async with self._sessions() as session:
            return {row.organisation_id: _from_row(row) for row in await session.scalars(select(WarningSettingRow))}

    async def change(
        self,
        organisation_id: int,
        *,
        actor: str,
        enable: Iterable[str] = (),
        disable: Iterable[str] = (),
        leads: str | None = None,
        seat_window_hours: Any = None,
        idle_days: Any = None,
        excluded: str | None = None,
        quiet: str | None = None,
        timezone: str | None = None,
    ) -> WarningSettings:
        """Apply the given changes (each checked first: a bad value changes nothing) and audit them."""
        current = await self.get(organisation_id)
        enabled = set(current.enabled) | {parse_kind(k) for k in enable}
        enabled -= {parse_kind(k) for k in disable}
        changed = replace(current, enabled=frozenset(enabled))
        if leads is not None:
            changed = replace(changed, renewal_lead_days=parse_leads(leads))
        if seat_window_hours is not None:
            hours = parse_whole(
                seat_window_hours, low=1, high=167, field="seat_window_hours", what=_("The seat-window lead (hours)")
            )
            changed = replace(changed, seat_window_hours=hours)
        if idle_days is not None:
            days = parse_whole(idle_days, low=7, high=365, field="idle_days", what=_("The idle threshold (days)"))
            changed = replace(changed, idle_days=days)
        if excluded is not None:
            changed = replace(changed, excluded_skus=parse_offers(excluded))
        if quiet is not None:
            start, end = parse_quiet(quiet)
            changed = replace(changed, quiet_start=start, quiet_end=end)
        if timezone is not None:
            changed = replace(changed, timezone=parse_timezone(timezone))
        async with self._sessions.begin() as session:
            row = await session.get(WarningSettingRow, organisation_id)
            if row is None:
                row = WarningSettingRow(organisation_id=organisation_id)
                session.add(row)
            row.enabled = sorted(kind.value for kind in changed.enabled)
            row.renewal_lead_days = list(changed.renewal_lead_days)
            row.seat_window_hours = changed.seat_window_hours
            row.idle_days = changed.idle_days
            row.excluded_skus = sorted(changed.excluded_skus)
            row.quiet_start, row.quiet_end = changed.quiet_start, changed.quiet_end
            row.timezone = changed.timezone
            row.updated_by = actor
            audit.record(
                session,
                actor=actor,
                action="warnings.settings",
                organisation_id=organisation_id,
                before=settings_record(current),
                after=settings_record(changed),
            )
        return changed

    async def channel(self, organisation_id: int) -> str | None:
        """The organisation channel where warnings are also posted (None: admins' 1:1 chats only)."""
        async with self._sessions() as session:
            row = await session.get(WarningSettingRow, organisation_id)
            return row.channel_conversation_id if row is not None else None

    async def check_channel(self, organisation_id: int, conversation_id: str | None) -> str | None:
        """What `set_channel` would store (a bad channel is refused here, before anything changes)."""
        if not conversation_id or not conversation_id.strip():
            return None
        async with self._sessions() as session:
            return await organisation_channel(session, organisation_id, conversation_id)

    async def set_channel(self, organisation_id: int, conversation_id: str | None, *, actor: str) -> str | None:
        """The operator's setting: also post warnings in this channel (None or '': stop). It must be a
        conversation the bot was added to, of this organisation."""
        async with self._sessions.begin() as session:
            row = await session.get(WarningSettingRow, organisation_id)
            before = row.channel_conversation_id if row is not None else None
            channel = (
                await organisation_channel(session, organisation_id, conversation_id)
                if conversation_id and conversation_id.strip()
                else None
            )
            if row is None:
                defaults = WarningSettings()
                row = WarningSettingRow(
                    organisation_id=organisation_id,
                    enabled=sorted(kind.value for kind in defaults.enabled),
                    renewal_lead_days=list(defaults.renewal_lead_days),
                    seat_window_hours=defaults.seat_window_hours,
                    idle_days=defaults.idle_days,
                    excluded_skus=[],
                    timezone=defaults.timezone,
                )
                session.add(row)
            row.channel_conversation_id = channel
            row.updated_by = actor
            audit.record(
                session,
                actor=actor,
                action="warnings.channel",
                organisation_id=organisation_id,
                before={"channel": before},
                after={"channel": channel},
            )
        return channel
