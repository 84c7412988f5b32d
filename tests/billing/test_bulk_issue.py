"""Issuing many cycles at once (`rate_cycles`: one pass over the ledger; bulk inserts) gives exactly the
lines of rating each cycle on its own (`rate_cycle`), to the cent, stored and read back — on SQLite and
PostgreSQL. The ledger has what a shortcut would get wrong: charges changed mid-cycle, refunds of
seats added days before (they reverse the charge they came with), a cancellation, a suspension, an
add-on that expires, annual and three-year terms, a renewal with fewer seats, a price corrected
mid-history, three currencies, and a new cycle day and time zone half-way through."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing.cycles import Cycle, CycleCalendar, CycleSetting
from services.billing.rating import ChargeType, Line, rate_cycle, rate_cycles, totals_by_currency
from services.ledger import LedgerEvent as Ev
from services.ledger import LedgerRecord
from services.price_rules import PriceScope
from services.seed import DEMO_SLUG, seed_demo_organisation
from tests.billing.helpers import Clock, ListPrices, billing_service, caller
from tests.billing.ledger_fixtures import BASIC, E3, TEAMS_PHONE, at, event, price

# Calendar months in UTC until June 2026; from 1 July cycles end on the 15th, days counted in Oslo.
SETTINGS = [CycleSetting(date(2026, 7, 1), 15, "Europe/Oslo")]
CALENDAR = CycleCalendar(SETTINGS)


def _prices(organisation_id: int) -> ListPrices:
    return ListPrices(
        by_organisation={
            organisation_id: [
                # E3 monthly for this customer from May: 28.00 instead of the global 30.00
                price("28.00", valid_from=date(2026, 5, 1), scope=PriceScope.CUSTOMER, entry_id=101),
                price("2.675", product=TEAMS_PHONE, currency="KWD", scope=PriceScope.CUSTOMER, entry_id=102),
            ]
        },
        global_entries=[
            price("30.00", entry_id=1),
            price("4350", product=BASIC, term="P1Y", currency="JPY", entry_id=2),
            price("324.00", term="P1Y", billing="annual", entry_id=3),
            price("40000", product=BASIC, term="P3Y", billing="annual", currency="JPY", entry_id=4),
        ],
    )


def _ledger(organisation_id: int) -> list[LedgerRecord]:
    def ev(kind: Ev, day: date | datetime, before: int, after: int, **kwargs: object) -> LedgerRecord:
        return event(kind, day, before, after, organisation_id=organisation_id, **kwargs)  # type: ignore[arg-type]

    basic_p1y = {"subscription": "sub-basic", "product": BASIC, "term": "P1Y"}
    phone = {"subscription": "addon-phone", "product": TEAMS_PHONE, "parent": "sub-basic"}
    annual = {"subscription": "sub-annual", "term": "P1Y", "billing": "annual"}
    return [
        ev(Ev.PURCHASE, date(2026, 1, 11), 0, 5, subscription="sub-a"),
        ev(Ev.PURCHASE, date(2026, 1, 20), 0, 3, **basic_p1y),
        # bought at 23:30 UTC on the last day of January: January's (UTC until July)
        ev(Ev.PURCHASE, datetime(2026, 1, 31, 23, 30, tzinfo=UTC), 0, 1, subscription="sub-tri", product=BASIC,
           term="P3Y", billing="annual"),
        ev(Ev.QUANTITY_INCREASE, date(2026, 2, 10), 5, 8, subscription="sub-a"),
        ev(Ev.QUANTITY_DECREASE, date(2026, 2, 14), 8, 6, subscription="sub-a"),  # refunded within 7 days
        ev(Ev.PURCHASE, date(2026, 2, 16), 0, 2, **phone),
        ev(Ev.QUANTITY_DECREASE, date(2026, 2, 20), 2, 1, **phone),
        ev(Ev.SUSPENSION, date(2026, 3, 3), 6, 6, subscription="sub-a"),
        ev(Ev.PURCHASE, date(2026, 3, 15), 0, 2, **annual),
        ev(Ev.REACTIVATION, date(2026, 3, 20), 6, 6, subscription="sub-a"),
        ev(Ev.QUANTITY_INCREASE, date(2026, 4, 5), 3, 4, **basic_p1y),
        ev(Ev.QUANTITY_INCREASE, date(2026, 5, 10), 2, 3, **annual),
        ev(Ev.QUANTITY_DECREASE, date(2026, 5, 14), 3, 2, **annual),
        ev(Ev.QUANTITY_INCREASE, date(2026, 6, 10), 6, 7, subscription="sub-a"),
        ev(Ev.CANCELLATION, date(2026, 6, 16), 7, 0, subscription="sub-a"),  # within 7 days of the increase
        # 23:30 UTC on 15 Aug is 16 Aug in Oslo: the first day of the 16 Aug – 15 Sep cycle
        ev(Ev.PURCHASE, datetime(2026, 8, 15, 23, 30, tzinfo=UTC), 0, 4, subscription="sub-c"),
        ev(Ev.EXPIRY, date(2026, 9, 30), 1, 0, **phone),
        ev(Ev.QUANTITY_INCREASE, date(2026, 11, 2), 4, 6, subscription="sub-c"),
        ev(Ev.QUANTITY_DECREASE, date(2026, 11, 6), 6, 5, subscription="sub-c"),
        ev(Ev.RENEWAL, date(2027, 1, 20), 4, 2, **basic_p1y),  # renewed with fewer seats
    ]  # fmt: skip


def _numbered(records: list[LedgerRecord]) -> list[LedgerRecord]:
    return [replace(record, id=n) for n, record in enumerate(records, start=1)]


def _texts(lines: list[Line] | tuple[Line, ...]) -> list[tuple[object, ...]]:
    """Every field, money as its exact text (`8.917`, not 8.9170)."""
    return [
        (line.cycle, line.subscription_id, line.parent_subscription_id, line.product, line.offer_id,
         line.product_id, line.sku_id, line.term_duration, line.billing_cycle, line.charge_type, line.charge_day,
         line.quantity, str(line.unit_price), line.days, line.cycle_days, str(line.amount), line.currency,
         line.price_entry_id, line.corrects)
        for line in lines
    ]  # fmt: skip


ISSUED = [Cycle(date(2026, m, 1), (date(2026, m + 1, 1) - timedelta(days=1))) for m in range(1, 7)] + [
    Cycle(date(2026, 7, 1), date(2026, 7, 15)),
    *(Cycle(date(2026, m, 16), date(2026, m + 1, 15)) for m in range(7, 12)),
    Cycle(date(2026, 12, 16), date(2027, 1, 15)),
    Cycle(date(2027, 1, 16), date(2027, 2, 15)),
]


def test_the_calendar_is_the_one_the_cases_assume() -> None:
    assert CALENDAR.cycles_between(date(2026, 1, 1), date(2027, 2, 15)) == ISSUED


def test_one_pass_gives_each_cycles_own_lines() -> None:
    records = _numbered(_ledger(1))
    prices = _prices(1)
    entries = [*prices.by_organisation[1], *prices.global_entries]
    together = rate_cycles(records, entries, CALENDAR, ISSUED)
    assert list(together) == ISSUED
    for cycle in ISSUED:
        assert _texts(together[cycle]) == _texts(rate_cycle(records, entries, CALENDAR, cycle)), cycle
    # any subset, in any order: the same lines (cycles skipped leave the history intact)
    some = [ISSUED[9], ISSUED[1], ISSUED[13], ISSUED[6]]
    assert rate_cycles(records, entries, CALENDAR, some) == {
        cycle: rate_cycle(records, entries, CALENDAR, cycle) for cycle in sorted(some)
    }


def _random_ledger(seed: int, subscriptions: int) -> list[LedgerRecord]:
    """Subscriptions bought at random times and changed at random, as a sync might find them."""
    rng = random.Random(seed)
    records: list[LedgerRecord] = []
    start = datetime(2025, 11, 1, tzinfo=UTC)
    for n in range(subscriptions):
        product = rng.choice([E3, BASIC, TEAMS_PHONE])
        term, billing = rng.choice([("P1M", "monthly"), ("P1Y", "monthly"), ("P1Y", "annual"), ("P3Y", "annual"),
                                    ("P3Y", "triennial")])  # fmt: skip
        parent = f"r{seed}-{n - 1}" if n and product is TEAMS_PHONE else None
        moment = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 400))
        quantity = rng.randint(1, 9)
        common = {"subscription": f"r{seed}-{n}", "product": product, "term": term, "billing": billing,
                  "parent": parent}  # fmt: skip
        records.append(event(Ev.PURCHASE, moment, 0, quantity, **common))  # type: ignore[arg-type]
        for _ in range(rng.randint(0, 8)):
            moment += timedelta(minutes=rng.randrange(1, 60 * 24 * 90))
            kind = rng.choices([Ev.QUANTITY_INCREASE, Ev.QUANTITY_DECREASE, Ev.SUSPENSION, Ev.REACTIVATION,
                                Ev.RENEWAL, Ev.CANCELLATION, Ev.EXPIRY], weights=[5, 5, 1, 1, 2, 1, 1])[0]  # fmt: skip
            after = {
                Ev.QUANTITY_INCREASE: quantity + rng.randint(1, 4),
                Ev.QUANTITY_DECREASE: max(quantity - rng.randint(1, 3), 1),
                Ev.RENEWAL: rng.randint(1, 9),
                Ev.CANCELLATION: 0,
                Ev.EXPIRY: 0,
            }.get(kind, quantity)
            records.append(event(kind, moment, quantity, after, **common))  # type: ignore[arg-type]
            quantity = after
            if kind in (Ev.CANCELLATION, Ev.EXPIRY):
                break
    return _numbered(records)


RANDOM_PRICES = [
    price("30.00", valid_to=date(2026, 3, 31), entry_id=1),
    price("33.30", valid_from=date(2026, 4, 1), entry_id=2),
    price("4350", product=BASIC, term="P1Y", currency="JPY", entry_id=3),
    price("2.675", product=TEAMS_PHONE, term="P1Y", billing="annual", currency="KWD", entry_id=4),
    price("360.00", term="P1Y", billing="annual", entry_id=5),
    price("999.99", term="P3Y", billing="triennial", entry_id=6),
    price("350.50", term="P3Y", billing="annual", entry_id=7),
    price("7.10", product=TEAMS_PHONE, currency="KWD", entry_id=8),
]


@pytest.mark.parametrize("seed", range(6))
def test_one_pass_matches_cycle_by_cycle_on_random_ledgers(seed: int) -> None:
    records = _random_ledger(seed, 40)
    calendar = [CALENDAR, CycleCalendar(), CycleCalendar([CycleSetting(date(2026, 2, 1), 30, "Pacific/Auckland")])][
        seed % 3
    ]
    cycles = calendar.cycles_between(date(2025, 11, 1), date(2027, 3, 31))
    together = rate_cycles(records, RANDOM_PRICES, calendar, cycles)
    kinds = {line.charge_type for lines in together.values() for line in lines}
    assert kinds >= set(ChargeType) - {ChargeType.ADJUSTMENT}, "every kind of charge comes up"
    for cycle in cycles:
        assert _texts(together[cycle]) == _texts(rate_cycle(records, RANDOM_PRICES, calendar, cycle)), cycle


async def _issued_organisation(services) -> tuple[int, ListPrices, Clock]:
    """The scenario's organisation with the new cycle day set in advance and its ledger recorded."""
    await seed_demo_organisation(services.organisations)
    org = (await services.organisations.get(DEMO_SLUG)).id
    clock = Clock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    prices = _prices(org)
    billing = billing_service(services, prices, clock)
    await billing.set_cycle(day="15", timezone="Europe/Oslo", effective=date(2026, 7, 1), actor="op")
    for record in _ledger(org):
        assert await services.ledger.record(record)
    return org, prices, clock


