"""Reads Excel 2003 XML (SpreadsheetML) into grids: Workbook → Worksheet → Table → Row → Cell → Data.

Office 2003 and many report systems write it, often named .xls. Rows and cells may skip
positions with ss:Index (1-based); ss:MergeAcross / ss:MergeDown make merged ranges.
defusedxml parses it: no DTDs, entities or external references.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeTree

from config.settings import LimitsSettings
from parsers.grid import FileRejected, Grid, MergedRange
from parsers.model import ProblemCode

SS = "{urn:schemas-microsoft-com:office:spreadsheet}"
X = "{urn:schemas-microsoft-com:office:excel}"
_CELLS_PER_ROW = 200  # as parsers.spreadsheet
_HIDDEN = {"SheetHidden", "SheetVeryHidden"}
_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9_.:-]+)[\"'][^>]*\?>")
_CHINESE = {"gbk", "gb2312", "cp936", "gb18030"}


def read_spreadsheetml(data: bytes, limits: LimitsSettings) -> list[Grid]:
    """Every visible worksheet as a Grid; raises FileRejected for a file it cannot read."""
    try:
        root = SafeTree.fromstring(_parseable(data), forbid_dtd=True)
    except Exception:  # ParseError, or defusedxml refusing a DTD or an entity
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "是 Excel 2003 XML 表格，但内容已损坏，无法读取") from None
    grids = []
    for sheet in root.iter(f"{SS}Worksheet"):
        visible = sheet.findtext(f"{X}WorksheetOptions/{X}Visible")
        if visible in _HIDDEN:
            continue
        name = sheet.get(f"{SS}Name") or f"Sheet{len(grids) + 1}"
        table = sheet.find(f"{SS}Table")
        rows, merged = _read_table(table, name, limits) if table is not None else ([], [])
        grids.append(Grid.build(name, rows, merged))
    return grids


def _parseable(data: bytes) -> bytes | str:
    """expat reads UTF-8 and UTF-16 itself; a GBK file is decoded here (as GB18030, its
    superset) and handed over as text without its declaration."""
    declared = _DECLARED.match(data[:200])
    if declared is None or declared.group(1).lower() in (b"utf-8", b"utf8", b"utf-16", b"us-ascii"):
        return data
    encoding = declared.group(1).decode("ascii").lower()
    encoding = "gb18030" if encoding in _CHINESE else encoding
    try:
        return data[declared.end():].decode(encoding, errors="replace")
    except LookupError:
        return data


def _read_table(table: Element, sheet: str, limits: LimitsSettings) -> tuple[list[list[Any]], list[MergedRange]]:
    rows: list[list[Any]] = []
    merged: list[MergedRange] = []
    r = -1
    for row in table.iter(f"{SS}Row"):
        r = _index(row, r + 1, sheet, limits.max_rows)
        while len(rows) < r:
            rows.append([])
        values: list[Any] = []
        c = -1
        for cell in row.iter(f"{SS}Cell"):
            c = _index(cell, c + 1, sheet, _CELLS_PER_ROW)
            values.extend([None] * (c + 1 - len(values)))
            values[c] = _value(cell)
            across, down = _count(cell, "MergeAcross"), _count(cell, "MergeDown")
            if across or down:
                if c + across >= _CELLS_PER_ROW or r + down >= limits.max_rows:
                    raise FileRejected(ProblemCode.TOO_LARGE, f"工作表“{sheet}”的合并区域过大，超出处理上限")
                merged.append(((r, c), (r + down, c + across)))
            c += across  # the next cell without ss:Index starts after the merge
        rows.append(values)
    return rows, merged


def _index(element: Element, default: int, sheet: str, bound: int) -> int:
    """The zero-based position: ss:Index (1-based) when given, else the next one."""
    written = element.get(f"{SS}Index")
    position = default if written is None else _integer(written, default + 1) - 1
    if position < default and written is not None:
        position = default  # an index backwards is a broken file; keep reading in order
    if position >= bound:
        raise FileRejected(ProblemCode.TOO_LARGE, f"工作表“{sheet}”超过 {bound} 行或列，超出处理上限")
    return position


def _count(cell: Element, attribute: str) -> int:
    return max(0, _integer(cell.get(f"{SS}{attribute}"), 0))


def _integer(text: str | None, default: int) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        return default


def _value(cell: Element) -> Any:
    """The cell's value as calamine would give it: numbers as floats, the rest as text."""
    data = cell.find(f"{SS}Data")
    if data is None:
        return None
    text = "".join(data.itertext())  # rich text nests HTML formatting inside Data
    if data.get(f"{SS}Type") == "Number":
        try:
            return float(text)
        except ValueError:
            return text
    return text
