"""The subscriptions list (the mirror, refreshed from Partner Center when stale) and the sync.

The sync reads Microsoft's subscriptions and writes them into the mirror. A change made elsewhere
(Partner Center, the admin centre, a renewal) becomes a ledger entry at the time Microsoft's audit
record gives, keyed by that record's id, so a second sync writes nothing new. The replay starts from
the mirror's own state: a change the bot made itself is already in the mirror (and its ledger), so
its audit record no longer matches and is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller
from services.catalog import CatalogService
from services.clock import SYSTEM_CLOCK, Clock
from services.db import utcnow
from services.errors import DomainError
from services.i18n import _
from services.ledger import LedgerEvent, LedgerSource, SubscriptionLedger
from services.models import LedgerEntry, SubscriptionRow, SubscriptionSyncState
from services.partner_center import PartnerCenterClient
from services.partner_center.models import AuditRecord, RefundableQuantity, Subscription
from services.price_rules import price_in_force
from services.pricing import PriceBook
from services.purchases import Purchase, apply_to_row, ledger_record, record_purchase
from services.roles import Permission
from services.subscriptions.common import (
    LIVE,
    as_utc,
    customer_of,
    organisation_of,
    row_in_organisation,
)

log = logging.getLogger(__name__)

SYNC_ACTOR = "system:subscription-sync"
PAGE_SIZE = 5


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    name: str
    offer_id: str  # PRODUCT:SKU, as the catalog and buying show it
    product_id: str
    sku_id: str
    parent_id: str | None
    quantity: int
    status: str
    term_duration: str
    billing_cycle: str
    auto_renew: bool
    renewal_date: datetime | None
    cancellation_until: datetime | None
    scheduled_quantity: int | None
    refundable: int
    licence_sku_id: str
    # Seats that can still be removed with a refund, each batch with the end of its 7-day window.
    refundable_batches: tuple[tuple[int, datetime], ...] = ()
    consumed: int | None = None  # assigned licences of its licence product (None: not known)
    shared_with: int = 0  # other live subscriptions pooled in the same licence product
    unit_price: Decimal | None = None  # per licence per billing period; None when no price is set
    currency: str = ""
    addons: tuple[SubscriptionView, ...] = ()

    @property
    def is_suspended(self) -> bool:
        return self.status == "suspended"

    @property
    def is_active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class SubscriptionPage:
    items: tuple[SubscriptionView, ...]
    page: int
    pages: int
    total: int
    synced_at: datetime | None
    has_tenant: bool
    can_manage: bool
    can_request_suspension: bool
    notice: str = ""  # what was just done
    problem: str = ""  # why something could not be done


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    ledger_entries: int = 0
    audit_records: int = 0
    notices: list[str] = field(default_factory=list)


def _view(row: SubscriptionRow, now: datetime) -> SubscriptionView:
    """The row as the list shows it at Microsoft's `now`: seats whose 7-day window has ended since the
    copy was read are no longer removable."""
    refundable = row.refundable or {}
    batches = tuple(batch for batch in refundable_batches(refundable) if batch[1] > now)
    return SubscriptionView(
        id=row.id,
        name=row.name,
        offer_id=f"{row.product_id}:{row.sku_id}",  # without Microsoft's rotating availability id
        product_id=row.product_id,
        sku_id=row.sku_id,
        parent_id=row.parent_subscription_id,
        quantity=row.quantity,
        status=row.status,
        term_duration=row.term_duration,
        billing_cycle=row.billing_cycle,
        auto_renew=row.auto_renew,
        renewal_date=as_utc(row.commitment_end_date),
        cancellation_until=as_utc(row.cancellation_allowed_until),
        scheduled_quantity=row.scheduled_quantity,
        refundable=sum(seats for seats, _unused in batches),
        licence_sku_id=row.licence_sku_id,
        refundable_batches=batches,
    )


def refundable_batches(stored: dict[str, Any]) -> tuple[tuple[int, datetime], ...]:
    """The stored `refundableQuantity` as (seats, window end) batches, soonest first."""
    try:
        parsed = RefundableQuantity.model_validate(stored)
    except ValueError:
        return ()
    batches = [
        (detail.quantity, until)
        for detail in parsed.details
        if detail.quantity > 0 and (until := as_utc(detail.allowed_until_date_time)) is not None
    ]
    return tuple(sorted(batches, key=lambda batch: batch[1]))


def _snapshot(record: AuditRecord, attribute: str) -> dict[str, Any] | None:
    raw = getattr(record, attribute)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _events(old: dict[str, Any], new: dict[str, Any], reason: str | None) -> list[LedgerEvent]:
    """The ledger events one audited change stands for."""
    old_status, new_status = str(old.get("status", "")).lower(), str(new.get("status", "")).lower()
    if reason == "Renewed" or (
        new_status == "active" and new.get("commitmentEndDate") != old.get("commitmentEndDate") and reason
    ):
        return [LedgerEvent.RENEWAL]
    if new_status == "expired":
        return [LedgerEvent.EXPIRY]
    if new_status == "deleted" and old_status != "deleted":
        return [LedgerEvent.CANCELLATION]
    events: list[LedgerEvent] = []
    if old_status == "active" and new_status == "suspended":
        events.append(LedgerEvent.SUSPENSION)
    elif old_status == "suspended" and new_status == "active":
        events.append(LedgerEvent.REACTIVATION)
    old_quantity, new_quantity = int(old.get("quantity") or 0), int(new.get("quantity") or 0)
    if new_quantity > old_quantity:
        events.append(LedgerEvent.QUANTITY_INCREASE)
    elif new_quantity < old_quantity:
        events.append(LedgerEvent.QUANTITY_DECREASE)
    return events


class SubscriptionService:
    """Lists and syncs an organisation's subscriptions (read: admin, approver, billing)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        partner_center: PartnerCenterClient,
        catalog: CatalogService,
        pricing: PriceBook,
        ledger: SubscriptionLedger,
        *,
        refresh_after: timedelta = timedelta(minutes=5),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self._client = partner_center
        self._catalog = catalog
        self._pricing = pricing
        self._ledger = ledger
        self._refresh_after = refresh_after
        self.clock = clock  # Microsoft's "now" (the built-in sandbox's clock when it runs)

    def use_clock(self, source: Callable[[], datetime]) -> None:
        """Follow another "now" (a test's sandbox clock)."""
        self.clock = Clock(source)

    # --- the list ----------------------------------------------------------------------------

    async def page(self, caller: Caller, *, page: int = 0, refresh: bool = False) -> SubscriptionPage:
        """One page of the caller's subscriptions (bases with their add-ons beneath), synced first when
        the copy is stale or `refresh` is asked."""
        caller.require(Permission.READ_SUBSCRIPTIONS)
        async with self._sessions() as session:
            org = await organisation_of(session, caller.organisation_id)
            has_tenant = bool(org.partner_center_customer_id)
            state = await session.get(SubscriptionSyncState, caller.organisation_id)
            synced_at = as_utc(state.synced_at) if state is not None else None
        # Microsoft's licence counts come meanwhile: they do not depend on the sync or the mirror, and
        # one round trip to Microsoft less in a row is what the person waits less.
        counting = asyncio.create_task(self.consumed_by_licence(org.partner_center_customer_id))
        try:
            problem = ""
            if has_tenant and (refresh or synced_at is None or utcnow() - synced_at > self._refresh_after):
                problem = await self._sync_for_the_list(caller.organisation_id)
            async with self._sessions() as session:
                rows = list(
                    await session.scalars(
                        select(SubscriptionRow)
                        .where(SubscriptionRow.organisation_id == caller.organisation_id)
                        .order_by(SubscriptionRow.name, SubscriptionRow.created_at, SubscriptionRow.id)
                    )
                )
                state = await session.get(SubscriptionSyncState, caller.organisation_id)
                synced_at = as_utc(state.synced_at) if state is not None else None
            consumed = await counting
        finally:
            if not counting.done():  # the sync or the read failed: the counts are not wanted
                counting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await counting
        views = await self._decorate(caller.organisation_id, rows, consumed)
        bases = [view for view in views if not view.parent_id or view.parent_id not in {v.id for v in views}]
        children: dict[str, list[SubscriptionView]] = {}
        for view in views:
            if view not in bases and view.parent_id:
                children.setdefault(view.parent_id, []).append(view)
        grouped = [SubscriptionView(**{**base.__dict__, "addons": tuple(children.get(base.id, ()))}) for base in bases]
        pages = max(1, -(-len(grouped) // PAGE_SIZE))
        page = min(max(0, page), pages - 1)
        return SubscriptionPage(
            items=tuple(grouped[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]),
            page=page,
            pages=pages,
            total=len(grouped),
            synced_at=synced_at,
            has_tenant=has_tenant,
            can_manage=caller.can(Permission.MANAGE_SERVICES),
            can_request_suspension=caller.can(Permission.REQUEST_SUSPENSION),
            problem=problem,
        )

    async def get(self, caller: Caller, subscription_id: Any) -> SubscriptionView:
        caller.require(Permission.READ_SUBSCRIPTIONS)
        async with self._sessions() as session:
            org = await organisation_of(session, caller.organisation_id)
            row = await row_in_organisation(session, caller.organisation_id, subscription_id)
        consumed = await self.consumed_by_licence(org.partner_center_customer_id)
        return (await self._decorate(caller.organisation_id, [row], consumed))[0]

    async def _sync_for_the_list(self, organisation_id: int) -> str:
        """Sync before showing the list; what went wrong, for the card ("" when nothing did)."""
        try:
            await self.sync(organisation_id)
        except DomainError as error:
            return _(
                "Could not refresh from Microsoft just now ({message}) — showing the last copy.",
                message=error.message,
            )
        return ""

    async def consumed_by_licence(self, customer_id: str | None) -> dict[str, int] | None:
        """Assigned licences per licence product (lower-case id), or None when Microsoft cannot say."""
        if not customer_id:
            return None
        try:
            skus = await self._client.subscribed_skus(customer_id)
        except DomainError as error:
            log.warning("licence counts unavailable: %s", error.message)
            return None
        return {sku.product_sku.id.lower(): int(sku.consumed_units or 0) for sku in skus}

    async def _decorate(
        self, organisation_id: int, rows: list[SubscriptionRow], consumed: dict[str, int] | None
    ) -> list[SubscriptionView]:
        """The rows as views, with `consumed` (Microsoft's licence counts, `consumed_by_licence`)."""
        async with self._sessions() as session:
            pooled = list(
                await session.execute(
                    select(SubscriptionRow.licence_sku_id, SubscriptionRow.id).where(
                        SubscriptionRow.organisation_id == organisation_id, SubscriptionRow.status.in_(LIVE)
                    )
                )
            )
        pool: dict[str, int] = {}
        for licence, _unused in pooled:
            if licence:
                pool[licence.lower()] = pool.get(licence.lower(), 0) + 1
        entries = await self._pricing.entries_for(organisation_id) if rows else []
        now = self.clock.now()
        today = now.date()
        views: list[SubscriptionView] = []
        for row in rows:
            view = _view(row, now)
            licence = row.licence_sku_id.lower()
            price = price_in_force(
                entries,
                product_id=row.product_id,
                sku_id=row.sku_id,
                term_duration=row.term_duration,
                billing_cycle=row.billing_cycle,
                on=today,
            )
            views.append(
                SubscriptionView(
                    **{
                        **view.__dict__,
                        "consumed": consumed.get(licence, 0) if consumed is not None and licence else None,
                        "shared_with": max(0, pool.get(licence, 0) - (1 if row.status in LIVE else 0))
                        if licence
                        else 0,
                        "unit_price": price.amount if price is not None else None,
                        "currency": price.currency if price is not None else "",
                    }
                )
            )
        return views

    # --- the sync ---------------------------------------------------------------------------

    async def sync(self, organisation_id: int) -> SyncResult:
        """Mirror Microsoft's subscriptions of the organisation; ledger what changed elsewhere."""
        async with self._sessions() as session:
            org = await organisation_of(session, organisation_id)
            customer_id = customer_of(org)
            state = await session.get(SubscriptionSyncState, organisation_id)
            cursor = as_utc(state.audit_cursor) if state is not None else None
        subscriptions = await self._client.subscriptions(customer_id)
        licences = {s.id: await self._catalog.licence_sku_for_offer(s.offer_id or "") for s in subscriptions}
        records, newest = await self._audit_records(customer_id, subscriptions, cursor)
        for attempt in (1, 2):
            try:
                return await self._store(organisation_id, customer_id, subscriptions, licences, records, newest)
            except IntegrityError:  # a concurrent sync wrote the same rows or entries: read again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _audit_records(
        self, customer_id: str, subscriptions: list[Subscription], cursor: datetime | None
    ) -> tuple[dict[str, list[AuditRecord]], datetime | None]:
        created = [as_utc(s.creation_date) for s in subscriptions if s.creation_date is not None]
        if cursor is None and not created:
            return {}, None
        start = (cursor or min(c for c in created if c is not None)) - timedelta(days=1)
        latest = max([c for c in created if c is not None] + ([cursor] if cursor else []))
        # Microsoft keeps 90 days of audit records and refuses a start before that, counted from its
        # own "now" (the built-in sandbox's clock may have moved a year on since the last sync).
        start = max(start, latest - timedelta(days=85), self.clock.now() - timedelta(days=85))
        by_subscription: dict[str, list[AuditRecord]] = {}
        newest = cursor
        try:
            records = self._client.audit_records(
                start.date(), filter={"Field": "CustomerId", "Value": customer_id, "Operator": "equals"}
            )
            async for record in records:
                if (record.resource_type or "").lower() != "subscription":
                    continue
                when = as_utc(record.operation_date)
                if cursor is not None and when is not None and when < cursor:
                    continue  # read by an earlier sync: already in the mirror and the ledger
                subscription_id = (record.data("SubscriptionId") or "").lower()
                if subscription_id:
                    by_subscription.setdefault(subscription_id, []).append(record)
                if when is not None and (newest is None or when > newest):
                    newest = when
        except DomainError as error:
            log.warning("audit records unavailable; changes are dated by the sync: %s", error.message)
        for items in by_subscription.values():
            items.sort(key=lambda r: (as_utc(r.operation_date) or datetime.min.replace(tzinfo=UTC), r.id or ""))
        return by_subscription, newest

    async def _store(
        self,
        organisation_id: int,
        customer_id: str,
        subscriptions: list[Subscription],
        licences: dict[str, str | None],
        records: dict[str, list[AuditRecord]],
        newest: datetime | None,
    ) -> SyncResult:
        result = SyncResult()
        now = utcnow()
        async with self._sessions() as session:
            mirror = {
                row.id: row
                for row in await session.scalars(
                    select(SubscriptionRow).where(SubscriptionRow.organisation_id == organisation_id)
                )
            }
            pending: list[Any] = []
            seen_keys = [f"audit:{record.id}" for items in records.values() for record in items]
            seen = (
                set(await session.scalars(select(LedgerEntry.source_key).where(LedgerEntry.source_key.in_(seen_keys))))
                if seen_keys
                else set()
            )
            for subscription in subscriptions:
                sid = subscription.id.lower()
                row = mirror.get(sid)
                history = records.get(sid, [])
                if row is None:
                    first = _snapshot(history[0], "resource_old_value") if history else None
                    bought = int(first.get("quantity") or 0) if first else (subscription.quantity or 0)
                    written = await record_purchase(
                        session,
                        Purchase(
                            organisation_id=organisation_id,
                            customer_id=customer_id,
                            subscription=subscription,
                            quantity=bought,
                            source=LedgerSource.SYNC,
                            actor=SYNC_ACTOR,
                            now=self.clock.now(),
                            synced_at=now,
                            licence_sku_id=licences.get(subscription.id),
                        ),
                    )
                    row = written.row
                    result.created += 1
                    result.ledger_entries += written.ledgered
                    tracked: dict[str, Any] = {"quantity": bought, "status": "active"}
                else:
                    tracked = {"quantity": row.quantity, "status": row.status}
                    before = (row.quantity, row.status, row.auto_renew, row.etag)
                    apply_to_row(row, subscription, licence_sku_id=licences.get(subscription.id), now=now)
                    if before != (row.quantity, row.status, row.auto_renew, row.etag):
                        result.updated += 1
                for record in history:
                    old, new = _snapshot(record, "resource_old_value"), _snapshot(record, "resource_new_value")
                    if old is None or new is None:
                        continue
                    if f"audit:{record.id}" in seen:  # ledgered by an earlier sync (same instant as the cursor)
                        tracked = {
                            "quantity": int(new.get("quantity") or 0),
                            "status": str(new.get("status", "")).lower(),
                        }
                        continue
                    if (int(old.get("quantity") or 0), str(old.get("status", "")).lower()) != (
                        tracked["quantity"],
                        tracked["status"],
                    ):
                        continue  # already in the mirror (the bot's own change) or out of sequence
                    at = as_utc(record.operation_date) or self.clock.now()
                    for index, event in enumerate(_events(old, new, record.data(_("Reason")))):
                        after = 0 if event is LedgerEvent.CANCELLATION else int(new.get("quantity") or 0)
                        pending.append(
                            ledger_record(
                                row,
                                event,
                                before=int(old.get("quantity") or 0),
                                after=after,
                                at=at,
                                source=LedgerSource.SYNC,
                                source_key=f"audit:{record.id}" + (f":{index}" if index else ""),
                                actor=record.user_principal_name or SYNC_ACTOR,
                            )
                        )
                    result.audit_records += 1
                    tracked = {"quantity": int(new.get("quantity") or 0), "status": str(new.get("status", "")).lower()}
                current: dict[str, Any] = {
                    "quantity": subscription.quantity or 0,
                    "status": str(subscription.status or ""),
                }
                if tracked != current:
                    # No audit record explains it (older than Microsoft keeps): dated by this sync.
                    for event in _events(tracked, current, None):
                        pending.append(
                            ledger_record(
                                row,
                                event,
                                before=int(tracked["quantity"]),
                                after=0 if event is LedgerEvent.CANCELLATION else int(current["quantity"]),
                                at=self.clock.now(),
                                source=LedgerSource.SYNC,
                                source_key=f"sync:{sid}:{subscription.etag or now.isoformat()}:{event.value}",
                                actor=SYNC_ACTOR,
                            )
                        )
            keys = [record.source_key for record in pending]
            known = (
                set(await session.scalars(select(LedgerEntry.source_key).where(LedgerEntry.source_key.in_(keys))))
                if keys
                else set()
            )
            for record in pending:
                if record.source_key not in known:
                    known.add(record.source_key)
                    self._ledger.add(session, record)
                    result.ledger_entries += 1
            state = await session.get(SubscriptionSyncState, organisation_id)
            if state is None:
                state = SubscriptionSyncState(organisation_id=organisation_id)
                session.add(state)
            state.synced_at = now
            if newest is not None:
                state.audit_cursor = newest
            if result.created or result.ledger_entries:
                audit.record(
                    session,
                    actor=SYNC_ACTOR,
                    action="subscriptions.sync",
                    organisation_id=organisation_id,
                    after={
                        "created": result.created,
                        "updated": result.updated,
                        "ledger_entries": result.ledger_entries,
                    },
                )
            await session.commit()
        return result
