"""Billing cards (schema-valid, within Teams' size, readable when large) and the CSV/XLSX exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from cards.billing import (
    CARD_BUDGET,
    RangeChoiceView,
    build_bill_summary_card,
    build_export_link_card,
    build_range_card,
    build_report_card,
)
from dialogs import billing as billing_dialog
from dialogs.billing import report_view, summary_view
from services import formatting
from services.billing.cycles import CycleCalendar
from services.billing.export import CSV_COLUMNS, to_csv, to_xlsx
from services.billing.rating import rate_cycle
from services.billing.reports import CycleReport
from services.i18n import _
from services.ledger import LedgerEvent as Ev
from tests.billing.ledger_fixtures import BASIC, TEAMS_PHONE, event, price
from tests.cardcheck import assert_valid_card
from tests.fakes import card_text

MONTHS = CycleCalendar()
PRICES = [price("30.00"), price("8.00", product=TEAMS_PHONE)]
RECORDS = [
    event(Ev.PURCHASE, date(2026, 9, 11), 0, 5),
    event(Ev.QUANTITY_INCREASE, date(2026, 10, 10), 5, 8),
    event(Ev.QUANTITY_DECREASE, date(2026, 10, 14), 8, 6),
    event(Ev.PURCHASE, date(2026, 10, 16), 0, 2, subscription="addon-phone", product=TEAMS_PHONE, parent="sub-e3"),
    event(Ev.PURCHASE, date(2026, 10, 20), 0, 1, subscription="sub-basic", product=BASIC),  # unpriced
]


def _reports(months=((2026, 9), (2026, 10))) -> list[CycleReport]:
    return [
        CycleReport(cycle, tuple(rate_cycle(RECORDS, PRICES, MONTHS, cycle)), True)
        for cycle in (MONTHS.cycle_of_month(*m) for m in months)
    ]


def test_csv_has_exactly_the_spec_columns_and_values() -> None:
    text = to_csv(_reports()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(csv.reader(io.StringIO(text.splitlines()[0])).__next__()) == CSV_COLUMNS
    by_type = {(row["cycle_end"], row["subscription_id"], row["charge_type"]): row for row in rows}
    first = by_type[("2026-09-30", "sub-e3", "prorata_purchase")]
    assert first == {
        "report_date": "2026-10-01",
        "cycle_start": "2026-09-01",
        "cycle_end": "2026-09-30",
        "subscription_id": "sub-e3",
        "parent_subscription_id": "",
        "product": "Office 365 E3",
        "offer_id": "CFQ7TTC0LFLX:0001",  # without the availability id the ledger keeps
        "charge_type": "prorata_purchase",
        "quantity": "5",
        "unit_price": "30.00",
        "days": "20",
        "cycle_days": "30",
        "amount": "100.00",
        "currency": "EUR",
    }
    fee = by_type[("2026-10-31", "sub-e3", "cycle_fee")]
    assert (fee["days"], fee["cycle_days"], fee["amount"]) == ("", "", "150.00")
    refund = by_type[("2026-10-31", "sub-e3", "refund")]
    assert (refund["quantity"], refund["amount"]) == ("2", "-34.84")  # 2 × 30 × 18/31 = 34.838…
    addon = by_type[("2026-10-31", "addon-phone", "addon_prorata")]
    assert (addon["parent_subscription_id"], addon["amount"]) == ("sub-e3", "8.26")
    unpriced = by_type[("2026-10-31", "sub-basic", "prorata_purchase")]
    assert (unpriced["unit_price"], unpriced["amount"], unpriced["currency"]) == ("", "", "")


def test_xlsx_has_a_summary_and_one_sheet_per_cycle() -> None:
    workbook = load_workbook(io.BytesIO(to_xlsx(_reports(), organisation="Contoso Ltd")))
    assert workbook.sheetnames == ["Summary", "2026-09-01 to 2026-09-30", "2026-10-01 to 2026-10-31"]
    summary = workbook["Summary"]
    assert summary.freeze_panes == "A2"
    assert [c.value for c in summary[1]][:7] == [
        "report_date", "cycle_start", "cycle_end", "status", "total", "currency", "unpriced_lines",
    ]  # fmt: skip
    assert summary["E2"].value == 100 and summary["E2"].number_format == "#,##0.00"
    assert summary["A2"].is_date and summary["A2"].number_format == "yyyy-mm-dd"
    assert summary["G3"].value == 1  # the unpriced Business Basic line
    october = workbook["2026-10-01 to 2026-10-31"]
    assert october.freeze_panes == "A2" and tuple(c.value for c in october[1]) == CSV_COLUMNS
    assert october["A1"].font.bold
    amounts = [row[12] for row in october.iter_rows(min_row=2, values_only=True)]
    assert Decimal(str(sum(a for a in amounts if a is not None))) == sum(
        (line.amount for line in _reports()[1].lines if line.amount is not None), Decimal(0)
    )
    assert october["M2"].number_format == "#,##0.00"


def test_report_card_is_valid_and_drills_down() -> None:
    card = build_report_card(report_view(_reports(), "Contoso Ltd", "2026-09 to 2026-10"))
    assert_valid_card(card)
    said = card_text(card)
    assert "September 2026" in said and "October 2026" in said
    assert "**September 2026** · Sep 1\u2009–\u200930, 2026\nReport dated Oct 1, 2026 · issued\n€100.00" in said
    assert "Total\n€287.29" in said and "Refund\n2 × €30.00 · 18/31 days\n-€34.84" in said
    assert "Add-on pro-rata · Teams Phone Standard" in said
    assert "⚠ 1 line without a price — your reseller has been told." in said
    assert "Microsoft 365 Business Basic\nsub-basic\nunpriced ▸\nunpriced ▾\n" in said
    assert "1 × no price · 12/31 days" in said
    summary = card_text(build_bill_summary_card(summary_view(_reports()[1])))
    assert "Period\nOct 1\u2009–\u200931, 2026\nReport dated\nNov 1, 2026\n" in summary
    assert "Total: **€187.29**" in summary
    toggles = _toggles(card)
    assert len(toggles) == 2 + 3  # the cycles, then their subscriptions (E3; E3 with its add-on, Basic)


def _toggles(node: Any) -> list[list[str]]:
    if isinstance(node, dict):
        found = [node["targetElements"]] if node.get("type") == "Action.ToggleVisibility" else []
        return found + [t for value in node.values() for t in _toggles(value)]
    return [t for item in node for t in _toggles(item)] if isinstance(node, list) else []


def _elements(node: Any) -> dict[str, dict[str, Any]]:
    if isinstance(node, dict):
        found = {node["id"]: node} if "id" in node else {}
        for value in node.values():
            found |= _elements(value)
        return found
    return {k: v for item in node for k, v in _elements(item).items()} if isinstance(node, list) else {}


def test_each_drill_down_row_turns_its_chevron_with_what_it_shows() -> None:
    """A tap shows the hidden part and swaps "▸" for "▾"; the next tap undoes both (ToggleVisibility
    flips every target), so the chevron always tells whether the row is open."""
    card = build_report_card(report_view(_reports(), "Contoso Ltd", "2026-09 to 2026-10"))
    elements = _elements(card["body"])
    assert len(elements) == len(json.dumps(card).split('"id": ')) - 1  # ids are unique
    for target, collapsed, expanded in _toggles(card):
        assert elements[target]["isVisible"] is False
        assert elements[collapsed].get("isVisible", True) and elements[collapsed]["text"].endswith(" ▸")
        assert elements[expanded]["isVisible"] is False and elements[expanded]["text"].endswith(" ▾")
        assert elements[collapsed]["text"][:-2] == elements[expanded]["text"][:-2]  # the same amount


def test_a_large_report_stays_within_teams_limits() -> None:
    many = [event(Ev.PURCHASE, date(2025, 1, 1), 0, n % 7 + 1, subscription=f"sub-{n:04d}") for n in range(400)]
    months = [(2025, m) for m in range(1, 13)]
    reports = [
        CycleReport(c, tuple(rate_cycle(many, PRICES, MONTHS, c)), True)
        for c in (MONTHS.cycle_of_month(*m) for m in months)
    ]
    card = build_report_card(report_view(reports, "Contoso Ltd", "2025"))
    assert_valid_card(card)
    assert len(json.dumps(card, ensure_ascii=False).encode()) <= CARD_BUDGET
    assert "Export" in card_text(card)
    assert "…and 399 more subscriptions in the export." in card_text(card)


def test_a_large_report_card_formats_only_what_it_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """400 subscriptions × 12 cycles: the card shows at most ten of each cycle, so only those (and a
    dozen lines of each) are formatted — the others are only counted."""
    many = [event(Ev.PURCHASE, date(2025, 1, 1), 0, n % 7 + 1, subscription=f"sub-{n:04d}") for n in range(400)]
    reports = [
        CycleReport(c, tuple(rate_cycle(many, PRICES, MONTHS, c)), True)
        for c in (MONTHS.cycle_of_month(2025, m) for m in range(1, 13))
    ]
    made = {"subscriptions": 0, "lines": 0}

    def counted(name: str, make):
        def wrapper(item):
            made[name] += 1
            return make(item)

        return wrapper

    monkeypatch.setattr(
        billing_dialog, "_subscription_view", counted("subscriptions", billing_dialog._subscription_view)
    )
    monkeypatch.setattr(billing_dialog, "_detail", counted("lines", billing_dialog._detail))
    card = build_report_card(report_view(reports, "Contoso Ltd", "2025"))
    assert "…and 399 more subscriptions" in card_text(card)  # shrunk to fit Teams' size limit
    assert 0 < made["subscriptions"] <= 12 * 10 and 0 < made["lines"] <= 12 * 10 * 12


def test_formatted_items_are_made_once_when_read() -> None:
    made: list[int] = []

    def make(n: int) -> str:
        made.append(n)
        return f"#{n}"

    items = billing_dialog.Formatted(range(100), make)
    assert len(items) == 100 and made == []
    assert items[:3] == ("#0", "#1", "#2") and items[-1] == "#99" and items[98:] == ("#98", "#99")
    assert list(items[:2]) == ["#0", "#1"] and made == [0, 1, 2, 99, 98]
    with pytest.raises(IndexError):
        items[100]
    assert [*billing_dialog.Formatted([1, 2], make)] == ["#1", "#2"]


@pytest.mark.parametrize(
    ("currency", "stored_price", "csv_rows", "number_format", "shown"),
    [
        # 5 seats from Sep 11: 5 × price × 20/30 for September, 5 × price for October.
        ("JPY", "4350.00", [("4350", "14500"), ("4350", "21750")], "#,##0", "¥14,500"),
        ("KWD", "2.675", [("2.675", "8.917"), ("2.675", "13.375")], "#,##0.000", "KWD\u00a08.917"),
        ("USD", "30", [("30.00", "100.00"), ("30.00", "150.00")], "#,##0.00", "$100.00"),
    ],
)
def test_exports_write_each_currencys_own_minor_unit(
    currency: str, stored_price: str, csv_rows: list[tuple[str, str]], number_format: str, shown: str
) -> None:
    """A JPY price stored as "4350.00" is 4350 in the export; KWD keeps its three decimals."""
    prices = [price(stored_price, currency=currency)]
    records = [event(Ev.PURCHASE, date(2026, 9, 11), 0, 5)]
    reports = [
        CycleReport(cycle, tuple(rate_cycle(records, prices, MONTHS, cycle)), True)
        for cycle in (MONTHS.cycle_of_month(2026, 9), MONTHS.cycle_of_month(2026, 10))
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(reports).decode("utf-8-sig"))))
    assert [(row["unit_price"], row["amount"]) for row in rows] == csv_rows
    assert {row["currency"] for row in rows} == {currency}
    workbook = load_workbook(io.BytesIO(to_xlsx(reports)))
    october = workbook["2026-10-01 to 2026-10-31"]
    assert (october["J2"].number_format, october["M2"].number_format) == (number_format, number_format)
    assert workbook["Summary"]["E3"].number_format == number_format
    assert shown in card_text(build_report_card(report_view(reports, "Contoso Ltd", "2026-09 to 2026-10")))


def test_the_range_chooser_offers_the_months_with_bills_and_keeps_the_choice() -> None:
    months = (("2026-11", "November 2026"), ("2026-10", "October 2026"), ("2026-09", "September 2026"))
    chooser = build_range_card(RangeChoiceView(months, "2026-09", "2026-10", "That is not a month.", older="2026-08"))
    assert_valid_card(chooser)
    said = card_text(chooser)
    assert "That is not a month." in said and "type **billing 2026-08**" in said
    inputs = {element["id"]: element for element in chooser["body"] if element["type"] == "Input.ChoiceSet"}
    assert [(c["value"], c["title"]) for c in inputs["first_month"]["choices"]] == list(months)
    assert (inputs["first_month"]["value"], inputs["last_month"]["value"]) == ("2026-09", "2026-10")
    # The inputs' labels are not the buttons' titles, and "Last month's bill" sends no months.
    buttons = {action["title"]: action for action in chooser["actions"]}
    assert {i["label"] for i in inputs.values()}.isdisjoint(buttons) and "Last month" not in buttons
    assert buttons["Last month's bill"]["associatedInputs"] == "none"
    newest = build_range_card(RangeChoiceView(months))
    assert [i["value"] for i in newest["body"] if i["type"] == "Input.ChoiceSet"] == ["2026-11", "2026-11"]
    assert "Older bills" not in card_text(newest)


def test_other_billing_cards_are_valid() -> None:
    assert_valid_card(build_export_link_card("billing_2026-09.csv", "http://127.0.0.1:3978/exports/x", 15))


def test_xlsx_escapes_text_and_leaves_unpriced_cells_empty() -> None:
    odd = event(Ev.PURCHASE, date(2026, 9, 1), 0, 1, subscription="s&<1>", product=("P1", "0001", 'R&D "Plan" <1>\x01'))
    reports = [
        CycleReport(c, tuple(rate_cycle([odd], PRICES, MONTHS, c)), True) for c in [MONTHS.cycle_of_month(2026, 9)]
    ]
    sheet = load_workbook(io.BytesIO(to_xlsx(reports)))["2026-09-01 to 2026-09-30"]
    assert sheet["D2"].value == "s&<1>" and sheet["F2"].value == 'R&D "Plan" <1>'
    assert sheet["J2"].value is None and sheet["M2"].value is None and sheet["N2"].value is None
    assert sheet["I2"].value == 1 and sheet["K2"].value == 30


@pytest.mark.parametrize(
    ("locale", "total", "period", "dated"),
    [
        ("nb_NO", "287,29\u00a0€", "1.–30. sep. 2026", "1.\u00a0okt. 2026"),
        ("de_DE", "287,29\u00a0€", "1.–30. Sept. 2026", "01.10.2026"),
        ("sv_SE", "287,29\u00a0€", "1–30 sep. 2026", "1 okt. 2026"),
        ("en_US", "€287.29", "Sep 1\u2009–\u200930, 2026", "Oct 1, 2026"),
    ],
)
def test_the_bill_reads_in_the_readers_locale(locale: str, total: str, period: str, dated: str) -> None:
    with formatting.reading(locale):
        card = build_report_card(report_view(_reports(), "Contoso Ltd", "2026-09 to 2026-10"))
        summary = build_bill_summary_card(summary_view(_reports()[0]))
    assert_valid_card(card)
    assert_valid_card(summary)
    said = card_text(card)
    with formatting.reading(locale):
        total_word = _("Total")
    assert f"{total_word}\n{total}" in said and period in said and dated in said, said
    assert dated in card_text(summary)
