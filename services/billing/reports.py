"""Report views: a cycle's lines grouped by base subscription (add-ons under their base), and the
query words of quick look-ups and the message extension."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services import formatting
from services.billing.cycles import Cycle
from services.billing.rating import Line, totals_by_currency
from services.errors import InvalidInput
from services.i18n import N_, _

MAX_MONTHS = 24
# The years a bill may be asked for: any other year is a slip of the keyboard (and 0000 or 9999
# would take the date arithmetic beyond the calendar's range).
MIN_YEAR, MAX_YEAR = 1900, 2199


@dataclass(frozen=True)
class SubscriptionGroup:
    """A base subscription with its add-ons' lines, as shown under a cycle."""

    subscription_id: str
    product: str
    lines: tuple[Line, ...]

    @property
    def totals(self) -> dict[str, Decimal]:
        return dict(totals_by_currency(self.lines))

    @property
    def unpriced(self) -> int:
        return sum(1 for line in self.lines if not line.priced)

    @property
    def sort_amount(self) -> Decimal:
        return sum((abs(value) for value in self.totals.values()), Decimal(0))


@dataclass(frozen=True)
class CycleReport:
    cycle: Cycle
    lines: tuple[Line, ...]
    issued: bool  # an ended cycle's stored report (final); False = the open cycle (so far)
    issued_at: datetime | None = None
    fingerprint: str = ""

    @property
    def report_date(self) -> date:
        return self.cycle.report_date

    @property
    def totals(self) -> dict[str, Decimal]:
        return dict(totals_by_currency(self.lines))

    @property
    def unpriced(self) -> int:
        return sum(1 for line in self.lines if not line.priced)

    def groups(self) -> list[SubscriptionGroup]:
        """Base subscriptions in the lines' order, each with its add-ons' lines."""
        grouped: dict[str, list[Line]] = {}
        names: dict[str, str] = {}
        for line in self.lines:
            grouped.setdefault(line.base_id, []).append(line)
            if line.parent_subscription_id is None:
                names[line.base_id] = line.product
        return [
            SubscriptionGroup(base, names.get(base, lines[0].product), tuple(lines)) for base, lines in grouped.items()
        ]


@dataclass(frozen=True)
class Query:
    """What a quick look-up asks for: a range of months, or a product's spend over a range."""

    first: tuple[int, int] | None = None  # None = the most recent ended cycle ("last month")
    last: tuple[int, int] | None = None
    product: str = ""  # the words looked for, lower-case
    label: str = N_("last month")
    product_name: str = ""  # how to name it to a person (`named_product`)

    @property
    def shown_product(self) -> str:
        return self.product_name or self.product


_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_NAMED_MONTH = re.compile(r"^[a-z]+ \d+$")
_MONTH_NAMES = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_COMMAND = re.compile(r"^(?:billing|bills|bill)(?: |$)")
_SPEND = re.compile(r"^(?:what did we spend on|what do we spend on|spend on|spent on|spend)\s+(.+?)\??$")


def _checked(text: str, year: int, month: int) -> tuple[int, int]:
    if not (1 <= month <= 12 and MIN_YEAR <= year <= MAX_YEAR):
        raise InvalidInput(_("{text!r} is not a month; write it like 2026-09.", text=text), field="month")
    return year, month


def parse_month(text: str, today: date) -> tuple[int, int]:
    """`2026-09`, `sep 2026`, `september 2026` or `september` (the latest one not in the future)."""
    words = text.strip().lower().replace(",", " ").split()
    joined = " ".join(words)
    match = _MONTH.match(joined)
    if match:
        return _checked(text, int(match.group(1)), int(match.group(2)))
    if words and words[0] in _MONTH_NAMES:
        month = _MONTH_NAMES[words[0]]
        if len(words) == 1:
            return (today.year, month) if month <= today.month else (today.year - 1, month)
        if len(words) == 2 and words[1].isdigit() and len(words[1]) == 4:
            return _checked(text, int(words[1]), month)
    raise InvalidInput(_("I could not read {text!r} as a month; write it like 2026-09.", text=text), field="month")


def month_from_label(text: str) -> tuple[int, int]:
    """A month as cards and export links carry it (`2026-09`), checked like a typed one."""
    match = _MONTH.match(text.strip())
    if not match:
        raise InvalidInput(_("{text!r} is not a month; write it like 2026-09.", text=text), field="month")
    return _checked(text, int(match.group(1)), int(match.group(2)))


