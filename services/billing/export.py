"""Exports of billing reports: CSV with exactly the spec's columns (SPEC §6) and an XLSX workbook
(a summary sheet plus one sheet per cycle; header row, frozen panes, currency and date formats)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from services.billing.rating import Line
from services.billing.reports import CycleReport
from services.billing.xlsx import BOLD, PLAIN, Kind, RowFormat, Workbook, money_style
from services.i18n import _
from services.money import minor_digits, plain

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
# The kinds of CSV_COLUMNS' values on an XLSX line row.
_LINE_KINDS = (Kind.DAY,) * 3 + (Kind.TEXT,) * 5 + (Kind.NUMBER,) * 5 + (Kind.TEXT,)
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv"


def _decimal_text(value: Decimal | None, currency: str) -> str:
    """A dot decimal with the currency's minor-unit digits (more only if the price itself has more)."""
    return "" if value is None else plain(value, currency)


def _offer_id(line: Line) -> str:
    """PRODUCT:SKU, as the catalog and buying name it: Microsoft's own offer id adds an availability id
    that changes over time, so one product would show under several ids."""
    return f"{line.product_id}:{line.sku_id}" if line.product_id and line.sku_id else line.offer_id


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
        _offer_id(line),
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


def _sheet_title(report: CycleReport) -> str:
    return f"{report.cycle.start.isoformat()} to {report.cycle.end.isoformat()}"[:31]


def to_xlsx(reports: Sequence[CycleReport], *, organisation: str = "") -> bytes:
    """A `Summary` sheet (one row per cycle and currency) and one sheet per cycle with the CSV columns."""
    workbook = Workbook()
    line_shapes: dict[str, RowFormat] = {}  # currency → the line rows' shape (their money columns' styles)
    with workbook.sheet(_("Summary"), widths=[12, 12, 12, 14, 14, 9, 14, 4, 30]) as summary:
        summary.append(
            (name, BOLD)
            for name in ("report_date", "cycle_start", "cycle_end", "status", "total", "currency", "unpriced_lines")
        )
        for report in reports:
            totals = report.totals or {"": Decimal(0)}
            for currency, total in sorted(totals.items()):
                summary.append(
                    [
                        report.report_date,
                        report.cycle.start,
                        report.cycle.end,
                        _("issued") if report.issued else _("open (so far)"),
                        (total, money_style(minor_digits(currency or "EUR"))),
                        currency,
                        report.unpriced,
                    ]
                )
        if organisation:
            summary.append([])
            summary.append([(_("Organisation"), BOLD), organisation])
    for report in reports:
        with workbook.sheet(
            _sheet_title(report), widths=[12, 12, 12, 38, 38, 36, 44, 18, 9, 12, 6, 10, 12, 9]
        ) as sheet:
            sheet.append((name, BOLD) for name in CSV_COLUMNS)
            dated, start, end = report.report_date, report.cycle.start, report.cycle.end
            for line in report.lines:
                shape = line_shapes.get(line.currency)
                if shape is None:
                    money = money_style(minor_digits(line.currency or "EUR"))
                    shape = line_shapes[line.currency] = RowFormat(
                        _LINE_KINDS, [money if name in ("unit_price", "amount") else PLAIN for name in CSV_COLUMNS]
                    )
                sheet.append_row(
                    shape,
                    (
                        dated,
                        start,
                        end,
                        line.subscription_id,
                        line.parent_subscription_id,
                        line.product,
                        _offer_id(line),
                        line.charge_type.value,
                        line.quantity,
                        line.unit_price,
                        line.days,
                        line.cycle_days,
                        line.amount,
                        line.currency,
                    ),
                )
    return workbook.finish()


def export_name(first: str, last: str, file_format: str) -> str:
    span = first if first == last else f"{first}_to_{last}"
    return f"billing_{span}.{file_format}"
