"""The warnings pass and what a warning card's buttons do, on Microsoft's clock.

The pass runs as the durable job `warnings.pass`: every replica's scheduler submits it once per slot
of Microsoft's time (`interval`), the job's idempotency key lets one replica create it and its lease
lets one run it. A pass refreshes each organisation's subscriptions from Microsoft, reads everything
else in a few queries, notes how long licences have stayed unassigned, and asks `rules.due_warnings`
what is due now. Each due warning is claimed by its key (organisation, kind, subject, window) in
`warning_notices` before it is sent, so it is sent at most once; it goes to the organisation's admins
as they are at that moment (a removed member, or one whose admin role was taken away, gets nothing),
in their 1:1 chat, through the delivery the bot sets (`set_delivery`). Nobody reachable: the notice
waits (later passes try again while its action is possible) and the operator gets an alert.

A button re-checks at click time: the action runs through the same services as the subscriptions
task (its previews, Microsoft's rules, idempotency keys), and what can no longer be done is
explained instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import formatting
from services.access import Caller
from services.alerts import AlertService
from services.billing.service import cycle_calendar
from services.catalog import CatalogService
from services.db import utcnow
from services.errors import DomainError, InvalidInput, NotFound
from services.i18n import N_, _
from services.jobs import JobService, JobView
from services.models import (
    ConversationReferenceRow,
    DeliveryClaim,
    LicenceIdleRow,
    LicenceOverviewRow,
    LicencePool,
    Member,
    MemberRole,
    Organisation,
    SubscriptionRow,
    TenantUser,
    WarningNotice,
)
from services.payloads import row_id
from services.price_rules import UnitPrice, price_in_force
from services.pricing import PriceBook
from services.roles import Permission, Role
from services.subscriptions import ChangeResult, QuantityPlan, SubscriptionChanges, SubscriptionService
from services.subscriptions.common import RENEWAL_LOCK, as_utc, status_word
from services.subscriptions.listing import refundable_batches
from services.users import LicenceService
from services.warnings.overview import build_overview
from services.warnings.renewals import CYCLE_MONTHS, RenewalOutlook, renewal_outlook
from services.warnings.rules import (
    Kind,
    OrganisationFacts,
    PoolFacts,
    SubscriptionFacts,
    UserFacts,
    Warning,
    WarningSettings,
    due_warnings,
    renewal_day,
    still_possible,
    track_idle,
)
from services.warnings.settings import WarningSettingsStore

log = logging.getLogger(__name__)

PASS_JOB = "warnings.pass"
PASS_ACTOR = "system:warnings"
UNDELIVERABLE_ALERT = "warnings_undeliverable"
CHANNEL_MEMBER = 0  # the Recipient of the organisation channel's copy (no member)
LIVE = ("active", "suspended")
# Kinds of delivery claim (services/models.py: DeliveryClaim), and the organisation channel's recipient.
WARNING_CLAIM, OVERVIEW_CLAIM, CHANNEL_CLAIM = "warning", "overview", "channel"
OVERVIEW_LATE_DAYS = 3  # a monthly overview missed on the billing day is sent this long after it
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class NoticeView:
    id: int
    organisation_id: int
    kind: Kind
    subject: str
    window: str
    due_at: datetime
    deadline: datetime | None
    status: str  # pending | sent | acted | expired
    facts: Mapping[str, Any]
    sent_to: tuple[int, ...]
    posts: tuple[Mapping[str, Any], ...]
    outcome: str = ""
    acted_by: str = ""
    acted_at: datetime | None = None


def _notice(row: WarningNotice) -> NoticeView:
    return NoticeView(
        id=row.id,
        organisation_id=row.organisation_id,
        kind=Kind(row.kind),
        subject=row.subject,
        window=row.window,
        due_at=as_utc(row.due_at) or row.due_at,
        deadline=as_utc(row.deadline),
        status=row.status,
        facts=dict(row.facts or {}),
        sent_to=tuple(int(member) for member in row.sent_to or ()),
        posts=tuple(dict(post) for post in row.posts or ()),
        outcome=row.outcome,
        acted_by=row.acted_by,
        acted_at=as_utc(row.acted_at),
    )


@dataclass(frozen=True)
class Recipient:
    member_id: int  # CHANNEL_MEMBER: the organisation channel
    name: str
    conversation_id: str


# The bot's side: post the notice's card into the recipient's 1:1 chat; returns the message id.
Deliver = Callable[[NoticeView, Recipient], Awaitable[str | None]]
# The monthly licence overview (its stored facts) into a recipient's 1:1 chat; the message id, None
# when it did not arrive.
DeliverOverview = Callable[[int, Mapping[str, Any], Recipient], Awaitable[str | None]]


@dataclass
class PassResult:
    organisations: int = 0
    due: int = 0
    sent: int = 0  # notices that reached an admin in this pass
    deferred: int = 0  # held back by quiet hours
    waiting: int = 0  # claimed, but no admin could be reached
    expired: int = 0
    overviews: int = 0  # monthly licence overviews sent
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TermOption:
    """One way the subscription could renew: its term and billing frequency at the reseller's price in
    force on the renewal day, for the seats it renews with."""

    term_duration: str
    billing_cycle: str
    currency: str
    unit_price: Decimal  # per seat per billing period
    per_period: Decimal  # for the renewing seats, per billing period
    per_year: Decimal  # for the renewing seats, per year: what makes the options comparable
    current: bool


@dataclass(frozen=True)
class TermSwitchPlan:
    subscription_id: str
    name: str
    quantity: int  # the seats it renews with (a lower quantity scheduled before stays)
    renews_on: date | None
    options: tuple[TermOption, ...]  # the current one first, then the cheapest per year first


class Prices:
    """Price look-ups for many subscriptions: the entries grouped by product, SKU, term and billing
    frequency once, and each (offer, day) answered once (`price_rules.price_in_force` decides)."""

    def __init__(self, entries: Sequence[UnitPrice]) -> None:
        self._by_key: dict[tuple[str, str, str, str], list[UnitPrice]] = {}
        for entry in entries:
            key = (
                entry.product_id.upper(),
                entry.sku_id.upper(),
                entry.term_duration.upper(),
                entry.billing_cycle.lower(),
            )
            self._by_key.setdefault(key, []).append(entry)
        self._found: dict[tuple[tuple[str, str, str, str], date], UnitPrice | None] = {}

    def on(self, row: Any, day: date | None) -> UnitPrice | None:
        if day is None:
            return None
        key = (row.product_id.upper(), row.sku_id.upper(), row.term_duration.upper(), row.billing_cycle.lower())
        if (key, day) not in self._found:
            self._found[(key, day)] = price_in_force(
                self._by_key.get(key, ()),
                product_id=key[0],
                sku_id=key[1],
                term_duration=key[2],
                billing_cycle=key[3],
                on=day,
            )
        return self._found[(key, day)]


def subscription_facts(row: Any, prices: Prices, now: datetime) -> SubscriptionFacts:
    """The rules' view of a mirror row (an ORM row or a plain row with its columns), priced now and on
    its renewal day."""
    price = prices.on(row, now.date())
    term, cycle = getattr(row, "scheduled_term_duration", None), getattr(row, "scheduled_billing_cycle", None)
    next_term = (
        SimpleNamespace(product_id=row.product_id, sku_id=row.sku_id, term_duration=term, billing_cycle=cycle)
        if term and cycle
        else row
    )
    renewal_price = prices.on(next_term, renewal_day(as_utc(row.commitment_end_date)))
    return SubscriptionFacts(
        id=row.id,
        name=row.name,
        product_id=row.product_id,
        sku_id=row.sku_id,
        licence_sku_id=row.licence_sku_id or "",
        quantity=row.quantity,
        status=row.status,
        term_duration=row.term_duration,
        billing_cycle=row.billing_cycle,
        auto_renew=row.auto_renew,
        commitment_end=as_utc(row.commitment_end_date),
        refundable=refundable_batches(row.refundable or {}),
        scheduled_quantity=row.scheduled_quantity,
        currency=next((p.currency for p in (price, renewal_price) if p is not None), ""),
        unit_price=price.amount if price else None,
        renewal_unit_price=renewal_price.amount if renewal_price else None,
        parent_id=row.parent_subscription_id,
        scheduled_term_duration=term or "" if cycle else "",
        scheduled_billing_cycle=cycle or "" if term else "",
    )


class WarningService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        subscriptions: SubscriptionService,
        changes: SubscriptionChanges,
        licences: LicenceService,
        pricing: PriceBook,
        alerts: AlertService,
        jobs: JobService,
        catalog: CatalogService,
        *,
        clock: Clock = utcnow,
        interval: timedelta = timedelta(hours=1),
        check_seconds: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._subscriptions = subscriptions
        self._changes = changes
        self._licences = licences
        self._pricing = pricing
        self._alerts = alerts
        self._jobs = jobs
        self._catalog = catalog
        self.clock = clock  # Microsoft's "now" (the built-in sandbox's clock when it runs)
        self.interval = interval
        self.check_seconds = check_seconds
        self.settings = WarningSettingsStore(sessions)
        self._deliver: Deliver | None = None
        self._deliver_overview: DeliverOverview | None = None
        self._task: asyncio.Task[None] | None = None
        jobs.register(PASS_JOB, self._run_job)

    def set_delivery(self, deliver: Deliver, deliver_overview: DeliverOverview | None = None) -> None:
        self._deliver = deliver
        self._deliver_overview = deliver_overview

    # --- the facts ------------------------------------------------------------------------------

    async def load_facts(
        self,
        now: datetime,
        *,
        organisation_ids: Sequence[int] | None = None,
        consumed: Mapping[int, Mapping[str, int]] | None = None,
    ) -> dict[int, OrganisationFacts]:
        """Every organisation's facts in a few reads (not a few per organisation). `consumed`: the
        licences assigned per licence product as Microsoft reported them just now, by organisation
        (else the last synced licence pools)."""
        global_entries, own_entries = await self._pricing.entries_by_organisation()
        settings = await self.settings.all()
        scope = (lambda column: column.in_(list(organisation_ids))) if organisation_ids is not None else None
        async with self._sessions() as session:
            orgs = select(Organisation.id).where(Organisation.partner_center_customer_id.is_not(None))
            if scope is not None:
                orgs = orgs.where(scope(Organisation.id))
            ids = list(await session.scalars(orgs))
            table = SubscriptionRow.__table__
            subscriptions = list(  # plain rows: thousands of them, read only
                await session.execute(
                    select(table)
                    .where(table.c.organisation_id.in_(ids))
                    .order_by(table.c.organisation_id, table.c.name, table.c.id)
                )
            )
            pools = (
                await session.execute(
                    select(
                        LicencePool.organisation_id,
                        LicencePool.licence_sku_id,
                        LicencePool.name,
                        LicencePool.consumed_units,
                    ).where(LicencePool.organisation_id.in_(ids))
                )
            ).all()
            idle = (
                await session.execute(
                    select(LicenceIdleRow.organisation_id, LicenceIdleRow.licence_sku_id, LicenceIdleRow.layers).where(
                        LicenceIdleRow.organisation_id.in_(ids)
                    )
                )
            ).all()
            users = (
                await session.execute(
                    select(
                        TenantUser.organisation_id,
                        TenantUser.user_id,
                        TenantUser.display_name,
                        TenantUser.user_principal_name,
                        TenantUser.licence_sku_ids,
                        TenantUser.last_sign_in_at,
                    ).where(TenantUser.organisation_id.in_(ids), TenantUser.state == "active")
                )
            ).all()
        rows_by_org: dict[int, list[Any]] = {org: [] for org in ids}
        for row in subscriptions:
            rows_by_org[row.organisation_id].append(row)
        pool_rows = {(pool.organisation_id, pool.licence_sku_id.lower()): pool for pool in pools}
        layers = {
            (row.organisation_id, row.licence_sku_id.lower()): tuple(
                (int(seats), as_utc(datetime.fromisoformat(since)) or now) for seats, since in row.layers or ()
            )
            for row in idle
        }
        users_by_org: dict[int, list[UserFacts]] = {org: [] for org in ids}
        for org, user_id, name, upn, licences, last in users:
            users_by_org[org].append(
                UserFacts(user_id, name or upn, upn, tuple(s.lower() for s in licences or ()), as_utc(last))
            )
        facts: dict[int, OrganisationFacts] = {}
        shared = Prices(global_entries)  # organisations without a list of their own share the look-ups
        for org in ids:
            prices = Prices(global_entries + own_entries[org]) if own_entries.get(org) else shared
            subs = [subscription_facts(row, prices, now) for row in rows_by_org[org]]
            active: dict[str, int] = {}
            names: dict[str, str] = {}
            for sub in subs:
                licence = sub.licence_sku_id.lower()
                if licence and sub.status == "active":
                    active[licence] = active.get(licence, 0) + sub.quantity
                    names.setdefault(licence, sub.name)
            assigned = consumed.get(org) if consumed is not None else None
            org_pools: dict[str, PoolFacts] = {}
            for licence, units in active.items():
                stored = pool_rows.get((org, licence))
                used = assigned.get(licence) if assigned is not None else None
                if used is None:
                    used = stored.consumed_units if stored is not None else 0
                org_pools[licence] = PoolFacts(
                    licence,
                    (stored.name if stored is not None and stored.name else names[licence]),
                    units,
                    used,
                    layers.get((org, licence), ()),
                )
            facts[org] = OrganisationFacts(
                org, subs, org_pools, users_by_org[org], settings.get(org, WarningSettings())
            )
        return facts

    async def _note_idle(self, facts: dict[int, OrganisationFacts], now: datetime) -> dict[int, OrganisationFacts]:
        """Carry each pool's idle layers forward to what is unassigned now, and store them."""
        updated: dict[int, OrganisationFacts] = {}
        async with self._sessions.begin() as session:
            for org, org_facts in facts.items():
                pools: dict[str, PoolFacts] = {}
                for licence, pool in org_facts.pools.items():
                    layers = track_idle(pool.idle_layers, pool.unassigned, now)
                    pools[licence] = PoolFacts(
                        pool.licence_sku_id, pool.name, pool.active_units, pool.consumed_units, layers
                    )
                    if layers != pool.idle_layers:
                        row = await session.get(LicenceIdleRow, (org, licence))
                        if row is None:
                            row = LicenceIdleRow(organisation_id=org, licence_sku_id=licence)
                            session.add(row)
                        row.layers = [[seats, since.isoformat()] for seats, since in layers]
                updated[org] = OrganisationFacts(
                    org, org_facts.subscriptions, pools, org_facts.users, org_facts.settings
                )
        return updated

    # --- the pass -------------------------------------------------------------------------------

    async def run_pass(self, *, refresh: bool = True, organisation_ids: Sequence[int] | None = None) -> PassResult:
        """Send what is due now. `refresh`: read each organisation's subscriptions and licence counts
        from Microsoft first (the job does; a test or benchmark may work on the stored copy)."""
        now = self.clock()
        result = PassResult()
        consumed: dict[int, Mapping[str, int]] | None = None
        if refresh:
            consumed = {}
            async with self._sessions() as session:
                query = select(Organisation.id, Organisation.partner_center_customer_id).where(
                    Organisation.partner_center_customer_id.is_not(None)
                )
                if organisation_ids is not None:
                    query = query.where(Organisation.id.in_(list(organisation_ids)))
                customers = (await session.execute(query)).all()
            for org, customer in customers:
                try:
                    await self._subscriptions.sync(org)
                except DomainError as error:
                    result.problems.append(_("organisation {org}: {message}", org=org, message=error.message))
                    log.warning("warnings pass: subscriptions of organisation %s not refreshed: %s", org, error.message)
                counts = await self._subscriptions.consumed_by_licence(customer)
                if counts is not None:
                    consumed[org] = counts
        facts = await self._note_idle(
            await self.load_facts(now, organisation_ids=organisation_ids, consumed=consumed), now
        )
        result.organisations = len(facts)
        result.expired = await self._expire(now)
        for org_facts in facts.values():
            for warning in due_warnings(org_facts, now):
                result.due += 1
                await self._send(warning, org_facts.settings, now, result)
        result.overviews = await self._send_overviews(facts, now)
        return result

    # --- the monthly licence overview -----------------------------------------------------------

    async def overview_due(self, now: datetime) -> str | None:
        """The month whose overview is due now: on the reseller's billing day (the first day after a
        billing cycle ended, in the reseller's time zone) and, when the bot was down then, for up to
        OVERVIEW_LATE_DAYS after it; else None."""
        calendar = await cycle_calendar(self._sessions)
        today = calendar.today(now)
        ended = calendar.last_ended(today)
        if (today - ended.end).days - 1 > OVERVIEW_LATE_DAYS:  # the billing day is the day after the end
            return None
        year, month = ended.month
        return f"{year:04d}-{month:02d}"

    async def _send_overviews(self, facts: Mapping[int, OrganisationFacts], now: datetime) -> int:
        """Each organisation's overview of the month due, claimed once by (organisation, month) and
        sent to its admins and billing readers — each once: one Teams did not take is tried again by
        the next pass while the overview is due. Returns how many organisations' were sent to someone."""
        if self._deliver_overview is None or not facts:
            return 0
        month = await self.overview_due(now)
        if month is None:
            return 0
        async with self._sessions() as session:
            claimed = {
                row.organisation_id: row
                for row in await session.scalars(
                    select(LicenceOverviewRow).where(
                        LicenceOverviewRow.month == month, LicenceOverviewRow.organisation_id.in_(list(facts))
                    )
                )
            }
        sent = 0
        for org, org_facts in facts.items():
            stored = claimed.get(org)
            already: set[int] = set(stored.sent_to or ()) if stored is not None else set()
            if stored is not None:  # claimed: whoever could not be reached yet is tried again while due
                number, overview = stored.id, dict(stored.facts)
            else:
                claim = await self._claim_overview(org, org_facts, now, month)
                if claim is None:
                    continue
                number, overview = claim
            reached = False
            recipients = await self.recipients(org, (Role.ADMIN, Role.BILLING))
            for recipient in (r for r in recipients if r.member_id not in already):
                held = (OVERVIEW_CLAIM, number, str(recipient.member_id))
                if not await self._claim_delivery(*held):
                    continue  # another pass has it (or had it)
                try:
                    posted = await self._deliver_overview(org, overview, recipient)
                except Exception:
                    log.exception("could not post the licence overview of organisation %s", org)
                    posted = None
                if posted is None:  # Teams gave no message id: the post did not arrive
                    log.warning(
                        "the licence overview of organisation %s did not reach member %s", org, recipient.member_id
                    )
                    await self._release_delivery(*held)
                    continue
                async with self._sessions.begin() as session:
                    row = await session.get(LicenceOverviewRow, number, with_for_update=True)
                    if row is not None:
                        row.sent_to = sorted({*(row.sent_to or ()), recipient.member_id})
                reached = True
            if reached:
                sent += 1
        return sent

    async def _claim_overview(
        self, organisation_id: int, facts: OrganisationFacts, now: datetime, month: str
    ) -> tuple[int, dict[str, Any]] | None:
        """Build and store the month's overview (the claim: one pass sends it); None when another
        pass stored it first."""
        async with self._sessions() as session:
            previous = await session.scalar(
                select(LicenceOverviewRow.facts)
                .where(LicenceOverviewRow.organisation_id == organisation_id, LicenceOverviewRow.month < month)
                .order_by(LicenceOverviewRow.month.desc())
                .limit(1)
            )
            overview = build_overview(facts, now, month, previous)
            row = LicenceOverviewRow(organisation_id=organisation_id, month=month, facts=overview, sent_to=[])
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return None
            return row.id, overview

    async def overview(self, organisation_id: int, month: str) -> Mapping[str, Any]:
        """The stored overview of an organisation's month (what its XLSX download shows)."""
        async with self._sessions() as session:
            facts = await session.scalar(
                select(LicenceOverviewRow.facts).where(
                    LicenceOverviewRow.organisation_id == organisation_id, LicenceOverviewRow.month == month
                )
            )
        if facts is None:
            raise NotFound(_("There is no licence overview of that month."))
        return dict(facts)

    async def _expire(self, now: datetime) -> int:
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(WarningNotice)
                .where(WarningNotice.status == "pending", WarningNotice.deadline <= now)
                .values(status="expired", outcome=N_("its moment passed before an admin could be reached"))
                .execution_options(synchronize_session=False)
            )
        return int(done.rowcount or 0)  # type: ignore[attr-defined]

    async def _send(self, warning: Warning, settings: WarningSettings, now: datetime, result: PassResult) -> None:
        if not still_possible(warning.deadline, now):
            return
        quiet_until = settings.quiet_until(now)
        if quiet_until is not None and (warning.deadline is None or warning.deadline > quiet_until):
            result.deferred += 1  # it can wait for the morning; one that cannot is sent now
            return
        notice = await self._claim(warning)
        if notice.status != "pending":
            return
        if await self.deliver(notice):
            result.sent += 1
        else:
            result.waiting += 1

    async def _claim(self, warning: Warning) -> NoticeView:
        """The notice of this warning: inserted by the first pass that finds it due, read after that."""
        key = (
            WarningNotice.organisation_id == warning.organisation_id,
            WarningNotice.kind == warning.kind.value,
            WarningNotice.subject == warning.subject,
            WarningNotice.window == warning.window,
        )
        async with self._sessions() as session:
            session.add(
                WarningNotice(
                    organisation_id=warning.organisation_id,
                    kind=warning.kind.value,
                    subject=warning.subject,
                    window=warning.window,
                    due_at=warning.due_at,
                    deadline=warning.deadline,
                    facts=warning.facts,
                    sent_to=[],
                    posts=[],
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
            row = await session.scalar(select(WarningNotice).where(*key))
            if row is None:  # pragma: no cover - the row was just inserted or found
                raise DomainError(_("The warning could not be recorded."))
            return _notice(row)

    async def recipients(self, organisation_id: int, roles: Sequence[Role] = (Role.ADMIN,)) -> list[Recipient]:
        """The organisation's members with one of `roles` now (its admins), each with the 1:1 chat the
        bot has with them."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Member.id, Member.display_name, Member.email, ConversationReferenceRow.conversation_id)
                    .join(MemberRole, MemberRole.member_id == Member.id)
                    .join(ConversationReferenceRow, ConversationReferenceRow.member_id == Member.id)
                    .where(
                        Member.organisation_id == organisation_id,
                        MemberRole.role.in_([role.value for role in roles]),
                        ConversationReferenceRow.conversation_type == "personal",
                    )
                    .order_by(Member.id, ConversationReferenceRow.updated_at.desc())
                )
            ).all()
        found: dict[int, Recipient] = {}
        for member, name, email, conversation in rows:
            found.setdefault(member, Recipient(member, name or email, conversation))
        return list(found.values())

    async def deliver(self, notice: NoticeView) -> bool:
        """Post the notice to every admin it has not reached yet; True when it reached one now."""
        if self._deliver is None:
            raise RuntimeError("the warnings have no delivery set (the bot sets it at start-up)")
        reached = False
        recipients = [r for r in await self.recipients(notice.organisation_id) if r.member_id not in notice.sent_to]
        for recipient in recipients:
            claim = (WARNING_CLAIM, notice.id, str(recipient.member_id))
            if not await self._claim_delivery(*claim):
                continue  # posted (or being posted) by another pass, or on the admin's hello
            try:
                activity_id = await self._deliver(notice, recipient)
            except Exception:
                log.exception("could not post warning %s to an admin", notice.id)
                activity_id = None
            if not activity_id:  # Teams took nothing (no message id): not delivered, tried on the next pass
                log.warning("warning %s was not taken for an admin's chat; it is tried again", notice.id)
                await self._release_delivery(*claim)
                continue
            await self._record_post(notice.id, recipient, activity_id)
            reached = True
        if await self._post_in_channel(notice):
            reached = True
        if not reached and not notice.sent_to:
            await self._alerts.raise_alert(
                UNDELIVERABLE_ALERT,
                _(
                    "Organisation {organisation_id} has a warning ({value}) that no admin can receive: no "
                    "admin has chatted with the bot yet (or the chat could not be reached). It is tried again "
                    "on every pass while its action is possible.",
                    organisation_id=notice.organisation_id,
                    value=notice.kind.value,
                ),
                dedup_key=f"{UNDELIVERABLE_ALERT}:{notice.organisation_id}",
                organisation_id=notice.organisation_id,
            )
        return reached

    async def _post_in_channel(self, notice: NoticeView) -> bool:
        """The copy in the organisation channel the operator set, once per notice; its buttons work
        for admins only (the same role checks as in a 1:1 chat). True when it was posted now."""
        assert self._deliver is not None
        channel = await self.settings.channel(notice.organisation_id)
        if not channel or any(post.get("channel") for post in notice.posts):
            return False
        claim = (WARNING_CLAIM, notice.id, CHANNEL_CLAIM)
        if not await self._claim_delivery(*claim):
            return False
        try:
            activity_id = await self._deliver(notice, Recipient(CHANNEL_MEMBER, _("the organisation channel"), channel))
        except Exception:
            log.exception("could not post warning %s in the organisation channel", notice.id)
            activity_id = None
        if not activity_id:
            log.warning("warning %s was not taken in the organisation channel; it is tried again", notice.id)
            await self._release_delivery(*claim)
            return False
        await self._record_post(notice.id, Recipient(CHANNEL_MEMBER, "", channel), activity_id)
        return True

    async def deliver_waiting(self, organisation_id: int, member_id: int) -> int:
        """An admin has just opened a chat with the bot: post them each warning of their organisation
        that did not reach them, not yet acted on and still possible. Returns how many were posted."""
        recipient = next((r for r in await self.recipients(organisation_id) if r.member_id == member_id), None)
        if recipient is None or self._deliver is None:
            return 0
        now = self.clock()
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(WarningNotice)
                    .where(
                        WarningNotice.organisation_id == organisation_id,
                        WarningNotice.status.in_(("pending", "sent")),
                    )
                    .order_by(WarningNotice.id)
                )
            )
        posted = 0
        for notice in (_notice(row) for row in rows):
            if member_id in notice.sent_to or not still_possible(notice.deadline, now):
                continue
            claim = (WARNING_CLAIM, notice.id, str(member_id))
            if not await self._claim_delivery(*claim):
                continue
            try:
                activity_id = await self._deliver(notice, recipient)
            except Exception:
                log.exception("could not post warning %s to an admin who has just arrived", notice.id)
                activity_id = None
            if not activity_id:
                await self._release_delivery(*claim)
                continue
            await self._record_post(notice.id, recipient, activity_id)
            posted += 1
        return posted

    async def _claim_delivery(self, kind: str, ref_id: int, recipient: str) -> bool:
        """Claim one message for one recipient before posting it: False when another pass, replica or
        turn claimed it first (it posts it, or has)."""
        async with self._sessions() as session:
            session.add(DeliveryClaim(kind=kind, ref_id=ref_id, recipient=recipient))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        return True

    async def _release_delivery(self, kind: str, ref_id: int, recipient: str) -> None:
        """Give a claim back when Teams did not take the post, so the next pass tries again."""
        async with self._sessions.begin() as session:
            await session.execute(
                delete(DeliveryClaim).where(
                    DeliveryClaim.kind == kind, DeliveryClaim.ref_id == ref_id, DeliveryClaim.recipient == recipient
                )
            )

    async def _record_post(self, notice_id: int, recipient: Recipient, activity_id: str | None) -> None:
        async with self._sessions.begin() as session:
            row = await session.get(WarningNotice, notice_id, with_for_update=True)
            if row is None:
                return
            in_channel = recipient.member_id == CHANNEL_MEMBER
            if not in_channel:
                row.sent_to = sorted({*row.sent_to, recipient.member_id})
            row.posts = [
                *row.posts,
                {
                    "conversation_id": recipient.conversation_id,
                    "activity_id": activity_id,
                    "member_id": None if in_channel else recipient.member_id,
                    "channel": in_channel,
                },
            ]
            if row.status == "pending":
                row.status = "sent"

    # --- the job and its scheduler --------------------------------------------------------------

    def slot(self) -> int:
        """Which pass is due: Microsoft's time in whole `interval`s (a moved sandbox clock is a new slot)."""
        return int(self.clock().timestamp() // self.interval.total_seconds())

    async def submit_pass(self) -> bool:
        """Submit this slot's pass (every replica may; the key makes it one job). True when created."""
        slot = self.slot()
        _unused, created = await self._jobs.submit(
            PASS_JOB,
            idempotency_key=f"{PASS_JOB}:{slot}",
            payload={"slot": slot},
            organisation_id=None,
            requested_by=PASS_ACTOR,
            max_attempts=2,
        )
        return created

    async def _run_job(self, _job: JobView) -> Mapping[str, Any]:
        result = await self.run_pass()
        return {
            "organisations": result.organisations,
            "due": result.due,
            "sent": result.sent,
            "deferred": result.deferred,
            "waiting": result.waiting,
            "expired": result.expired,
        }

    async def _loop(self) -> None:
        while True:
            # First a wait: a replica starting (or a test's app) does not refresh every organisation at once.
            await asyncio.sleep(self.check_seconds)
            try:
                await self.submit_pass()
            except Exception:
                log.exception("could not submit the warnings pass")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="warnings-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- the renewals ahead ---------------------------------------------------------------------

    async def renewals(self, caller: Caller, *, days: int = 90) -> RenewalOutlook:
        """The organisation's renewals in the next `days` days (its subscriptions re-read from
        Microsoft first when the copy is stale, as the subscriptions list does)."""
        caller.require(Permission.READ_SUBSCRIPTIONS)
        await self._subscriptions.page(caller)
        now = self.clock()
        facts = await self.load_facts(now, organisation_ids=[caller.organisation_id])
        subscriptions = facts[caller.organisation_id].subscriptions if caller.organisation_id in facts else []
        return renewal_outlook(subscriptions, now, days)

    # --- what a card's buttons do (re-checked at click time) ------------------------------------

    async def notice_for(self, caller: Caller, notice_id: Any) -> NoticeView:
        caller.require(Permission.MANAGE_SERVICES)
        number = row_id(notice_id, not_found=_("That warning is not one of your organisation's."))
        async with self._sessions() as session:
            row = await session.get(WarningNotice, number)
            if row is None or row.organisation_id != caller.organisation_id:
                raise NotFound(_("That warning is not one of your organisation's."))
            return _notice(row)

    async def notice(self, notice_id: int) -> NoticeView | None:
        async with self._sessions() as session:
            row = await session.get(WarningNotice, notice_id)
            return _notice(row) if row is not None else None

    async def mark_acted(self, notice_id: int, caller: Caller, outcome: str) -> NoticeView:
        """Record what was done from the card (the first action wins; later ones are told)."""
        async with self._sessions.begin() as session:
            row = await session.get(WarningNotice, notice_id, with_for_update=True)
            if row is None:
                raise NotFound(_("That warning is not one of your organisation's."))
            if row.status != "acted":
                row.status = "acted"
                row.outcome = outcome[:300]
                row.acted_by = caller.display_name or caller.email
                row.acted_at = utcnow()
            return _notice(row)

    def _too_late_for_renewal(self, notice: NoticeView) -> str | None:
        renews = notice.facts.get("renews_at")
        if not renews:
            return None
        renewal = datetime.fromisoformat(str(renews))
        if self.clock() >= renewal - RENEWAL_LOCK:
            return _(
                "Too late: Microsoft locks {get} for changes in the 24 hours before it renews "
                "({datetime_utc}). It renews as it is; you can change seats again after the renewal, "
                "within 7 days of it.",
                get=notice.facts.get("name") or _("the subscription"),
                datetime_utc=formatting.datetime_utc(renewal),
            )
        return None

    async def plan_removal(self, caller: Caller, notice: NoticeView) -> QuantityPlan:
        """The seat-window action now: remove the unassigned seats still refundable — the change-quantity
        preview, or why it can no longer be done."""
        if notice.kind is not Kind.SEAT_WINDOW:
            raise InvalidInput(_("That button does not belong to this warning."))
        view = await self._subscriptions.get(caller, notice.subject)
        now = self.clock()
        refundable = sum(seats for seats, until in view.refundable_batches if until > now)
        if not view.is_active:
            raise DomainError(
                _(
                    "{name} is {status} now, so its seats cannot change.",
                    name=view.name,
                    status=status_word(view.status),
                ),
                code="not_active",
            )
        if refundable <= 0:
            raise DomainError(
                _(
                    "Too late: the 7-day window of {name}'s seats has closed, so Microsoft no longer takes "
                    "them back with a refund. You can schedule fewer seats for the renewal from "
                    "**subscriptions**.",
                    name=view.name,
                ),
                code="window_passed",
            )
        if view.licence_sku_id:
            others = await self._pool_others(caller.organisation_id, view.id, view.licence_sku_id)
            unassigned = max(0, view.quantity + others - (view.consumed or 0))
        else:
            unassigned = refundable
        seats = min(refundable, unassigned, view.quantity - 1)
        if seats <= 0:
            raise DomainError(
                _("Nothing to remove from {name} now: its refundable seats are all assigned to users.", name=view.name),
                code="nothing_to_remove",
            )
        plan = await self._changes.plan_quantity(caller, notice.subject, view.quantity - seats)
        if plan.kind != "decrease":
            raise DomainError(
                plan.explanation or _("Microsoft no longer lets those seats be removed."), code="too_late"
            )
        return plan

    async def _pool_others(self, organisation_id: int, subscription_id: str, licence: str) -> int:
        async with self._sessions() as session:
            quantities = await session.scalars(
                select(SubscriptionRow.quantity).where(
                    SubscriptionRow.organisation_id == organisation_id,
                    SubscriptionRow.licence_sku_id == licence,
                    SubscriptionRow.status == "active",
                    SubscriptionRow.id != subscription_id,
                )
            )
            return sum(quantities)

    async def remove_seats(self, caller: Caller, notice: NoticeView, quantity: Any, *, etag: Any, key: Any) -> str:
        """The confirmed removal: the subscriptions task's own change path (re-planned at Microsoft)."""
        if notice.kind is not Kind.SEAT_WINDOW:
            raise InvalidInput(_("That button does not belong to this warning."))
        result = await self._changes.change_quantity(caller, notice.subject, quantity, etag=etag, key=key)
        await self._acted(notice, caller, result)
        return result.message

    async def keep(self, caller: Caller, notice: NoticeView) -> str:
        name = notice.facts.get("name") or _("The subscription")
        if notice.kind is Kind.RENEWAL:
            outcome = _("Kept as is: {name} renews unchanged.", name=name)
        elif notice.kind is Kind.SEAT_WINDOW:
            outcome = _("Kept as is: {name} keeps its seats.", name=name)
        else:
            outcome = _("Kept as is.")
        return (await self.mark_acted(notice.id, caller, outcome)).outcome

    async def renew_with(self, caller: Caller, notice: NoticeView, quantity: Any, *, key: Any) -> str:
        """Schedule the lower quantity for the renewal (checked now: the lock, assigned licences)."""
        if notice.kind is not Kind.RENEWAL:
            raise InvalidInput(_("That button does not belong to this warning."))
        too_late = self._too_late_for_renewal(notice)
        if too_late:
            raise DomainError(too_late, code="renewal_locked")
        plan = await self._changes.plan_quantity(caller, notice.subject, quantity)
        if plan.new > plan.current:
            raise InvalidInput(_("That would add seats; add them from **subscriptions** instead."))
        result = await self._changes.schedule_quantity(caller, notice.subject, quantity, etag=plan.etag, key=key)
        await self._acted(notice, caller, result)
        return result.message

    async def plan_term_switch(self, caller: Caller, notice: NoticeView) -> TermSwitchPlan:
        """The terms and billing frequencies the subscription can renew into, side by side at the
        reseller's price on the renewal day (checked now: the lock, still renewing, prices set)."""
        if notice.kind is not Kind.RENEWAL:
            raise InvalidInput(_("That button does not belong to this warning."))
        caller.require(Permission.MANAGE_SERVICES)
        too_late = self._too_late_for_renewal(notice)
        if too_late:
            raise DomainError(too_late, code="renewal_locked")
        view = await self._subscriptions.get(caller, notice.subject)
        if view.status != "active" or not view.auto_renew:
            raise DomainError(
                _(
                    "{name} does not renew (it is {status}, auto-renew {auto_renew}), so there is no next term to "
                    "change.",
                    name=view.name,
                    status=status_word(view.status),
                    auto_renew=_("on") if view.auto_renew else _("off"),
                ),
                code="not_renewing",
            )
        day = renewal_day(view.renewal_date)
        quantity = view.scheduled_quantity or view.quantity
        try:
            sku = await self._catalog.sku(view.product_id, view.sku_id, include_inactive=True)
            terms = [(term.term_duration, term.billing_cycle) for term in sku.terms]
        except NotFound:
            terms = []
        current = (view.term_duration.upper(), view.billing_cycle.lower())
        if current not in [(t.upper(), c.lower()) for t, c in terms]:
            terms.insert(0, current)
        options: list[TermOption] = []
        for term, cycle in terms:
            price = (
                await self._pricing.price_for(caller.organisation_id, view.product_id, view.sku_id, term, cycle, day)
                if day is not None
                else None
            )
            if price is None:
                continue  # not offered by the reseller on the renewal day
            months = CYCLE_MONTHS.get(cycle.lower(), 1)
            options.append(
                TermOption(
                    term_duration=term.upper(),
                    billing_cycle=cycle.lower(),
                    currency=price.currency,
                    unit_price=price.amount,
                    per_period=price.amount * quantity,
                    per_year=price.amount * quantity * 12 / months,
                    current=(term.upper(), cycle.lower()) == current,
                )
            )
        options.sort(key=lambda option: (not option.current, option.per_year, option.term_duration))
        if not any(not option.current for option in options):
            raise DomainError(
                _(
                    "{name} has no other term or billing frequency with a price from your reseller for its "
                    "renewal, so it renews as it is.",
                    name=view.name,
                ),
                code="no_other_term",
            )
        return TermSwitchPlan(view.id, view.name, quantity, day, tuple(options))

    async def switch_term(
        self, caller: Caller, notice: NoticeView, term_duration: Any, billing_cycle: Any, *, key: Any
    ) -> str:
        """Schedule the chosen term and billing frequency for the renewal, re-checked now: still one of
        the options offered (priced, sold, not the current one) and before the lock."""
        plan = await self.plan_term_switch(caller, notice)
        chosen = next(
            (
                option
                for option in plan.options
                if isinstance(term_duration, str)
                and isinstance(billing_cycle, str)
                and option.term_duration == term_duration.strip().upper()
                and option.billing_cycle == billing_cycle.strip().lower()
            ),
            None,
        )
        if chosen is None:
            raise InvalidInput(_("That term and billing frequency is not offered for this subscription's renewal."))
        if chosen.current:
            raise InvalidInput(_("It already renews with that term and billing frequency: nothing to change."))
        result = await self._changes.schedule_term(
            caller, notice.subject, chosen.term_duration, chosen.billing_cycle, key=key
        )
        await self._acted(notice, caller, result)
        return result.message

    async def auto_renew_off(self, caller: Caller, notice: NoticeView, *, key: Any) -> str:
        if notice.kind is not Kind.RENEWAL:
            raise InvalidInput(_("That button does not belong to this warning."))
        too_late = self._too_late_for_renewal(notice)
        if too_late:
            raise DomainError(too_late, code="renewal_locked")
        result = await self._changes.set_auto_renew(caller, notice.subject, False, key=key)
        await self._acted(notice, caller, result)
        return result.message

    async def unassign(self, caller: Caller, notice: NoticeView, user_id: Any, *, key: Any) -> str:
        """Take the idle licence from a user the warning named (confirmed on the card)."""
        if notice.kind is not Kind.IDLE:
            raise InvalidInput(_("That button does not belong to this warning."))
        named = {str(user["user_id"]): user for user in notice.facts.get("inactive_users", [])}
        if not isinstance(user_id, str) or user_id not in named:
            raise NotFound(_("That user is not one this warning named."))
        outcome = await self._licences.unassign(caller, user_id, [notice.subject], request_key=str(key))
        if outcome.already_done:
            return _("The licence of {name} was already removed from this card.", name=named[user_id]["name"])
        failed = [result for result in outcome.results if not result.ok]
        if failed:
            raise DomainError(_("Microsoft refused: {message}", message=failed[0].message))
        message = _(
            "Removed {get} from {name}.", get=notice.facts.get("name") or _("the licence"), name=named[user_id]["name"]
        )
        async with self._sessions.begin() as session:
            row = await session.get(WarningNotice, notice.id, with_for_update=True)
            if row is not None:
                done = list(row.facts.get("unassigned_users", []))
                row.facts = {**row.facts, "unassigned_users": sorted({*done, user_id})}
        return message

    async def _acted(self, notice: NoticeView, caller: Caller, result: ChangeResult) -> None:
        if not result.repeated:
            await self.mark_acted(notice.id, caller, result.message)


def money_or_none(value: Any) -> Decimal | None:
    """A stored money string of a notice's facts back as a Decimal."""
    return Decimal(str(value)) if value not in (None, "") else None
