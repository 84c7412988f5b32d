"""How numbers, money and dates read to a person — one implementation for every card and every
message the services write. Pure (no I/O), built on Babel's CLDR data.

- Money: the locale's currency format with the currency's own minor-unit digits: `$13.80`,
  `¥1,360`, `KWD 2.500`, `-€4.50` for a refund.
- A unit price: exact (`$5.9125` when a price list sets one below the minor unit), and
  `$13.80 per licence per month` with its period.
- Dates: the locale's medium date, `Jan 5, 2027`; a moment: `Jan 5, 2027, 2:03 PM UTC`.
- Counts: `1 seat`, `2 seats` — `seats(n)`, or `ngettext` for other nouns; never a noun with an optional "s".

Every function takes a `locale` (a CLDR locale name). Left out, it is the reader's: the bot sets
the caller's locale and their organisation's time zone for the turn with `reading(...)` (a context
variable, so card builders and services format for the person who asked without passing it down);
outside a turn it is `DEFAULT_LOCALE` (English) and UTC. `services.locales.resolve_locale` turns
Teams' `nb-NO` into the locale to use (nb-NO → nb → English).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from datetime import date as Date
from datetime import datetime as DateTime
from decimal import Decimal

from babel.dates import format_date, format_interval, format_skeleton, format_time, get_datetime_format, get_timezone
from babel.numbers import format_currency, format_decimal

from services.i18n import N_, _, ngettext
from services.locales import DEFAULT_LOCALE
from services.money import round_money

NOTHING = "—"
# Microsoft's billing cycles, as the period a price is for.
# English source texts, translated where they are shown (services/i18n.py).
PERIODS = {"monthly": N_("per month"), "annual": N_("per year"), "triennial": N_("per 3 years")}
TERMS = {"P1M": N_("1 month"), "P1Y": N_("1 year"), "P3Y": N_("3 years")}
BILLED = {"monthly": N_("monthly"), "annual": N_("yearly"), "triennial": N_("every 3 years")}
# CLDR puts a space between a currency written as letters and the digits ("KWD 2.500"); Babel leaves
# it out ("KWD2.500"). A no-break space, as ICU inserts, so an amount never wraps apart.
_LETTERS_THEN_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d)")
_DIGIT_THEN_LETTERS = re.compile(r"(?<=\d)(?=[A-Za-z])")
_LIST_MARKER = re.compile(r"^(\d+\.) ")


@dataclass(frozen=True)
class Reader:
    """Whom we format for: a CLDR locale and an IANA time zone."""

    locale: str = DEFAULT_LOCALE
    timezone: str = "UTC"


_reader: ContextVar[Reader] = ContextVar("csp_reader", default=Reader())  # noqa: B039 (frozen: immutable)


@contextmanager
def reading(locale: str, timezone: str = "UTC") -> Iterator[Reader]:
    """Format for this reader until the block ends (a turn, a message to one member). An unknown
    time zone is UTC."""
    token = _reader.set(Reader(locale, timezone if _known_zone(timezone) else "UTC"))
    try:
        yield _reader.get()
    finally:
        _reader.reset(token)


def adopt_timezone(timezone: str) -> None:
    """Dates from here to the end of the current `reading` block are in `timezone` (the reader's
    organisation's, once the bot knows who is calling); an unknown zone changes nothing."""
    if _known_zone(timezone):
        _reader.set(Reader(_reader.get().locale, timezone))


def adopt_locale(locale: str) -> None:
    """The reader's locale from here to the end of the current `reading` block (a member's own
    choice of language, once the bot knows who is calling)."""
    _reader.set(Reader(locale, _reader.get().timezone))


def _known_zone(timezone: str) -> bool:
    try:
        get_timezone(timezone)
    except LookupError:
        return False
    return bool(timezone)


def reader() -> Reader:
    return _reader.get()


def _loc(locale: str | None) -> str:
    return _reader.get().locale if locale is None else locale


def money(amount: Decimal, currency: str, locale: str | None = None) -> str:
    """An amount: `$13.80`, `¥1,360`, `KWD 2.500`, `-$4.50` — rounded (half away from zero) to the
    currency's own minor unit, in the locale's currency format."""
    code = currency.strip().upper()
    return _spaced(format_currency(round_money(amount, code), code, locale=_loc(locale), currency_digits=True))


def price(amount: Decimal, currency: str, locale: str | None = None) -> str:
    """A unit price: as `money`, but exact — a price list may set a price below the minor unit
    (`$5.9125`), and a person must see the price the bill is computed from."""
    code = currency.strip().upper()
    return _spaced(format_currency(amount, code, locale=_loc(locale), currency_digits=True, decimal_quantization=False))


def money_totals(totals: Mapping[str, Decimal], locale: str | None = None, *, empty: str | None = None) -> str:
    """Amounts in several currencies, `$10.00 + €4.50` (by currency code); `empty` when there are none
    ("nothing" in the reader's language unless given)."""
    if not totals:
        return _("nothing") if empty is None else empty
    return " + ".join(money(amount, currency, locale) for currency, amount in sorted(totals.items()))


def per_period(billing_cycle: str) -> str:
    """`per month`, `per year`, `per 3 years` for Microsoft's billing cycles."""
    known = PERIODS.get(billing_cycle.strip().lower())
    return _(known) if known else _("per {period}", period=billing_cycle)


def term(term_duration: str) -> str:
    """`1 year` for Microsoft's P1Y (an unknown duration as it is)."""
    known = TERMS.get(term_duration.strip().upper())
    return _(known) if known else term_duration


def billed(billing_cycle: str) -> str:
    """`monthly`, `yearly`, `every 3 years` for Microsoft's billing cycles."""
    known = BILLED.get(billing_cycle.strip().lower())
    return _(known) if known else billing_cycle


def unit_price(amount: Decimal, currency: str, billing_cycle: str, locale: str | None = None) -> str:
    """`$13.80 per licence per month`: a price for one licence for one billing period."""
    return _("{price} per licence {period}", price=price(amount, currency, locale), period=per_period(billing_cycle))


def count(n: int, locale: str | None = None) -> str:
    """A whole number with the locale's grouping: `1,250`."""
    return format_decimal(n, locale=_loc(locale))


def seats(n: int) -> str:
    """`1 seat`, `12 seats` (`12 plasser`): the count every card and message about licences says."""
    return ngettext("{n} seat", "{n} seats", n)


def plural(n: int, singular: str, plural_form: str, locale: str | None = None) -> str:
    """`1 seat`, `2 seats`, `0 seats`: the number and the noun that agrees with it. Write
    `ngettext("{n} seat", "{n} seats", n)` where the words are known (so they are extracted for the
    translators); this reads the reader's catalog for the same pair when some code extracted it."""
    if locale is not None:
        return f"{count(n, locale)} {singular if n == 1 else plural_form}"
    return ngettext("{n} " + singular, "{n} " + plural_form, n)


def date(value: Date | DateTime | None, locale: str | None = None) -> str:
    """`Jan 5, 2027` (a moment is shown as its day in the reader's time zone); `—` for none."""
    if value is None:
        return NOTHING
    if isinstance(value, DateTime):
        value = _local(value).date()
    return _not_a_list(format_date(value, "medium", locale=_loc(locale)))


def datetime_utc(value: DateTime | None, locale: str | None = None) -> str:
    """`Jan 5, 2027, 2:03 PM UTC`: the medium date and short time in the reader's time zone (UTC
    unless the organisation has one; naive values are UTC), named after the time; `—` for none."""
    if value is None:
        return NOTHING
    moment = _local(value)
    pattern = str(get_datetime_format("medium", locale=_loc(locale))).replace("'", "")
    time = format_time(moment, "short", locale=_loc(locale))
    shown = pattern.replace("{1}", date(moment, locale)).replace("{0}", time)
    return f"{shown} {_reader.get().timezone}"


def date_range(start: Date, end: Date, locale: str | None = None) -> str:
    """`Sep 1 – 30, 2026`, `Dec 16, 2026 – Jan 15, 2027`: both days, inclusive."""
    return _not_a_list(format_interval(start, end, "yMMMd", locale=_loc(locale)))


def month(value: Date, locale: str | None = None) -> str:
    """`September 2026`."""
    return format_skeleton("yMMMM", value, locale=_loc(locale))


def month_range(first: Date, last: Date, locale: str | None = None) -> str:
    """`September 2026` for one month, `September – October 2026`, `November 2026 – February 2027`."""
    if (first.year, first.month) == (last.year, last.month):
        return month(first, locale)
    return format_interval(first, last, "yMMMM", locale=_loc(locale))


def _not_a_list(shown: str) -> str:
    """`6. des. 2027` (nb, de, …) at the start of a card's text is a numbered list to Markdown, which
    Teams renders as `des. 2027`: a no-break space after the day's period is not a list marker and
    keeps the date together."""
    return _LIST_MARKER.sub("\\1\u00a0", shown, count=1)


def _spaced(shown: str) -> str:
    shown = _LETTERS_THEN_DIGIT.sub("\u00a0", shown)
    return _DIGIT_THEN_LETTERS.sub("\u00a0", shown)


def _utc(value: DateTime) -> DateTime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _local(value: DateTime) -> DateTime:
    zone = _reader.get().timezone
    return _utc(value) if zone == "UTC" else _utc(value).astimezone(get_timezone(zone))
