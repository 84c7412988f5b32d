"""The rating engine, rule by rule, with amounts computed by hand (the working is in each case)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from services.billing.cycles import CycleCalendar, CycleSetting
from services.billing.rating import ChargeType, Line, adjustment_lines, rate_cycle, totals_by_currency
from services.ledger import LedgerEvent as Ev
from services.money import round_money
from services.price_rules import PriceScope
from tests.billing.ledger_fixtures import BASIC, TEAMS_PHONE, event, price

MONTHS = CycleCalendar()
E3_30 = [price("30.00")]

Row = tuple[str, str, int, str | None, int | None, int | None, str]  # sub, type, qty, unit, days, of, amount


def rows(lines: list[Line]) -> list[Row]:
    return [
        (
            line.subscription_id,
            line.charge_type.value,
            line.quantity,
            None if line.unit_price is None else str(line.unit_price),
            line.days,
            line.cycle_days,
            str(line.amount),
        )
        for line in lines
    ]


def rate(records, prices, month: tuple[int, int], calendar: CycleCalendar = MONTHS) -> list[Line]:
    return rate_cycle(records, prices, calendar, calendar.cycle_of_month(*month))


CASES = [
    pytest.param(
        # 5 seats on 11 Sep (30-day cycle): days 11..30 = 20 → 5 × 30 × 20/30 = 100.00
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 5)],
        E3_30,
        (2026, 9),
        [("sub-e3", "prorata_purchase", 5, "30.00", 20, 30, "100.00")],
        id="mid-cycle purchase",
    ),
    pytest.param(
        # on the cycle's first day: the whole cycle, 5 × 30 × 30/30
        [event(Ev.PURCHASE, date(2026, 9, 1), 0, 5)],
        E3_30,
        (2026, 9),
        [("sub-e3", "prorata_purchase", 5, "30.00", 30, 30, "150.00")],
        id="purchase on the first day",
    ),
    pytest.param(
        # the next cycle: the seats held at the end of September, 5 × 30
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 5)],
        E3_30,
        (2026, 10),
        [("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00")],
        id="cycle fee",
    ),
    pytest.param(
        # +3 on 10 Oct (31 days): 10..31 = 22 → 3 × 30 × 22/31 = 63.8709… → 63.87
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 5), event(Ev.QUANTITY_INCREASE, date(2026, 10, 10), 5, 8)],
        E3_30,
        (2026, 10),
        [
            ("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00"),
            ("sub-e3", "prorata_increase", 3, "30.00", 22, 31, "63.87"),
        ],
        id="increase",
    ),
    pytest.param(
        # price 30 until 9 Oct, 33 from 10 Oct. Fee (1 Oct) 5 × 30 = 150; +3 on 10 Oct at 33:
        # 3 × 33 × 22/31 = 70.258… → 70.26; −2 on 14 Oct reverses the increase at 33:
        # 2 × 33 × 18/31 = 38.322… → −38.32 (not at the fee's 30)
        [
            event(Ev.PURCHASE, date(2026, 9, 11), 0, 5),
            event(Ev.QUANTITY_INCREASE, date(2026, 10, 10), 5, 8),
            event(Ev.QUANTITY_DECREASE, date(2026, 10, 14), 8, 6),
        ],
        [price("30.00", valid_to=date(2026, 10, 9)), price("33.00", valid_from=date(2026, 10, 10))],
        (2026, 10),
        [
            ("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00"),
            ("sub-e3", "prorata_increase", 3, "33.00", 22, 31, "70.26"),
            ("sub-e3", "refund", 2, "33.00", 18, 31, "-38.32"),
        ],
        id="decrease inside the window at the original price",
    ),
    pytest.param(
        # −4 of 5+3 seats: 3 reverse the increase (at 33), 1 reverses the cycle fee (at 30); 14..31 = 18
        # 3 × 33 × 18/31 = 57.483… → −57.48; 1 × 30 × 18/31 = 17.419… → −17.42
        [
            event(Ev.PURCHASE, date(2026, 9, 11), 0, 5),
            event(Ev.QUANTITY_INCREASE, date(2026, 10, 10), 5, 8),
            event(Ev.QUANTITY_DECREASE, date(2026, 10, 14), 8, 4),
        ],
        [price("30.00", valid_to=date(2026, 10, 9)), price("33.00", valid_from=date(2026, 10, 10))],
        (2026, 10),
        [
            ("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00"),
            ("sub-e3", "prorata_increase", 3, "33.00", 22, 31, "70.26"),
            ("sub-e3", "refund", 3, "33.00", 18, 31, "-57.48"),
            ("sub-e3", "refund", 1, "30.00", 18, 31, "-17.42"),
        ],
        id="decrease across two charges",
    ),
    pytest.param(
        # bought 28 Sep, reduced 2 Oct (inside the window, in the next cycle): the seats were billed in
        # October by the cycle fee, so the refund reverses that fee from 2 Oct: 2 × 30 × 30/31 = 58.064…
        # → −58.06; September's pro-rata (28–30 Sep) stays billed
        [event(Ev.PURCHASE, date(2026, 9, 28), 0, 5), event(Ev.QUANTITY_DECREASE, date(2026, 10, 2), 5, 3)],
        E3_30,
        (2026, 10),
        [
            ("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00"),
            ("sub-e3", "refund", 2, "30.00", 30, 31, "-58.06"),
        ],
        id="decrease in the next cycle reverses its cycle fee",
    ),
    pytest.param(
        # price list 30 until 31 Oct, 32 from 1 Nov: November's fee 6 × 32 = 192.00
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 6)],
        [price("30.00", valid_to=date(2026, 10, 31)), price("32.00", valid_from=date(2026, 11, 1))],
        (2026, 11),
        [("sub-e3", "cycle_fee", 6, "32.00", None, None, "192.00")],
        id="price-list change between cycles",
    ),
    pytest.param(
        # cancelled on 3 Nov: fee 6 × 30 = 180; refund 3..30 = 28 → 6 × 30 × 28/30 = 168.00
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 6), event(Ev.CANCELLATION, date(2026, 11, 3), 6, 0)],
        E3_30,
        (2026, 11),
        [
            ("sub-e3", "cycle_fee", 6, "30.00", None, None, "180.00"),
            ("sub-e3", "refund", 6, "30.00", 28, 30, "-168.00"),
        ],
        id="cancellation",
    ),
    pytest.param(
        # fees stop with the first cycle that starts after the subscription ended
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 6), event(Ev.CANCELLATION, date(2026, 11, 3), 6, 0)],
        E3_30,
        (2026, 12),
        [],
        id="nothing after cancellation",
    ),
    pytest.param(
        # cancelled on the cycle's first day: fee and a whole-cycle refund, net 0
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 2), event(Ev.CANCELLATION, date(2026, 11, 1), 2, 0)],
        E3_30,
        (2026, 11),
        [
            ("sub-e3", "cycle_fee", 2, "30.00", None, None, "60.00"),
            ("sub-e3", "refund", 2, "30.00", 30, 30, "-60.00"),
        ],
        id="cancellation on the first day",
    ),
    pytest.param(
        # suspended in September: October's fee still bills the 5 seats
        [
            event(Ev.PURCHASE, date(2026, 9, 1), 0, 5),
            event(Ev.SUSPENSION, date(2026, 9, 20), 5, 5),
            event(Ev.REACTIVATION, date(2026, 10, 20), 5, 5),
        ],
        E3_30,
        (2026, 10),
        [("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00")],
        id="suspension still billed",
    ),
    pytest.param(
        # expired on 30 Sep (end of term, not renewed): no fee in October
        [event(Ev.PURCHASE, date(2026, 9, 1), 0, 5), event(Ev.EXPIRY, date(2026, 9, 30), 5, 0)],
        E3_30,
        (2026, 10),
        [],
        id="expiry",
    ),
    pytest.param(
        # renewal lowers 5 → 3 on 15 Oct: nothing already billed changes; November bills 3
        [
            event(Ev.PURCHASE, date(2026, 9, 15), 0, 5, term="P1Y"),
            event(Ev.RENEWAL, date(2026, 10, 15), 5, 3, term="P1Y"),
        ],
        [price("30.00", term="P1Y")],
        (2026, 10),
        [("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00")],
        id="quantity lowered at renewal, same cycle",
    ),
    pytest.param(
        [
            event(Ev.PURCHASE, date(2026, 9, 15), 0, 5, term="P1Y"),
            event(Ev.RENEWAL, date(2026, 10, 15), 5, 3, term="P1Y"),
        ],
        [price("30.00", term="P1Y")],
        (2026, 11),
        [("sub-e3", "cycle_fee", 3, "30.00", None, None, "90.00")],
        id="quantity lowered at renewal, next fee",
    ),
    pytest.param(
        # add-on bought 16 Oct under its base: 16..31 = 16 → 2 × 8 × 16/31 = 8.258… → 8.26
        [
            event(Ev.PURCHASE, date(2026, 9, 1), 0, 5),
            event(
                Ev.PURCHASE, date(2026, 10, 16), 0, 2, subscription="addon-phone", product=TEAMS_PHONE, parent="sub-e3"
            ),
        ],
        [*E3_30, price("8.00", product=TEAMS_PHONE)],
        (2026, 10),
        [
            ("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00"),
            ("addon-phone", "addon_prorata", 2, "8.00", 16, 31, "8.26"),
        ],
        id="add-on purchase",
    ),
    pytest.param(
        # November: add-on fee 2 × 8, add-on −1 on 5 Nov: 5..30 = 26 → 1 × 8 × 26/30 = 6.9333… → −6.93
        [
            event(Ev.PURCHASE, date(2026, 9, 1), 0, 5),
            event(
                Ev.PURCHASE, date(2026, 10, 16), 0, 2, subscription="addon-phone", product=TEAMS_PHONE, parent="sub-e3"
            ),
            event(
                Ev.QUANTITY_DECREASE,
                date(2026, 11, 5),
                2,
                1,
                subscription="addon-phone",
                product=TEAMS_PHONE,
                parent="sub-e3",
            ),
        ],
        [*E3_30, price("8.00", product=TEAMS_PHONE)],
        (2026, 11),
        [
            ("sub-e3", "cycle_fee", 5, "30.00", None, None, "150.00"),
            ("addon-phone", "addon_cycle_fee", 2, "8.00", None, None, "16.00"),
            ("addon-phone", "addon_refund", 1, "8.00", 26, 30, "-6.93"),
        ],
        id="add-on fee and refund",
    ),
    pytest.param(
        # annual billing, bought 10 Mar 2026: 10 × 300 = 3000.00 in the March cycle
        [event(Ev.PURCHASE, date(2026, 3, 10), 0, 10, term="P1Y", billing="annual")],
        [price("300.00", term="P1Y", billing="annual")],
        (2026, 3),
        [("sub-e3", "cycle_fee", 10, "300.00", None, None, "3000.00")],
        id="annual: fee where the term starts",
    ),
    pytest.param(
        # nothing in the other cycles of the term
        [event(Ev.PURCHASE, date(2026, 3, 10), 0, 10, term="P1Y", billing="annual")],
        [price("300.00", term="P1Y", billing="annual")],
        (2026, 4),
        [],
        id="annual: nothing in other cycles",
    ),
    pytest.param(
        # +2 on 15 Jun, term 10 Mar 2026 – 9 Mar 2027 (365 days); 15 Jun..9 Mar =
        # 16+31+31+30+31+30+31+31+28+9 = 268 → 2 × 300 × 268/365 = 440.547… → 440.55
        [
            event(Ev.PURCHASE, date(2026, 3, 10), 0, 10, term="P1Y", billing="annual"),
            event(Ev.QUANTITY_INCREASE, date(2026, 6, 15), 10, 12, term="P1Y", billing="annual"),
        ],
        [price("300.00", term="P1Y", billing="annual")],
        (2026, 6),
        [("sub-e3", "prorata_increase", 2, "300.00", 268, 365, "440.55")],
        id="annual: mid-term increase over the term",
    ),
    pytest.param(
        # −1 on 18 Jun reverses the increase: 18 Jun..9 Mar = 265 → 300 × 265/365 = 217.808… → −217.81
        [
            event(Ev.PURCHASE, date(2026, 3, 10), 0, 10, term="P1Y", billing="annual"),
            event(Ev.QUANTITY_INCREASE, date(2026, 6, 15), 10, 12, term="P1Y", billing="annual"),
            event(Ev.QUANTITY_DECREASE, date(2026, 6, 18), 12, 11, term="P1Y", billing="annual"),
        ],
        [price("300.00", term="P1Y", billing="annual")],
        (2026, 6),
        [
            ("sub-e3", "prorata_increase", 2, "300.00", 268, 365, "440.55"),
            ("sub-e3", "refund", 1, "300.00", 265, 365, "-217.81"),
        ],
        id="annual: refund over the term",
    ),
    pytest.param(
        # renewed 10 Mar 2027 with 12 seats: 12 × 310 (price from 1 Jan 2027) = 3720.00
        [
            event(Ev.PURCHASE, date(2026, 3, 10), 0, 10, term="P1Y", billing="annual"),
            event(Ev.QUANTITY_INCREASE, date(2026, 6, 15), 10, 12, term="P1Y", billing="annual"),
            event(Ev.RENEWAL, date(2027, 3, 10), 12, 12, term="P1Y", billing="annual"),
        ],
        [
            price("300.00", term="P1Y", billing="annual", valid_to=date(2026, 12, 31)),
            price("310.00", term="P1Y", billing="annual", valid_from=date(2027, 1, 1)),
        ],
        (2027, 3),
        [("sub-e3", "cycle_fee", 12, "310.00", None, None, "3720.00")],
        id="annual: renewal",
    ),
    pytest.param(
        # bought 28 Mar (fee 10 × 300, priced 1 Mar); −2 on 2 Apr, in the next cycle, after the price
        # rose to 320 on 1 Apr: the refund reverses the purchase fee at 300, over the term
        # 28 Mar 2026 – 27 Mar 2027 (365 days); 2 Apr..27 Mar = 29+31+30+31+31+30+31+30+31+31+28+27 = 360
        # → 2 × 300 × 360/365 = 591.780… → −591.78
        [
            event(Ev.PURCHASE, date(2026, 3, 28), 0, 10, term="P1Y", billing="annual"),
            event(Ev.QUANTITY_DECREASE, date(2026, 4, 2), 10, 8, term="P1Y", billing="annual"),
        ],
        [
            price("300.00", term="P1Y", billing="annual", valid_to=date(2026, 3, 31)),
            price("320.00", term="P1Y", billing="annual", valid_from=date(2026, 4, 1)),
        ],
        (2026, 4),
        [("sub-e3", "refund", 2, "300.00", 360, 365, "-591.78")],
        id="annual: refund in a later cycle at the purchase fee's price",
    ),
    pytest.param(
        # the annual price list starts on 10 Nov, mid-cycle; bought 20 Nov: no price on the cycle's
        # first day, so the fee takes the price in force on the term's day (as quoted): 2 × 72.00
        [event(Ev.PURCHASE, date(2026, 11, 20), 0, 2, term="P1Y", billing="annual")],
        [price("72.00", term="P1Y", billing="annual", valid_from=date(2026, 11, 10))],
        (2026, 11),
        [("sub-e3", "cycle_fee", 2, "72.00", None, None, "144.00")],
        id="annual: a price list starting mid-cycle still prices the fee",
    ),
    pytest.param(
        # a three-year term billed annually: a fee on each anniversary, 4 × 280
        [event(Ev.PURCHASE, date(2026, 5, 20), 0, 4, term="P3Y", billing="annual")],
        [price("280.00", term="P3Y", billing="annual")],
        (2028, 5),
        [("sub-e3", "cycle_fee", 4, "280.00", None, None, "1120.00")],
        id="three-year term billed annually: anniversary",
    ),
    pytest.param(
        [event(Ev.PURCHASE, date(2026, 5, 20), 0, 4, term="P3Y", billing="annual")],
        [price("280.00", term="P3Y", billing="annual")],
        (2029, 5),
        [],
        id="three-year term billed annually: no fee after the term",
    ),
    pytest.param(
        [event(Ev.PURCHASE, date(2026, 5, 20), 0, 4, term="P3Y", billing="triennial")],
        [price("800.00", term="P3Y", billing="triennial")],
        (2026, 5),
        [("sub-e3", "cycle_fee", 4, "800.00", None, None, "3200.00")],
        id="triennial: once per term",
    ),
    pytest.param(
        [event(Ev.PURCHASE, date(2026, 5, 20), 0, 4, term="P3Y", billing="triennial")],
        [price("800.00", term="P3Y", billing="triennial")],
        (2027, 5),
        [],
        id="triennial: no anniversary fee",
    ),
    pytest.param(
        # leap year: 1 seat on 15 Feb 2028 (29 days): 15..29 = 15 → 29 × 15/29 = 15.00
        [event(Ev.PURCHASE, date(2028, 2, 15), 0, 1)],
        [price("29.00")],
        (2028, 2),
        [("sub-e3", "prorata_purchase", 1, "29.00", 15, 29, "15.00")],
        id="leap year",
    ),
    pytest.param(
        # half away from zero: 1 × 10.01 × 15/30 = 5.005 → 5.01 (bankers' rounding would give 5.00)
        [event(Ev.PURCHASE, date(2026, 9, 16), 0, 1)],
        [price("10.01")],
        (2026, 9),
        [("sub-e3", "prorata_purchase", 1, "10.01", 15, 30, "5.01")],
        id="rounding half up",
    ),
    pytest.param(
        # and a refund of the same rounds to −5.01 (away from zero)
        [event(Ev.PURCHASE, date(2026, 9, 1), 0, 1), event(Ev.CANCELLATION, date(2026, 9, 16), 1, 0)],
        [price("10.01")],
        (2026, 9),
        [
            ("sub-e3", "prorata_purchase", 1, "10.01", 30, 30, "10.01"),
            ("sub-e3", "refund", 1, "10.01", 15, 30, "-5.01"),
        ],
        id="negative rounding away from zero",
    ),
    pytest.param(
        # the customer's own price beats the global one
        [event(Ev.PURCHASE, date(2026, 9, 1), 0, 2)],
        [price("30.00"), price("27.50", scope=PriceScope.CUSTOMER)],
        (2026, 9),
        [("sub-e3", "prorata_purchase", 2, "27.50", 30, 30, "55.00")],
        id="customer price over global",
    ),
    pytest.param(
        # JPY has no minor unit: 3 × 1000 × 20/30 = 2000
        [event(Ev.PURCHASE, date(2026, 9, 11), 0, 3)],
        [price("1000", currency="JPY")],
        (2026, 9),
        [("sub-e3", "prorata_purchase", 3, "1000", 20, 30, "2000")],
        id="currency without minor unit",
    ),
]


@pytest.mark.parametrize(("records", "prices", "month", "expected"), CASES)
def test_rating_rules(records, prices, month, expected) -> None:
    assert rows(rate(records, prices, month)) == expected


def test_cycle_day_15_across_february() -> None:
    """D = 15: 16 Feb – 15 Mar 2026 (28 days). 4 seats on 20 Feb: 20 Feb..15 Mar = 9 + 15 = 24
    → 4 × 30 × 24/28 = 102.857… → 102.86; the next cycle (16 Mar – 15 Apr) bills 4 × 30."""
    calendar = CycleCalendar([CycleSetting(date.min, 15, "UTC")])
    records = [event(Ev.PURCHASE, date(2026, 2, 20), 0, 4)]
    assert rows(rate(records, E3_30, (2026, 3), calendar)) == [
        ("sub-e3", "prorata_purchase", 4, "30.00", 24, 28, "102.86")
    ]
    assert rows(rate(records, E3_30, (2026, 4), calendar)) == [
        ("sub-e3", "cycle_fee", 4, "30.00", None, None, "120.00")
    ]
    # the seats bought on 15 Feb belong to the cycle ending that day: 1 day of 31 (16 Jan – 15 Feb)
    early = [event(Ev.PURCHASE, date(2026, 2, 15), 0, 31)]
    assert rows(rate(early, E3_30, (2026, 2), calendar)) == [
        ("sub-e3", "prorata_purchase", 31, "30.00", 1, 31, "30.00")
    ]


def test_cycle_day_30() -> None:
    """D = 30: 31 Mar – 30 Apr (31 days), 1 May – 30 May (30 days). 2 seats on 1 Apr: 30 of 31 days →
    2 × 30 × 30/31 = 58.064… → 58.06; May's fee 60.00."""
    calendar = CycleCalendar([CycleSetting(date.min, 30, "UTC")])
    records = [event(Ev.PURCHASE, date(2026, 4, 1), 0, 2)]
    assert rows(rate(records, E3_30, (2026, 4), calendar)) == [
        ("sub-e3", "prorata_purchase", 2, "30.00", 30, 31, "58.06")
    ]
    assert rows(rate(records, E3_30, (2026, 5), calendar)) == [("sub-e3", "cycle_fee", 2, "30.00", None, None, "60.00")]
    # bought on 31 May: the first day of the 31 May – 30 Jun cycle
    late = [event(Ev.PURCHASE, date(2026, 5, 31), 0, 1)]
    assert rows(rate(late, E3_30, (2026, 6), calendar)) == [("sub-e3", "prorata_purchase", 1, "30.00", 31, 31, "30.00")]


