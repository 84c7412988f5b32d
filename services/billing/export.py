"""Exports of billing reports: CSV with exactly the spec's columns (SPEC §6) and an XLSX workbook
(a summary sheet plus one sheet per cycle; header row, frozen panes, currency and date formats)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from services.billing.money import minor_digits
from services.billing.rating import Line
from services.billing.reports import CycleReport

CSV_COLUMNS = (
    "report_date",
    "cycle_start",
    "cycle_end",
    "subscription_id",
    "parent_subscription_id",
    "product",
    "offer_id",
    "charge_type",
    "quantity",
    "unit_price",
    "days",
    "cycle_days",
    "amount",
    "currency",
)
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv"


def _decimal_text(value: Decimal | None, currency: str) -> str:
    """A dot decimal with the currency's minor-unit digits (more only if the price itself has more)."""
    if value is None:
        return ""
    digits = minor_digits(currency)
    exponent = value.as_tuple().exponent
    places = max(digits, -exponent if isinstance(exponent, int) else digits)
    return f"{value:.{places}f}"


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


def csv_row(report: CycleReport, line: Line) -> list[str]:
    return [
        report.report_date.isoformat(),
        report.cycle.start.isoformat(),
        report.cycle.end.isoformat(),
        line.subscription_id,
        line.parent_subscription_id or "",
        line.product,
        line.offer_id,
        line.charge_type.value,
        str(line.quantity),
        _decimal_text(line.unit_price, line.currency),
        _optional(line.days),
        _optional(line.cycle_days),
        _decimal_text(line.amount, line.currency),
        line.currency,
    ]


def to_csv(reports: Sequence[CycleReport]) -> bytes:
    """UTF-8 (with a BOM, so Excel reads the product names right), one row per line, cycles in order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        for line in report.lines:
            writer.writerow(csv_row(report, line))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _money_format(currency: str) -> str:
    digits = minor_digits(currency)
    return "#,##0" + ("." + "0" * digits if digits else "")


def _sheet_title(report: CycleReport) -> str:
    return f"{report.cycle.start.isoformat()} to {report.cycle.end.isoformat()}"[:31]


def to_xlsx(reports: Sequence[CycleReport], *, organisation: str = "") -> bytes:
    workbook = Workbook()
    bold = Font(bold=True)
    summary = workbook.active
    assert summary is not None
    summary.title = "Summary"
    summary.append(["report_date", "cycle_start", "cycle_end", "status", "total", "currency", "unpriced_lines"])
    for report in reports:
        totals = report.totals or {"": Decimal(0)}
        for currency, total in sorted(totals.items()):
            summary.append(
                [
                    report.report_date,
                    report.cycle.start,
                    report.cycle.end,
                    "issued" if report.issued else "open (so far)",
                    total,
                    currency,
                    report.unpriced,
                ]
            )
            row = summary.max_row
            for column in (1, 2, 3):
                summary.cell(row, column).number_format = "yyyy-mm-dd"
            summary.cell(row, 5).number_format = _money_format(currency or "EUR")
    _finish(summary, bold, widths=[12, 12, 12, 14, 14, 9, 14])
    if organisation:
        summary.cell(1, 9, organisation).font = bold

    for report in reports:
        sheet = workbook.create_sheet(_sheet_title(report))
        sheet.append(list(CSV_COLUMNS))
        for line in report.lines:
            sheet.append(
                [
                    report.report_date,
                    report.cycle.start,
                    report.cycle.end,
                    line.subscription_id,
                    line.parent_subscription_id or "",
                    line.product,
                    line.offer_id,
                    line.charge_type.value,
                    line.quantity,
                    line.unit_price,
                    line.days,
                    line.cycle_days,
                    line.amount,
                    line.currency,
                ]
            )
            row = sheet.max_row
            for column in (1, 2, 3):
                sheet.cell(row, column).number_format = "yyyy-mm-dd"
            money = _money_format(line.currency or "EUR")
            sheet.cell(row, 10).number_format = money
            sheet.cell(row, 13).number_format = money
        _finish(sheet, bold, widths=[12, 12, 12, 38, 38, 36, 44, 18, 9, 12, 6, 10, 12, 9])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _finish(sheet, bold: Font, *, widths: Sequence[int]) -> None:  # type: ignore[no-untyped-def]
    for cell in sheet[1]:
        cell.font = bold
    sheet.freeze_panes = "A2"
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width


def export_name(first: str, last: str, file_format: str) -> str:
    span = first if first == last else f"{first}_to_{last}"
    return f"billing_{span}.{file_format}"
