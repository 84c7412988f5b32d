"""Money: amounts are `Decimal`, never float. A charge is computed exactly (as a fraction) and rounded
once, half away from zero (`ROUND_HALF_UP`), to its currency's minor unit (SPEC §6 "Rounding").

A currency's minor unit — how many decimals it has (USD 2, JPY 0, KWD 3) — comes from Babel's copy of
the Unicode CLDR currency data, so there is no table of our own to keep up to date. How an amount
reads to a person is `services.formatting`; this module only computes and writes machine text.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from babel.numbers import get_currency_precision


def minor_digits(currency: str) -> int:
    """The currency's decimals: 2 for USD/EUR, 0 for JPY, 3 for KWD (2 for a code CLDR does not know)."""
    return int(get_currency_precision(currency.strip().upper()))


def quantum(currency: str) -> Decimal:
    """One minor unit: `0.01` for USD, `1` for JPY, `0.001` for KWD."""
    return Decimal(1).scaleb(-minor_digits(currency))


def round_money(exact: Fraction | Decimal, currency: str) -> Decimal:
    """Round an exact amount once, half away from zero, to the currency's minor unit."""
    if isinstance(exact, Decimal):
        return exact.quantize(quantum(currency), rounding=ROUND_HALF_UP)
    digits = minor_digits(currency)
    scaled = exact * 10**digits
    units = abs(scaled.numerator) * 2 + scaled.denominator  # floor(|x| + 1/2) = floor((2|n| + d) / 2d)
    rounded = units // (2 * scaled.denominator)
    value = Decimal(-rounded if scaled.numerator < 0 else rounded).scaleb(-digits)
    return value.quantize(quantum(currency))


def line_amount(
    quantity: int, unit_price: Decimal, days: int | None, period_days: int | None, currency: str
) -> Decimal:
    """quantity × unit price (× days ÷ period days), exact, then rounded once."""
    if days is None or not period_days:
        return round_money(unit_price * quantity, currency)  # exact in Decimal: no division
    return round_money(Fraction(unit_price) * quantity * days / period_days, currency)


def plain(amount: Decimal, currency: str) -> str:
    """Machine text for CSV files and storage: a dot decimal with the currency's minor-unit digits
    (`1234.50` USD, `1360` JPY, `2.500` KWD), more only where the amount itself has more (a unit
    price of `5.9125`); no exponent, no grouping. Never rounds."""
    digits = minor_digits(currency)
    exponent = amount.normalize().as_tuple().exponent
    places = max(digits, -exponent if isinstance(exponent, int) else digits)
    return f"{amount:.{places}f}"
