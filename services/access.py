"""Who is calling, and may they do this? Every service call takes its organisation and roles
from here — never from a card payload."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from services import audit
from services.errors import InvalidInput, NotRegistered, PermissionDenied
from services.formatting import Reader, reading
from services.i18n import N_, _
from services.locales import DEFAULT_LOCALE, member_locale, parse_language
from services.models import Member, Organisation, WarningSettingRow
from services.organisations import normalise_email
from services.roles import Permission, permissions_of

if TYPE_CHECKING:
    from services.jobs import JobView

log = logging.getLogger(__name__)
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class ChannelIdentity:
    """What the channel says about the sender of an activity (plain strings, no SDK types)."""

    tenant_id: str | None
    aad_object_id: str | None
    channel_user_id: str
    name: str = ""


@dataclass(frozen=True)
class Caller:
    """A resolved, registered member acting within their own organisation."""

    member_id: int
    organisation_id: int
    organisation_name: str
    email: str
    display_name: str
    roles: frozenset[str]
    # How they read: the CLDR locale of this turn (the bot sets it from Teams' `activity.locale`,
    # see services/locales.py) and their organisation's time zone (its warning settings; UTC if none).
    locale: str = DEFAULT_LOCALE
    timezone: str = "UTC"
    # Their own choice of language (None: follow Teams) and the locale Teams last sent for them.
    language: str | None = None
    teams_locale: str | None = None

    @property
    def actor(self) -> str:
        """How the caller appears in the audit log."""
        return self.email

    def can(self, permission: Permission) -> bool:
        return permission in permissions_of(self.roles)

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(_(_DENIED_MESSAGES.get(permission, N_("Your role does not allow that."))))


_DENIED_MESSAGES: dict[Permission, str] = {
    Permission.MANAGE_SERVICES: N_(
        "Only an admin of your organisation can do that. Ask your reseller to make you one."
    ),
    Permission.REQUEST_SUSPENSION: N_("Only an admin of your organisation can ask for a suspension."),
    Permission.DECIDE_SUSPENSION: N_("Only an approver of your organisation can decide on suspensions."),
    Permission.READ_SUBSCRIPTIONS: N_("Your role does not include reading subscriptions."),
    Permission.READ_BILLING: N_("Only admins and billing readers of your organisation can see bills."),
}


def _caller(member: Member, timezone: str | None = None) -> Caller:
    return Caller(
        member_id=member.id,
        organisation_id=member.organisation_id,
        organisation_name=member.organisation.name,
        email=member.email,
        display_name=member.display_name,
        roles=member.roles,
        timezone=timezone or "UTC",
        language=member.language,
        teams_locale=member.teams_locale,
    )


async def _timezone_of(session: AsyncSession, organisation_id: int) -> str | None:
    return await session.scalar(
        select(WarningSettingRow.timezone).where(WarningSettingRow.organisation_id == organisation_id)
    )


async def recipient_reader(
    sessions: async_sessionmaker[AsyncSession], organisation_id: int | None, address: str
) -> Reader | None:
    """How the member of `organisation_id` with the e-mail `address` reads (their own choice of
    language, else the locale Teams last sent for them; their organisation's time zone), for an
    e-mail to them; None when no member has that address (the e-mail reads as the sender's turn)."""
    if organisation_id is None:
        return None
    try:
        email = normalise_email(address)
    except InvalidInput:
        return None
    async with sessions() as session:
        member = await session.scalar(
            select(Member).where(Member.organisation_id == organisation_id, Member.email == email)
        )
        if member is None:
            return None
        timezone = await _timezone_of(session, organisation_id)
    return Reader(member_locale(member.language, member.teams_locale), timezone or "UTC")


async def reading_for_recipient(
    sessions: async_sessionmaker[AsyncSession], organisation_id: int | None, address: str
) -> AbstractContextManager[object]:
    """Write an e-mail to `address` in its recipient's language when they are a member (see
    `recipient_reader`); otherwise as the reader of the moment (who asked)."""
    reader = await recipient_reader(sessions, organisation_id, address)
    return reading(reader.locale, reader.timezone) if reader is not None else contextlib.nullcontext()


def _identity_key(identity: ChannelIdentity) -> tuple[str | None, str | None, str]:
    return (identity.tenant_id, identity.aad_object_id, identity.channel_user_id)


class AccessService:
    """Resolves callers from channel identities and binds registered e-mails to AAD object ids.

    A resolved caller is remembered for `cache_seconds` (a chat is a burst of turns by one person;
    resolving costs two queries). Changes made in this process drop the memory at once (`forget`);
    a change made elsewhere — the operator CLI, another replica — takes effect within that time.
    Unknown callers are never remembered, so a newly registered member is recognised at once.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        allow_channel_user_id: bool,
        cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Only the unauthenticated local mode may trust `from.id` (the Playground's users).
        self._sessions = sessions
        self._allow_channel_user_id = allow_channel_user_id
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._remembered: dict[tuple[str | None, str | None, str], tuple[float, Caller]] = {}

    def forget(self) -> None:
        """Drop every remembered caller (after a change to members, roles or organisations)."""
        self._remembered.clear()

    def _recall(self, identity: ChannelIdentity) -> Caller | None:
        if self._cache_seconds <= 0:
            return None
        remembered = self._remembered.get(_identity_key(identity))
        if remembered is None:
            return None
        expires_at, caller = remembered
        if expires_at <= self._clock():
            self._remembered.pop(_identity_key(identity), None)
            return None
        return caller

    def _remember(self, identity: ChannelIdentity, caller: Caller) -> None:
        if self._cache_seconds <= 0:
            return
        if len(self._remembered) >= _MAX_REMEMBERED:
            self._remembered.clear()  # bounded memory; the next turns simply query again
        self._remembered[_identity_key(identity)] = (self._clock() + self._cache_seconds, caller)

    def _forget_member(self, member_id: int) -> None:
        for key, (_expires, remembered) in list(self._remembered.items()):
            if remembered.member_id == member_id:
                self._remembered.pop(key, None)

    async def remember_teams_locale(self, caller: Caller, tag: str) -> None:
        """Keep the locale Teams sent with the member's activity, for what is sent to them outside
        a turn (warnings, job notices, e-mails). Written only when it changed."""
        tag = tag.strip()[:35]
        if not tag or tag == caller.teams_locale:
            return
        async with self._sessions.begin() as session:
            await session.execute(update(Member).where(Member.id == caller.member_id).values(teams_locale=tag))
        self._forget_member(caller.member_id)

    async def set_language(self, caller: Caller, text: str) -> str | None:
        """The member's own choice of language (`nb`, `de-DE`, or `auto` to follow Teams): the
        CLDR locale now used, or None for auto. Anything else is refused, nothing changes."""
        language = parse_language(text)
        async with self._sessions.begin() as session:
            member = await session.get(Member, caller.member_id)
            if member is None:
                raise NotRegistered(_("You are not registered with your reseller yet."))
            before = member.language
            member.language = language
            audit.record(
                session,
                actor=caller.actor,
                action="member.language",
                organisation_id=member.organisation_id,
                target=member.email,
                before={"language": before},
                after={"language": language},
            )
        self._forget_member(caller.member_id)
        return language

    async def resolve(self, identity: ChannelIdentity) -> Caller | None:
        """The caller, or None when they need binding by e-mail (see `bind_by_email`) or are unknown."""
        caller = self._recall(identity)
        if caller is not None:
            return caller
        async with self._sessions() as session:
            member = await self._find(session, identity)
            caller = (
                _caller(member, await _timezone_of(session, member.organisation_id)) if member is not None else None
            )
        if caller is not None:
            self._remember(identity, caller)
        return caller

    async def _find(self, session: AsyncSession, identity: ChannelIdentity) -> Member | None:
        base = select(Member).join(Organisation).options(joinedload(Member.organisation)).order_by(Member.id).limit(1)
        if identity.tenant_id:
            base = base.where(Organisation.teams_tenant_id == identity.tenant_id.lower())
        elif not self._allow_channel_user_id:
            return None
        if identity.aad_object_id:
            member = await session.scalar(base.where(Member.aad_object_id == identity.aad_object_id))
            if member is not None:
                return member
        if self._allow_channel_user_id and identity.channel_user_id:
            return await session.scalar(base.where(Member.channel_user_id == identity.channel_user_id))
        return None

    async def bind_by_email(self, identity: ChannelIdentity, email: str) -> Caller | None:
        """First contact of a member registered by e-mail/UPN: remember their AAD object id.

        Only a member of the organisation linked to the caller's own Teams tenant, and not yet
        bound to another object id, can be bound.
        """
        if not identity.tenant_id or not identity.aad_object_id:
            return None
        try:
            address = normalise_email(email)
        except InvalidInput:
            return None
        async with self._sessions.begin() as session:
            member = await session.scalar(
                select(Member)
                .join(Organisation)
                .options(joinedload(Member.organisation))
                .where(
                    Organisation.teams_tenant_id == identity.tenant_id.lower(),
                    Member.email == address,
                    Member.aad_object_id.is_(None),
                )
            )
            if member is None:
                return None
            member.aad_object_id = identity.aad_object_id
            member.channel_user_id = identity.channel_user_id
            if not member.display_name and identity.name:
                member.display_name = identity.name
            audit.record(
                session,
                actor=address,
                action="member.bind",
                organisation_id=member.organisation_id,
                target=address,
                after={"aad_object_id": identity.aad_object_id},
            )
            log.info("bound member %s to its AAD object id", member.id)
            return _caller(member, await _timezone_of(session, member.organisation_id))

    async def member_caller(self, organisation_id: int, email: str) -> Caller | None:
        """The member of `organisation_id` registered with `email` (e.g. who submitted a job), as a
        caller with their current roles; None if they are no longer a member."""
        try:
            address = normalise_email(email)
        except InvalidInput:
            return None
        async with self._sessions() as session:
            member = await session.scalar(
                select(Member)
                .options(joinedload(Member.organisation))
                .where(Member.organisation_id == organisation_id, Member.email == address)
            )
            if member is None:
                return None
            return _caller(member, await _timezone_of(session, member.organisation_id))

    async def reader_of(self, organisation_id: int | None, email: str) -> Reader:
        """How a member reads what the bot sends outside a turn (job outcomes, warnings, e-mails):
        their own choice of language, else the locale Teams last sent for them, else English; their
        organisation's time zone. Someone who is no member (the system, a removed member): English, UTC."""
        caller = await self.member_caller(organisation_id, email) if organisation_id is not None else None
        if caller is None:
            return Reader()
        return Reader(member_locale(caller.language, caller.teams_locale), caller.timezone)

    async def reader_of_member(self, member_id: int) -> Reader:
        """As `reader_of`, by the member's id."""
        async with self._sessions() as session:
            member = await session.get(Member, member_id, options=[joinedload(Member.organisation)])
            if member is None:
                return Reader()
            timezone = await _timezone_of(session, member.organisation_id)
        return Reader(member_locale(member.language, member.teams_locale), timezone or "UTC")

    async def job_reader(self, job: JobView) -> Reader:
        """How the requester of `job` reads (for `JobService.set_reader`)."""
        return await self.reader_of(job.organisation_id, job.requested_by)

    async def require_caller(self, identity: ChannelIdentity) -> Caller:
        caller = await self.resolve(identity)
        if caller is None:
            raise NotRegistered(_("You are not registered with your reseller yet."))
        return caller
