"""A small streaming XLSX (Office Open XML spreadsheet) writer for the billing export.

openpyxl without lxml writes ~50k cells a second (its write-only mode too: the cells still go through
its XML tree writer), too slow for 24 cycles of 1,000 subscriptions (~400,000 cells); this writer
produces the few parts an export needs (inline strings, numbers, dates, bold header, frozen first
row, column widths, number formats) with string joins, and deflates each sheet into the zip as its
rows come, so no sheet is ever held whole. The tests read its output back with openpyxl.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import IO, Any
from xml.sax.saxutils import escape

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_EPOCH = date(1899, 12, 30)
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# Cell styles (indexes into cellXfs below).
PLAIN, BOLD, DATE = 0, 1, 2
_MONEY_STYLE = {0: 4, 2: 3, 3: 5}  # minor-unit digits → style


def money_style(digits: int) -> int:
    return _MONEY_STYLE.get(digits, 3)


_STYLES = (
    _HEAD + f'<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="4">'
    '<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="#,##0.00"/>'
    '<numFmt numFmtId="166" formatCode="#,##0"/>'
    '<numFmt numFmtId="167" formatCode="#,##0.000"/>'
    "</numFmts>"
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="6">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="167" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


class Kind(Enum):
    """What a column holds, for `SheetWriter.append_values`."""

    TEXT = "text"
    NUMBER = "number"  # int or Decimal
    DAY = "day"


Value = str | int | Decimal | date | None
Cell = Value | tuple[Value, int]  # a value, or (value, style)
# Written sheets go into the zip in pieces of about this many rows (the whole sheet is never one string).
ROWS_PER_WRITE = 1000
# zlib level: 1 deflates a bill's XML about three times faster than the default 6, for a file ~25 % larger.
COMPRESSION = 1


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        name = chr(65 + remainder) + name
    return name


_COLUMNS = [_column(n) for n in range(64)]
_STYLE_ATTRIBUTE = {PLAIN: "", **{style: f' s="{style}"' for style in range(1, 6)}}


def _kind_of(value: Value) -> Kind:
    if isinstance(value, str) or value is None:
        return Kind.TEXT
    if isinstance(value, bool):  # an int, but a number cell would read "True"
        raise TypeError(f"an XLSX cell here holds text, a number or a day, not {value!r}")
    if isinstance(value, int | Decimal):
        return Kind.NUMBER
    return Kind.DAY


def _text(value: str) -> str:
    text = escape(_INVALID_XML.sub("", value))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f"<is><t{space}>{text}</t></is>"


_TEXT, _NUMBER = Kind.TEXT, Kind.NUMBER


class RowFormat:
    """The shape of rows written many times (each column's kind and style): the XML of a row is made once
    per pattern of empty cells, as a template that takes the row number and the cells' contents."""

    def __init__(self, kinds: Sequence[Kind], styles: Sequence[int]) -> None:
        self.kinds = tuple(kinds)
        self.styles = tuple(styles)
        self.templates: dict[int, str] = {}  # bit i set: column i has a cell → the row's template

    def template(self, present: int) -> str:
        if len(self.kinds) > len(_COLUMNS):
            _COLUMNS.extend(_column(n) for n in range(len(_COLUMNS), len(self.kinds)))
        parts, field = ['<row r="{0}">'], 1
        for index, (kind, style) in enumerate(zip(self.kinds, self.styles, strict=True)):
            if not present >> index & 1:
                continue
            reference = f'<c r="{_COLUMNS[index]}{{0}}"'
            if kind is Kind.TEXT:
                parts.append(f'{reference}{_STYLE_ATTRIBUTE[style]} t="inlineStr">{{{field}}}</c>')
            elif kind is Kind.NUMBER:
                parts.append(f"{reference}{_STYLE_ATTRIBUTE[style]}><v>{{{field}}}</v></c>")
            else:
                parts.append(f'{reference} s="{style or DATE}"><v>{{{field}}}</v></c>')
            field += 1
        parts.append("</row>")
        template = self.templates[present] = "".join(parts)
        return template


class SheetWriter:
    """Rows of one worksheet, streamed into its part of the zip. Texts and dates are encoded once per
    workbook: the same product, subscription and day come back on many rows and sheets."""

    def __init__(
        self, stream: IO[bytes], widths: Sequence[int], texts: dict[str, str], serials: dict[date, int]
    ) -> None:
        self._stream = stream
        self._rows = 0
        self._pending: list[str] = []
        self._texts = texts  # text → its encoded cell content, shared by a workbook's sheets
        self._serials = serials  # day → Excel's day number, likewise
        self._shapes: dict[tuple[tuple[Kind, ...], tuple[int, ...]], RowFormat] = {}
        cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>' for i, w in enumerate(widths, start=1))
        self._write(
            _HEAD + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            "</sheetView></sheetViews>" + (f"<cols>{cols}</cols>" if cols else "") + "<sheetData>"
        )

    def _write(self, text: str) -> None:
        self._stream.write(text.encode("utf-8"))

    def append(self, cells: Iterable[Cell]) -> None:
        """A row of values (or (value, style) pairs); None and "" leave their cell empty."""
        values: list[Value] = []
        styles: list[int] = []
        for cell in cells:
            value, style = cell if isinstance(cell, tuple) else (cell, PLAIN)
            values.append(value)
            styles.append(style)
        self.append_values([_kind_of(value) for value in values], values, styles)

    def append_values(self, kinds: Sequence[Kind], values: Sequence[Value], styles: Sequence[int]) -> None:
        """A row whose columns' kinds are known (`kinds[i]` for `values[i]`, styled `styles[i]`): the same
        cells as `append` writes for these values, without asking each value what it is."""
        key = (tuple(kinds), tuple(styles))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = RowFormat(*key)
        self.append_row(shape, values)

    def append_row(self, shape: RowFormat, values: Sequence[Value]) -> None:
        """A row of `shape` (the same cells as `append_values` with its kinds and styles): each value is
        turned into its cell's content, and the row is one template (per pattern of empty cells) filled in."""
        self._rows += 1
        texts, serials = self._texts, self._serials
        contents: list[object] = [str(self._rows)]
        present, bit = 0, 1
        row: Sequence[Any] = values  # each value is of its column's kind
        for kind, value in zip(shape.kinds, row, strict=False):
            if value is not None:
                if kind is _TEXT:
                    if value:
                        text = texts.get(value)
                        if text is None:
                            text = texts[value] = _text(value)
                        contents.append(text)
                        present |= bit
                elif kind is _NUMBER:
                    contents.append(str(value))
                    present |= bit
                else:
                    serial = serials.get(value)
                    if serial is None:
                        serial = serials[value] = (value - _EPOCH).days
                    contents.append(serial)
                    present |= bit
            bit <<= 1
        template = shape.templates.get(present)
        if template is None:
            template = shape.template(present)
        self._pending.append(template.format(*contents))
        if len(self._pending) >= ROWS_PER_WRITE:
            self._flush()

    def _flush(self) -> None:
        self._write("".join(self._pending))
        self._pending.clear()

    def close(self) -> None:
        self._flush()
        self._write("</sheetData></worksheet>")


class Workbook:
    """An XLSX file written sheet by sheet, each deflated into the zip as its rows come."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._zip = zipfile.ZipFile(self._buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION)
        self._titles: list[str] = []
        self._texts: dict[str, str] = {}
        self._serials: dict[date, int] = {}

    @contextmanager
    def sheet(self, title: str, widths: Sequence[int] = ()) -> Iterator[SheetWriter]:
        self._titles.append(title)
        with self._zip.open(f"xl/worksheets/sheet{len(self._titles)}.xml", "w") as stream:
            writer = SheetWriter(stream, widths, self._texts, self._serials)
            yield writer
            writer.close()

    def finish(self) -> bytes:
        """The file: the sheets written so far, in order, with the parts that describe them."""
        count = len(self._titles)
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{n}.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for n in range(1, count + 1)
        )
        content_types = (
            _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            f"{overrides}</Types>"
        )
        root_rels = (
            _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
            f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        )
        sheet_entries = "".join(
            f'<sheet name="{escape(title[:31], {chr(34): "&quot;"})}" sheetId="{n}" r:id="rId{n}"/>'
            for n, title in enumerate(self._titles, start=1)
        )
        workbook = _HEAD + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>{sheet_entries}</sheets></workbook>'
        sheet_rels = "".join(
            f'<Relationship Id="rId{n}" Type="{_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
            for n in range(1, count + 1)
        )
        workbook_rels = (
            _HEAD + f'<Relationships xmlns="{_PKG_REL}">{sheet_rels}'
            f'<Relationship Id="rId{count + 1}" Type="{_REL}/styles" Target="styles.xml"/></Relationships>'
        )
        self._zip.writestr("[Content_Types].xml", content_types)
        self._zip.writestr("_rels/.rels", root_rels)
        self._zip.writestr("xl/workbook.xml", workbook)
        self._zip.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        self._zip.writestr("xl/styles.xml", _STYLES)
        self._zip.close()
        return self._buffer.getvalue()
