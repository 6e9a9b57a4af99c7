"""Reads the tables of a .docx into grids, with the paragraphs written above each table.

python-docx repeats a merged cell at every grid position it spans; the repeats are kept
(a group header then labels every column under it) but marked covered, so a number in
a merged cell is counted once.
"""

from __future__ import annotations

import io

import docx
from docx.table import Table

from config.settings import LimitsSettings
from parsers.grid import FileRejected, Grid
from parsers.model import ProblemCode
from parsers.ooxml import check_package

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_PREAMBLE_LINES = 6  # 汇总单位 and 填写日期 sit just above the table


def read_document(data: bytes, limits: LimitsSettings) -> list[Grid]:
    """Every top-level table as a Grid named 表格1, 表格2, …"""
    check_package(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception:
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件已损坏或格式无法识别，无法打开") from None
    grids: list[Grid] = []
    above: list[str] = []
    for element in document.element.body.iterchildren():
        if element.tag == f"{_W}p":
            text = "".join(t.text or "" for t in element.iter(f"{_W}t")).strip()
            if text:
                above.append(text)
        elif element.tag == f"{_W}tbl":
            table = Table(element, document)
            grids.append(_grid(table, f"表格{len(grids) + 1}", tuple(above[-_PREAMBLE_LINES:]), limits))
            above = []
    return grids


def _grid(table: Table, name: str, preamble: tuple[str, ...], limits: LimitsSettings) -> Grid:
    if len(table.rows) > limits.max_rows:
        raise FileRejected(ProblemCode.TOO_LARGE, f"{name}超过 {limits.max_rows} 行，超出处理上限")
    rows: list[list[str | None]] = []
    covered: set[tuple[int, int]] = set()
    previous: list[object] = []
    for r, row in enumerate(table.rows):
        cells = row.cells
        values: list[str | None] = []
        for c, cell in enumerate(cells):
            spread = (c > 0 and cells[c - 1]._tc is cell._tc) or (c < len(previous) and previous[c] is cell._tc)
            if spread:
                covered.add((r, c))
            values.append(cell.text)
        previous = [cell._tc for cell in cells]
        rows.append(values)
    return Grid.build(name, rows, covered=covered, lettered=False, preamble=preamble)