def test_the_time_zone_moves_an_event_into_the_next_cycle() -> None:
    oslo = CycleCalendar([CycleSetting(date.min, None, "Europe/Oslo")])
    late_evening = [event(Ev.PURCHASE, datetime(2026, 9, 30, 22, 30, tzinfo=UTC), 0, 3)]
    assert rate(late_evening, E3_30, (2026, 9), oslo) == []
    assert rows(rate(late_evening, E3_30, (2026, 10), oslo)) == [
        ("sub-e3", "prorata_purchase", 3, "30.00", 31, 31, "90.00")
    ]
    assert rows(rate(late_evening, E3_30, (2026, 9))) == [("sub-e3", "prorata_purchase", 3, "30.00", 1, 30, "3.00")]


def test_an_unpriced_line_is_flagged_not_zero() -> None:
    lines = rate([event(Ev.PURCHASE, date(2026, 9, 11), 0, 5, product=BASIC)], E3_30, (2026, 9))
    assert len(lines) == 1 and not lines[0].priced
    assert lines[0].amount is None and lines[0].unit_price is None
    assert totals_by_currency(lines) == {}


def test_add_ons_follow_their_base() -> None:
    records = [
        event(Ev.PURCHASE, date(2026, 9, 1), 0, 1, subscription="b-basic", product=BASIC),
        event(Ev.PURCHASE, date(2026, 9, 2), 0, 5),
        event(Ev.PURCHASE, date(2026, 9, 3), 0, 2, subscription="a-phone", product=TEAMS_PHONE, parent="sub-e3"),
    ]
    prices = [*E3_30, price("6.00", product=BASIC), price("8.00", product=TEAMS_PHONE)]
    lines = rate(records, prices, (2026, 10))
    assert [(line.subscription_id, line.parent_subscription_id) for line in lines] == [
        ("b-basic", None),
        ("sub-e3", None),
        ("a-phone", "sub-e3"),
    ]


