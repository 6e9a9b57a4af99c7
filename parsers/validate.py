"""Turns recognised tables into typed rows and checks every cell, row and 合计.

Each problem names the file and the cell, in Chinese, for the person who filled the
form in. Values that are not numbers stay problems; nothing is guessed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from parsers.forms import Column, FormSpec, Rule, ValueType, plain
from parsers.labels import short_label
from parsers.model import FormTable, Problem, ProblemCode, Row
from parsers.numbers import NotADate, NotANumber, is_blank, read_value, to_date
from parsers.recognize import Layout


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, code: ProblemCode, cell: str, text: str) -> None:
        self.problems.append(Problem(code, f"《{self.file}》{cell}：{text}", self.file, cell))

    def value(self, layout: Layout, row: int, column: Column, required: bool) -> tuple[Any, bool]:
        """The cell's number or date and whether it could be read (blank counts as read)."""
        col = layout.columns.get(column.field)
        if col is None or layout.grid.is_covered(row, col):
            return None, True  # a merged number is counted once, at its first cell
        value, cell = layout.grid.value(row, col), layout.grid.ref(row, col)
        if is_blank(value):
            if required:
                self.add(ProblemCode.MISSING_REQUIRED, cell, f"{short_label(column)}未填写。")
            return None, True
        if column.type is ValueType.DATE:
            return self._date(value, cell, column)
        try:
            number = read_value(value, column.type, layout.money_units.get(column.field, ""))
        except NotANumber as err:
            hint = "请填写整数" if err.reason == "不是整数" else "请填写阿拉伯数字"
            self.add(ProblemCode.NON_NUMERIC, cell, f"{short_label(column)}“{value}”{err.reason}，{hint}。")
            return None, False
        self._bounds(number, cell, column)
        return number, True

    def _date(self, value: Any, cell: str, column: Column) -> tuple[dt.date | None, bool]:
        try:
            return to_date(value), True
        except NotADate:
            self.add(ProblemCode.NOT_A_DATE, cell, f"{short_label(column)}“{as_text(value)}”不是日期，"
                                                   "请按“2024-02-20”或“2024年2月”的格式填写。")
            return None, False

    def _bounds(self, number: int | Decimal | None, cell: str, column: Column) -> None:
        if number is None:
            return
        if column.min == 0 and number < 0:  # the common case keeps its plain wording
            self.add(ProblemCode.NEGATIVE_NUMBER, cell, f"{short_label(column)}为负数（{number}），请核实。")
        elif (column.min is not None and number < column.min) or (column.max is not None and number > column.max):
            self.add(ProblemCode.OUT_OF_RANGE, cell, f"{short_label(column)}（{number}）超出范围（{_range(column)}），请核实。")

    def text(self, layout: Layout, row: int, column: Column) -> str | None:
        col = layout.columns.get(column.field)
        value = None if col is None else as_text(layout.grid.value(row, col))
        if value is None and column.required and col is not None:
            self.add(ProblemCode.MISSING_REQUIRED, layout.grid.ref(row, col), f"{short_label(column)}未填写。")
        return value


def _range(column: Column) -> str:
    low, high = (None if b is None else _plain(b) for b in (column.min, column.max))
    if low is not None and high is not None:
        return f"{low}–{high}"
    return f"不小于 {low}" if low is not None else f"不大于 {high}"


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
    tables: dict[str, FormTable] = {}
    sums: dict[str, dict[str, Decimal | None]] = {}
    for layout in layouts:
        form = layout.spec.key
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
        if layout.total_row is not None and layout.spec.total_fields:
            table.totals = _check_totals(checker, layout, own, running)
    return list(tables.values()), checker.problems


def _check_header(checker: _Checker, layout: Layout) -> None:
    """A required column the header lacks leaves every row without it: say so once."""
    cell = layout.grid.ref(layout.header_rows[0], layout.first_col)
    for column in layout.spec.columns:
        if column.required and column.field not in layout.columns:
            checker.add(ProblemCode.MISSING_REQUIRED, cell, f"表头中没有“{short_label(column)}”一栏，请按通知表样填写。")


def _read_rows(checker: _Checker, layout: Layout, table: FormTable) -> dict[str, Decimal | None]:
    """Append the layout's typed rows to the table; return each 合计 column's sum
    (None where a cell could not be read, so no 合计 is compared against it)."""
    spec = layout.spec
    sums: dict[str, Decimal | None] = {f: Decimal(0) for f in spec.total_fields}
    for row in layout.body:
        values: dict[str, Any] = {}
        as_written: dict[str, str] = {}
        for column in spec.columns:
            if column.type is ValueType.TEXT:
                values[column.field] = checker.text(layout, row, column)
                continue
            value, readable = checker.value(layout, row, column, column.required)
            values[column.field] = value
            if not readable and (written := as_text(layout.grid.value(row, layout.columns[column.field]))):
                as_written[column.field] = written
            if column.field in sums:
                total = sums[column.field]
                sums[column.field] = None if not readable or total is None else total + (value or 0)
        for rule in spec.rules:
            _check_rule(checker, layout, row, rule, values)
        table.rows.append(Row({c.field: plain(c.type, values[c.field]) for c in spec.columns},
                              cell=_row_ref(layout, row), as_written=as_written))
    return sums


def _check_rule(checker: _Checker, layout: Layout, row: int, rule: Rule, values: dict[str, Any]) -> None:
    """A row rule of the form (`private_enterprises <= enterprises`), filed under its code."""
    left, op, right = rule.parts
    if values[left] is None or values[right] is None or op.holds(values[left], values[right]):
        return
    spec = layout.spec
    shown = {f: plain(spec.column(f).type, values[f]) for f in (left, right)}
    checker.add(_code(rule), layout.grid.ref(row, layout.columns[left]),
                f"{short_label(spec.column(left))}（{shown[left]}）{op.broken}{short_label(spec.column(right))}"
                f"（{shown[right]}），请核实。")


def _code(rule: Rule) -> ProblemCode:
    try:
        return ProblemCode(rule.code)
    except ValueError:  # a campaign file's own code name: filed under the generic one
        return ProblemCode.RULE_VIOLATED


def _check_totals(checker: _Checker, layout: Layout, own: dict[str, Decimal | None],
                  running: dict[str, Decimal | None]) -> dict[str, Decimal | None]:
    """Read the 合计 row; it must equal the sum of this table's rows, or, for a form split
    over sheets, of all rows so far."""
    totals: dict[str, Decimal | None] = {}
    for field in layout.spec.total_fields:
        column = layout.spec.column(field)
        # A sum may pass a row's bounds: only the sign of a 合计 of a column that is never negative is checked.
        unbounded = column.model_copy(update={"max": None, "min": column.min if column.min == 0 else None})
        number, _ = checker.value(layout, layout.total_row, unbounded, required=False)
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


