"""Customer organisations and their members, as the reseller's operator registers them."""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from services import audit
from services.countries import normalise_country
from services.errors import Conflict, InvalidInput, NotFound
from services.i18n import _, ngettext
from services.locales import parse_language
from services.models import Member, MemberRole, Organisation
from services.roles import Role, parse_role

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")
SLUG_PATTERN = re.compile(r"^(?=.{2,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
# Microsoft's rule for the <prefix>.onmicrosoft.com domain.
DOMAIN_PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,26}$")
# Entra tenant ids are GUIDs; the Agents Playground's has a 13-digit last group, so the check is
# on the alphabet and length rather than the exact GUID layout.
TENANT_ID_PATTERN = re.compile(r"^[0-9a-f][0-9a-f-]{30,38}[0-9a-f]$")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})

# Profile fields an operator may set; the keys are the model's column names.
PROFILE_FIELDS: tuple[str, ...] = (
    "name",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "contact_first_name",
    "contact_last_name",
    "contact_email",
    "contact_phone",
    "culture",
    "language",
    "registration_number",
    "domain_prefix",
    "allow_self_approval",
)


def normalise_email(value: str) -> str:
    email = value.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise InvalidInput(_("{value!r} is not a valid e-mail address.", value=value), field="email")
    return email


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidInput(_("{value!r} is not yes or no.", value=value), field="allow_self_approval")


