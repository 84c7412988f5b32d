"""The billing service: settings, issued reports (stored once, never rewritten), the open cycle,
look-ups and export links. Every call is scoped to the caller's organisation and needs the
`read_billing` permission (admin or billing role).

Issuing: the report of an ended cycle is produced the first time it is needed, together with every
earlier unissued cycle since the organisation's first ledger event, in order. Its lines are the
rating engine's lines for the cycle plus, for each earlier issued cycle whose lines would now come
out differently (a late ledger event, a corrected price), one `adjustment` line per subscription.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit, formatting
from services.access import Caller
from services.alerts import AlertService
from services.billing.cycles import Cycle, CycleCalendar, CycleSetting, parse_cycle_day, parse_timezone
from services.billing.rating import (
    ChargeType,
    Line,
    PriceIndex,
    adjustment_lines,
    rate_cycle,
    rate_cycles,
    totals_by_currency,
)
from services.billing.reports import (
    MAX_MONTHS,
    MAX_YEAR,
    MIN_YEAR,
    CycleReport,
    Query,
    check_range,
    filter_product,
    month_label,
    named_product,
    parse_query,
)
from services.clock import SYSTEM_CLOCK, Clock
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.i18n import _
from services.ledger import LedgerRecord, SubscriptionLedger
from services.models import BillingExportRow, BillingReportLineRow, BillingReportRow, BillingSettingRow
from services.price_rules import UnitPrice
from services.roles import Permission

log = logging.getLogger(__name__)

EXPORT_LINK_MINUTES = 15
EXPORT_FORMATS = ("xlsx", "csv")
# The monthly licence overview's XLSX (services/warnings/overview.py) goes through the same links.
OVERVIEW_FORMAT = "overview"
# Report lines are inserted this many at a time (one executemany each): bounded memory for the
# parameters, few round trips.
INSERT_CHUNK = 2000
# Stored lines are read this many rows at a time.
STREAM_ROWS = 2000
# The issued reports' tables, written and read with Core (plain rows, no unit of work).
_REPORTS = cast(Table, BillingReportRow.__table__)
_LINES = cast(Table, BillingReportLineRow.__table__)
# What a stored line is read as, in `_LineReader.line`'s order (the fields of `Line` after its cycle).
_LINE_COLUMNS = [
    _LINES.c[name]
    for name in (
        "report_id", "subscription_id", "parent_subscription_id", "product", "offer_id", "product_id", "sku_id",
        "term_duration", "billing_cycle", "charge_type", "charge_day", "quantity", "unit_price", "days",
        "cycle_days", "amount", "currency", "price_entry_id", "corrects_cycle_end",
    )
]  # fmt: skip


class PriceSource(Protocol):
    """Where prices come from: the price book (`services.pricing.PriceBook`) in the app, a list in tests."""

    async def entries_for(self, organisation_id: int) -> list[UnitPrice]: ...


@dataclass(frozen=True)
class ExportGrant:
    """What a redeemed export link allows: one download of these months for this organisation."""

    organisation_id: int
    member_id: int
    actor: str
    file_format: str
    first: tuple[int, int]
    last: tuple[int, int]


def _month(text: str) -> tuple[int, int]:
    year, month = text.split("-")
    return int(year), int(month)


class _LineReader:
    """Stored line rows as `Line`s, with one object for each distinct value (a product name, a price,
    a day): 24 cycles of 2,000 subscriptions repeat the same few thousand values ~50,000 times, and
    the database driver hands each row fresh copies."""

    def __init__(self) -> None:
        self._shared: dict[Any, Any] = {}  # texts and days (a text never equals a day)
        self._money: dict[str, Decimal] = {}

    def read(self, rows: Iterable[Sequence[Any]], cycles: Mapping[int, Cycle], into: Mapping[int, list[Line]]) -> None:
        """Rows selected as `_LINE_COLUMNS` (unpacked by position: much cheaper than by name), each
        appended to its report's list."""
        share, money = self._shared.setdefault, self._money
        for row in rows:
            (
                report_id, subscription_id, parent_subscription_id, product, offer_id, product_id, sku_id,
                term_duration, billing_cycle, charge_type, charge_day, quantity, unit_price, days, cycle_days,
                amount, currency, price_entry_id, corrects,
            ) = row  # fmt: skip
            if unit_price is not None:
                unit_price = (
                    money[unit_price] if unit_price in money else money.setdefault(unit_price, Decimal(unit_price))
                )
            if amount is not None:
                amount = money[amount] if amount in money else money.setdefault(amount, Decimal(amount))
            into[report_id].append(
                Line(
                    cycles[report_id],
                    share(subscription_id, subscription_id),
                    None if parent_subscription_id is None else share(parent_subscription_id, parent_subscription_id),
                    share(product, product),
                    share(offer_id, offer_id),
                    share(product_id, product_id),
                    share(sku_id, sku_id),
                    share(term_duration, term_duration),
                    share(billing_cycle, billing_cycle),
                    _CHARGE_TYPES[charge_type],
                    share(charge_day, charge_day),
                    quantity,
                    unit_price,
                    days,
                    cycle_days,
                    amount,
                    share(currency, currency),
                    price_entry_id,
                    None if corrects is None else share(corrects, corrects),
                )
            )


