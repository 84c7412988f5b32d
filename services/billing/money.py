"""Decimal money: a line is computed exactly (as a fraction) and rounded once, half away from zero
(`ROUND_HALF_UP`), to its currency's minor unit (SPEC §6 "Rounding")."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

# ISO 4217 currencies whose minor unit is not two digits (the ones a CSP reseller may bill in).
_MINOR_DIGITS = {
    "BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0,
    "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0,
    "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency.upper(), 2)


def quantum(currency: str) -> Decimal:
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


def format_money(amount: Decimal, currency: str) -> str:
    """`1,234.50 EUR` — grouped, with the currency's minor-unit digits."""
    digits = minor_digits(currency)
    return f"{amount:,.{digits}f} {currency}".strip()


def plain(amount: Decimal, currency: str) -> str:
    """`1234.50`: dot decimal, the currency's minor-unit digits (CSV)."""
    return f"{amount.quantize(quantum(currency)):f}"
