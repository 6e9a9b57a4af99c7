"""Turns recognised tables into typed rows and checks every cell, row and 合计.

Each problem names the file and the cell, in Chinese, for the person who filled the
form in. Values that are not numbers stay problems; nothing is guessed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from parsers.forms import FORM1_BOUNDS, FORM2_BOUNDS, Column, ValueType
from parsers.labels import short_label
from parsers.model import Form1Row, Form2Row, FormTable, Problem, ProblemCode
from parsers.numbers import NotANumber, is_blank, read_value
from parsers.recognize import Layout

ROW_TYPES = {1: Form1Row, 2: Form2Row}
BOUNDS = {1: (FORM1_BOUNDS, ProblemCode.PRIVATE_GT_TOTAL), 2: (FORM2_BOUNDS, ProblemCode.FINAL_GT_PRELIM)}


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, code: ProblemCode, cell: str, text: str) -> None:
        self.problems.append(Problem(code, f"《{self.file}》{cell}：{text}", self.file, cell))

    def number(self, layout: Layout, row: int, column: Column, required: bool) -> tuple[Any, bool]:
        """The cell's number and whether it could be read (blank counts as read)."""
        col = layout.columns.get(column.field)
        if col is None or layout.grid.is_covered(row, col):
            return None, True  # a merged number is counted once, at its first cell
        value, cell = layout.grid.value(row, col), layout.grid.ref(row, col)
        if is_blank(value):
            if required:
                self.add(ProblemCode.MISSING_REQUIRED, cell, f"{short_label(column)}未填写。")
            return None, True
        try:
            number = read_value(value, column.type, layout.money_units.get(column.field, ""))
        except NotANumber as err:
            hint = "请填写整数" if err.reason == "不是整数" else "请填写阿拉伯数字"
            self.add(ProblemCode.NON_NUMERIC, cell, f"{short_label(column)}“{value}”{err.reason}，{hint}。")
            return None, False
        if number is not None and number < 0:
            self.add(ProblemCode.NEGATIVE_NUMBER, cell, f"{short_label(column)}为负数（{number}），请核实。")
        return number, True

    def text(self, layout: Layout, row: int, column: Column) -> str | None:
        col = layout.columns.get(column.field)
        value = None if col is None else as_text(layout.grid.value(row, col))
        if value is None and column.required and col is not None:
            self.add(ProblemCode.MISSING_REQUIRED, layout.grid.ref(row, col), f"{short_label(column)}未填写。")
        return value


def as_text(value: Any) -> str | None:
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def build_tables(layouts: list[Layout], file: str) -> tuple[list[FormTable], list[Problem]]:
    """One FormTable per form found (a form split over sheets is merged), and the problems."""
    checker = _Checker(file)
    tables: dict[int, FormTable] = {}
    sums: dict[int, dict[str, Decimal | None]] = {}
    for layout in layouts:
        form = layout.spec.number
        table = tables.get(form)
        if table is None:
            table = tables[form] = FormTable(form, layout.grid.name, layout.unit, layout.date)
        elif layout.grid.name not in table.location.split("、"):
            table.location += "、" + layout.grid.name
        table.unit, table.filled_date = table.unit or layout.unit, table.filled_date or layout.date
        _check_header(checker, layout)
        own = _read_rows(checker, layout, table)
        running = sums.setdefault(form, {f: Decimal(0) for f in own})
        for f, value in own.items():
            running[f] = None if value is None or running[f] is None else running[f] + value
        if layout.total_row is not None:
            table.totals = _check_totals(checker, layout, own, running)
    return list(tables.values()), checker.problems


def _check_header(checker: _Checker, layout: Layout) -> None:
    """A required column the header lacks leaves every row without it: say so once."""
    cell = layout.grid.ref(layout.header_rows[0], layout.first_col)
    for column in layout.spec.columns:
        if column.required and column.field not in layout.columns:
            checker.add(ProblemCode.MISSING_REQUIRED, cell, f"表头中没有“{short_label(column)}”一栏，请按通知表样填写。")


def _read_rows(checker: _Checker, layout: Layout, table: FormTable) -> dict[str, Decimal | None]:
    """Append the layout's typed rows to the table; return each numeric column's sum
    (None where a cell could not be read, so no 合计 is compared against it)."""
    spec = layout.spec
    sums: dict[str, Decimal | None] = {f: Decimal(0) for f in spec.numeric_fields}
    for row in layout.body:
        values: dict[str, Any] = {}
        as_written: dict[str, str] = {}
        for column in spec.columns:
            if column.type is ValueType.TEXT:
                values[column.field] = checker.text(layout, row, column)
                continue
            number, readable = checker.number(layout, row, column, column.required)
            values[column.field] = number
            if not readable and (written := as_text(layout.grid.value(row, layout.columns[column.field]))):
                as_written[column.field] = written
            total = sums[column.field]
            sums[column.field] = None if not readable or total is None else total + (number or 0)
        _check_bounds(checker, layout, row, values)
        table.rows.append(ROW_TYPES[spec.number](**values, cell=_row_ref(layout, row), as_written=as_written))
    return sums


def _check_bounds(checker: _Checker, layout: Layout, row: int, values: dict[str, Any]) -> None:
    pairs, code = BOUNDS[layout.spec.number]
    for small, large in pairs:
        if values[small] is not None and values[large] is not None and values[small] > values[large]:
            part, whole = layout.spec.column(small), layout.spec.column(large)
            cell = layout.grid.ref(row, layout.columns[small])
            checker.add(code, cell, f"{short_label(part)}（{values[small]}）大于{short_label(whole)}"
                                    f"（{values[large]}），请核实。")


def _check_totals(checker: _Checker, layout: Layout, own: dict[str, Decimal | None],
                  running: dict[str, Decimal | None]) -> dict[str, Decimal | None]:
    """Read the 合计 row; it must equal the sum of this table's rows, or, for a form split
    over sheets, of all rows so far."""
    totals: dict[str, Decimal | None] = {}
    for field in layout.spec.numeric_fields:
        column = layout.spec.column(field)
        number, _ = checker.number(layout, layout.total_row, column, required=False)
        totals[field] = None if number is None else Decimal(number)
        sums = [s for s in (own[field], running[field]) if s is not None]
        if totals[field] is None or not sums or any(_agrees(totals[field], s) for s in sums):
            continue
        cell = layout.grid.ref(layout.total_row, layout.columns[field])
        checker.add(ProblemCode.TOTAL_MISMATCH, cell, f"合计行{short_label(column)}为 {_plain(totals[field])}，"
                                                     f"但各行相加为 {_plain(sums[0])}，请核对。")
    return totals


def _agrees(total: Decimal, computed: Decimal) -> bool:
    """Equal, allowing a total written to fewer decimals than the rows (3.3 for 3.33)."""
    exponent = total.as_tuple().exponent
    tolerance = Decimal(1).scaleb(exponent) / 2 if isinstance(exponent, int) and exponent < 0 else Decimal(0)
    return abs(total - computed) <= tolerance


def _plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def _row_ref(layout: Layout, row: int) -> str:
    """Where the row starts: its leftmost filled cell (序号 if there is one)."""
    grid = layout.grid
    start = next((c for c in range(layout.first_col + 1) if grid.value(row, c) is not None), layout.first_col)
    return grid.ref(row, start)