_CHARGE_TYPES = {charge_type.value: charge_type for charge_type in ChargeType}


def _row_of(line: Line, report_id: int, position: int) -> dict[str, Any]:
    """A line as the parameters of one `billing_report_lines` row (money as exact decimal text)."""
    return {
        "report_id": report_id,
        "position": position,
        "subscription_id": line.subscription_id,
        "parent_subscription_id": line.parent_subscription_id,
        "product": line.product,
        "offer_id": line.offer_id,
        "product_id": line.product_id,
        "sku_id": line.sku_id,
        "term_duration": line.term_duration,
        "billing_cycle": line.billing_cycle,
        "charge_type": line.charge_type.value,
        "charge_day": line.charge_day,
        "quantity": line.quantity,
        "unit_price": None if line.unit_price is None else str(line.unit_price),
        "days": line.days,
        "cycle_days": line.cycle_days,
        "amount": None if line.amount is None else str(line.amount),
        "currency": line.currency,
        "price_entry_id": line.price_entry_id,
        "corrects_cycle_end": line.corrects,
    }


def fingerprint(records: Sequence[LedgerRecord], prices: Sequence[UnitPrice]) -> str:
    """The rating inputs in one value: the ledger is append-only (its extent is its count and last
    id); price entries are compared whole, so a corrected price changes it."""
    digest = hashlib.sha256()
    digest.update(f"{len(records)}:{max((r.id or 0 for r in records), default=0)}".encode())
    for entry in sorted(prices, key=lambda e: (e.entry_id, e.scope.value, e.valid_from)):
        digest.update(repr(entry).encode())
    return digest.hexdigest()


async def settings_history(sessions: async_sessionmaker[AsyncSession]) -> list[CycleSetting]:
    """The stored cycle settings, oldest first (the billing service and the change previews read the same)."""
    async with sessions() as session:
        rows = (await session.scalars(select(BillingSettingRow).order_by(BillingSettingRow.effective_from))).all()
    return [CycleSetting(row.effective_from, row.cycle_day, row.timezone) for row in rows]


async def cycle_calendar(sessions: async_sessionmaker[AsyncSession]) -> CycleCalendar:
    """The reseller's cycle calendar as the bill uses it."""
    return CycleCalendar(await settings_history(sessions))


class NoService(InvalidInput):
    """Every month asked for lies before the organisation's first subscription: there is no bill."""

    code = "no_service"


@dataclass(frozen=True)
class BillMonths:
    """The months that have a bill, newest first (the current month's open cycle included), and the
    month of the most recent ended cycle ("last month") when it is among them."""

    months: tuple[tuple[int, int], ...]
    last_ended: tuple[int, int] | None
    older: bool = False  # there are bills before the oldest month listed


