"""Users of the organisation's Microsoft tenant: the list (from the synced copy), one user with their
licences, and new users (created with Microsoft, password e-mailed). Admins only; organisation scope
on every call; ids from cards are looked up within the caller's organisation."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller, reading_for_recipient
from services.countries import normalise_country
from services.db import utcnow
from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.i18n import N_, _
from services.idempotency import IdempotencyService
from services.jobs import JobService, JobView
from services.mail import Mail, Mailer, MailNotDelivered, is_mail_address
from services.models import IdempotencyKey, LicencePool, Organisation, SubscriptionRow, TenantUser, UserSyncState
from services.partner_center import PartnerCenterClient
from services.partner_center.errors import PartnerCenterConflict, PartnerCenterError, PartnerCenterInvalidInput
from services.partner_center.models import CustomerUser, PasswordProfile
from services.roles import Permission
from services.users.passwords import generate_password
from services.users.sync import UserSync, apply_user

log = logging.getLogger(__name__)

PAGE_SIZE = 10
# A never-synced copy is synced before the list is shown, for at most this long (Teams re-sends a
# message not answered within ~15 s; the bot shows "typing…" meanwhile).
FIRST_SYNC_WAIT_SECONDS = 8.0
MAX_ROWS_BY_ID = 200
STALE_AFTER = timedelta(minutes=5)
SYNC_JOB = "users.sync"
_LOCAL_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
NO_TENANT = N_("Your organisation has no Microsoft tenant yet. Type **add tenant** to create or link one first.")


@dataclass(frozen=True)
class TenantContext:
    organisation_id: int
    customer_id: str
    country: str
    actor: str


@dataclass(frozen=True)
class UserRow:
    user_id: str
    display_name: str
    user_principal_name: str
    state: str
    licence_count: int
    usage_location: str


@dataclass(frozen=True)
class UsersPage:
    rows: list[UserRow]
    total: int
    page: int
    page_count: int
    search: str
    synced_at: datetime | None
    syncing: bool
    last_error: str = ""


@dataclass(frozen=True)
class SubscriptionBrief:
    subscription_id: str
    name: str
    quantity: int
    status: str
    term_duration: str
    billing_cycle: str


@dataclass(frozen=True)
class UserLicence:
    licence_sku_id: str
    name: str
    subscriptions: list[SubscriptionBrief]


@dataclass(frozen=True)
class UserDetail:
    user_id: str
    display_name: str
    user_principal_name: str
    first_name: str
    last_name: str
    usage_location: str
    state: str
    licences: list[UserLicence]
    licences_synced_at: datetime | None


@dataclass(frozen=True)
class NewUser:
    first_name: str
    last_name: str
    display_name: str
    user_name: str  # the local part, before the @
    domain: str
    usage_location: str
    password_email: str


@dataclass(frozen=True)
class CreatedUser:
    user_id: str
    user_principal_name: str
    display_name: str
    password_sent_to: str = ""
    mail_failed: bool = False
    already_done: bool = False
    # The mail server did not take the password e-mail now; it waits in the outbox and is retried.
    mail_queued: bool = False


@dataclass(frozen=True)
class NewUserDefaults:
    domains: list[str]
    usage_location: str
    errors: dict[str, str] = field(default_factory=dict)


def _row(user: TenantUser) -> UserRow:
    return UserRow(
        user.user_id,
        user.display_name,
        user.user_principal_name,
        user.state,
        len(user.licence_sku_ids or []),
        user.usage_location,
    )


class UserService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: PartnerCenterClient,
        sync: UserSync,
        idempotency: IdempotencyService,
        mailer: Mailer,
        jobs: JobService,
        *,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self.sync = sync
        self._idempotency = idempotency
        self._mailer = mailer
        self._jobs = jobs
        self._stale_after = stale_after
        self._running: set[asyncio.Future[bool]] = set()
        jobs.register(SYNC_JOB, self._run_sync_job)

    # --- context --------------------------------------------------------------------------------

    async def context(self, caller: Caller) -> TenantContext:
        """The caller's organisation and its Microsoft customer; admins only."""
        caller.require(Permission.MANAGE_SERVICES)
        async with self._sessions() as session:
            org = await session.get(Organisation, caller.organisation_id)
            if org is None or not org.partner_center_customer_id:
                raise DomainError(_(NO_TENANT), code="no_tenant")
            return TenantContext(org.id, org.partner_center_customer_id, org.country, caller.actor)

    async def domains(self, ctx: TenantContext) -> list[str]:
        """The tenant's domains a user name may use (Partner Center knows the initial domain)."""
        customer = await self._client.get_customer(ctx.customer_id)
        domain = (customer.company_profile.domain if customer.company_profile else None) or ""
        return [domain.lower()] if domain else []

    # --- the list -------------------------------------------------------------------------------

    async def list_users(
        self, caller: Caller, *, search: str = "", page: int = 1, page_size: int = PAGE_SIZE
    ) -> UsersPage:
        """A page of the synced copy. A copy never synced is synced first (up to
        `FIRST_SYNC_WAIT_SECONDS`, so the admin sees their tenant at once; a longer sync goes on in the
        background, a failed one is reported on the page); a stale copy is shown at once and a
        background sync is queued."""
        ctx = await self.context(caller)
        search = " ".join(search.split())[:100]
        async with self._sessions() as session:
            state = await session.get(UserSyncState, ctx.organisation_id)
            never_synced = state is None or state.completed_at is None
        syncing, failure = False, ""
        if never_synced:
            try:
                syncing = not await self._sync_bounded(ctx, FIRST_SYNC_WAIT_SECONDS)
            except PartnerCenterError as error:
                failure = error.message
        async with self._sessions() as session:
            query = select(TenantUser).where(TenantUser.organisation_id == ctx.organisation_id)
            if search:
                # The admin's text is matched literally: % and _ are not wildcards here.
                escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                pattern = f"%{escaped}%"
                query = query.where(
                    or_(
                        func.lower(TenantUser.display_name).like(pattern, escape="\\"),
                        func.lower(TenantUser.user_principal_name).like(pattern, escape="\\"),
                    )
                )
            total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
            page_count = max(1, -(-total // page_size))
            page = min(max(1, page), page_count)
            users = await session.scalars(
                query.order_by(func.lower(TenantUser.display_name), TenantUser.user_id)
                .offset((page - 1) * page_size)
                .limit(page_size)
            )
            rows = [_row(user) for user in users]
            state = await session.get(UserSyncState, ctx.organisation_id)
        synced_at = state.completed_at if state else None
        if not never_synced and synced_at is not None and utcnow() - synced_at > self._stale_after:
            syncing = await self.refresh_in_background(ctx)
        last_error = failure or (state.last_error if state else "")
        return UsersPage(rows, total, page, page_count, search, synced_at, syncing, last_error)

    async def rows_of(self, caller: Caller, user_ids: list[str]) -> list[UserRow]:
        """These users of the caller's tenant (ids from a card; others are left out), by name."""
        ctx = await self.context(caller)
        wanted = sorted({str(user_id).lower() for user_id in user_ids})[:MAX_ROWS_BY_ID]
        if not wanted:
            return []
        async with self._sessions() as session:
            users = await session.scalars(
                select(TenantUser)
                .where(TenantUser.organisation_id == ctx.organisation_id, TenantUser.user_id.in_(wanted))
                .order_by(func.lower(TenantUser.display_name), TenantUser.user_id)
            )
            return [_row(user) for user in users]

    async def refresh_in_background(self, ctx: TenantContext, *, force: bool = False) -> bool:
        """Queue a sync job (one per organisation per staleness window; `force` for "refresh")."""
        window = int(utcnow().timestamp() // self._stale_after.total_seconds())
        key = f"{SYNC_JOB}:{ctx.organisation_id}:{window}"
        if force:
            key += f":{utcnow().timestamp():.0f}"
        _unused, created = await self._jobs.submit(
            SYNC_JOB,
            idempotency_key=key,
            payload={"organisation_id": ctx.organisation_id},
            organisation_id=ctx.organisation_id,
            requested_by=ctx.actor,
            max_attempts=2,
        )
        return created

    async def refresh(self, caller: Caller, *, wait_seconds: float = 8.0) -> bool:
        """Sync now ("refresh"), waiting up to `wait_seconds` so the next card is current (Teams
        re-sends a message not answered within ~15 s); True when it finished in time. A longer sync
        goes on in the background. If another replica is syncing, ours runs right after it.
        Microsoft's failure is raised (shown to the admin)."""
        return await self._sync_bounded(await self.context(caller), wait_seconds)

    async def _sync_bounded(self, ctx: TenantContext, wait_seconds: float) -> bool:
        """A sync now, as a task that goes on in the background if it takes longer than
        `wait_seconds`; True when it finished in time."""
        task: asyncio.Future[bool] = asyncio.ensure_future(self._sync_now(ctx.organisation_id, wait_seconds * 4))
        self._running.add(task)
        task.add_done_callback(self._finished)
        done, _unused = await asyncio.wait({task}, timeout=wait_seconds)
        return task.result() if task in done else False

    async def _sync_now(self, organisation_id: int, patience: float) -> bool:
        return (await self.sync.sync_now(organisation_id, patience=patience)).ran

    def _finished(self, task: asyncio.Future[bool]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a users refresh failed: %s", type(task.exception()).__name__)

    async def _run_sync_job(self, job: JobView) -> dict[str, object]:
        organisation_id = int(job.payload["organisation_id"])
        result = await self.sync.sync(organisation_id)
        return {"ran": result.ran, "seen": result.seen, "removed": result.removed}

    # --- one user -------------------------------------------------------------------------------

    async def _user_row(self, session: AsyncSession, organisation_id: int, user_id: str) -> TenantUser:
        row = await session.scalar(
            select(TenantUser).where(
                TenantUser.organisation_id == organisation_id, TenantUser.user_id == str(user_id).lower()
            )
        )
        if row is None:
            raise NotFound(_("That user is not in your organisation's tenant (any more)."))
        return row

    async def get_user(self, caller: Caller, user_id: str, *, fetch: bool = True) -> UserDetail:
        """One user with their licences (fetched from Microsoft now) and the subscriptions behind them."""
        ctx = await self.context(caller)
        async with self._sessions() as session:
            await self._user_row(session, ctx.organisation_id, user_id)
        if fetch:
            try:
                await self.sync.fetch_licences(ctx.organisation_id, ctx.customer_id, str(user_id).lower())
            except PartnerCenterError as error:
                # Microsoft cannot be reached now: the copy is shown, with when its licences were read.
                log.warning("licences of a user not refreshed: %s", error.code)
        async with self._sessions() as session:
            row = await self._user_row(session, ctx.organisation_id, user_id)
            licences = await self._licences_of(session, ctx.organisation_id, list(row.licence_sku_ids or []))
            return UserDetail(
                row.user_id,
                row.display_name,
                row.user_principal_name,
                row.first_name,
                row.last_name,
                row.usage_location,
                row.state,
                licences,
                row.licences_synced_at,
            )

    async def _licences_of(self, session: AsyncSession, organisation_id: int, sku_ids: list[str]) -> list[UserLicence]:
        if not sku_ids:
            return []
        pools = {
            pool.licence_sku_id: pool
            for pool in await session.scalars(
                select(LicencePool).where(
                    LicencePool.organisation_id == organisation_id, LicencePool.licence_sku_id.in_(sku_ids)
                )
            )
        }
        subscriptions = await subscriptions_by_licence(session, organisation_id, sku_ids)
        result = []
        for sku in sku_ids:
            subs = subscriptions.get(sku, [])
            name = pools[sku].name if sku in pools else (subs[0].name if subs else sku)
            result.append(UserLicence(sku, name, subs))
        return sorted(result, key=lambda item: item.name.lower())

    # --- new user -------------------------------------------------------------------------------

    async def new_user_defaults(self, caller: Caller) -> NewUserDefaults:
        ctx = await self.context(caller)
        return NewUserDefaults(await self.domains(ctx), ctx.country)

    def _validate(self, form: NewUser, domains: list[str]) -> tuple[NewUser, dict[str, str]]:
        errors: dict[str, str] = {}
        first, last = form.first_name.strip(), form.last_name.strip()
        display = form.display_name.strip() or f"{first} {last}".strip()
        local = form.user_name.strip().lower()
        domain = form.domain.strip().lower()
        if len(first) > 64:
            errors["first_name"] = _("The first name is at most 64 characters.")
        if len(last) > 64:
            errors["last_name"] = _("The last name is at most 64 characters.")
        if not display:
            errors["display_name"] = _("Enter a display name (or a first and last name).")
        elif len(display) > 256:
            errors["display_name"] = _("The display name is at most 256 characters.")
        if not _LOCAL_PART.match(local) or ".." in local:
            errors["user_name"] = _(
                "The user name may use letters, digits, dots, dashes and underscores (e.g. kim.lee)."
            )
        if domain not in domains:
            errors["domain"] = _(
                "{value} is not one of your tenant's domains ({join}).",
                value=domain or _("That domain"),
                join=", ".join(domains),
            )
        location = normalise_country(form.usage_location)
        if location is None:
            errors["usage_location"] = _("Choose the usage location: the country where the user works.")
        email = form.password_email.strip()
        if not is_mail_address(email):
            errors["password_email"] = _("Enter the e-mail address the password should be sent to.")
        clean = NewUser(first, last, display, local, domain, location or "", email)
        return clean, errors

    async def create_user(self, caller: Caller, form: NewUser, *, request_key: str) -> CreatedUser:
        """Create the user with Microsoft (exactly once per `request_key`), store it in the copy,
        and e-mail the generated password to the address entered. Raises InvalidInput(field=...)."""
        ctx = await self.context(caller)
        domains = await self.domains(ctx)
        clean, errors = self._validate(form, domains)
        if errors:
            field_name, message = next(iter(errors.items()))
            raise InvalidInput(message, field=field_name)
        upn = f"{clean.user_name}@{clean.domain}"
        key = f"users.create:{request_key}"
        async with self._sessions() as session:
            earlier = await session.get(IdempotencyKey, key)
            if earlier is not None and earlier.organisation_id == ctx.organisation_id:
                return await self._already_created(ctx, earlier.resource_id)  # a double click or re-delivery
            taken = await session.scalar(
                select(TenantUser.id).where(
                    TenantUser.organisation_id == ctx.organisation_id, TenantUser.user_principal_name == upn
                )
            )
        if taken is not None:
            raise InvalidInput(
                _("{upn} already exists in your tenant. Choose another user name.", upn=upn), field="user_name"
            )
        claim = await self._idempotency.claim(
            key,
            purpose="users.create",
            organisation_id=ctx.organisation_id,
            resource_type="tenant_user",
            resource_id=upn,
        )
        if not claim.first_use:
            return await self._already_created(ctx, claim.resource_id)
        password = generate_password()
        try:
            created = await self._client.create_user(
                ctx.customer_id,
                CustomerUser(
                    user_principal_name=upn,
                    first_name=clean.first_name or None,
                    last_name=clean.last_name or None,
                    display_name=clean.display_name,
                    usage_location=clean.usage_location,
                    password_profile=PasswordProfile(password=password, force_change_password=True),
                ),
            )
        except PartnerCenterConflict:
            await self._forget_claim(ctx, key)
            raise InvalidInput(
                _("{upn} already exists in your tenant. Choose another user name.", upn=upn), field="user_name"
            ) from None
        except PartnerCenterInvalidInput:
            await self._forget_claim(ctx, key)
            raise
        created_id = (created.id or "").lower()
        async with self._sessions() as session:
            row = TenantUser(organisation_id=ctx.organisation_id, user_id=created_id, licence_sku_ids=[])
            apply_user(row, created)
            row.licences_synced_at = utcnow()
            session.add(row)
            audit.record(
                session,
                actor=ctx.actor,
                action="tenant_user.create",
                organisation_id=ctx.organisation_id,
                target=upn,
                after={
                    "user_id": created_id,
                    "display_name": row.display_name,
                    "usage_location": row.usage_location,
                    "password_sent_to": clean.password_email,
                },
            )
            await session.commit()
        outcome = await self._send_password(ctx, clean.password_email, upn, clean.display_name, password)
        return CreatedUser(
            created_id,
            upn,
            row.display_name,
            clean.password_email,
            mail_failed=outcome == "failed",
            mail_queued=outcome == "queued",
        )

    async def _forget_claim(self, ctx: TenantContext, key: str) -> None:
        """Microsoft refused the user outright (nothing was created): the request key is free again,
        so a re-delivered submit is refused the same way rather than taken for an earlier success
        (which would present a user created elsewhere as ours)."""
        async with self._sessions() as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.key == key, IdempotencyKey.organisation_id == ctx.organisation_id
                )
            )
            await session.commit()

    async def _send_password(self, ctx: TenantContext, to: str, upn: str, name: str, password: SecretStr) -> str:
        """'sent', 'queued' (kept in the outbox and retried) or 'failed'. In the recipient's language
        when they are a member, else in the language of the admin who created the user."""
        with await reading_for_recipient(self._sessions, ctx.organisation_id, to):
            mail = Mail(
                to=to,
                subject=_("Microsoft 365 account for {name}", name=name),
                body=_(
                    "A Microsoft 365 account was created for {name}.\n\nUser name: {upn}\nTemporary password: "
                    "{{password}}\n\nSign in at https://portal.office.com; you will be asked to choose a new "
                    "password.\n",
                    name=name,
                    upn=upn,
                ),
                secrets={"password": password},
            )
        try:
            receipt = await self._mailer.send(mail, organisation_id=ctx.organisation_id)
        except MailNotDelivered:
            return "failed"
        return "queued" if receipt.queued else "sent"

    async def _already_created(self, ctx: TenantContext, upn: str) -> CreatedUser:
        async with self._sessions() as session:
            row = await session.scalar(
                select(TenantUser).where(
                    TenantUser.organisation_id == ctx.organisation_id, TenantUser.user_principal_name == upn
                )
            )
        if row is None:
            raise Conflict(_("{upn} is being created already; it will show in the users list in a moment.", upn=upn))
        return CreatedUser(row.user_id, row.user_principal_name, row.display_name, already_done=True)

    async def record_created(self, ctx: TenantContext, user: CustomerUser) -> TenantUser:
        """Store a user just created with Microsoft (used by directory import)."""
        async with self._sessions() as session:
            row = TenantUser(organisation_id=ctx.organisation_id, user_id=(user.id or "").lower(), licence_sku_ids=[])
            apply_user(row, user)
            row.licences_synced_at = utcnow()
            session.add(row)
            await session.commit()
            return row


async def subscriptions_by_licence(
    session: AsyncSession, organisation_id: int, sku_ids: list[str] | None = None
) -> dict[str, list[SubscriptionBrief]]:
    """The organisation's subscriptions (mirror rows) grouped by the licence SKU they feed."""
    query = select(SubscriptionRow).where(
        SubscriptionRow.organisation_id == organisation_id, SubscriptionRow.licence_sku_id != ""
    )
    result: dict[str, list[SubscriptionBrief]] = {}
    for sub in await session.scalars(query.order_by(SubscriptionRow.name, SubscriptionRow.id)):
        key = sub.licence_sku_id.lower()
        if sku_ids is not None and key not in sku_ids:
            continue
        result.setdefault(key, []).append(
            SubscriptionBrief(sub.id, sub.name, sub.quantity, sub.status, sub.term_duration, sub.billing_cycle)
        )
    return result
