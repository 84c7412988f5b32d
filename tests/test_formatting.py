"""One money format, one date format and real plurals (services/formatting.py, services/money.py), and
no "seat(s)" left in what a person reads."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from services import formatting
from services.locales import resolve_locale
from services.money import minor_digits, plain, quantum

ROOT = Path(__file__).resolve().parent.parent
NBSP, NNBSP, THIN = "\u00a0", "\u202f", "\u2009"  # what CLDR puts between parts; never a line break


@pytest.mark.parametrize(
    ("currency", "digits", "amount", "shown", "refund"),
    [
        ("USD", 2, "1234.5", "$1,234.50", "-$1,234.50"),
        ("EUR", 2, "0", "€0.00", "€0.00"),  # no "-0"
        ("JPY", 0, "1360", "¥1,360", "-¥1,360"),
        ("KWD", 3, "2.5", f"KWD{NBSP}2.500", f"-KWD{NBSP}2.500"),
        ("NOK", 2, "99.999", f"NOK{NBSP}100.00", f"-NOK{NBSP}100.00"),
        ("usd", 2, "13.8", "$13.80", "-$13.80"),
    ],
)
def test_money_in_the_currencys_own_minor_unit(currency, digits, amount, shown, refund) -> None:
    assert minor_digits(currency) == digits
    assert formatting.money(Decimal(amount), currency) == shown
    assert formatting.money(-Decimal(amount), currency) == refund


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("2.675", "USD", "$2.68"),  # half away from zero, as the bill rounds
        ("-2.675", "USD", "-$2.68"),
        ("0.5", "JPY", "¥1"),
        ("1.2345", "KWD", f"KWD{NBSP}1.235"),
    ],
)
def test_money_rounds_half_away_from_zero(amount, currency, shown) -> None:
    assert formatting.money(Decimal(amount), currency) == shown


def test_a_unit_price_is_shown_exactly_and_with_its_period() -> None:
    assert formatting.price(Decimal("5.9125"), "USD") == "$5.9125"  # a price list may go below the cent
    assert formatting.price(Decimal("1360.00"), "JPY") == "¥1,360"
    assert formatting.unit_price(Decimal("13.8"), "USD", "monthly") == "$13.80 per licence per month"
    assert formatting.unit_price(Decimal("138"), "EUR", "annual") == "€138.00 per licence per year"
    assert formatting.unit_price(Decimal("16330"), "JPY", "annual") == "¥16,330 per licence per year"
    assert formatting.unit_price(Decimal("2.5"), "KWD", "triennial") == f"KWD{NBSP}2.500 per licence per 3 years"


def test_totals_in_several_currencies() -> None:
    assert formatting.money_totals({"USD": Decimal(10), "EUR": Decimal("4.5")}) == "€4.50 + $10.00"
    assert formatting.money_totals({}, empty="no charges") == "no charges"


@pytest.mark.parametrize(("n", "shown"), [(0, "0 seats"), (1, "1 seat"), (2, "2 seats"), (1250, "1,250 seats")])
def test_plurals(n, shown) -> None:
    assert formatting.plural(n, "seat", "seats") == shown


def test_one_date_format() -> None:
    assert formatting.date(date(2027, 1, 5)) == "Jan 5, 2027"
    assert formatting.date(datetime(2027, 1, 5, 23, 30, tzinfo=timezone(timedelta(hours=-5)))) == "Jan 6, 2027"
    assert formatting.date(None) == "—"
    assert formatting.datetime_utc(datetime(2027, 1, 5, 14, 3, tzinfo=UTC)) == f"Jan 5, 2027, 2:03{NNBSP}PM UTC"
    assert formatting.datetime_utc(datetime(2027, 1, 5, 14, 3)) == f"Jan 5, 2027, 2:03{NNBSP}PM UTC"  # naive: UTC
    cet = timezone(timedelta(hours=1))
    assert formatting.datetime_utc(datetime(2027, 1, 6, 0, 30, tzinfo=cet)) == f"Jan 5, 2027, 11:30{NNBSP}PM UTC"
    assert formatting.datetime_utc(None) == "—"
    assert formatting.date_range(date(2026, 9, 1), date(2026, 9, 30)) == f"Sep 1{THIN}–{THIN}30, 2026"
    assert formatting.date_range(date(2026, 12, 16), date(2027, 1, 15)) == f"Dec 16, 2026{THIN}–{THIN}Jan 15, 2027"
    assert formatting.month(date(2026, 9, 30)) == "September 2026"


def test_the_locale_is_a_parameter() -> None:
    assert formatting.money(Decimal("1234.5"), "EUR", "de_DE") == f"1.234,50{NBSP}€"
    assert formatting.money(Decimal("2.5"), "KWD", "de_DE") == f"2,500{NBSP}KWD"
    assert formatting.date(date(2027, 1, 5), "de_DE") == "05.01.2027"
    assert formatting.plural(1250, "Platz", "Plätze", "de_DE") == "1.250 Plätze"


def test_machine_text_keeps_the_minor_unit_and_never_rounds() -> None:
    assert plain(Decimal("6"), "USD") == "6.00"
    assert plain(Decimal("5.9125"), "USD") == "5.9125"
    assert plain(Decimal("1E+2"), "USD") == "100.00"
    assert plain(Decimal("1360.00"), "JPY") == "1360"  # not padded to cents
    assert plain(Decimal("2.5"), "KWD") == "2.500"
    assert plain(Decimal("-34.84"), "EUR") == "-34.84"
    assert (quantum("JPY"), quantum("KWD")) == (Decimal(1), Decimal("0.001"))


# A noun with an optional "s" is never right for a person: use `formatting.plural`. The sandbox is left
# out: it imitates Microsoft's own texts ("Error in Cart item(s)").
WORDING_FOLDERS = ("cards", "dialogs", "services", "bot", "cli")


def _texts(path: Path) -> list[tuple[int, str]]:
    """Every string literal of a module (f-string parts included), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _optional_plurals(root: Path) -> list[str]:
    found = []
    for folder in WORDING_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            if "sandbox" in path.relative_to(root).parts:
                continue
            found += [
                f"{path.relative_to(root).as_posix()}:{line}: {text!r}" for line, text in _texts(path) if "(s)" in text
            ]
    return found