async def test_issued_reports_are_each_cycles_own_lines_to_the_cent(services) -> None:
    org, prices, clock = await _issued_organisation(services)
    clock.now = datetime(2027, 2, 20, 9, tzinfo=UTC)
    billing = billing_service(services, prices, clock)
    *issued, open_ = await billing.months(caller(org), (2026, 1), (2027, 2))  # issues the 14 ended cycles

    assert [report.cycle for report in issued] == ISSUED and all(report.issued for report in issued)
    assert not open_.issued and open_.cycle == Cycle(date(2027, 2, 16), date(2027, 3, 15))
    records = await services.ledger.entries(org)
    calendar = await billing.calendar()
    entries = await prices.entries_for(org)
    # Read back from the database by a new service: exactly what rating each cycle alone gives.
    stored = await billing_service(services, prices, clock).months(caller(org), (2026, 1), (2027, 1))
    assert [report.cycle for report in stored] == ISSUED[:-1]
    for kept, report in zip([*stored, issued[-1]], issued, strict=True):
        expected = _texts(rate_cycle(records, entries, calendar, report.cycle))
        assert _texts(report.lines) == expected, report.cycle
        assert _texts(kept.lines) == expected, report.cycle

    january, february = issued[0].lines, issued[1].lines
    # sub-a 5 × 30 × 21/31 = 101.61; sub-basic 3 × 4350 × 12/31 = 5051.6 → 5052 JPY; sub-tri's year 40000 JPY
    assert totals_by_currency(january) == {"EUR": Decimal("101.61"), "JPY": Decimal("45052")}
    # sub-a: fee 5 × 30 = 150, +3 × 30 × 19/28 = 61.07, −2 × 30 × 15/28 = −32.14 (the increase's seats);
    # sub-basic: fee 3 × 4350; its add-on: 2 × 2.675 × 13/28 = 2.484 KWD, −1 × 2.675 × 9/28 = −0.860 KWD
    assert [(line.subscription_id, line.charge_type.value, str(line.amount)) for line in february] == [
        ("sub-a", "cycle_fee", "150.00"),
        ("sub-a", "prorata_increase", "61.07"),
        ("sub-a", "refund", "-32.14"),
        ("sub-basic", "cycle_fee", "13050"),
        ("addon-phone", "addon_prorata", "2.484"),
        ("addon-phone", "addon_refund", "-0.860"),
    ]
    # 16 Jan – 15 Feb 2027: sub-c's fee 5 × 28; sub-basic's 4 × 4350 (renewed on 20 Jan with 2 seats:
    # nothing billed changes) and sub-tri's second year, 31 Jan 2027, 40000 JPY
    assert totals_by_currency(issued[-1].lines) == {"EUR": Decimal("140.00"), "JPY": Decimal("57400")}
    # 16 Aug – 15 Sep: sub-c bought on its first day in Oslo, the whole cycle at the customer's 28.00
    (sub_c,) = [line for line in issued[8].lines if line.subscription_id == "sub-c"]
    assert (sub_c.charge_day, sub_c.days, sub_c.cycle_days, str(sub_c.amount)) == (date(2026, 8, 16), 31, 31, "112.00")


