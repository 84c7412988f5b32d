"""The streaming XLSX writer: rows of one shape with different cells left empty land in the right columns,
read back by openpyxl as the values written (numbers, days, texts that need escaping)."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

from openpyxl import load_workbook

from services.billing.xlsx import BOLD, PLAIN, Kind, RowFormat, Workbook, money_style

KINDS = (Kind.DAY, Kind.TEXT, Kind.TEXT, Kind.NUMBER, Kind.NUMBER, Kind.TEXT)
ROWS = [
    (date(2026, 10, 31), "sub-1", None, 5, Decimal("12.50"), "EUR"),
    (date(2026, 10, 31), "", "parent <&> ", 0, None, "EUR"),
    (None, " spaced", "a\x01b", None, Decimal("0.00"), ""),
    (date(2024, 2, 29), "sub-1", "sub-2", 12, Decimal("-3.333"), "NOK"),
]


def _value(value: object) -> object:
    """A cell's value as written: openpyxl reads a day as a datetime at midnight."""
    return value.date() if isinstance(value, datetime) else value


def _read(body: bytes) -> list[tuple[object, ...]]:
    sheet = load_workbook(io.BytesIO(body))["Lines"]
    return [tuple(_value(cell.value) for cell in row) for row in sheet.iter_rows(min_row=1, max_col=len(KINDS))]


def _expected(value: object) -> object:
    return None if value == "" else value


def test_rows_of_one_shape_keep_each_value_in_its_column_whatever_is_empty():
    workbook = Workbook()
    shape = RowFormat(KINDS, [PLAIN, PLAIN, PLAIN, PLAIN, money_style(2), PLAIN])
    with workbook.sheet("Lines", widths=[12] * len(KINDS)) as sheet:
        sheet.append((name, BOLD) for name in ("day", "id", "parent", "quantity", "amount", "currency"))
        for row in ROWS:
            sheet.append_row(shape, row)
    rows = _read(workbook.finish())
    assert rows[0] == ("day", "id", "parent", "quantity", "amount", "currency")
    expected = [tuple(_expected(value) for value in row) for row in ROWS]
    expected[2] = (None, " spaced", "ab", None, Decimal("0.00"), None)  # a control character cannot be in XML
    assert [tuple(Decimal(str(v)) if isinstance(v, float) else v for v in row) for row in rows[1:]] == expected


def test_rows_of_a_declared_shape_read_as_rows_whose_kinds_are_inferred():
    def body(by_shape: bool) -> bytes:
        workbook = Workbook()
        styles = [PLAIN] * len(KINDS)
        with workbook.sheet("Lines") as sheet:
            for row in ROWS:
                if by_shape:
                    sheet.append_row(RowFormat(KINDS, styles), row)
                else:
                    sheet.append(row)
        return workbook.finish()

    assert _read(body(True)) == _read(body(False))
    assert _read(body(True))[3][0] == date(2024, 2, 29)