def month_label(month: tuple[int, int]) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


def months_label(first: tuple[int, int], last: tuple[int, int]) -> str:
    """How a person reads a range of months: `September 2026`, `January – June 2026`."""
    return formatting.month_range(date(*first, 1), date(*last, 1))


def months_between(first: tuple[int, int], last: tuple[int, int]) -> int:
    return (last[0] - first[0]) * 12 + last[1] - first[1] + 1


def check_range(first: tuple[int, int], last: tuple[int, int], today: date) -> None:
    """A range of at most 24 months, in order, not in the future."""
    if months_between(first, last) < 1:
        raise InvalidInput(_("The first month must not be after the last month."), field="first_month")
    if months_between(first, last) > MAX_MONTHS:
        raise InvalidInput(
            _("A report covers at most {MAX_MONTHS} months; choose a shorter range.", MAX_MONTHS=MAX_MONTHS),
            field="last_month",
        )
    if (last[0], last[1]) > (today.year, today.month):
        raise InvalidInput(
            _("{months_label} is in the future: there is no bill for it yet.", months_label=months_label(last, last)),
            field="last_month",
        )


def parse_query(text: str, today: date) -> Query:
    """The words after "billing" (or a spend question): last month, this year, a month, a range
    `2026-01..2026-06`, or a product name."""
    words = _COMMAND.sub("", " ".join(text.strip().lower().rstrip("?.!").split()))
    spend = _SPEND.match(words)
    if spend:
        product = spend.group(1).strip()
        product = re.sub(r"\s+(?:this year|last year)$", "", product)
        first = (today.year - 1, today.month + 1) if today.month < 12 else (today.year, 1)
        return Query(first=first, last=(today.year, today.month), product=product, label=_("the last 12 months"))
    if words in ("", "last month", "last cycle", "last"):
        return Query(label=_("last month"))
    if words in ("this year", "year to date", "ytd"):
        return Query(first=(today.year, 1), last=(today.year, today.month), label=str(today.year))
    if words in ("this month", "current", "now"):
        return Query(first=(today.year, today.month), last=(today.year, today.month), label=_("this month"))
    for separator in ("..", _(" to "), " - "):
        if separator in words:
            left, right = (part.strip() for part in words.split(separator, 1))
            first, last = parse_month(left, today), parse_month(right, today)
            if first > last and left in _MONTH_NAMES:
                first = (first[0] - 1, first[1])  # "november to february": the November before
            check_range(first, last, today)
            return Query(first=first, last=last, label=months_label(first, last))
    if words[:1].isdigit():  # a date, not a product name: it must parse
        month = parse_month(words, today)
        check_range(month, month, today)
        return Query(first=month, last=month, label=months_label(month, month))
    try:
        month = parse_month(words, today)
    except InvalidInput:
        if _NAMED_MONTH.match(words) and words.split()[0] in _MONTH_NAMES:
            raise  # "sep 0000": a month with a year out of range, not a product
        # Anything else is a product name: its spend over the last 12 months.
        first = (today.year - 1, today.month + 1) if today.month < 12 else (today.year, 1)
        return Query(first=first, last=(today.year, today.month), product=words, label=_("the last 12 months"))
    check_range(month, month, today)
    return Query(first=month, last=month, label=months_label(month, month))


def matches_product(line: Line, product: str) -> bool:
    """`E3` finds "Office 365 E3"; words must all occur in the product name (or be its id)."""
    needle = product.strip().lower()
    if not needle:
        return True
    name = line.product.lower()
    if needle in (line.product_id.lower(), line.subscription_id.lower()):
        return True
    return all(re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", name) for word in needle.split())


def named_product(reports: Sequence[CycleReport], product: str) -> str:
    """The product the words found, spelt as the catalog spells it ("Microsoft 365 Business Standard"
    for "business standard") when they found one; else the words themselves."""
    names = {line.product for report in reports for line in report.lines}
    return names.pop() if len(names) == 1 else product


def filter_product(reports: Sequence[CycleReport], product: str) -> list[CycleReport]:
    return [
        CycleReport(report.cycle, tuple(line for line in report.lines if matches_product(line, product)), report.issued)
        for report in reports
    ]
