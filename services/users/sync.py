"""Two-way sync of the tenant's users and licence pools with Partner Center.

Microsoft is the source of truth (rules in docs/users-sync.md): a full listing, page by page, marks
every user it sees with the run's generation; only a listing that reached its last page may sweep
users it did not see. An interrupted listing keeps the next page's link and the next run resumes
there with the same generation, so nothing is duplicated (rows are keyed by Microsoft's id) and
nothing is wrongly deleted. Licence pools come from subscribed SKUs; licence changes made elsewhere
come from audit records (the users who were touched get their own licences fetched again).

Against a slow Microsoft the run is as long as its longest chain of requests. The listing's pages
follow one another (each page's continuation token comes with the page before), so that chain is
kept short: the next page is fetched while the last one is stored, and everything else — subscribed
SKUs, the audit records and the per-user licence calls — goes alongside the listing, at most
`concurrency` requests in flight for the run (one of them kept for the listing). Licences fetched
that way are stored in one statement once the listing is done, except where the copy was changed
meanwhile (our own assign/unassign is newer than the answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import AlertService
from services.db import utcnow
from services.errors import DomainError
from services.i18n import _
from services.models import LicencePool, Organisation, TenantUser, UserSyncState
from services.partner_center import PartnerCenterClient
from services.partner_center.errors import PartnerCenterError
from services.partner_center.models import CustomerUser, License, Link, SubscribedSku
from services.partner_center.transport import LazyPage
from services.users.leases import LeaseService

log = logging.getLogger(__name__)

SYNC_PAGE_SIZE = 500  # Microsoft's largest users page: 10,000 users in 20 listing requests
# Partner Center requests one organisation's sync has in flight at most (USERS_SYNC_CONCURRENCY).
DEFAULT_CONCURRENCY = 8
_IN_LIST = 500  # ids per `IN (...)` when reading rows back
# Microsoft keeps audit records for 90 days (and refuses a start before that): a run reads at most
# this far back from Microsoft's "now".
AUDIT_LOOKBACK = timedelta(days=89)
LICENCE_OPERATIONS = ("license",)


@dataclass(frozen=True)
class SyncResult:
    organisation_id: int
    ran: bool  # False: another replica holds this organisation's sync lease
    complete: bool = False
    pages: int = 0
    seen: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    licence_users_refreshed: int = 0
    resumed: bool = False


USER_FIELDS = ("user_principal_name", "first_name", "last_name", "display_name", "usage_location", "state")


def user_values(user: CustomerUser) -> dict[str, str]:
    """Microsoft's fields of a user as the copy stores them (in `USER_FIELDS` order)."""
    return {
        "user_principal_name": (user.user_principal_name or "").lower(),
        "first_name": user.first_name or "",
        "last_name": user.last_name or "",
        "display_name": user.display_name or user.user_principal_name or "",
        "usage_location": (user.usage_location or "").upper(),
        "state": str(user.state or "active"),
    }


def last_sign_in(user: CustomerUser) -> datetime | None:
    return user.sign_in_activity.last_sign_in_date_time if user.sign_in_activity is not None else None


def apply_user(row: TenantUser, user: CustomerUser) -> bool:
    """Copy Microsoft's fields onto the row; True when something changed. The last sign-in is kept
    as well (when Microsoft reports one) but is no change of the user's."""
    changed = False
    for key, value in user_values(user).items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    signed_in = last_sign_in(user)
    if signed_in is not None:
        row.last_sign_in_at = signed_in
    return changed


def apply_licences(row: TenantUser, licences: Sequence[License], at: datetime) -> None:
    row.licence_sku_ids = sorted({licence.product_sku.id.lower() for licence in licences})
    row.licences_synced_at = at


def apply_pools(existing: dict[str, LicencePool], skus: Sequence[SubscribedSku], organisation_id: int) -> list[str]:
    """Update/insert pools from subscribed SKUs; returns the ids Microsoft no longer reports."""
    now = utcnow()
    seen: set[str] = set()
    for sku in skus:
        key = sku.product_sku.id.lower()
        seen.add(key)
        pool = existing.get(key)
        if pool is None:
            pool = LicencePool(organisation_id=organisation_id, licence_sku_id=key)
            existing[key] = pool
        pool.name = sku.product_sku.name or key
        pool.sku_part_number = sku.product_sku.sku_part_number or ""
        pool.target_type = sku.product_sku.target_type or "User"
        pool.active_units = sku.active_units or 0
        pool.suspended_units = sku.suspended_units or 0
        pool.warning_units = sku.warning_units or 0
        pool.consumed_units = sku.consumed_units or 0
        pool.synced_at = now
    return [key for key in existing if key not in seen]


