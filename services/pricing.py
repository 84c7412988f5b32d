"""The reseller's price lists: one global list and optional customer-specific lists assigned to
organisations (SPEC §2.3, "Price in force").

An entry is keyed by product/SKU, term and billing frequency (never by Microsoft's rotating
availability id) and holds the currency, the amount per seat per billing period and its validity
dates. Which entry applies on a day is `price_rules.price_in_force` — the one rule; this module only
stores, imports, exports and generates the entries. Amounts are `Decimal`, stored as decimal text.

Operator tools: CSV import/export (round trip: what is exported imports back unchanged), assigning a
list to an organisation, and generating a list from Microsoft's price sheet with a markup.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.clock import SYSTEM_CLOCK, Clock
from services.errors import Conflict, InvalidInput, NotFound
from services.i18n import _, ngettext
from services.models import Organisation, PriceEntryRow, PriceList, PriceListAssignment
from services.money import plain, round_money
from services.partner_center import PartnerCenterClient
from services.price_rules import PriceScope, UnitPrice, price_in_force

log = logging.getLogger(__name__)

GLOBAL_LIST = "global"
CSV_COLUMNS = (
    "product_id",
    "sku_id",
    "term_duration",
    "billing_cycle",
    "currency",
    "unit_price",
    "valid_from",
    "valid_to",
)
TERM_MONTHS = {"P1M": 1, "P1Y": 12, "P2Y": 24, "P3Y": 36}
CYCLE_MONTHS = {"monthly": 1, "annual": 12, "triennial": 36}
# Microsoft's price sheet names billing frequencies by plan.
SHEET_PLANS = {"monthly": "monthly", "annual": "annual", "triennial": "triennial", "yearly": "annual"}
MAX_ERRORS_SHOWN = 10
_LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_ID = re.compile(r"^[A-Za-z0-9]{1,40}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def periods_in_term(term_duration: str, billing_cycle: str) -> int | None:
    """How many billing periods one term has (P1Y billed monthly: 12); None if they do not fit."""
    months = TERM_MONTHS.get(term_duration.upper())
    cycle = CYCLE_MONTHS.get(billing_cycle.lower())
    if months is None or cycle is None or cycle > months or months % cycle:
        return None
    return months // cycle


def per_month(amount: Decimal, currency: str, billing_cycle: str) -> Decimal:
    """A price per billing period as a price per month (a yearly price ÷ 12, rounded to the currency's
    minor unit), so prices billed monthly, yearly and every 3 years can be compared."""
    months = CYCLE_MONTHS.get(billing_cycle.strip().lower(), 1)
    return round_money(Fraction(amount) / months, currency)


def parse_markup(text: str) -> Decimal:
    """'15%', '15' or '+15 %' → Decimal('15'): a markup in percent on the reseller's cost."""
    cleaned = text.strip().removesuffix("%").strip().lstrip("+").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput(
            _("The markup {text!r} is not a percentage (e.g. 15%).", text=text), field="markup"
        ) from None
    if not value.is_finite() or value <= Decimal(-100) or value > Decimal(1000):
        raise InvalidInput(_("The markup must be above -100% and at most 1000%."), field="markup")
    return value


@dataclass(frozen=True)
class PriceInput:
    """One entry to store (from a CSV row, the price sheet or a test)."""

    product_id: str
    sku_id: str
    term_duration: str
    billing_cycle: str
    currency: str
    amount: Decimal
    valid_from: date
    valid_to: date | None = None

    @property
    def key(self) -> tuple[str, str, str, str, date]:
        return (self.product_id, self.sku_id, self.term_duration, self.billing_cycle, self.valid_from)


@dataclass(frozen=True)
class PriceListView:
    id: int
    name: str
    is_global: bool
    description: str
    entries: int
    organisations: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    list_name: str
    created: int
    updated: int
    unchanged: int
    removed: int


