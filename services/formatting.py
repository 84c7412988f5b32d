"""How numbers, money and dates read to a person — one implementation for every card and every
message the services write. Pure (no I/O), built on Babel's CLDR data.

- Money: the locale's currency format with the currency's own minor-unit digits: `$13.80`,
  `¥1,360`, `KWD 2.500`, `-€4.50` for a refund.
- A unit price: exact (`$5.9125` when a price list sets one below the minor unit), and
  `$13.80 per licence per month` with its period.
- Dates: the locale's medium date, `Jan 5, 2027`; a moment: `Jan 5, 2027, 2:03 PM UTC`.
- Counts: `1 seat`, `2 seats` — always through `plural`, never a noun with an optional "s".

Every function takes a `locale` (a CLDR locale name) defaulting to `DEFAULT_LOCALE`, so the caller's
own locale can be passed in later without changing what the callers compute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from datetime import date as Date
from datetime import datetime as DateTime
from decimal import Decimal

from babel.dates import format_date, format_interval, format_skeleton, format_time, get_datetime_format
from babel.numbers import format_currency, format_decimal

from services.money import round_money

DEFAULT_LOCALE = "en_US"
NOTHING = "—"
# Microsoft's billing cycles, as the period a price is for.
PERIODS = {"monthly": "month", "annual": "year", "triennial": "3 years"}
TERMS = {"P1M": "1 month", "P1Y": "1 year", "P3Y": "3 years"}
BILLED = {"monthly": "monthly", "annual": "yearly", "triennial": "every 3 years"}
# CLDR puts a space between a currency written as letters and the digits ("KWD 2.500"); Babel leaves
# it out ("KWD2.500"). A no-break space, as ICU inserts, so an amount never wraps apart.
_LETTERS_THEN_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d)")
_DIGIT_THEN_LETTERS = re.compile(r"(?<=\d)(?=[A-Za-z])")


def money(amount: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """An amount: `$13.80`, `¥1,360`, `KWD 2.500`, `-$4.50` — rounded (half away from zero) to the
    currency's own minor unit, in the locale's currency format."""
    code = currency.strip().upper()
    return _spaced(format_currency(round_money(amount, code), code, locale=locale, currency_digits=True))


def price(amount: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """A unit price: as `money`, but exact — a price list may set a price below the minor unit
    (`$5.9125`), and a person must see the price the bill is computed from."""
    code = currency.strip().upper()
    return _spaced(format_currency(amount, code, locale=locale, currency_digits=True, decimal_quantization=False))


def money_totals(totals: Mapping[str, Decimal], locale: str = DEFAULT_LOCALE, *, empty: str = "nothing") -> str:
    """Amounts in several currencies, `$10.00 + €4.50` (by currency code); `empty` when there are none."""
    if not totals:
        return empty
    return " + ".join(money(amount, currency, locale) for currency, amount in sorted(totals.items()))


def per_period(billing_cycle: str) -> str:
    """`per month`, `per year`, `per 3 years` for Microsoft's billing cycles."""
    return f"per {PERIODS.get(billing_cycle.strip().lower(), billing_cycle)}"


def term(term_duration: str) -> str:
    """`1 year` for Microsoft's P1Y (an unknown duration as it is)."""
    return TERMS.get(term_duration.strip().upper(), term_duration)


def billed(billing_cycle: str) -> str:
    """`monthly`, `yearly`, `every 3 years` for Microsoft's billing cycles."""
    return BILLED.get(billing_cycle.strip().lower(), billing_cycle)


def unit_price(amount: Decimal, currency: str, billing_cycle: str, locale: str = DEFAULT_LOCALE) -> str:
    """`$13.80 per licence per month`: a price for one licence for one billing period."""
    return f"{price(amount, currency, locale)} per licence {per_period(billing_cycle)}"


def count(n: int, locale: str = DEFAULT_LOCALE) -> str:
    """A whole number with the locale's grouping: `1,250`."""
    return format_decimal(n, locale=locale)


def plural(n: int, singular: str, plural_form: str, locale: str = DEFAULT_LOCALE) -> str:
    """`1 seat`, `2 seats`, `0 seats`: the number and the noun that agrees with it."""
    return f"{count(n, locale)} {singular if n == 1 else plural_form}"


def date(value: Date | DateTime | None, locale: str = DEFAULT_LOCALE) -> str:
    """`Jan 5, 2027` (a moment is shown as its UTC day); `—` for none."""
    if value is None:
        return NOTHING
    if isinstance(value, DateTime):
        value = _utc(value).date()
    return format_date(value, "medium", locale=locale)


def datetime_utc(value: DateTime | None, locale: str = DEFAULT_LOCALE) -> str:
    """`Jan 5, 2027, 2:03 PM UTC`: the medium date and short time in UTC (naive values are UTC); `—` for none."""
    if value is None:
        return NOTHING
    moment = _utc(value)
    pattern = str(get_datetime_format("medium", locale=locale)).replace("'", "")
    shown = pattern.replace("{1}", date(moment, locale)).replace("{0}", format_time(moment, "short", locale=locale))
    return f"{shown} UTC"


def date_range(start: Date, end: Date, locale: str = DEFAULT_LOCALE) -> str:
    """`Sep 1 – 30, 2026`, `Dec 16, 2026 – Jan 15, 2027`: both days, inclusive."""
    return format_interval(start, end, "yMMMd", locale=locale)


def month(value: Date, locale: str = DEFAULT_LOCALE) -> str:
    """`September 2026`."""
    return format_skeleton("yMMMM", value, locale=locale)


def month_range(first: Date, last: Date, locale: str = DEFAULT_LOCALE) -> str:
    """`September 2026` for one month, `September – October 2026`, `November 2026 – February 2027`."""
    if (first.year, first.month) == (last.year, last.month):
        return month(first, locale)
    return format_interval(first, last, "yMMMM", locale=locale)


def _spaced(shown: str) -> str:
    shown = _LETTERS_THEN_DIGIT.sub("\u00a0", shown)
    return _DIGIT_THEN_LETTERS.sub("\u00a0", shown)


def _utc(value: DateTime) -> DateTime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
