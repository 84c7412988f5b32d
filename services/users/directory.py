"""The organisation's own user directory (kept by the bot): loaded from CSV by the operator, imported
into the Microsoft tenant (a generated password e-mailed to each person's address), and filled by
exporting tenant users (a directory password e-mailed, stored only as a scrypt hash)."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller, reading_for_recipient
from services.countries import normalise_country
from services.db import utcnow
from services.errors import DomainError, InvalidInput, NotFound
from services.i18n import _, ngettext
from services.idempotency import IdempotencyService
from services.mail import Mail, Mailer, MailNotDelivered, is_mail_address
from services.models import DirectoryUser, Organisation, TenantUser
from services.payloads import row_ids
from services.users.passwords import generate_password, hash_password, verify_password
from services.users.service import NewUser, UserService

log = logging.getLogger(__name__)

CSV_COLUMNS = ("email", "first_name", "last_name", "display_name", "user_name", "usage_location")
MAX_ROWS = 10_000
_LOCAL_SAFE = re.compile(r"[^a-z0-9._-]")


@dataclass(frozen=True)
class DirectoryEntry:
    entry_id: int
    email: str
    first_name: str
    last_name: str
    display_name: str
    user_name: str
    usage_location: str
    tenant_user_id: str | None
    has_password: bool


@dataclass(frozen=True)
class LoadResult:
    added: int
    updated: int
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EntryResult:
    name: str
    ok: bool
    message: str


def _entry(row: DirectoryUser) -> DirectoryEntry:
    return DirectoryEntry(
        row.id,
        row.email,
        row.first_name,
        row.last_name,
        row.display_name,
        row.user_name,
        row.usage_location,
        row.tenant_user_id,
        row.password_hash is not None,
    )


def matching(entries: Sequence[DirectoryEntry], search: str) -> list[DirectoryEntry]:
    """The entries whose e-mail address or name contains `search` (any case; all when it is empty)."""
    words = search.strip().lower()
    return [
        entry
        for entry in entries
        if not words
        or any(words in value.lower() for value in (entry.email, entry.display_name, entry.first_name, entry.last_name))
    ]


def suggested_user_name(entry: DirectoryEntry) -> str:
    """The user name to create in the tenant: the entry's own, else its e-mail's local part."""
    base = (entry.user_name or entry.email.split("@", 1)[0]).strip().lower()
    return _LOCAL_SAFE.sub("", base).strip("._-")[:64]


class DirectoryService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        users: UserService,
        idempotency: IdempotencyService,
        mailer: Mailer,
    ) -> None:
        self._sessions = sessions
        self._users = users
        self._idempotency = idempotency
        self._mailer = mailer

    # --- the operator's CSV -------------------------------------------------------------------

    async def load_csv(self, organisation_slug: str, text: str, *, actor: str) -> LoadResult:
        """Add or update directory entries (by e-mail) from CSV with the columns `CSV_COLUMNS`
        (header required; only `email` is mandatory). Bad lines are reported and skipped."""
        reader = csv.DictReader(io.StringIO(text))
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        if "email" not in header:
            raise InvalidInput(
                _("The CSV needs a header line with at least 'email' (columns: {join}).", join=", ".join(CSV_COLUMNS))
            )
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if unknown:
            raise InvalidInput(
                _(
                    "The CSV has {plural}: {join}. Known: {join2}.",
                    plural=ngettext("{n} unknown column", "{n} unknown columns", len(unknown)),
                    join=", ".join(unknown),
                    join2=", ".join(CSV_COLUMNS),
                )
            )
        reader.fieldnames = header
        parsed: dict[str, dict[str, str]] = {}
        errors: list[str] = []
        for number, raw in enumerate(reader, start=2):
            if number - 1 > MAX_ROWS:
                errors.append(
                    _(
                        "line {number}: more than {MAX_ROWS} rows; the rest was not read",
                        number=number,
                        MAX_ROWS=MAX_ROWS,
                    )
                )
                break
            values = {key: (raw.get(key) or "").strip() for key in CSV_COLUMNS}
            values["email"] = values["email"].lower()
            problem = _row_problem(values)
            if problem:
                errors.append(_("line {number}: {problem}", number=number, problem=problem))
                continue
            if values["usage_location"]:
                values["usage_location"] = normalise_country(values["usage_location"]) or ""
            values["display_name"] = values["display_name"] or f"{values['first_name']} {values['last_name']}".strip()
            parsed[values["email"]] = values
        added = updated = 0
        async with self._sessions() as session:
            org = await session.scalar(select(Organisation).where(Organisation.slug == organisation_slug))
            if org is None:
                raise NotFound(_("No organisation {organisation_slug!r}.", organisation_slug=organisation_slug))
            existing = {
                row.email: row
                for row in await session.scalars(select(DirectoryUser).where(DirectoryUser.organisation_id == org.id))
            }
            for email, values in parsed.items():
                row = existing.get(email)
                if row is None:
                    row = DirectoryUser(organisation_id=org.id, email=email)
                    session.add(row)
                    added += 1
                else:
                    updated += 1
                for key in ("first_name", "last_name", "display_name", "user_name", "usage_location"):
                    setattr(row, key, values[key])
            audit.record(
                session,
                actor=actor,
                action="directory.load_csv",
                organisation_id=org.id,
                target=organisation_slug,
                after={"added": added, "updated": updated, "rejected_lines": len(errors)},
            )
            await session.commit()
        return LoadResult(added, updated, errors)

    async def entries_of(self, organisation_slug: str) -> list[DirectoryEntry]:
        """The operator's view of an organisation's directory (no passwords, only whether one is set)."""
        async with self._sessions() as session:
            org = await session.scalar(select(Organisation).where(Organisation.slug == organisation_slug))
            if org is None:
                raise NotFound(_("No organisation {organisation_slug!r}.", organisation_slug=organisation_slug))
            rows = await session.scalars(
                select(DirectoryUser).where(DirectoryUser.organisation_id == org.id).order_by(DirectoryUser.email)
            )
            return [_entry(row) for row in rows]

    # --- in Teams -----------------------------------------------------------------------------

    async def entries(self, caller: Caller) -> list[DirectoryEntry]:
        ctx = await self._users.context(caller)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(DirectoryUser)
                .where(DirectoryUser.organisation_id == ctx.organisation_id)
                .order_by(DirectoryUser.display_name, DirectoryUser.email)
            )
            return [_entry(row) for row in rows]

    async def import_to_tenant(
        self, caller: Caller, entry_ids: Sequence[int | str], *, request_key: str, send_to: str = ""
    ) -> list[EntryResult]:
        """Create the selected directory people as tenant users; each one's password is e-mailed to
        the address entered (`send_to`), else to their directory address. One person failing does
        not stop the others."""
        ctx = await self._users.context(caller)
        _need_key(request_key)
        send_to = send_to.strip()
        if send_to and not is_mail_address(send_to):
            raise InvalidInput(
                _("Enter a valid e-mail address for the passwords, or leave it empty."), field="import_send_to"
            )
        ids = _int_ids(entry_ids)
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(DirectoryUser).where(
                        DirectoryUser.organisation_id == ctx.organisation_id, DirectoryUser.id.in_(ids)
                    )
                )
            )
        if len(rows) != len(ids):
            raise NotFound(_("Some of those people are not in your organisation's directory. Nothing was changed."))
        domains = await self._users.domains(ctx)
        results = []
        for row in rows:
            entry = _entry(row)
            name = entry.display_name or entry.email
            if entry.tenant_user_id and await self._in_tenant(ctx.organisation_id, entry.tenant_user_id):
                results.append(EntryResult(name, True, _("already in the tenant")))
                continue
            form = NewUser(
                first_name=entry.first_name,
                last_name=entry.last_name,
                display_name=entry.display_name,
                user_name=suggested_user_name(entry),
                domain=domains[0] if domains else "",
                usage_location=entry.usage_location or ctx.country,
                password_email=send_to or entry.email,
            )
            try:
                created = await self._users.create_user(caller, form, request_key=f"{request_key}:{entry.entry_id}")
            except DomainError as error:
                results.append(EntryResult(name, False, error.message))
                continue
            async with self._sessions() as session:
                stored = await session.get(DirectoryUser, entry.entry_id)
                if stored is not None:
                    stored.tenant_user_id = created.user_id
                    audit.record(
                        session,
                        actor=ctx.actor,
                        action="directory.import",
                        organisation_id=ctx.organisation_id,
                        target=entry.email,
                        after={"user_principal_name": created.user_principal_name},
                    )
                    await session.commit()
            if created.mail_failed:
                note = _("password e-mail could not be sent")
            elif created.mail_queued:
                note = _(
                    "the mail server is not answering: the password e-mail to {value} is queued",
                    value=send_to or entry.email,
                )
            else:
                note = _("password sent to {value}", value=send_to or entry.email)
            results.append(
                EntryResult(
                    name,
                    True,
                    _(
                        "created as {user_principal_name}; {note}",
                        user_principal_name=created.user_principal_name,
                        note=note,
                    ),
                )
            )
        return results

    async def _in_tenant(self, organisation_id: int, user_id: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(TenantUser.id).where(
                    TenantUser.organisation_id == organisation_id, TenantUser.user_id == user_id
                )
            )
            return found is not None

    async def export_from_tenant(
        self, caller: Caller, user_ids: Sequence[str], *, request_key: str, send_to: str = ""
    ) -> list[EntryResult]:
        """Copy the selected tenant users into the directory, each with a new directory password that
        is e-mailed (to `send_to`, else the user's own address) and stored only as a hash."""
        ctx = await self._users.context(caller)
        _need_key(request_key)
        send_to = send_to.strip()
        if send_to and not is_mail_address(send_to):
            raise InvalidInput(_("Enter a valid e-mail address for the passwords, or leave it empty."), field="send_to")
        wanted = list(dict.fromkeys(str(user_id).lower() for user_id in user_ids if str(user_id).strip()))
        if not wanted:
            raise InvalidInput(_("Select at least one user."), field="users")
        async with self._sessions() as session:
            users = list(
                await session.scalars(
                    select(TenantUser).where(
                        TenantUser.organisation_id == ctx.organisation_id, TenantUser.user_id.in_(wanted)
                    )
                )
            )
        if len(users) != len(wanted):
            raise NotFound(_("Some of those users are not in your organisation's tenant. Nothing was changed."))
        results = []
        for user in users:
            claim = await self._idempotency.claim(
                f"directory.export:{request_key}:{user.user_id}",
                purpose="directory.export",
                organisation_id=ctx.organisation_id,
                resource_type="directory_user",
                resource_id=user.user_principal_name,
            )
            if not claim.first_use:
                results.append(EntryResult(user.display_name, True, _("already exported")))
                continue
            password = generate_password()
            digest = await hash_password(password)
            async with self._sessions() as session:
                row = await session.scalar(
                    select(DirectoryUser).where(
                        DirectoryUser.organisation_id == ctx.organisation_id,
                        DirectoryUser.email == user.user_principal_name,
                    )
                )
                if row is None:
                    row = DirectoryUser(organisation_id=ctx.organisation_id, email=user.user_principal_name)
                    session.add(row)
                row.first_name, row.last_name, row.display_name = user.first_name, user.last_name, user.display_name
                row.user_name = user.user_principal_name.split("@", 1)[0]
                row.usage_location = user.usage_location
                row.tenant_user_id = user.user_id
                row.password_hash = digest
                row.password_set_at = utcnow()
                audit.record(
                    session,
                    actor=ctx.actor,
                    action="directory.export",
                    organisation_id=ctx.organisation_id,
                    target=user.user_principal_name,
                    after={"tenant_user_id": user.user_id, "password_sent_to": send_to or user.user_principal_name},
                )
                await session.commit()
            to = send_to or user.user_principal_name
            with await reading_for_recipient(self._sessions, ctx.organisation_id, to):  # the recipient's language
                mail = Mail(
                    to=to,
                    subject=_("Directory password for {display_name}", display_name=user.display_name),
                    body=_(
                        "{display_name} ({user_principal_name}) was added to your organisation's user "
                        "directory.\n\nDirectory password: {{password}}\n",
                        display_name=user.display_name,
                        user_principal_name=user.user_principal_name,
                    ),
                    secrets={"password": password},
                )
            try:
                receipt = await self._mailer.send(mail, organisation_id=ctx.organisation_id)
                if receipt.queued:
                    note = _("exported; the mail server is not answering: the password e-mail to {to} is queued", to=to)
                else:
                    note = _("exported; password sent to {to}", to=to)
                results.append(EntryResult(user.display_name, True, note))
            except (MailNotDelivered, InvalidInput):
                results.append(EntryResult(user.display_name, False, _("exported, but the password e-mail failed")))
        return results

    async def check_password(self, organisation_id: int, email: str, password: SecretStr) -> bool:
        """Whether `password` is the directory password of that entry."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(DirectoryUser).where(
                    DirectoryUser.organisation_id == organisation_id, DirectoryUser.email == email.lower()
                )
            )
        if row is None or row.password_hash is None:
            return False
        return await verify_password(password, row.password_hash)


def _row_problem(values: dict[str, str]) -> str | None:
    if not is_mail_address(values["email"]):
        return _("{value} is not an e-mail address", value=values["email"] or _("(empty)"))
    if values["usage_location"] and normalise_country(values["usage_location"]) is None:
        return _(
            "usage_location {usage_location!r} is not a two-letter country code",
            usage_location=values["usage_location"],
        )
    for key in ("first_name", "last_name"):
        if len(values[key]) > 64:
            return _("{key} is longer than 64 characters", key=key)
    if len(values["display_name"]) > 256:
        return _("display_name is longer than 256 characters")
    if values["user_name"] and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", values["user_name"]):
        return _("user_name may use letters, digits, dots, dashes and underscores")
    return None


def _need_key(request_key: str) -> None:
    """Exactly once needs the card's own request key; without one, two different submits would
    share a key and the second would be taken for the first."""
    if not request_key.strip():
        raise InvalidInput(_("This card is out of date; open the user directory again."))


def _int_ids(values: Sequence[int | str]) -> list[int]:
    ids = row_ids(values, _("That directory entry is not in your organisation's directory."))
    if not ids:
        raise InvalidInput(_("Select at least one person."), field="entries")
    return ids