class _Lanes:
    """At most `concurrency` Partner Center requests in flight for one run: one lane kept for the user
    listing (its pages follow one another, and it is the longest chain), the others for subscribed
    SKUs, audit records and per-user licences. With 1, one request at a time in all."""

    def __init__(self, concurrency: int) -> None:
        self.width = max(1, concurrency - 1)
        self.others = asyncio.Semaphore(self.width)
        self.listing = self.others if concurrency == 1 else asyncio.Semaphore(1)


@dataclass
class _LicenceChanges:
    """Per user named in licence audit records: their licence SKU ids and when we asked Microsoft."""

    fetched: dict[str, tuple[list[str], datetime]] = field(default_factory=dict)
    newest: datetime | None = None  # the audit cursor to store once these are stored


async def _all_or_none(jobs: Iterable[Awaitable[Any]]) -> None:
    """Run the jobs together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    if not tasks:
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class UserSync:
    """Runs the sync of one organisation (under its lease) and the periodic sync of all of them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: PartnerCenterClient,
        leases: LeaseService,
        alerts: AlertService,
        *,
        page_size: int = SYNC_PAGE_SIZE,
        lease_seconds: float = 300,
        periodic_seconds: float = 900,
        microsoft_now: Callable[[], datetime] = utcnow,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a users sync needs at least one request in flight")
        self.concurrency = concurrency
        self._sessions = sessions
        self._client = client
        self._leases = leases
        self._alerts = alerts
        self.page_size = page_size
        self._lease_seconds = lease_seconds
        self.periodic_seconds = periodic_seconds
        self._microsoft_now = microsoft_now  # the built-in sandbox's movable clock, or the wall clock
        self._task: asyncio.Task[None] | None = None
        self._running: dict[int, asyncio.Lock] = {}

    # --- one organisation ---------------------------------------------------------------------

    async def sync(self, organisation_id: int) -> SyncResult:
        """A full sync of the organisation's users and licence pools, if no other replica runs one."""
        lease = f"users-sync:{organisation_id}"
        local = self._running.setdefault(organisation_id, asyncio.Lock())
        if local.locked():  # this replica is syncing it already (the lease is per replica)
            return SyncResult(organisation_id, ran=False)
        async with local:
            return await self._sync_leased(organisation_id, lease)

    async def sync_now(self, organisation_id: int, *, patience: float = 30.0) -> SyncResult:
        """A sync that waits its turn: after a run already going on here or (up to `patience`
        seconds) on another replica, so what it reads is current from now."""
        lease = f"users-sync:{organisation_id}"
        waited = 0.0
        while True:
            async with self._running.setdefault(organisation_id, asyncio.Lock()):
                result = await self._sync_leased(organisation_id, lease)
            if result.ran or waited >= patience:
                return result
            await asyncio.sleep(0.2)
            waited += 0.2

    async def _sync_leased(self, organisation_id: int, lease: str) -> SyncResult:
        if not await self._leases.acquire(lease, self._lease_seconds):
            return SyncResult(organisation_id, ran=False)
        try:
            return await self._sync(organisation_id, lease)
        except PartnerCenterError as error:
            await self._record_error(organisation_id, error.message)
            await self._alerts.raise_alert(
                "user_sync_failed",
                f"The users sync of organisation {organisation_id} failed: {error.message}",
                dedup_key=f"user_sync_failed:{organisation_id}",
                organisation_id=organisation_id,
            )
            raise
        finally:
            await self._leases.release(lease)

    async def _customer_id(self, organisation_id: int) -> str:
        async with self._sessions() as session:
            org = await session.get(Organisation, organisation_id)
            if org is None or not org.partner_center_customer_id:
                raise DomainError(_("This organisation has no Microsoft tenant yet."), code="no_tenant")
            return org.partner_center_customer_id

    async def _record_error(self, organisation_id: int, message: str) -> None:
        async with self._sessions() as session:
            state = await session.get(UserSyncState, organisation_id)
            if state is not None:
                state.last_error = message
                await session.commit()

    async def _sync(self, organisation_id: int, lease: str) -> SyncResult:
        customer_id = await self._customer_id(organisation_id)
        async with self._sessions() as session:
            state = await session.get(UserSyncState, organisation_id)
            if state is None:
                state = UserSyncState(organisation_id=organisation_id, generation=0)
                session.add(state)
            resumed = state.resume_link is not None
            if not resumed:
                state.generation += 1
                state.started_at = utcnow()
            generation, started_at = state.generation, state.started_at or utcnow()
            link = Link.model_validate(state.resume_link) if state.resume_link else None
            await session.commit()

        lanes = _Lanes(self.concurrency)
        counts = {"pages": 0, "seen": 0, "created": 0, "updated": 0}
        # The listing is the longest chain: its first request goes out first.
        listing = asyncio.create_task(
            self._list(lanes, organisation_id, customer_id, lease, generation, link, resumed, counts)
        )
        pools = asyncio.create_task(self.refresh_pools(organisation_id, customer_id, lane=lanes.others))
        licences = asyncio.create_task(self._licence_changes(lanes, organisation_id, customer_id))
        try:
            if not await listing:
                # The lease was taken over: stop here (nothing swept, the audit cursor not moved);
                # the new owner resumes from the stored link in the same generation.
                log.warning("users sync of organisation %s: lease taken over; stopping", organisation_id)
                return SyncResult(organisation_id, ran=True, complete=False, resumed=resumed, **counts)
            removed = await self._sweep(organisation_id, generation, started_at)
            await pools
            refreshed = await self._store_licences(organisation_id, await licences)
        finally:
            await _cancel(listing, pools, licences)
        return SyncResult(
            organisation_id,
            ran=True,
            complete=True,
            removed=removed,
            licence_users_refreshed=refreshed,
            resumed=resumed,
            **counts,
        )

    async def _list(
        self,
        lanes: _Lanes,
        organisation_id: int,
        customer_id: str,
        lease: str,
        generation: int,
        link: Link | None,
        resumed: bool,
        counts: dict[str, int],
    ) -> bool:
        """Every page of the listing, each stored (with the next page's link) while the next one is
        fetched. False if the lease was taken over meanwhile (the rest is left to its new owner)."""
        storing: asyncio.Task[bool] | None = None
        try:
            while True:
                try:
                    async with lanes.listing:
                        page = await self._client.users_page(customer_id, page_size=self.page_size, next_link=link)
                except PartnerCenterError:
                    if link is not None and resumed and storing is None:
                        # The stored continuation was no longer accepted: list from the first page again
                        # (same generation, so what the interrupted run saw still counts).
                        log.info("users sync of organisation %s: resume link refused; listing afresh", organisation_id)
                        link = None
                        continue
                    raise
                next_link = page.next_link if len(page) else None
                if storing is not None and not await storing:
                    return False
                storing = asyncio.create_task(
                    self._store_page(organisation_id, page, generation, next_link, counts, lease=lease)
                )
                if next_link is None:
                    return await storing
                link = next_link
        finally:
            # A failed fetch still lets the page before it be stored: the next run resumes after it.
            if storing is not None:
                await asyncio.gather(storing, return_exceptions=True)

    async def _store_page(
        self,
        organisation_id: int,
        page: LazyPage[CustomerUser],
        generation: int,
        next_link: Link | None,
        counts: dict[str, int],
        *,
        lease: str | None = None,
    ) -> bool:
        """Upsert one page and remember where the listing continues, in one transaction. Lean: the
        known rows are read as plain tuples of the compared columns; new users are one bulk insert,
        changed users one executemany, and all known users of the page are marked seen at once.

        With a `lease` and a next page to come, the lease is then extended: False if it could not be
        (it expired and another replica took it over)."""
        now = utcnow()
        by_id = {user.id.lower(): user for user in page.items if user.id}
        table = cast(Table, TenantUser.__table__)
        columns = [table.c[name] for name in USER_FIELDS]
        async with self._sessions() as session:
            rows = list(
                await session.execute(
                    select(table.c.user_id, table.c.last_sign_in_at, *columns).where(
                        table.c.organisation_id == organisation_id, table.c.user_id.in_(list(by_id))
                    )
                )
            )
            existing = {row[0]: tuple(row[2:]) for row in rows}
            known_sign_ins = {row[0]: row[1] for row in rows}
            fresh: list[dict[str, object]] = []
            changed: list[dict[str, object]] = []
            signed_in: list[dict[str, object]] = []  # a newer last sign-in is no change of the user's
            for user_id, user in by_id.items():
                values = user_values(user)
                known = existing.get(user_id)
                last = last_sign_in(user)
                if known is not None and last is not None and known_sign_ins.get(user_id) != last:
                    signed_in.append({"key": user_id, "last_sign_in_at": last})
                if known is None:
                    fresh.append(
                        {
                            "organisation_id": organisation_id,
                            "user_id": user_id,
                            **values,
                            "licence_sku_ids": [],
                            "last_sign_in_at": last_sign_in(user),
                            "seen_generation": generation,
                            "created_at": now,
                            "synced_at": now,
                        }
                    )
                elif known != tuple(values.values()):
                    changed.append({"key": user_id, **values})
            if fresh:
                await session.execute(insert(TenantUser), fresh)
            if changed:
                await session.execute(
                    update(table)
                    .where(table.c.organisation_id == organisation_id, table.c.user_id == bindparam("key"))
                    .values({name: bindparam(name) for name in USER_FIELDS}),
                    changed,
                )
            if signed_in:
                await session.execute(
                    update(table)
                    .where(table.c.organisation_id == organisation_id, table.c.user_id == bindparam("key"))
                    .values(last_sign_in_at=bindparam("last_sign_in_at")),
                    signed_in,
                )
            if existing:
                # One statement marks every known user of the page as seen by this run.
                await session.execute(
                    update(table)
                    .where(table.c.organisation_id == organisation_id, table.c.user_id.in_(list(existing)))
                    .values(seen_generation=generation, synced_at=now)
                )
            counts["pages"] += 1
            counts["seen"] += len(by_id)
            counts["created"] += len(fresh)
            counts["updated"] += len(changed)
            state = await session.get(UserSyncState, organisation_id)
            if state is not None:
                state.resume_link = next_link.model_dump(mode="json", by_alias=True) if next_link else None
            await session.commit()
        if lease is None or next_link is None:
            return True
        return await self._leases.acquire(lease, self._lease_seconds)

    async def _sweep(self, organisation_id: int, generation: int, started_at: datetime) -> int:
        """After a complete listing: users Microsoft no longer lists are gone (deleted elsewhere).
        Rows written since the run started (created or fetched here meanwhile) are kept."""
        async with self._sessions() as session:
            result = await session.execute(
                delete(TenantUser).where(
                    TenantUser.organisation_id == organisation_id,
                    TenantUser.seen_generation != generation,
                    TenantUser.synced_at < started_at,
                )
            )
            state = await session.get(UserSyncState, organisation_id)
            if state is not None:
                state.resume_link = None
                state.completed_at = utcnow()
                state.last_error = ""
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def refresh_pools(
        self, organisation_id: int, customer_id: str, *, lane: asyncio.Semaphore | None = None
    ) -> None:
        async with lane or contextlib.nullcontext():
            skus = await self._client.subscribed_skus(customer_id)
        async with self._sessions() as session:
            existing = {
                pool.licence_sku_id: pool
                for pool in await session.scalars(
                    select(LicencePool).where(LicencePool.organisation_id == organisation_id)
                )
            }
            gone = apply_pools(existing, skus, organisation_id)
            for pool in existing.values():
                if pool.licence_sku_id not in gone:
                    session.add(pool)
            if gone:
                await session.execute(
                    delete(LicencePool).where(
                        LicencePool.organisation_id == organisation_id, LicencePool.licence_sku_id.in_(gone)
                    )
                )
            await session.commit()

    async def _licence_changes(self, lanes: _Lanes, organisation_id: int, customer_id: str) -> _LicenceChanges:
        """The licences of the users whose licences changed (per Microsoft's audit records since the
        cursor), fetched `lanes.width` at a time. The cursor is inclusive, so records at the same
        instant are never missed; it is stored only with the licences (`_store_licences`)."""
        async with self._sessions() as session:
            state = await session.get(UserSyncState, organisation_id)
            cursor = state.audit_cursor if state else None
        oldest_kept = self._microsoft_now() - AUDIT_LOOKBACK
        start = max(cursor, oldest_kept) if cursor else oldest_kept
        changes = _LicenceChanges(newest=cursor)
        touched: set[str] = set()
        records = self._client.audit_records(
            start, filter={"Field": "CustomerId", "Value": customer_id, "Operator": "equals"}
        )
        async with contextlib.aclosing(records):
            while True:
                async with lanes.others:  # held while the generator fetches its next page
                    record = await anext(records, None)
                if record is None:
                    break
                if (record.resource_type or "").lower() not in LICENCE_OPERATIONS:
                    continue
                user_id = record.data("CustomerUserId")
                if user_id:
                    touched.add(user_id.lower())
                if record.operation_date and (changes.newest is None or record.operation_date > changes.newest):
                    changes.newest = record.operation_date
        waiting = iter(sorted(touched))

        async def fetch() -> None:
            for user_id in waiting:  # the workers share one iterator: each user is fetched once
                asked = utcnow()
                try:
                    async with lanes.others:
                        licences = await self._client.user_licenses(customer_id, user_id)
                except PartnerCenterError as error:
                    if error.code in ("not_found", "60002"):
                        continue  # deleted since: the sweep removes the row
                    raise
                changes.fetched[user_id] = (sorted({licence.product_sku.id.lower() for licence in licences}), asked)

        await _all_or_none(fetch() for _ in range(min(lanes.width, len(touched))))
        return changes

    async def _store_licences(self, organisation_id: int, changes: _LicenceChanges) -> int:
        """The fetched licences into the copy in one statement, then the audit cursor. A row whose
        licences were written after we asked Microsoft (our own change) keeps what it has."""
        table = cast(Table, TenantUser.__table__)
        now = utcnow()
        async with self._sessions() as session:
            known: dict[str, datetime | None] = {}
            user_ids = list(changes.fetched)
            for index in range(0, len(user_ids), _IN_LIST):
                rows = await session.execute(
                    select(table.c.user_id, table.c.licences_synced_at).where(
                        table.c.organisation_id == organisation_id,
                        table.c.user_id.in_(user_ids[index : index + _IN_LIST]),
                    )
                )
                known.update({user_id: synced for user_id, synced in rows})
            updates = [
                {"key": user_id, "skus": changes.fetched[user_id][0], "asked": changes.fetched[user_id][1]}
                for user_id, synced in known.items()
                if synced is None or synced < changes.fetched[user_id][1]
            ]
            if updates:
                await session.execute(
                    update(table)
                    .where(
                        table.c.organisation_id == organisation_id,
                        table.c.user_id == bindparam("key"),
                        or_(table.c.licences_synced_at.is_(None), table.c.licences_synced_at < bindparam("asked")),
                    )
                    .values(licence_sku_ids=bindparam("skus"), licences_synced_at=now),
                    updates,
                )
            state = await session.get(UserSyncState, organisation_id)
            if state is not None and changes.newest is not None:
                state.audit_cursor = changes.newest
            await session.commit()
        return len(updates)

    async def fetch_licences(self, organisation_id: int, customer_id: str, user_id: str) -> bool:
        """The user's own licences from Microsoft into the copy; False if we do not know the user."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(TenantUser).where(TenantUser.organisation_id == organisation_id, TenantUser.user_id == user_id)
            )
            if row is None:
                return False
        try:
            licences = await self._client.user_licenses(customer_id, user_id)
        except PartnerCenterError as error:
            if error.code in ("not_found", "60002"):
                return False
            raise
        async with self._sessions() as session:
            row = await session.scalar(
                select(TenantUser).where(TenantUser.organisation_id == organisation_id, TenantUser.user_id == user_id)
            )
            if row is None:
                return False
            apply_licences(row, licences, utcnow())
            await session.commit()
        return True

    # --- all organisations, periodically --------------------------------------------------------

    async def run_periodic_once(self) -> list[SyncResult]:
        """One pass of the periodic sync: only the replica holding the scheduler lease syncs, and only
        organisations whose copy is older than the period."""
        if not await self._leases.acquire("users-sync:periodic", self.periodic_seconds):
            return []
        due_before = utcnow() - timedelta(seconds=self.periodic_seconds)
        async with self._sessions() as session:
            rows = await session.execute(
                select(Organisation.id, UserSyncState.completed_at)
                .outerjoin(UserSyncState, UserSyncState.organisation_id == Organisation.id)
                .where(Organisation.partner_center_customer_id.is_not(None))
                .order_by(Organisation.id)
            )
            due = [org_id for org_id, completed in rows if completed is None or completed < due_before]
        results = []
        for organisation_id in due:
            try:
                results.append(await self.sync(organisation_id))
            except DomainError as error:
                log.warning("periodic users sync of organisation %s failed: %s", organisation_id, error.message)
        return results

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_periodic_once()
            except Exception:
                log.exception("periodic users sync failed")
            await asyncio.sleep(min(60.0, self.periodic_seconds))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="users-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