def _no_service_message(asked: Sequence[Cycle], first_day: date | None) -> str:
    when = formatting.month_range(asked[0].end, asked[-1].end)
    if first_day is None:
        return _(
            "There was no service in {when}: your organisation has no subscriptions with your reseller yet.", when=when
        )
    return _(
        "There was no service in {when}, so there is no bill: your organisation's first "
        "subscription with your reseller began on {date}.",
        when=when,
        date=formatting.date(first_day),
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BillingService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ledger: SubscriptionLedger,
        prices: PriceSource,
        alerts: AlertService,
        *,
        clock: Clock = SYSTEM_CLOCK,
        export_base_url: str = "http://127.0.0.1:3978",
        file_consent: bool = False,
    ) -> None:
        self._sessions = sessions
        self._export_base_url = export_base_url.rstrip("/")
        # Real Teams delivers files to a 1:1 chat through the file consent flow; the local
        # Playground cannot, so there a download link is the delivery.
        self.file_consent = file_consent
        self._ledger = ledger
        self._prices = prices
        self._alerts = alerts
        self._clock = clock

    # ---- settings (operator) -----------------------------------------------------------------
    async def settings_history(self) -> list[CycleSetting]:
        return await settings_history(self._sessions)

    async def calendar(self) -> CycleCalendar:
        return CycleCalendar(await self.settings_history())

    async def set_cycle(self, *, day: str | None, timezone: str | None, effective: date, actor: str) -> CycleSetting:
        """A new cycle day and/or time zone from `effective` on (for the cycles starting then or
        later). Refused for a date in the past or inside a cycle already issued: history is never re-cut."""
        if not MIN_YEAR <= effective.year <= MAX_YEAR:
            raise InvalidInput(
                _("{effective} is not a date the bills can use; write it like 2026-12-01.", effective=effective),
                field="effective",
            )
        calendar = await self.calendar()
        today = calendar.today(self._clock.now())
        if effective < today:
            raise InvalidInput(
                _("The effective date {effective} is in the past; history is never re-cut.", effective=effective),
                field="effective",
            )
        async with self._sessions.begin() as session:
            latest_issued = await session.scalar(
                select(BillingReportRow.cycle_end).order_by(BillingReportRow.cycle_end.desc()).limit(1)
            )
            if latest_issued is not None and effective <= latest_issued:
                raise InvalidInput(
                    _(
                        "Reports up to {latest_issued} are already issued; choose a date after it.",
                        latest_issued=latest_issued,
                    ),
                    field="effective",
                )
            current = calendar.setting_on(effective)
            setting = CycleSetting(
                effective_from=effective,
                cycle_day=current.cycle_day if day is None else parse_cycle_day(day),
                timezone=current.timezone if timezone is None else parse_timezone(timezone),
            )
            existing = await session.scalar(
                select(BillingSettingRow).where(BillingSettingRow.effective_from == effective)
            )
            before = None
            if existing is not None:  # a not-yet-effective setting may be corrected
                before = {"cycle_day": existing.cycle_day, "timezone": existing.timezone}
                existing.cycle_day, existing.timezone, existing.actor = setting.cycle_day, setting.timezone, actor
            else:
                session.add(
                    BillingSettingRow(
                        effective_from=effective, cycle_day=setting.cycle_day, timezone=setting.timezone, actor=actor
                    )
                )
            audit.record(
                session,
                actor=actor,
                action="billing.set_cycle",
                organisation_id=None,
                target=str(effective),
                before=before,
                after={"cycle_day": setting.day_label, "timezone": setting.timezone, "effective": str(effective)},
            )
        return setting

    # ---- reports -----------------------------------------------------------------------------
    async def today(self) -> date:
        return (await self.calendar()).today(self._clock.now())

    async def last_month(self, caller: Caller) -> CycleReport:
        caller.require(Permission.READ_BILLING)
        calendar = await self.calendar()
        cycle = calendar.last_ended(calendar.today(self._clock.now()))
        return (await self._reports(caller.organisation_id, calendar, [cycle]))[0]

    async def bill_months(self, caller: Caller, *, limit: int = MAX_MONTHS * 2) -> BillMonths:
        """The months with a bill for the caller's organisation, newest first, at most `limit`: from the
        month of the cycle of its first subscription to the current month; none without service."""
        caller.require(Permission.READ_BILLING)
        calendar = await self.calendar()
        today = calendar.today(self._clock.now())
        first_at = await self._ledger.first_effective_at(caller.organisation_id)
        if first_at is None:
            return BillMonths((), None)
        first = calendar.cycle_of(calendar.day_of(first_at)).month
        months: list[tuple[int, int]] = []
        year, month = today.year, today.month
        while (year, month) >= first and len(months) < limit:
            months.append((year, month))
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        last_ended = calendar.last_ended(today).month
        return BillMonths(tuple(months), last_ended if last_ended in months else None, (year, month) >= first)

    async def months(self, caller: Caller, first: tuple[int, int], last: tuple[int, int]) -> list[CycleReport]:
        """One report per cycle ending in the months first..last (the open cycle included, marked so)."""
        caller.require(Permission.READ_BILLING)
        calendar = await self.calendar()
        today = calendar.today(self._clock.now())
        check_range(first, last, today)
        return await self._reports(caller.organisation_id, calendar, self._cycles_for(calendar, first, last, today))

    @staticmethod
    def _cycles_for(calendar: CycleCalendar, first: tuple[int, int], last: tuple[int, int], today: date) -> list[Cycle]:
        """The cycles ending in first..last; a range reaching the current month also gets the open
        cycle (with a cycle day such as 15 it ends next month)."""
        cycles = [cycle for cycle in calendar.cycles_ending_in(first, last) if cycle.start <= today]
        current = calendar.cycle_of(today)
        if last >= (today.year, today.month) and current not in cycles:
            cycles.append(current)
        return cycles

    async def lookup(self, caller: Caller, text: str) -> tuple[Query, list[CycleReport]]:
        """A quick look-up: "billing last month", "billing 2026-09", "this year", "what did we spend on E3"."""
        caller.require(Permission.READ_BILLING)
        query = parse_query(text, await self.today())
        if query.first is None or query.last is None:
            reports = [await self.last_month(caller)]
        else:
            reports = await self.months(caller, query.first, query.last)
        if query.product:
            reports = filter_product(reports, query.product)
            query = replace(query, product_name=named_product(reports, query.product))
        return query, reports

    async def _reports(
        self, organisation_id: int, calendar: CycleCalendar, cycles: Sequence[Cycle]
    ) -> list[CycleReport]:
        """The reports of `cycles`, leaving out those before the organisation's first ledger event
        (there was no service then: nothing is issued for them); NoService if that is all of them."""
        today = calendar.today(self._clock.now())
        ended = [cycle for cycle in cycles if cycle.end < today]
        open_ = [cycle for cycle in cycles if cycle.end >= today]
        issued_ends = await self._issued_ends(organisation_id)
        stored: dict[date, CycleReport]
        if ended and not open_ and all(cycle.end in issued_ends for cycle in ended):
            # Everything asked for is issued (so within the service): read just those reports, rate nothing.
            stored = await self._load_stored(organisation_id, {cycle.end for cycle in ended})
        else:
            records = await self._ledger.entries(organisation_id)
            first_day = calendar.day_of(records[0].effective_at) if records else None
            in_service = [cycle for cycle in cycles if first_day is not None and cycle.end >= first_day]
            if not in_service:
                raise NoService(_no_service_message(cycles, first_day))
            cycles = in_service
            ended = [cycle for cycle in cycles if cycle.end < today]
            open_ = [cycle for cycle in cycles if cycle.end >= today]
            entries = await self._prices.entries_for(organisation_id)
            prices = PriceIndex(entries)
            inputs = fingerprint(records, entries)
            # Issued reports' heads only: their lines are read when an adjustment check needs them.
            stored = await self._load_stored(organisation_id, with_lines=False)
            heads_only = set(stored)
            if ended:
                stored = await self._issue_through(
                    organisation_id, calendar, records, prices, stored, max(ended), min(ended), inputs
                )
            for cycle in open_:
                lines = rate_cycle(records, prices, calendar, cycle)
                lines += await self._adjustments(organisation_id, calendar, records, prices, cycle, stored, inputs)
                stored[cycle.end] = CycleReport(cycle, tuple(lines), False)
            wanted = {cycle.end for cycle in ended} & heads_only
            if wanted:
                stored.update(await self._load_stored(organisation_id, wanted))
        result = [stored[cycle.end] for cycle in cycles]
        await self._alert_unpriced(organisation_id, result)
        return result

    async def _issued_ends(self, organisation_id: int) -> set[date]:
        async with self._sessions() as session:
            query = select(BillingReportRow.cycle_end).where(BillingReportRow.organisation_id == organisation_id)
            return set((await session.scalars(query)).all())

    async def _adjustments(
        self,
        organisation_id: int,
        calendar: CycleCalendar,
        records: Sequence[LedgerRecord],
        prices: PriceIndex,
        target: Cycle,
        stored: dict[date, CycleReport],
        inputs: str,
    ) -> list[Line]:
        """Adjustment lines in `target` for every issued cycle before it whose lines would now differ."""
        result: list[Line] = []
        issued = [report for report in stored.values() if report.issued and report.cycle < target]
        if not issued or max(issued, key=lambda r: r.cycle).fingerprint == inputs:
            return result  # nothing changed since the latest issued report checked every cycle before it
        full = await self._load_stored(organisation_id, {report.cycle.end for report in issued})
        corrections: dict[date, list[Line]] = {}
        for report in full.values():
            for line in report.lines:
                if line.corrects is not None:
                    corrections.setdefault(line.corrects, []).append(line)
        recomputed = rate_cycles(records, prices, calendar, [report.cycle for report in full.values()])
        for end in sorted(full):
            report = full[end]
            issued_lines = [line for line in report.lines if line.charge_type is not ChargeType.ADJUSTMENT]
            issued_lines += corrections.get(end, [])
            result += adjustment_lines(target, report.cycle, recomputed[report.cycle], issued_lines)
        return result

    async def _load_stored(
        self, organisation_id: int, ends: set[date] | None = None, *, with_lines: bool = True
    ) -> dict[date, CycleReport]:
        """Issued reports (all, or those ending on `ends`), read as plain rows (fast for large reports);
        `with_lines=False` reads their heads only (the lines left empty)."""
        reports, lines = _REPORTS, _LINES
        query = select(
            reports.c.id, reports.c.cycle_start, reports.c.cycle_end, reports.c.issued_at, reports.c.inputs_fingerprint
        ).where(reports.c.organisation_id == organisation_id)
        if ends is not None:
            query = query.where(reports.c.cycle_end.in_(sorted(ends)))
        async with self._sessions() as session:
            heads = (await session.execute(query)).all()
            cycles = {head.id: Cycle(head.cycle_start, head.cycle_end) for head in heads}
            by_report: dict[int, list[Line]] = {head.id: [] for head in heads}
            if heads and with_lines:
                line_query = (
                    select(*_LINE_COLUMNS)
                    .where(lines.c.report_id.in_(list(by_report)))
                    .order_by(lines.c.report_id, lines.c.position)
                    .execution_options(yield_per=STREAM_ROWS)
                )
                # Streamed: only one batch of rows is held at a time beside the lines made of them.
                reader = _LineReader()
                async for rows in (await session.stream(line_query)).partitions():
                    reader.read(rows, cycles, by_report)
        return {
            head.cycle_end: CycleReport(
                cycles[head.id], tuple(by_report[head.id]), True, head.issued_at, head.inputs_fingerprint
            )
            for head in heads
        }

    async def _issue_through(
        self,
        organisation_id: int,
        calendar: CycleCalendar,
        records: Sequence[LedgerRecord],
        prices: PriceIndex,
        stored: dict[date, CycleReport],
        last: Cycle,
        first_asked: Cycle,
        inputs: str,
    ) -> dict[date, CycleReport]:
        """Issue every unissued ended cycle from the first activity to `last`, in order (cycles before
        the first activity had no service and are never issued).

        Differences found for cycles issued earlier become adjustments in the first cycle issued now
        after all of them (the next open one); cycles issued in this same pass were rated from the
        same ledger and prices, so they need none. A cycle issued now that lies before an issued one
        (a late event dated before the first issued report) carries no adjustments: the issued
        cycles after it would not be checked."""
        start = first_asked
        if records:
            start = min(start, calendar.cycle_of(calendar.day_of(records[0].effective_at)))
        earlier = dict(stored)
        latest_issued = max((report.cycle for report in earlier.values()), default=None)
        unissued = []
        cycle = start
        while cycle <= last:
            if cycle.end not in stored:
                unissued.append(cycle)
            cycle = calendar.cycle_of(cycle.end + timedelta(days=1))
        rated = rate_cycles(records, prices, calendar, unissued)  # one pass over the ledger for all of them
        adjusted = False
        for cycle in unissued:
            lines = rated.pop(cycle)
            if not adjusted and (latest_issued is None or cycle > latest_issued):
                lines += await self._adjustments(organisation_id, calendar, records, prices, cycle, earlier, inputs)
                adjusted = True
            stored[cycle.end] = await self._store(organisation_id, cycle, lines, inputs)
        return stored

    async def _store(self, organisation_id: int, cycle: Cycle, lines: Sequence[Line], inputs: str) -> CycleReport:
        """Store an issued report: its head, then its lines as bulk inserts (Core, no unit of work), in
        one transaction with the audit entry."""
        issued_at = self._clock.now()
        try:
            async with self._sessions.begin() as session:
                report_id = (
                    await session.execute(
                        insert(_REPORTS)
                        .values(
                            organisation_id=organisation_id,
                            cycle_start=cycle.start,
                            cycle_end=cycle.end,
                            issued_at=issued_at,
                            inputs_fingerprint=inputs,
                        )
                        .returning(_REPORTS.c.id)
                    )
                ).scalar_one()
                for first in range(0, len(lines), INSERT_CHUNK):
                    chunk = lines[first : first + INSERT_CHUNK]
                    rows = [_row_of(line, report_id, first + n) for n, line in enumerate(chunk)]
                    await session.execute(insert(_LINES), rows)
                audit.record(
                    session,
                    actor="system:billing",
                    action="billing.report.issue",
                    organisation_id=organisation_id,
                    target=f"{cycle.start}..{cycle.end}",
                    after={"lines": len(lines), "totals": {c: str(a) for c, a in totals_by_currency(lines).items()}},
                )
        except IntegrityError:
            # Issued at the same moment by another replica: theirs is the report.
            log.info("cycle %s of organisation %s was issued concurrently", cycle.end, organisation_id)
            return (await self._load_stored(organisation_id, {cycle.end}))[cycle.end]
        log.info("issued the report of cycle %s–%s for organisation %s", cycle.start, cycle.end, organisation_id)
        return CycleReport(cycle, tuple(lines), True, issued_at, inputs)

    async def _alert_unpriced(self, organisation_id: int, reports: Sequence[CycleReport]) -> None:
        seen: set[tuple[str, str, str, str]] = set()
        for report in reports:
            for line in report.lines:
                key = (line.product_id, line.sku_id, line.term_duration, line.billing_cycle)
                if line.priced or key in seen:
                    continue
                seen.add(key)
                await self._alerts.raise_alert(
                    "billing.unpriced",
                    _(
                        "No price for {product} ({product_id}/{sku_id}, {term_duration}, {billing_cycle}) on "
                        "{charge_day} for organisation #{organisation_id}: its bill lines are shown as unpriced. "
                        "Add it to a price list.",
                        product=line.product,
                        product_id=line.product_id,
                        sku_id=line.sku_id,
                        term_duration=line.term_duration,
                        billing_cycle=line.billing_cycle,
                        charge_day=line.charge_day,
                        organisation_id=organisation_id,
                    ),
                    dedup_key=f"billing.unpriced:{organisation_id}:{':'.join(key)}",
                    organisation_id=organisation_id,
                )

    # ---- export links ------------------------------------------------------------------------
    async def create_export_link(
        self, caller: Caller, file_format: str, first: tuple[int, int], last: tuple[int, int]
    ) -> str:
        """A single-use bearer token for one download, valid 15 minutes (stored only as its hash)."""
        caller.require(Permission.READ_BILLING)
        if file_format not in (*EXPORT_FORMATS, OVERVIEW_FORMAT):
            raise InvalidInput(_("Exports are xlsx or csv."), field="format")
        check_range(first, last, await self.today())
        token = secrets.token_urlsafe(32)
        async with self._sessions.begin() as session:
            session.add(
                BillingExportRow(
                    token_hash=_hash(token),
                    organisation_id=caller.organisation_id,
                    member_id=caller.member_id,
                    actor=caller.actor,
                    file_format=file_format,
                    first_month=month_label(first),
                    last_month=month_label(last),
                    expires_at=self._clock.now() + timedelta(minutes=EXPORT_LINK_MINUTES),
                )
            )
            audit.record(
                session,
                actor=caller.actor,
                action="billing.export.link",
                organisation_id=caller.organisation_id,
                target=f"{month_label(first)}..{month_label(last)}",
                after={"format": file_format},
            )
        return token

    async def redeem_export_link(self, token: str, *, caller: Caller | None = None) -> ExportGrant:
        """Use a link once: unknown, tampered, expired or used tokens are refused. With `caller`
        (the file consent flow) only the member who asked may use it; anyone else leaves it unused."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(BillingExportRow).where(BillingExportRow.token_hash == _hash(token)).with_for_update()
            )
            if row is None:
                raise NotFound(_("This download link is not valid."))
            if caller is not None and (row.organisation_id, row.member_id) != (
                caller.organisation_id,
                caller.member_id,
            ):
                raise PermissionDenied(_("That file belongs to someone else's export."))
            now = self._clock.now()
            if row.used_at is not None:
                raise Conflict(_("This download link was already used. Ask the bot for a new export."))
            expires_at = row.expires_at
            if expires_at <= now:
                raise PermissionDenied(_("This download link has expired. Ask the bot for a new export."))
            # Conditional on "not used yet": two downloads racing with one link get one file.
            claimed = await session.execute(
                update(BillingExportRow)
                .where(BillingExportRow.id == row.id, BillingExportRow.used_at.is_(None))
                .values(used_at=now)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                raise Conflict(_("This download link was already used. Ask the bot for a new export."))
            audit.record(
                session,
                actor=row.actor,
                action="billing.export.download",
                organisation_id=row.organisation_id,
                target=f"{row.first_month}..{row.last_month}",
                after={"format": row.file_format},
            )
            return ExportGrant(
                row.organisation_id,
                row.member_id,
                row.actor,
                row.file_format,
                _month(row.first_month),
                _month(row.last_month),
            )

    def export_url(self, token: str) -> str:
        return f"{self._export_base_url}/exports/{token}"

    async def reports_for_grant(self, grant: ExportGrant) -> list[CycleReport]:
        """The reports an export link was made for (its organisation only)."""
        calendar = await self.calendar()
        today = calendar.today(self._clock.now())
        cycles = self._cycles_for(calendar, grant.first, grant.last, today)
        return await self._reports(grant.organisation_id, calendar, cycles)

    @staticmethod
    def describe(setting: CycleSetting) -> str:
        return _(
            "from {effective_from}: cycle ends on day {day_label}, time zone {timezone}",
            effective_from=setting.effective_from,
            day_label=setting.day_label,
            timezone=setting.timezone,
        )


__all__ = ["OVERVIEW_FORMAT", "BillingService", "ExportGrant", "NoService", "PriceSource"]