def test_no_text_says_seat_s() -> None:
    assert _optional_plurals(ROOT) == []


def test_the_wording_check_sees_an_optional_plural(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "x.py").write_text('def f(n):\n    return f"{n} seat(s)"\n', encoding="utf-8")
    assert _optional_plurals(tmp_path) == ["cards/x.py:2: ' seat(s)'"]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("nb-NO", "nb_NO"),
        ("de-DE", "de_DE"),
        ("sv-SE", "sv_SE"),
        ("en-US", "en_US"),
        ("nb-XX", "nb"),  # a region Babel does not know for the language: the language
        ("nb", "nb"),
        ("xx-YY", "en_US"),  # unknown language: English
        ("zz", "en_US"),
        ("de_DE; drop table", "en_US"),  # malformed: English
        ("", "en_US"),
        (None, "en_US"),
    ],
)
def test_the_callers_teams_locale_falls_back_to_its_language_then_english(tag: str | None, expected: str) -> None:
    assert resolve_locale(tag) == expected


def test_a_turn_reads_in_its_locale_and_time_zone_and_leaves_them_behind() -> None:
    moment = datetime(2027, 1, 5, 23, 30, tzinfo=UTC)
    with formatting.reading("nb_NO"):
        assert formatting.money(Decimal("1234.5"), "NOK") == f"1{NBSP}234,50{NBSP}kr"
        formatting.adopt_timezone("Europe/Oslo")
        assert formatting.date(moment) == "6.\u00a0jan. 2027"  # already the 6th in Oslo
        assert formatting.datetime_utc(moment) == "6.\u00a0jan. 2027, 00:30 Europe/Oslo"
        formatting.adopt_timezone("Mars/Olympus")  # unknown: nothing changes
        assert formatting.reader().timezone == "Europe/Oslo"
    with formatting.reading("de_DE", "No/Such_Zone"):
        assert formatting.reader() == formatting.Reader("de_DE", "UTC")
    assert formatting.reader() == formatting.Reader()
    assert formatting.datetime_utc(moment) == f"Jan 5, 2027, 11:30{NNBSP}PM UTC"


def test_a_day_first_date_is_not_read_as_a_numbered_list() -> None:
    """`6. des. 2027` starting a card's text would be Markdown's list item 6 (shown as `des. 2027`)."""
    import re

    for locale in ("nb_NO", "de_DE", "sv_SE", "en_US"):
        for shown in (
            formatting.date(date(2027, 12, 6), locale),
            formatting.date_range(date(2027, 12, 6), date(2027, 12, 9), locale),
        ):
            assert not re.match(r"^\d+\. ", shown), (locale, shown)
    assert formatting.date(date(2027, 12, 6), "nb_NO") == "6.\u00a0des. 2027"
