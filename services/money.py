"""Money: amounts are `Decimal`, never float. A charge is computed exactly (as a fraction) and rounded
once, half away from zero (`ROUND_HALF_UP`), to its currency's minor unit (SPEC §6 "Rounding").

A currency's minor unit — how many decimals it has (USD 2, JPY 0, KWD 3) — comes from Babel's copy of
the Unicode CLDR currency data, so there is no table of our own to keep up to date. How an amount
reads to a person is `services.formatting`; this module only computes and writes machine text.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import lru_cache

from babel.numbers import get_currency_precision


@lru_cache(maxsize=1024)  # asked once per bill line; CLDR's data does not change while running
def minor_digits(currency: str) -> int:
    """The currency's decimals: 2 for USD/EUR, 0 for JPY, 3 for KWD (2 for a code CLDR does not know)."""
    return int(get_currency_precision(currency.strip().upper()))


@lru_cache(maxsize=1024)
def quantum(currency: str) -> Decimal:
    """One minor unit: `0.01` for USD, `1` for JPY, `0.001` for KWD."""
    return Decimal(1).scaleb(-minor_digits(currency))


def round_money(exact: Fraction | Decimal, currency: str) -> Decimal:
    """Round an exact amount once, half away from zero, to the currency's minor unit."""
    if isinstance(exact, Decimal):
        return exact.quantize(quantum(currency), rounding=ROUND_HALF_UP)
    return _round_ratio(exact.numerator, exact.denominator, currency)


def _round_ratio(numerator: int, denominator: int, currency: str) -> Decimal:
    """numerator ÷ denominator (denominator > 0) rounded once, half away from zero, to the minor unit."""
    digits = minor_digits(currency)
    scaled = numerator * 10**digits
    units = abs(scaled) * 2 + denominator  # floor(|x| + 1/2) = floor((2|n| + d) / 2d)
    rounded = units // (2 * denominator)
    value = Decimal(-rounded if scaled < 0 else rounded).scaleb(-digits)
    return value.quantize(quantum(currency))


def line_amount(
    quantity: int, unit_price: Decimal, days: int | None, period_days: int | None, currency: str
) -> Decimal:
    """quantity × unit price (× days ÷ period days), exact, then rounded once."""
    if days is None or not period_days:
        return round_money(unit_price * quantity, currency)  # exact in Decimal: no division
    # Exact in integers (what Fraction would do, without building four of them per line).
    numerator, denominator = unit_price.as_integer_ratio()
    if period_days < 0:
        numerator, period_days = -numerator, -period_days
    return _round_ratio(numerator * quantity * days, denominator * period_days, currency)


def plain(amount: Decimal, currency: str) -> str:
    """Machine text for CSV files and storage: a dot decimal with the currency's minor-unit digits
    (`1234.50` USD, `1360` JPY, `2.500` KWD), more only where the amount itself has more (a unit
    price of `5.9125`); no exponent, no grouping. Never rounds."""
    digits = minor_digits(currency)
    exponent = amount.normalize().as_tuple().exponent
    places = max(digits, -exponent if isinstance(exponent, int) else digits)
    return f"{amount:.{places}f}"