async def test_a_late_event_adjusts_every_cycle_it_changes_once(services) -> None:
    org, prices, clock = await _issued_organisation(services)
    clock.now = datetime(2027, 2, 20, 9, tzinfo=UTC)
    billing = billing_service(services, prices, clock)
    await billing.months(caller(org), (2026, 1), (2027, 2))
    # Found late: sub-c had one more seat from 1 Sep (Oslo) — before its November changes.
    await services.ledger.record(event(Ev.QUANTITY_INCREASE, at(date(2026, 9, 1), 9), 4, 5, subscription="sub-c",
                                       organisation_id=org))  # fmt: skip

    clock.now = datetime(2027, 3, 20, 9, tzinfo=UTC)
    report = await billing.last_month(caller(org))
    assert report.cycle == Cycle(date(2027, 2, 16), date(2027, 3, 15))
    adjustments = [(line.subscription_id, line.corrects, str(line.amount)) for line in report.lines if line.corrects]
    # 1 seat × 28 × 15/31 (1–15 Sep) = 13.55; then one seat more in each fee (28.00) until November's
    # changes, which recorded 6 and then 5 seats: from 16 Nov on the bills are as issued.
    assert adjustments == [
        ("sub-c", date(2026, 9, 15), "13.55"),
        ("sub-c", date(2026, 10, 15), "28.00"),
        ("sub-c", date(2026, 11, 15), "28.00"),
    ]
