"""Licence assignment: Microsoft pools licences per licence SKU ("licence product"), so the numbers
shown and checked are the pool's (subscribed SKUs), with the subscriptions feeding it listed under it.

Assigning more than the pool has free is refused with the numbers before anything reaches
Microsoft; Microsoft's own refusal (60012, e.g. when licences were taken elsewhere meanwhile) is
reported per user, and the others still get theirs. Admins only; every id is re-checked against
the caller's organisation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller
from services.countries import normalise_country
from services.errors import InvalidInput, NotFound
from services.i18n import _, ngettext
from services.idempotency import IdempotencyService
from services.models import LicencePool, TenantUser
from services.partner_center import PartnerCenterClient
from services.partner_center.errors import PartnerCenterError
from services.partner_center.models import CustomerUser, LicenseAssignment, LicenseUpdate
from services.users.service import SubscriptionBrief, TenantContext, UserService, subscriptions_by_licence
from services.users.sync import UserSync

log = logging.getLogger(__name__)

MAX_USERS_AT_ONCE = 50


@dataclass(frozen=True)
class PoolView:
    licence_sku_id: str
    name: str
    sku_part_number: str
    active: int
    consumed: int
    subscriptions: list[SubscriptionBrief]
    synced_at: datetime | None

    @property
    def available(self) -> int:
        return max(0, self.active - self.consumed)


@dataclass(frozen=True)
class UserResult:
    user_id: str
    display_name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class LicenceOutcome:
    pool: PoolView | None
    results: list[UserResult]
    already_done: bool = False

    @property
    def succeeded(self) -> int:
        return sum(1 for result in self.results if result.ok)


def _pool_view(pool: LicencePool, subscriptions: dict[str, list[SubscriptionBrief]]) -> PoolView:
    return PoolView(
        pool.licence_sku_id,
        pool.name,
        pool.sku_part_number,
        pool.active_units,
        pool.consumed_units,
        subscriptions.get(pool.licence_sku_id, []),
        pool.synced_at,
    )


class LicenceService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: PartnerCenterClient,
        users: UserService,
        sync: UserSync,
        idempotency: IdempotencyService,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._users = users
        self._sync = sync
        self._idempotency = idempotency

    async def pools(self, caller: Caller, *, refresh: bool = True) -> list[PoolView]:
        """The licence products a user can be given, with Microsoft's current numbers (`refresh`)."""
        ctx = await self._users.context(caller)
        if refresh:
            await self._sync.refresh_pools(ctx.organisation_id, ctx.customer_id)
        return await self._pool_views(ctx.organisation_id)

    async def pool_counts(self, organisation_id: int) -> dict[str, tuple[int, int]]:
        """Licence SKU id -> (units, assigned) as last read from Microsoft or moved by our own changes.
        For other features' views (the subscriptions list shows "consumed" per licence product);
        the caller has already checked the organisation and role."""
        async with self._sessions() as session:
            pools = await session.scalars(select(LicencePool).where(LicencePool.organisation_id == organisation_id))
            return {pool.licence_sku_id: (pool.active_units, pool.consumed_units) for pool in pools}

    async def _pool_views(self, organisation_id: int, sku: str | None = None) -> list[PoolView]:
        async with self._sessions() as session:
            query = select(LicencePool).where(
                LicencePool.organisation_id == organisation_id, LicencePool.target_type == "User"
            )
            if sku is not None:
                query = query.where(LicencePool.licence_sku_id == sku)
            pools = list(await session.scalars(query.order_by(LicencePool.name)))
            subscriptions = await subscriptions_by_licence(session, organisation_id)
        return [_pool_view(pool, subscriptions) for pool in pools]

    async def _pool(self, organisation_id: int, sku: str) -> PoolView:
        views = await self._pool_views(organisation_id, str(sku).lower())
        if not views:
            raise NotFound(_("That licence product is not one your organisation has. Choose one from the card."))
        return views[0]

    async def _users_of(self, session: AsyncSession, organisation_id: int, user_ids: Sequence[str]) -> list[TenantUser]:
        wanted = list(dict.fromkeys(str(user_id).lower() for user_id in user_ids if str(user_id).strip()))
        if not wanted:
            raise InvalidInput(_("Select at least one user."), field="users")
        if len(wanted) > MAX_USERS_AT_ONCE:
            raise InvalidInput(
                _("Select at most {MAX_USERS_AT_ONCE} users at once.", MAX_USERS_AT_ONCE=MAX_USERS_AT_ONCE),
                field="users",
            )
        rows = list(
            await session.scalars(
                select(TenantUser).where(TenantUser.organisation_id == organisation_id, TenantUser.user_id.in_(wanted))
            )
        )
        if len(rows) != len(wanted):
            raise NotFound(_("Some of those users are not in your organisation's tenant. Nothing was changed."))
        order = {user_id: index for index, user_id in enumerate(wanted)}
        return sorted(rows, key=lambda row: order[row.user_id])

    async def assign(
        self,
        caller: Caller,
        user_ids: Sequence[str],
        licence_sku_id: str,
        *,
        request_key: str,
        usage_location: str = "",
    ) -> LicenceOutcome:
        """Give each selected user a licence of the product; per-user results."""
        ctx = await self._users.context(caller)
        pool = await self._pool(ctx.organisation_id, licence_sku_id)
        async with self._sessions() as session:
            rows = await self._users_of(session, ctx.organisation_id, user_ids)
            targets = [(row.user_id, row.display_name, row.usage_location) for row in rows]
            holders = {row.user_id for row in rows if pool.licence_sku_id in (row.licence_sku_ids or [])}
        need = [target for target in targets if target[0] not in holders]
        if len(need) > pool.available:
            raise InvalidInput(
                _(
                    "{plural} a {name} licence, but only {available} of {active} are available ({consumed} "
                    "assigned). Buy more licences or select fewer users.",
                    plural=ngettext("{n} selected user needs", "{n} selected users need", len(need)),
                    name=pool.name,
                    available=pool.available,
                    active=pool.active,
                    consumed=pool.consumed,
                ),
                field="users",
            )
        without_location = [name for _unused, name, location in need if not location]
        location = normalise_country(usage_location) if usage_location.strip() else None
        if without_location and location is None:
            raise InvalidInput(
                ngettext(
                    "{users} has no usage location, which Microsoft needs before giving a licence. Choose "
                    "the country they work in.",
                    "{users} have no usage location, which Microsoft needs before giving a licence. Choose "
                    "the country they work in.",
                    len(without_location),
                    users=", ".join(without_location),
                ),
                field="usage_location",
            )
        claim = await self._idempotency.claim(
            f"licences.assign:{request_key}",
            purpose="licences.assign",
            organisation_id=ctx.organisation_id,
            resource_type="licence_pool",
            resource_id=pool.licence_sku_id,
        )
        if not claim.first_use:
            return LicenceOutcome(await self._pool(ctx.organisation_id, pool.licence_sku_id), [], already_done=True)
        results = [
            UserResult(user_id, name, True, _("already had one"))
            for user_id, name, _unused in targets
            if user_id in holders
        ]
        for user_id, name, user_location in need:
            results.append(await self._assign_one(ctx, user_id, name, user_location, location, pool))
        if need and not any(result.ok for result in results[-len(need) :]):
            # Microsoft gave no one a licence: the same card may try again (not "already done").
            await self._idempotency.release(f"licences.assign:{request_key}", organisation_id=ctx.organisation_id)
        return LicenceOutcome(await self._after_change(ctx, pool.licence_sku_id), results)

    async def _assign_one(
        self,
        ctx: TenantContext,
        user_id: str,
        name: str,
        user_location: str,
        location: str | None,
        pool: PoolView,
    ) -> UserResult:
        try:
            if not user_location and location:
                await self._client.update_user(ctx.customer_id, user_id, CustomerUser(usage_location=location))
                await self._update_row(ctx, user_id, usage_location=location)
            await self._client.update_user_licenses(
                ctx.customer_id,
                user_id,
                LicenseUpdate(licenses_to_assign=[LicenseAssignment(sku_id=pool.licence_sku_id)]),
            )
        except PartnerCenterError as error:
            log.info("licence assignment for user %s refused by Microsoft (%s)", user_id, error.code)
            return UserResult(user_id, name, False, error.message)
        await self._update_row(ctx, user_id, add=[pool.licence_sku_id], audit_action="licence.assign")
        return UserResult(user_id, name, True, "assigned")

    async def _update_row(
        self,
        ctx: TenantContext,
        user_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        usage_location: str | None = None,
        audit_action: str | None = None,
    ) -> None:
        """Reflect a change Microsoft accepted: the user's licences and the pool's consumed count."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(TenantUser).where(
                    TenantUser.organisation_id == ctx.organisation_id, TenantUser.user_id == user_id
                )
            )
            if row is None:
                return
            before = {"licences": list(row.licence_sku_ids or []), "usage_location": row.usage_location}
            if usage_location is not None:
                row.usage_location = usage_location
            licences = [sku for sku in (row.licence_sku_ids or []) if sku not in remove]
            licences += [sku for sku in add if sku not in licences]
            row.licence_sku_ids = sorted(licences)
            changes = {sku: 1 for sku in add if sku not in before["licences"]}
            changes |= {sku: -1 for sku in remove if sku in before["licences"]}
            for sku, change in changes.items():
                pool_row = await session.get(LicencePool, (ctx.organisation_id, sku))
                if pool_row is not None:
                    pool_row.consumed_units = max(0, pool_row.consumed_units + change)
            audit.record(
                session,
                actor=ctx.actor,
                action=audit_action or "tenant_user.update",
                organisation_id=ctx.organisation_id,
                target=row.user_principal_name,
                before=before,
                after={"licences": list(row.licence_sku_ids), "usage_location": row.usage_location},
            )
            await session.commit()

    async def _after_change(self, ctx: TenantContext, sku: str) -> PoolView | None:
        """Microsoft's numbers after the change (the local counts were already moved, so a failure
        to read them leaves the card right)."""
        try:
            await self._sync.refresh_pools(ctx.organisation_id, ctx.customer_id)
        except PartnerCenterError as error:
            log.warning("could not re-read licence counts after a change: %s", error.code)
        views = await self._pool_views(ctx.organisation_id, sku)
        return views[0] if views else None

    async def unassign(
        self, caller: Caller, user_id: str, licence_sku_ids: Sequence[str], *, request_key: str
    ) -> LicenceOutcome:
        """Take the selected licences away from one user."""
        ctx = await self._users.context(caller)
        async with self._sessions() as session:
            (row,) = await self._users_of(session, ctx.organisation_id, [user_id])
            held = set(row.licence_sku_ids or [])
            name = row.display_name
        wanted = list(dict.fromkeys(str(sku).lower() for sku in licence_sku_ids if str(sku).strip()))
        if not wanted:
            raise InvalidInput(_("Select at least one licence to remove."), field="licences")
        if not set(wanted) <= held:
            raise NotFound(_("{name} does not hold some of those licences. Nothing was changed.", name=name))
        claim = await self._idempotency.claim(
            f"licences.unassign:{request_key}",
            purpose="licences.unassign",
            organisation_id=ctx.organisation_id,
            resource_type="tenant_user",
            resource_id=row.user_id,
        )
        if not claim.first_use:
            return LicenceOutcome(None, [], already_done=True)
        try:
            await self._client.update_user_licenses(
                ctx.customer_id, row.user_id, LicenseUpdate(licenses_to_remove=wanted)
            )
        except PartnerCenterError as error:
            # Nothing was removed: the same card may try again (not "already done").
            await self._idempotency.release(f"licences.unassign:{request_key}", organisation_id=ctx.organisation_id)
            return LicenceOutcome(None, [UserResult(row.user_id, name, False, error.message)])
        await self._update_row(ctx, row.user_id, remove=wanted, audit_action="licence.unassign")
        pool = await self._after_change(ctx, wanted[0])
        removed = _("{plural} removed", plural=ngettext("{n} licence", "{n} licences", len(wanted)))
        return LicenceOutcome(pool, [UserResult(row.user_id, name, True, removed)])
