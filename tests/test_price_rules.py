"""The price in force: customer list over global, validity dates inclusive, later correction wins."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.price_rules import PriceScope, UnitPrice, price_in_force

KEY = {"product_id": "CFQ7TTC0LH18", "sku_id": "0001", "term_duration": "P1Y", "billing_cycle": "monthly"}


def _entry(
    entry_id: int, scope: PriceScope, amount: str, start: date, end: date | None = None, **key: str
) -> UnitPrice:
    values = {**KEY, **key}
    return UnitPrice(entry_id, scope, currency="EUR", amount=Decimal(amount), valid_from=start, valid_to=end, **values)


GLOBAL = _entry(1, PriceScope.GLOBAL, "6.90", date(2026, 1, 1))
CUSTOMER = _entry(2, PriceScope.CUSTOMER, "6.50", date(2026, 6, 1), date(2026, 6, 30))


def test_the_customer_price_wins_while_valid_then_the_global_one() -> None:
    entries = [GLOBAL, CUSTOMER]
    assert price_in_force(entries, **KEY, on=date(2026, 6, 1)) is CUSTOMER
    assert price_in_force(entries, **KEY, on=date(2026, 6, 30)) is CUSTOMER  # end day included
    assert price_in_force(entries, **KEY, on=date(2026, 7, 1)) is GLOBAL
    assert price_in_force(entries, **KEY, on=date(2025, 12, 31)) is None  # nothing valid yet


def test_term_and_billing_frequency_are_part_of_the_key() -> None:
    annual = _entry(3, PriceScope.GLOBAL, "78.00", date(2026, 1, 1), billing_cycle="annual")
    assert price_in_force([GLOBAL, annual], **{**KEY, "billing_cycle": "annual"}, on=date(2026, 3, 1)) is annual
    assert price_in_force([GLOBAL], **{**KEY, "term_duration": "P1M"}, on=date(2026, 3, 1)) is None


def test_a_later_correction_overrides_an_overlapping_entry() -> None:
    correction = _entry(4, PriceScope.GLOBAL, "7.20", date(2026, 4, 1))
    assert price_in_force([GLOBAL, correction], **KEY, on=date(2026, 3, 31)) is GLOBAL
    assert price_in_force([GLOBAL, correction], **KEY, on=date(2026, 4, 1)) is correction