def _clean_profile(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise InvalidInput(
            ngettext(
                "There is {n} unknown organisation field: {fields}.",
                "There are {n} unknown organisation fields: {fields}.",
                len(unknown),
                fields=", ".join(sorted(unknown)),
            )
        )
    cleaned: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "allow_self_approval":
            cleaned[key] = _flag(value)
            continue
        text = "" if value is None else str(value).strip()
        if key == "domain_prefix" and text and not DOMAIN_PREFIX_PATTERN.match(text):
            raise InvalidInput(
                _("The domain prefix must start with a letter and have only letters and digits (at most 27)."),
                field=key,
            )
        if key == "name" and not text:
            raise InvalidInput(_("The organisation needs a name."), field="name")
        if key == "country" and text:
            code = normalise_country(text)
            if code is None:
                raise InvalidInput(
                    _("Country must be a two-letter ISO code (e.g. GB), not {value!r}.", value=value), field=key
                )
            text = code
        if key == "contact_email" and text:
            text = normalise_email(text)
        limit = getattr(Organisation.__table__.c[key].type, "length", None)
        if limit is not None and len(text) > limit:
            raise InvalidInput(
                _(
                    "{capitalize} is limited to {limit} characters.",
                    capitalize=key.replace("_", " ").capitalize(),
                    limit=limit,
                ),
                field=key,
            )
        cleaned[key] = text
    return cleaned


@dataclass(frozen=True)
class MemberView:
    id: int
    email: str
    display_name: str
    roles: frozenset[str]
    aad_object_id: str | None
    channel_user_id: str | None
    language: str | None = None  # their own choice; None follows Teams
    teams_locale: str | None = None


@dataclass(frozen=True)
class OrganisationView:
    id: int
    slug: str
    name: str
    teams_tenant_id: str | None
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str
    country: str
    contact_first_name: str
    contact_last_name: str
    contact_email: str
    contact_phone: str
    culture: str
    language: str
    registration_number: str
    domain_prefix: str
    allow_self_approval: bool
    partner_center_customer_id: str | None = None
    members: tuple[MemberView, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "members"}
        data["members"] = [
            {
                "email": m.email,
                "display_name": m.display_name,
                "roles": sorted(m.roles),
                "aad_object_id": m.aad_object_id,
                "channel_user_id": m.channel_user_id,
            }
            for m in self.members
        ]
        return data


def _member_view(member: Member) -> MemberView:
    return MemberView(
        id=member.id,
        email=member.email,
        display_name=member.display_name,
        roles=member.roles,
        aad_object_id=member.aad_object_id,
        channel_user_id=member.channel_user_id,
        language=member.language,
        teams_locale=member.teams_locale,
    )


def _organisation_view(org: Organisation, *, with_members: bool = True) -> OrganisationView:
    values = {name: getattr(org, name) for name in PROFILE_FIELDS}
    return OrganisationView(
        id=org.id,
        slug=org.slug,
        teams_tenant_id=org.teams_tenant_id,
        partner_center_customer_id=org.partner_center_customer_id,
        members=tuple(_member_view(m) for m in org.members) if with_members else (),
        **values,
    )


def _snapshot(org: Organisation) -> dict[str, Any]:
    return {name: getattr(org, name) for name in (*PROFILE_FIELDS, "teams_tenant_id", "partner_center_customer_id")}


@asynccontextmanager
async def _unique(message: str) -> AsyncIterator[None]:
    """A concurrent writer that won the race on a unique column is a conflict, not a crash."""
    try:
        yield
    except IntegrityError:
        raise Conflict(message) from None


_Mutator = TypeVar("_Mutator", bound=Callable[..., Awaitable[Any]])


def _changes_access(method: _Mutator) -> _Mutator:
    """After a change that can alter who a caller is (members, roles, tenant, organisation name),
    tell the access layer to forget the callers it remembers."""

    @functools.wraps(method)
    async def wrapper(self: OrganisationService, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        finally:
            self._on_access_change()

    return cast(_Mutator, wrapper)


class OrganisationService:
    """Create and change organisations and members; every change is audited."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, on_access_change: Callable[[], None] = lambda: None
    ) -> None:
        self._sessions = sessions
        self._on_access_change = on_access_change

    async def _load(self, session: AsyncSession, slug: str) -> Organisation:
        org = await session.scalar(
            select(Organisation)
            .where(Organisation.slug == slug.strip().lower())
            .options(selectinload(Organisation.members))
        )
        if org is None:
            raise NotFound(_("No organisation {slug!r}. `cspbot org list` shows the registered ones.", slug=slug))
        return org

    async def create(self, slug: str, profile: Mapping[str, Any], *, actor: str) -> OrganisationView:
        given, slug = slug, slug.strip().lower()
        if not SLUG_PATTERN.match(slug):
            raise InvalidInput(
                _(
                    "{given!r} is not a valid short name: use 2-63 lower-case letters and digits, words joined "
                    "by single dashes.",
                    given=given,
                ),
                field="slug",
            )
        values = _clean_profile(profile)
        if "name" not in values:
            raise InvalidInput(_("The organisation needs a name."), field="name")
        async with self._sessions.begin() as session:
            org = Organisation(slug=slug, **values)
            session.add(org)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(_("An organisation {slug!r} already exists.", slug=slug)) from None
            audit.record(
                session,
                actor=actor,
                action="organisation.create",
                organisation_id=org.id,
                target=slug,
                after=_snapshot(org),
            )
            await session.refresh(org, ["members"])
            return _organisation_view(org)

    async def list(self) -> list[OrganisationView]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Organisation).order_by(Organisation.slug).options(selectinload(Organisation.members))
            )
            return [_organisation_view(org) for org in rows]

    async def get(self, slug: str) -> OrganisationView:
        async with self._sessions() as session:
            return _organisation_view(await self._load(session, slug))

    async def get_by_id(self, organisation_id: int) -> OrganisationView:
        async with self._sessions() as session:
            org = await session.get(Organisation, organisation_id, options=[selectinload(Organisation.members)])
            if org is None:
                raise NotFound(_("That organisation no longer exists."))
            return _organisation_view(org)

    @_changes_access
    async def update(self, slug: str, changes: Mapping[str, Any], *, actor: str) -> OrganisationView:
        values = _clean_profile(changes)
        if not values:
            raise InvalidInput(_("Nothing to change: give at least one field."))
        async with self._sessions.begin() as session:
            org = await self._load(session, slug)
            before = _snapshot(org)
            for key, value in values.items():
                setattr(org, key, value)
            audit.record(
                session,
                actor=actor,
                action="organisation.update",
                organisation_id=org.id,
                target=org.slug,
                before=before,
                after=_snapshot(org),
            )
            await session.flush()
            return _organisation_view(org)

    @_changes_access
    async def link_teams_tenant(self, slug: str, tenant_id: str, *, actor: str) -> OrganisationView:
        tenant_id = tenant_id.strip().lower()
        if not TENANT_ID_PATTERN.match(tenant_id):
            raise InvalidInput(
                _(
                    "{tenant_id!r} is not a tenant id: give the Microsoft Entra tenant id (a GUID).",
                    tenant_id=tenant_id,
                ),
                field="tenant_id",
            )
        async with (
            _unique(_("Tenant {tenant_id} is already linked to another organisation.", tenant_id=tenant_id)),
            self._sessions.begin() as session,
        ):
            org = await self._load(session, slug)
            other = await session.scalar(
                select(Organisation).where(Organisation.teams_tenant_id == tenant_id, Organisation.id != org.id)
            )
            if other is not None:
                raise Conflict(
                    _(
                        "Tenant {tenant_id} is already linked to organisation {slug!r}.",
                        tenant_id=tenant_id,
                        slug=other.slug,
                    )
                )
            before = _snapshot(org)
            org.teams_tenant_id = tenant_id
            audit.record(
                session,
                actor=actor,
                action="organisation.link_tenant",
                organisation_id=org.id,
                target=org.slug,
                before=before,
                after=_snapshot(org),
            )
            await session.flush()
            return _organisation_view(org)

    async def set_partner_center_customer(
        self, organisation_id: int, customer_id: str, *, actor: str
    ) -> OrganisationView:
        """Record the organisation's tenant as a customer at Microsoft (after Microsoft created or
        confirmed it). Setting the same id again is a no-op; another id is refused (one tenant each)."""
        customer_id = customer_id.strip().lower()
        if not TENANT_ID_PATTERN.match(customer_id):
            raise InvalidInput(
                _("{customer_id!r} is not a Partner Center customer id (a GUID).", customer_id=customer_id),
                field="customer_id",
            )
        async with (
            _unique(_("Customer {customer_id} already belongs to another organisation.", customer_id=customer_id)),
            self._sessions.begin() as session,
        ):
            org = await session.get(Organisation, organisation_id)
            if org is None:
                raise NotFound(_("That organisation no longer exists."))
            if org.partner_center_customer_id == customer_id:
                return _organisation_view(org, with_members=False)
            if org.partner_center_customer_id is not None:
                raise Conflict(_("Organisation {slug!r} already has a Microsoft tenant.", slug=org.slug))
            before = _snapshot(org)
            org.partner_center_customer_id = customer_id
            audit.record(
                session,
                actor=actor,
                action="organisation.partner_center_customer",
                organisation_id=org.id,
                target=org.slug,
                before=before,
                after=_snapshot(org),
            )
            await session.flush()
            return _organisation_view(org, with_members=False)

    @_changes_access
    async def add_member(
        self,
        slug: str,
        email: str,
        roles: Iterable[str],
        *,
        actor: str,
        display_name: str = "",
        channel_user_id: str | None = None,
        aad_object_id: str | None = None,
    ) -> MemberView:
        address = normalise_email(email)
        parsed = sorted({parse_role(role) for role in roles})
        if not parsed:
            raise InvalidInput(_("Give at least one role: admin, approver or billing."), field="role")
        async with (
            _unique(_("{address} is already a member of {slug}.", address=address, slug=slug)),
            self._sessions.begin() as session,
        ):
            org = await self._load(session, slug)
            taken = await session.scalar(
                select(func.count())
                .select_from(Member)
                .where(Member.organisation_id == org.id, Member.email == address)
            )
            if taken:
                raise Conflict(
                    _(
                        "{address} is already a member of {slug}; change their roles instead.",
                        address=address,
                        slug=org.slug,
                    )
                )
            member = Member(
                organisation_id=org.id,
                email=address,
                display_name=display_name.strip(),
                channel_user_id=channel_user_id,
                aad_object_id=aad_object_id,
                role_rows=[MemberRole(role=role.value) for role in parsed],
            )
            session.add(member)
            await session.flush()
            audit.record(
                session,
                actor=actor,
                action="member.add",
                organisation_id=org.id,
                target=address,
                after={"roles": [r.value for r in parsed], "display_name": member.display_name},
            )
            return _member_view(member)

    @_changes_access
    async def remove_member(self, slug: str, email: str, *, actor: str) -> None:
        address = normalise_email(email)
        async with self._sessions.begin() as session:
            org = await self._load(session, slug)
            member = next((m for m in org.members if m.email == address), None)
            if member is None:
                raise NotFound(_("{address} is not a member of {slug}.", address=address, slug=org.slug))
            audit.record(
                session,
                actor=actor,
                action="member.remove",
                organisation_id=org.id,
                target=address,
                before={"roles": sorted(member.roles)},
            )
            await session.delete(member)

    @_changes_access
    async def set_roles(
        self, slug: str, email: str, *, add: Iterable[str] = (), remove: Iterable[str] = (), actor: str
    ) -> MemberView:
        address = normalise_email(email)
        to_add = {parse_role(r) for r in add}
        to_remove = {parse_role(r) for r in remove}
        async with self._sessions.begin() as session:
            org = await self._load(session, slug)
            member = next((m for m in org.members if m.email == address), None)
            if member is None:
                raise NotFound(_("{address} is not a member of {slug}.", address=address, slug=org.slug))
            before = sorted(member.roles)
            wanted = (set(member.roles) | {r.value for r in to_add}) - {r.value for r in to_remove}
            if not wanted:
                raise InvalidInput(
                    _("{address} would be left without a role; remove the member instead.", address=address),
                    field="role",
                )
            if wanted == set(before):
                return _member_view(member)
            member.role_rows = [MemberRole(role=role) for role in sorted(wanted)]
            audit.record(
                session,
                actor=actor,
                action="member.roles",
                organisation_id=org.id,
                target=address,
                before={"roles": before},
                after={"roles": sorted(wanted)},
            )
            await session.flush()
            return _member_view(member)

    async def set_language(self, slug: str, email: str, language: str, *, actor: str) -> MemberView:
        """A member's language, set by the operator: a language the bot speaks (`nb`, `de-DE`) or
        `auto` (follow Teams). Anything else is refused and nothing changes."""
        address = normalise_email(email)
        chosen = parse_language(language)
        async with self._sessions.begin() as session:
            org = await self._load(session, slug)
            member = next((m for m in org.members if m.email == address), None)
            if member is None:
                raise NotFound(_("{address} is not a member of {slug}.", address=address, slug=org.slug))
            before = member.language
            member.language = chosen
            audit.record(
                session,
                actor=actor,
                action="member.language",
                organisation_id=org.id,
                target=address,
                before={"language": before},
                after={"language": chosen},
            )
            await session.flush()
            return _member_view(member)


__all__ = ["OrganisationService", "OrganisationView", "MemberView", "Role", "PROFILE_FIELDS", "normalise_email"]
