"""The rating engine (SPEC §6 "Rating rules"): ledger entries + price lists + cycle → line items.

Pure and deterministic: it reads only the subscription ledger's records and the price entries it is
given (never the current subscription rows, the clock or the database), so a cycle rated twice
from the same input gives the same lines to the cent.

- Monthly billing: a cycle fee for the seats held when the previous cycle ended (suspended seats
  too; none once the subscription ended), priced on the cycle's first day; a pro-rata charge for
  seats added in the cycle: seats × price on the event day × (event day → cycle end, inclusive) ÷
  cycle days; a refund for seats removed: the negative of the same formula at the unit price of the
  charge it reverses (the latest seats charged are the first removed).
- Annual / triennial billing: a fee of quantity × period price in the cycle where the term starts
  (purchase), renews, or has an anniversary (a three-year term billed annually); increases and
  refunds are pro-rated over the billing period (for annual billing of a one-year term, the term).
- Add-ons are rated the same way, with `addon_*` charge types, and listed under their base.
- Each line is computed exactly and rounded once, half away from zero, to the minor unit.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from services.billing.cycles import Cycle, CycleCalendar, add_months
from services.i18n import N_
from services.ledger import LedgerEvent, LedgerRecord
from services.money import line_amount
from services.price_rules import UnitPrice, price_in_force


class ChargeType(StrEnum):
    CYCLE_FEE = "cycle_fee"
    PRORATA_PURCHASE = "prorata_purchase"
    PRORATA_INCREASE = "prorata_increase"
    REFUND = "refund"
    ADDON_CYCLE_FEE = "addon_cycle_fee"
    ADDON_PRORATA = "addon_prorata"
    ADDON_REFUND = "addon_refund"
    ADJUSTMENT = "adjustment"


CHARGE_LABELS = {
    ChargeType.CYCLE_FEE: N_("Cycle fee"),
    ChargeType.PRORATA_PURCHASE: N_("Pro-rata purchase"),
    ChargeType.PRORATA_INCREASE: N_("Pro-rata increase"),
    ChargeType.REFUND: N_("Refund"),
    ChargeType.ADDON_CYCLE_FEE: N_("Add-on cycle fee"),
    ChargeType.ADDON_PRORATA: N_("Add-on pro-rata"),
    ChargeType.ADDON_REFUND: N_("Add-on refund"),
    ChargeType.ADJUSTMENT: N_("Adjustment"),
}


@dataclass(frozen=True, slots=True)  # slots: a year of bills for 2,000 subscriptions is ~50,000 lines
class Line:
    """One line item of a cycle's bill. `amount`/`unit_price` are None when no price was in force
    (an unpriced line: flagged, never counted as 0)."""

    cycle: Cycle
    subscription_id: str
    parent_subscription_id: str | None
    product: str
    offer_id: str
    product_id: str
    sku_id: str
    term_duration: str
    billing_cycle: str
    charge_type: ChargeType
    charge_day: date
    quantity: int
    unit_price: Decimal | None
    days: int | None
    cycle_days: int | None
    amount: Decimal | None
    currency: str
    price_entry_id: int | None = None
    corrects: date | None = None  # adjustments: the end of the closed cycle they correct

    @property
    def priced(self) -> bool:
        return self.amount is not None

    @property
    def base_id(self) -> str:
        return self.parent_subscription_id or self.subscription_id


class PriceIndex:
    """Price entries bucketed by product/SKU/term/frequency; `price_in_force` decides within a bucket."""

    def __init__(self, entries: Iterable[UnitPrice]) -> None:
        self._buckets: dict[tuple[str, str, str, str], list[UnitPrice]] = defaultdict(list)
        # The entries never change: a (product, SKU, term, frequency, day) is looked up once.
        self._known: dict[tuple[str, str, str, str, date], UnitPrice | None] = {}
        for entry in entries:
            self._buckets[_bucket(entry.product_id, entry.sku_id, entry.term_duration, entry.billing_cycle)].append(
                entry
            )

    def on(self, record: LedgerRecord, day: date) -> UnitPrice | None:
        offer = (record.product_id, record.sku_id, record.term_duration, record.billing_cycle)
        known = (*offer, day)
        if known not in self._known:
            bucket = self._buckets.get(_bucket(*offer))
            self._known[known] = (
                price_in_force(
                    bucket,
                    product_id=record.product_id,
                    sku_id=record.sku_id,
                    term_duration=record.term_duration,
                    billing_cycle=record.billing_cycle,
                    on=day,
                )
                if bucket
                else None
            )
        return self._known[known]


def _bucket(product_id: str, sku_id: str, term_duration: str, billing_cycle: str) -> tuple[str, str, str, str]:
    return (product_id.upper(), sku_id.upper(), term_duration.upper(), billing_cycle.lower())


_DURATION = re.compile(r"^P(\d+)([MY])$", re.IGNORECASE)


def term_months(term_duration: str) -> int:
    match = _DURATION.match(term_duration.strip())
    if not match:
        return 1
    count = int(match.group(1))
    return count * 12 if match.group(2).upper() == "Y" else count


@lru_cache(maxsize=256)
def period_months(billing_cycle: str, term_duration: str) -> int | None:
    """Months billed at once: None for monthly billing (billed per cycle)."""
    frequency = billing_cycle.lower()
    if frequency == "annual":
        return 12
    if frequency == "triennial":
        return max(term_months(term_duration), 36)
    return None


@dataclass
class _Charge:
    seats: int
    price: UnitPrice | None


@dataclass
class _State:
    record: LedgerRecord
    quantity: int = 0
    started: bool = False
    ended: bool = False
    cycle_fee_done: bool = False
    term_start: date | None = None
    term_end: date | None = None
    period_start: date | None = None
    period_end: date | None = None
    stack: list[_Charge] = field(default_factory=list)

    @property
    def periodic(self) -> bool:
        return period_months(self.record.billing_cycle, self.record.term_duration) is not None

    @property
    def is_addon(self) -> bool:
        return bool(self.record.parent_subscription_id)

    def copy(self) -> _State:
        """An independent copy (its charges too: refunds change their seats)."""
        return _State(**{**self.__dict__, "stack": [_Charge(charge.seats, charge.price) for charge in self.stack]})


# (kind of charge, add-on?) → charge type
_CHARGE_TYPES = {
    ("fee", False): ChargeType.CYCLE_FEE,
    ("fee", True): ChargeType.ADDON_CYCLE_FEE,
    ("purchase", False): ChargeType.PRORATA_PURCHASE,
    ("purchase", True): ChargeType.ADDON_PRORATA,
    ("increase", False): ChargeType.PRORATA_INCREASE,
    ("increase", True): ChargeType.ADDON_PRORATA,
    ("refund", False): ChargeType.REFUND,
    ("refund", True): ChargeType.ADDON_REFUND,
}


class _Rater:
    def __init__(self, prices: PriceIndex, calendar: CycleCalendar, cycle: Cycle) -> None:
        self.prices = prices
        self.calendar = calendar
        self.cycle = cycle
        self.lines: list[Line] = []

    # ---- lines -----------------------------------------------------------------------------
    def _line(
        self,
        state: _State,
        kind: str,
        day: date,
        seats: int,
        price: UnitPrice | None,
        days: int | None,
        period_days: int | None,
        *,
        negative: bool = False,
    ) -> None:
        if not self.cycle.contains(day) or seats <= 0:
            return
        charge_type = _CHARGE_TYPES[kind, state.is_addon]
        amount: Decimal | None = None
        if price is not None:
            amount = line_amount(seats, price.amount, days, period_days, price.currency)
            if negative:
                amount = -amount
        record = state.record
        self.lines.append(
            Line(
                cycle=self.cycle,
                subscription_id=record.subscription_id,
                parent_subscription_id=record.parent_subscription_id,
                product=record.product_name,
                offer_id=record.offer_id,
                product_id=record.product_id,
                sku_id=record.sku_id,
                term_duration=record.term_duration,
                billing_cycle=record.billing_cycle,
                charge_type=charge_type,
                charge_day=day,
                quantity=seats,
                unit_price=price.amount if price is not None else None,
                days=days,
                cycle_days=period_days,
                amount=amount,
                currency=price.currency if price is not None else "",
                price_entry_id=price.entry_id if price is not None else None,
            )
        )

    # ---- monthly billing ---------------------------------------------------------------------
    def _monthly_fee(self, state: _State) -> None:
        """Once, before the first event of the cycle: the seats held when the previous cycle ended."""
        if state.cycle_fee_done:
            return
        state.cycle_fee_done = True
        if state.periodic:  # its charges (and their stack) run by billing period, not by cycle
            return
        state.stack = []
        if not state.started or state.ended or state.quantity <= 0:
            return
        price = self.prices.on(state.record, self.cycle.start)
        state.stack.append(_Charge(state.quantity, price))
        self._line(state, "fee", self.cycle.start, state.quantity, price, None, None)

    # ---- annual / triennial billing ----------------------------------------------------------
    def _start_period(self, state: _State, start: date, seats: int) -> None:
        months = period_months(state.record.billing_cycle, state.record.term_duration) or 12
        assert state.term_end is not None
        state.period_start = start
        state.period_end = min(add_months(start, months) - timedelta(days=1), state.term_end)
        # A fee's day is the first day of the cycle it falls in. A product first priced later in that
        # cycle (a price list valid from mid-cycle, the term bought after that) is priced on the term's
        # own day, as it was quoted, rather than left unpriced.
        price = self.prices.on(state.record, self.calendar.cycle_of(start).start) or self.prices.on(state.record, start)
        state.stack = [_Charge(seats, price)] if seats > 0 else []
        self._line(state, "fee", start, seats, price, None, None)

    def _advance_anniversaries(self, state: _State, until: date) -> None:
        """Start the billing periods (anniversaries of a multi-year term) that begin on or before `until`."""
        if not state.periodic or state.ended or state.period_end is None or state.term_end is None:
            return
        while state.period_end < state.term_end and state.period_end < until:
            self._start_period(state, state.period_end + timedelta(days=1), state.quantity)

    def _window(self, state: _State, day: date) -> tuple[int, int]:
        """(days from `day` to the period's end, inclusive; days in the period) for pro-rata."""
        if state.periodic and state.period_start is not None and state.period_end is not None:
            return max((state.period_end - day).days + 1, 0), (state.period_end - state.period_start).days + 1
        return (self.cycle.end - day).days + 1, self.cycle.days

    # ---- events ------------------------------------------------------------------------------
    def _before_cycle(self, state: _State, day: date) -> bool:
        """Monthly billing before the rated cycle: only the quantity matters (the cycle fee re-prices
        the seats held), so no charge is priced or stacked."""
        return not state.periodic and day < self.cycle.start

    def _add_seats(self, state: _State, kind: str, day: date, seats: int) -> None:
        if seats <= 0 or self._before_cycle(state, day):
            return
        price = self.prices.on(state.record, day)
        days, period_days = self._window(state, day)
        if days <= 0:
            return
        state.stack.append(_Charge(seats, price))
        self._line(state, kind, day, seats, price, days, period_days)

    def _remove_seats(self, state: _State, day: date, seats: int, *, refund: bool) -> None:
        if self._before_cycle(state, day):
            return
        days, period_days = self._window(state, day)
        while seats > 0:
            if state.stack:
                charge = state.stack[-1]
                taken = min(seats, charge.seats)
                charge.seats -= taken
                if charge.seats == 0:
                    state.stack.pop()
                price = charge.price
            else:  # no charge of this cycle/period holds these seats: price them on the day
                taken, price = seats, self.prices.on(state.record, day)
            seats -= taken
            if refund and days > 0:
                self._line(state, "refund", day, taken, price, days, period_days, negative=True)

    def apply(self, state: _State, event: LedgerRecord, day: date) -> None:
        state.record = event
        kind = event.event_type
        change = event.quantity_after - event.quantity_before
        if kind is LedgerEvent.PURCHASE:
            state.started, state.ended = True, False
            state.quantity = event.quantity_after
            self._new_term(state, day, event.quantity_after, purchase=True)
        elif kind is LedgerEvent.RENEWAL:
            state.quantity = event.quantity_after
            if state.periodic:
                self._new_term(state, day, event.quantity_after, purchase=False)
            else:
                state.term_start = day
                if change > 0:
                    self._add_seats(state, "increase", day, change)
                elif change < 0:  # lowered at renewal: nothing already billed changes
                    self._remove_seats(state, day, -change, refund=False)
        elif kind is LedgerEvent.QUANTITY_INCREASE:
            state.quantity = event.quantity_after
            self._add_seats(state, "increase", day, change)
        elif kind in (LedgerEvent.QUANTITY_DECREASE, LedgerEvent.CANCELLATION):
            state.quantity = event.quantity_after
            if change < 0:
                self._remove_seats(state, day, -change, refund=True)
            elif change > 0:
                self._add_seats(state, "increase", day, change)
            if kind is LedgerEvent.CANCELLATION:
                state.ended = True
                state.quantity = 0
        elif kind is LedgerEvent.EXPIRY:
            state.ended = True
            state.quantity = 0
        # Suspension and reactivation change nothing billed: suspended seats are still billed.

    def _new_term(self, state: _State, day: date, seats: int, *, purchase: bool) -> None:
        state.term_start = day
        state.term_end = add_months(day, term_months(state.record.term_duration)) - timedelta(days=1)
        if state.periodic:
            self._start_period(state, day, seats)
        elif purchase:
            self._add_seats(state, "purchase", day, seats)


def _order(record: LedgerRecord) -> tuple[object, ...]:
    return (record.effective_at, record.id or 0)


def _by_subscription(records: Sequence[LedgerRecord], calendar: CycleCalendar) -> list[list[tuple[date, LedgerRecord]]]:
    """Each subscription's events in ledger order, with their days."""
    by_subscription: dict[str, list[tuple[date, LedgerRecord]]] = defaultdict(list)
    for record in sorted(records, key=_order):
        by_subscription[record.subscription_id].append((calendar.day_of(record.effective_at), record))
    return list(by_subscription.values())


def _step(rater: _Rater, state: _State, day: date, event: LedgerRecord) -> None:
    """One event as the rater of `rater.cycle` sees it (before the cycle: its effect on the state only)."""
    rater._advance_anniversaries(state, day)
    if day >= rater.cycle.start:
        rater._monthly_fee(state)
    rater.apply(state, event, day)


def _close(rater: _Rater, state: _State) -> None:
    """The end of the rated cycle: anniversaries up to its last day, and its fee if no event came."""
    rater._advance_anniversaries(state, rater.cycle.end)
    rater._monthly_fee(state)


def _index(prices: Iterable[UnitPrice] | PriceIndex) -> PriceIndex:
    return prices if isinstance(prices, PriceIndex) else PriceIndex(prices)


def rate_cycle(
    records: Sequence[LedgerRecord], prices: Iterable[UnitPrice] | PriceIndex, calendar: CycleCalendar, cycle: Cycle
) -> list[Line]:
    """The line items of `cycle` for one organisation's ledger, base subscriptions each followed by
    their add-ons: every subscription's events replayed from its first one up to the cycle's end."""
    rater = _Rater(_index(prices), calendar, cycle)
    for events in _by_subscription(records, calendar):
        state = _State(record=events[0][1])
        for day, event in events:
            if day > cycle.end:
                break
            _step(rater, state, day, event)
        _close(rater, state)
    return sort_lines(rater.lines)


def rate_cycles(
    records: Sequence[LedgerRecord],
    prices: Iterable[UnitPrice] | PriceIndex,
    calendar: CycleCalendar,
    cycles: Iterable[Cycle],
) -> dict[Cycle, list[Line]]:
    """`rate_cycle` for many cycles in one pass over the ledger: the same lines, to the cent.

    `rate_cycle` replays a subscription's events before the cycle only for what they leave behind
    (quantity, term, billing periods and their charges; monthly charges before the cycle are
    neither priced nor stacked), and that state does not depend on which later cycle is rated. So
    each subscription keeps one such history, moved forward cycle by cycle, and each cycle is rated
    on a copy of it: every event is replayed twice at most, not once per cycle."""
    index = _index(prices)
    raters = [_Rater(index, calendar, cycle) for cycle in sorted(set(cycles))]
    for events in _by_subscription(records, calendar):
        history = _State(record=events[0][1])
        seen = 0  # events[:seen] are in `history`
        for rater in raters:
            cycle = rater.cycle
            while seen < len(events) and events[seen][0] < cycle.start:
                _step(rater, history, *events[seen])
                seen += 1
            state = history.copy()
            inside = seen
            while inside < len(events) and events[inside][0] <= cycle.end:
                _step(rater, state, *events[inside])
                inside += 1
            _close(rater, state)
    return {rater.cycle: sort_lines(rater.lines) for rater in raters}


def sort_lines(lines: Iterable[Line]) -> list[Line]:
    """Base subscriptions in order of first charge, each followed by its add-ons; charges in day order."""
    ordered = list(lines)
    bases = [line.parent_subscription_id or line.subscription_id for line in ordered]
    first_day: dict[str, date] = {}
    for line, base in zip(ordered, bases, strict=True):
        if base not in first_day or line.charge_day < first_day[base]:
            first_day[base] = line.charge_day
    keys = sorted(
        (
            first_day[base],
            base,
            line.parent_subscription_id is not None,
            line.subscription_id,
            line.charge_type is ChargeType.ADJUSTMENT,
            line.charge_day,
            position,  # unique: the rest of the order is the lines' own
        )
        for position, (line, base) in enumerate(zip(ordered, bases, strict=True))
    )
    return [ordered[key[-1]] for key in keys]


def adjustment_lines(target: Cycle, corrected: Cycle, recomputed: Sequence[Line], issued: Sequence[Line]) -> list[Line]:
    """Late events or price corrections for a closed cycle: for each subscription (and currency)
    whose recomputed total differs from what was issued for `corrected` (its stored lines plus the
    adjustments already made for it), one `adjustment` line in `target` for the difference."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    sample: dict[str, Line] = {}
    for line in recomputed:
        sample.setdefault(line.subscription_id, line)
        if line.amount is not None:
            totals[(line.subscription_id, line.currency)] += line.amount
    for line in issued:
        sample.setdefault(line.subscription_id, line)
        if line.amount is not None:
            totals[(line.subscription_id, line.currency)] -= line.amount
    result = []
    for (subscription_id, currency), difference in sorted(totals.items()):
        if difference == 0:
            continue
        model = sample[subscription_id]
        result.append(
            replace(
                model,
                cycle=target,
                charge_type=ChargeType.ADJUSTMENT,
                charge_day=target.start,
                quantity=1,
                unit_price=difference,
                days=None,
                cycle_days=None,
                amount=difference,
                currency=currency,
                price_entry_id=None,
                corrects=corrected.end,
            )
        )
    return result


def totals_by_currency(lines: Iterable[Line]) -> Mapping[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for line in lines:
        if line.amount is not None:
            totals[line.currency] = totals.get(line.currency, Decimal(0)) + line.amount
    return totals


def event_lines(
    records: Sequence[LedgerRecord],
    prices: Iterable[UnitPrice] | PriceIndex,
    calendar: CycleCalendar,
    event: LedgerRecord,
) -> list[Line]:
    """The lines `event` will add to the bill of the cycle it falls in — the same cycle, the same
    pro-rata and the same once-per-line rounding as the bill, because it *is* the bill's computation:
    the cycle rated from the subscription's ledger with and without `event` (which comes after the
    recorded ones), and the lines only the second has. Used to preview a change before it is made."""
    index = _index(prices)
    own = [record for record in records if record.subscription_id == event.subscription_id]
    cycle = calendar.cycle_of(calendar.day_of(event.effective_at))
    without = rate_cycle(own, index, calendar, cycle)
    latest = max((record.effective_at for record in own), default=event.effective_at)
    if event.effective_at < latest:  # a preview never precedes what is already recorded
        event = replace(event, effective_at=latest)
    last_id = max((record.id or 0 for record in own), default=0)
    with_event = rate_cycle([*own, replace(event, id=last_id + 1)], index, calendar, cycle)
    remaining = list(without)
    added: list[Line] = []
    for line in with_event:
        if line in remaining:
            remaining.remove(line)
        else:
            added.append(line)
    return added