def _unit_price(row: PriceEntryRow, is_global: bool) -> UnitPrice:
    return UnitPrice(
        entry_id=row.id,
        scope=PriceScope.GLOBAL if is_global else PriceScope.CUSTOMER,
        product_id=row.product_id,
        sku_id=row.sku_id,
        term_duration=row.term_duration,
        billing_cycle=row.billing_cycle,
        currency=row.currency,
        amount=Decimal(row.amount),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


def _clean_entry(
    product_id: str,
    sku_id: str,
    term_duration: str,
    billing_cycle: str,
    currency: str,
    unit_price: str,
    valid_from: str,
    valid_to: str,
) -> PriceInput:
    """Validate one entry's fields; raise InvalidInput naming the first bad field."""
    product_id, sku_id = product_id.strip().upper(), sku_id.strip().upper()
    if not _ID.match(product_id):
        raise InvalidInput(
            _("product_id {product_id!r} is not a Microsoft product id.", product_id=product_id), field="product_id"
        )
    if not _ID.match(sku_id):
        raise InvalidInput(_("sku_id {sku_id!r} is not a Microsoft SKU id.", sku_id=sku_id), field="sku_id")
    term, cycle = term_duration.strip().upper(), billing_cycle.strip().lower()
    if term not in TERM_MONTHS:
        raise InvalidInput(
            _(
                "term_duration {term_duration!r} must be one of {join}.",
                term_duration=term_duration,
                join=", ".join(TERM_MONTHS),
            )
        )
    if cycle not in CYCLE_MONTHS:
        raise InvalidInput(
            _(
                "billing_cycle {billing_cycle!r} must be one of {join}.",
                billing_cycle=billing_cycle,
                join=", ".join(CYCLE_MONTHS),
            )
        )
    if periods_in_term(term, cycle) is None:
        raise InvalidInput(_("a {term} term cannot be billed {cycle}.", term=term, cycle=cycle))
    code = currency.strip().upper()
    if not _CURRENCY.match(code):
        raise InvalidInput(_("currency {currency!r} is not an ISO 4217 code such as USD or EUR.", currency=currency))
    try:
        amount = Decimal(unit_price.strip())
    except InvalidOperation:
        raise InvalidInput(
            _("unit_price {unit_price!r} is not a number (use a dot for decimals).", unit_price=unit_price)
        ) from None
    if not amount.is_finite() or amount < 0:
        raise InvalidInput(_("unit_price {unit_price!r} must be zero or more.", unit_price=unit_price))
    if amount.as_tuple().exponent < -6:  # type: ignore[operator]
        raise InvalidInput(_("unit_price {unit_price!r} has more than 6 decimals.", unit_price=unit_price))
    try:
        start = date.fromisoformat(valid_from.strip())
        end = date.fromisoformat(valid_to.strip()) if valid_to.strip() else None
    except ValueError:
        raise InvalidInput(_("valid_from/valid_to must be dates like 2026-01-31 (valid_to may be empty).")) from None
    if end is not None and end < start:
        raise InvalidInput(_("valid_to is before valid_from."))
    return PriceInput(product_id, sku_id, term, cycle, code, amount, start, end)


def parse_csv(text: str) -> list[PriceInput]:
    """The entries of a price-list CSV (columns `CSV_COLUMNS`, any order); all rows or an error
    listing the bad lines."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise InvalidInput(
            _(
                "The CSV lacks {plural}: {join}; expected {join2}.",
                plural=ngettext("{n} column", "{n} columns", len(missing)),
                join=", ".join(missing),
                join2=", ".join(CSV_COLUMNS),
            )
        )
    entries: list[PriceInput] = []
    errors: list[str] = []
    seen: dict[tuple[str, str, str, str, date], int] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(key or "").strip(): (value or "") for key, value in raw.items() if isinstance(value, str)}
        if not any(row.get(column, "").strip() for column in CSV_COLUMNS):
            continue
        try:
            entry = _clean_entry(*(row.get(column, "") for column in CSV_COLUMNS))
        except InvalidInput as error:
            errors.append(_("line {line}: {message}", line=line, message=error.message))
            continue
        if entry.key in seen:
            errors.append(
                _(
                    "line {line}: the same price as line {value} (product, SKU, term, billing, from)",
                    line=line,
                    value=seen[entry.key],
                )
            )
            continue
        seen[entry.key] = line
        entries.append(entry)
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = _(" (and {value} more)", value=len(errors) - MAX_ERRORS_SHOWN) if len(errors) > MAX_ERRORS_SHOWN else ""
        raise InvalidInput(_("Nothing was imported. {shown}{more}.", shown=shown, more=more))
    return entries


def render_csv(entries: Iterable[PriceInput]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in sorted(entries, key=lambda item: item.key):
        writer.writerow(
            (
                entry.product_id,
                entry.sku_id,
                entry.term_duration,
                entry.billing_cycle,
                entry.currency,
                plain(entry.amount, entry.currency),
                entry.valid_from.isoformat(),
                entry.valid_to.isoformat() if entry.valid_to else "",
            )
        )
    return buffer.getvalue()


def _input_of(row: PriceEntryRow) -> PriceInput:
    return PriceInput(
        row.product_id,
        row.sku_id,
        row.term_duration,
        row.billing_cycle,
        row.currency,
        Decimal(row.amount),
        row.valid_from,
        row.valid_to,
    )


class PriceBook:
    """Price lists in the database; `entries_for`/`price_for` are what ordering and billing read."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        partner_center: PartnerCenterClient,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sessions = sessions
        self._partner_center = partner_center
        self._clock = clock  # Microsoft's today: a price sheet row without a start is valid from it

    # --- reading ---------------------------------------------------------------------------------

    async def entries_for(self, organisation_id: int) -> list[UnitPrice]:
        """The organisation's own list (if one is assigned) plus the global list, every validity."""
        assigned = (
            select(PriceListAssignment.price_list_id)
            .where(PriceListAssignment.organisation_id == organisation_id)
            .scalar_subquery()
        )
        query = (
            select(PriceEntryRow, PriceList.is_global)
            .join(PriceList, PriceList.id == PriceEntryRow.price_list_id)
            .where(or_(PriceList.is_global.is_(True), PriceList.id == assigned))
            .order_by(PriceEntryRow.id)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_unit_price(row, bool(is_global)) for row, is_global in rows]

    async def price_for(
        self,
        organisation_id: int,
        product_id: str,
        sku_id: str,
        term_duration: str,
        billing_cycle: str,
        on: date,
    ) -> UnitPrice | None:
        """The price in force for the organisation on `on`, or None (then it is not offered)."""
        return price_in_force(
            await self.entries_for(organisation_id),
            product_id=product_id,
            sku_id=sku_id,
            term_duration=term_duration,
            billing_cycle=billing_cycle,
            on=on,
        )

    async def entries_by_organisation(self) -> tuple[list[UnitPrice], dict[int, list[UnitPrice]]]:
        """The global list, and each organisation's own list by organisation id (what `entries_for`
        returns for each, in two reads instead of one per organisation)."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(PriceEntryRow, PriceList.is_global)
                    .join(PriceList, PriceList.id == PriceEntryRow.price_list_id)
                    .order_by(PriceEntryRow.id)
                )
            ).all()
            assigned = (
                await session.execute(select(PriceListAssignment.organisation_id, PriceListAssignment.price_list_id))
            ).all()
        global_entries = [_unit_price(row, True) for row, is_global in rows if is_global]
        by_list: dict[int, list[UnitPrice]] = {}
        for row, is_global in rows:
            if not is_global:
                by_list.setdefault(row.price_list_id, []).append(_unit_price(row, False))
        return global_entries, {organisation: by_list.get(list_id, []) for organisation, list_id in assigned}

    async def global_entries(self) -> list[UnitPrice]:
        """The global list alone (what a customer without a list of its own is offered)."""
        query = (
            select(PriceEntryRow)
            .join(PriceList, PriceList.id == PriceEntryRow.price_list_id)
            .where(PriceList.is_global.is_(True))
            .order_by(PriceEntryRow.id)
        )
        async with self._sessions() as session:
            return [_unit_price(row, True) for row in await session.scalars(query)]

    async def entry(self, entry_id: int) -> UnitPrice | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(PriceEntryRow, PriceList.is_global)
                    .join(PriceList, PriceList.id == PriceEntryRow.price_list_id)
                    .where(PriceEntryRow.id == entry_id)
                )
            ).first()
        return _unit_price(row[0], bool(row[1])) if row is not None else None

    async def lists(self) -> list[PriceListView]:
        async with self._sessions() as session:
            lists = list(await session.scalars(select(PriceList).order_by(PriceList.is_global.desc(), PriceList.name)))
            counts = dict(
                (
                    await session.execute(
                        select(PriceEntryRow.price_list_id, func.count()).group_by(PriceEntryRow.price_list_id)
                    )
                ).all()
            )
            assignments = (
                await session.execute(
                    select(PriceListAssignment.price_list_id, Organisation.slug)
                    .join(Organisation, Organisation.id == PriceListAssignment.organisation_id)
                    .order_by(Organisation.slug)
                )
            ).all()
        by_list: dict[int, list[str]] = {}
        for list_id, slug in assignments:
            by_list.setdefault(list_id, []).append(slug)
        return [
            PriceListView(
                item.id,
                item.name,
                item.is_global,
                item.description,
                int(counts.get(item.id, 0)),
                tuple(by_list.get(item.id, [])),
            )
            for item in lists
        ]

    async def has_global_list(self) -> bool:
        async with self._sessions() as session:
            return await session.scalar(select(PriceList.id).where(PriceList.is_global.is_(True))) is not None

    async def assigned_list(self, organisation_id: int) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(PriceList.name)
                .join(PriceListAssignment, PriceListAssignment.price_list_id == PriceList.id)
                .where(PriceListAssignment.organisation_id == organisation_id)
            )

    async def export_csv(self, list_name: str) -> str:
        async with self._sessions() as session:
            price_list = await self._list(session, list_name)
            rows = await session.scalars(select(PriceEntryRow).where(PriceEntryRow.price_list_id == price_list.id))
            return render_csv(_input_of(row) for row in rows)

    # --- changing (operator) -----------------------------------------------------------------------

    async def create_list(self, name: str, *, actor: str, description: str = "") -> PriceListView:
        """A new empty list; the name "global" makes it the global list (there is only one)."""
        name = name.strip().lower()
        if not _LIST_NAME.match(name):
            raise InvalidInput(
                _("A price list name is 1-80 lower-case letters, digits, '-' or '_', starting with a letter or digit."),
                field="name",
            )
        async with self._sessions() as session:
            price_list = PriceList(name=name, is_global=name == GLOBAL_LIST, description=description.strip()[:400])
            session.add(price_list)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                raise Conflict(_("A price list named {name!r} already exists.", name=name)) from None
            audit.record(
                session,
                actor=actor,
                action="price_list.create",
                organisation_id=None,
                target=name,
                after={"global": price_list.is_global},
            )
            await session.commit()
            return PriceListView(price_list.id, name, price_list.is_global, price_list.description, 0, ())

    async def delete_list(self, name: str, *, actor: str) -> None:
        async with self._sessions() as session:
            price_list = await self._list(session, name)
            count = await session.scalar(
                select(func.count()).select_from(PriceEntryRow).where(PriceEntryRow.price_list_id == price_list.id)
            )
            await session.delete(price_list)
            audit.record(
                session,
                actor=actor,
                action="price_list.delete",
                organisation_id=None,
                target=name,
                before={"entries": int(count or 0)},
            )
            await session.commit()

    async def assign(self, organisation_slug: str, list_name: str | None, *, actor: str) -> None:
        """Give an organisation its customer-specific list (None: global prices only)."""
        async with self._sessions() as session:
            organisation = await session.scalar(select(Organisation).where(Organisation.slug == organisation_slug))
            if organisation is None:
                raise NotFound(_("No organisation {organisation_slug!r}.", organisation_slug=organisation_slug))
            current = await session.get(PriceListAssignment, organisation.id)
            before = None
            if current is not None:
                before_list = await session.get(PriceList, current.price_list_id)
                before = {"price_list": before_list.name if before_list else None}
            if list_name is None:
                if current is not None:
                    await session.delete(current)
            else:
                price_list = await self._list(session, list_name)
                if price_list.is_global:
                    raise InvalidInput(
                        _("The global list applies to everyone already; assign a customer-specific list.")
                    )
                if current is None:
                    session.add(
                        PriceListAssignment(
                            organisation_id=organisation.id, price_list_id=price_list.id, assigned_by=actor
                        )
                    )
                else:
                    current.price_list_id = price_list.id
                    current.assigned_by = actor
            audit.record(
                session,
                actor=actor,
                action="price_list.assign",
                organisation_id=organisation.id,
                target=organisation_slug,
                before=before,
                after={"price_list": list_name},
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise Conflict(_("The organisation's price list was changed at the same moment; try again.")) from None

    async def import_csv(self, list_name: str, text: str, *, actor: str, replace: bool = False) -> ImportResult:
        """Load a CSV into a list (created if missing). All rows or none. With `replace`, entries
        of the list that are not in the file are removed."""
        return await self.store(list_name, parse_csv(text), actor=actor, replace=replace, action="price_list.import")

    async def store(
        self,
        list_name: str,
        entries: Sequence[PriceInput],
        *,
        actor: str,
        replace: bool = False,
        action: str = "price_list.store",
    ) -> ImportResult:
        """Upsert entries by key (product, SKU, term, billing, valid_from) in one transaction."""
        name = list_name.strip().lower()
        if not await self._exists(name):
            try:
                await self.create_list(name, actor=actor)
            except Conflict:  # created concurrently
                pass
        created = updated = unchanged = removed = 0
        async with self._sessions() as session:
            price_list = await self._list(session, name)
            existing = {
                (row.product_id, row.sku_id, row.term_duration, row.billing_cycle, row.valid_from): row
                for row in await session.scalars(
                    select(PriceEntryRow).where(PriceEntryRow.price_list_id == price_list.id)
                )
            }
            for entry in entries:
                row = existing.pop(entry.key, None)
                if row is None:
                    session.add(
                        PriceEntryRow(
                            price_list_id=price_list.id,
                            product_id=entry.product_id,
                            sku_id=entry.sku_id,
                            term_duration=entry.term_duration,
                            billing_cycle=entry.billing_cycle,
                            currency=entry.currency,
                            amount=plain(entry.amount, entry.currency),
                            valid_from=entry.valid_from,
                            valid_to=entry.valid_to,
                        )
                    )
                    created += 1
                elif (Decimal(row.amount), row.currency, row.valid_to) != (
                    entry.amount,
                    entry.currency,
                    entry.valid_to,
                ):
                    row.amount = plain(entry.amount, entry.currency)
                    row.currency = entry.currency
                    row.valid_to = entry.valid_to
                    updated += 1
                else:
                    unchanged += 1
            if replace and existing:
                await session.execute(
                    delete(PriceEntryRow).where(PriceEntryRow.id.in_([row.id for row in existing.values()]))
                )
                removed = len(existing)
            audit.record(
                session,
                actor=actor,
                action=action,
                organisation_id=None,
                target=name,
                after={"created": created, "updated": updated, "unchanged": unchanged, "removed": removed},
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise Conflict(_("The price list was changed at the same moment; run the import again.")) from None
        log.info("price list %s: %d created, %d updated, %d removed", name, created, updated, removed)
        return ImportResult(name, created, updated, unchanged, removed)

    async def generate(
        self,
        list_name: str,
        markup_percent: Decimal,
        *,
        actor: str,
        market: str = "US",
        valid_from: date | None = None,
    ) -> ImportResult:
        """Prices from Microsoft's price sheet (the reseller's cost) plus a markup.

        The sheet's price is for the whole term; the list holds a price per billing period, so it
        is divided by the periods in the term (P1Y billed monthly: twelfths), marked up, and rounded
        once, half away from zero, to the currency's minor unit (cents, whole yen, fils). Tiered rows
        above the first tier are skipped."""
        rows = await self._partner_center.price_sheet(market)
        factor = Decimal(1) + markup_percent / Decimal(100)
        entries: dict[tuple[str, str, str, str, date], PriceInput] = {}
        skipped = 0
        for row in rows:
            cycle = SHEET_PLANS.get((row.billing_plan or "").strip().lower())
            term = (row.term_duration or "").strip().upper()
            periods = periods_in_term(term, cycle) if cycle else None
            tier_min = row.pricing_tier_range_min
            if row.unit_price is None or periods is None or not row.currency or (tier_min is not None and tier_min > 1):
                skipped += 1
                continue
            assert cycle is not None
            currency = row.currency.strip().upper()
            amount = round_money(Fraction(row.unit_price) / periods * Fraction(factor), currency)
            start = valid_from or (row.effective_start_date.date() if row.effective_start_date else self._clock.today())
            end = row.effective_end_date.date() if row.effective_end_date else None
            if end is not None and (end.year >= 9999 or end < start):
                end = None
            product_id, sku_id = row.sku_key.split(":")  # SKU ids zero-padded as the catalog writes them
            entry = PriceInput(
                product_id,
                sku_id,
                term,
                cycle,
                currency,
                amount,
                start,
                end,
            )
            entries.setdefault(entry.key, entry)
        if skipped:
            log.warning("price sheet %s: rows skipped (tiers, unknown term or plan, no price): %d", market, skipped)
        if not entries:
            raise InvalidInput(_("Microsoft's price sheet for {market} had no usable prices.", market=market))
        return await self.store(list_name, list(entries.values()), actor=actor, action="price_list.generate")

    async def ensure_default_global(self, markup_percent: Decimal, *, actor: str, market: str = "US") -> bool:
        """The embedded demo: a global list generated from the price sheet, unless a global list
        exists (idempotent; an operator's list is never touched). True when generated now."""
        if await self.has_global_list():
            return False
        await self.generate(GLOBAL_LIST, markup_percent, actor=actor, market=market)
        return True

    async def _exists(self, name: str) -> bool:
        async with self._sessions() as session:
            return await session.scalar(select(PriceList.id).where(PriceList.name == name)) is not None

    @staticmethod
    async def _list(session: AsyncSession, name: str) -> PriceList:
        price_list = await session.scalar(select(PriceList).where(PriceList.name == name.strip().lower()))
        if price_list is None:
            raise NotFound(_("No price list named {name!r}. `cspbot prices lists` shows them.", name=name))
        return price_list