def test_rating_is_deterministic_and_order_independent() -> None:
    records = [
        event(Ev.PURCHASE, date(2026, 9, 11), 0, 5),
        event(Ev.QUANTITY_INCREASE, date(2026, 10, 10), 5, 8),
        event(Ev.QUANTITY_DECREASE, date(2026, 10, 14), 8, 6),
    ]
    first = rate(records, E3_30, (2026, 10))
    assert rate(list(reversed(records)), E3_30, (2026, 10)) == first


def test_adjustment_for_a_closed_cycle() -> None:
    """September was issued with 100.00; a late +1 seat on 21 Sep (10 of 30 days → 10.00) appears
    afterwards: October gets one adjustment line of +10.00 correcting September."""
    issued = rate([event(Ev.PURCHASE, date(2026, 9, 11), 0, 5)], E3_30, (2026, 9))
    late = [event(Ev.PURCHASE, date(2026, 9, 11), 0, 5), event(Ev.QUANTITY_INCREASE, date(2026, 9, 21), 5, 6)]
    recomputed = rate(late, E3_30, (2026, 9))
    october = MONTHS.cycle_of_month(2026, 10)
    adjustments = adjustment_lines(october, MONTHS.cycle_of_month(2026, 9), recomputed, issued)
    assert [(a.charge_type, a.quantity, a.amount, a.corrects, a.cycle) for a in adjustments] == [
        (ChargeType.ADJUSTMENT, 1, Decimal("10.00"), date(2026, 9, 30), october)
    ]
    assert adjustment_lines(october, MONTHS.cycle_of_month(2026, 9), recomputed, [*issued, *adjustments]) == []


@pytest.mark.parametrize(
    ("exact", "currency", "expected"),
    [
        (Fraction(5005, 1000), "EUR", "5.01"),
        (Fraction(-5005, 1000), "EUR", "-5.01"),
        (Fraction(5004999, 1000000), "EUR", "5.00"),
        (Fraction(1, 3), "EUR", "0.33"),
        (Fraction(2, 3), "EUR", "0.67"),
        (Fraction(1, 2), "JPY", "1"),
        (Fraction(12345, 10000), "KWD", "1.235"),
        (Decimal("2.675"), "EUR", "2.68"),
    ],
)
def test_rounding_once_half_away_from_zero(exact, currency: str, expected: str) -> None:
    assert str(round_money(exact, currency)) == expected
