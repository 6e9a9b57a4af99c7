"""Finds the notice's forms in grids: the header row(s), the columns, the body and 合计.

The header may sit on any row of any sheet and span two rows (a merged group header
above sub-headers); other columns (序号, 类别, 备注 …) are tolerated. The body ends at the
合计 row, a note row (注：…, 填表说明), the next form's title or header, or a long run of
blank rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from functools import lru_cache

from parsers.forms import Column, FormSet, FormSpec, ValueType
from parsers.grid import Grid
from parsers.numbers import money_unit
from parsers.labels import (Match, core, header_fields, is_note, is_subtotal, is_title, is_total, is_unit_note,
                            match_header, normalize)

MIN_DISTINCT = 2  # matched columns no other form in play has (a form with fewer needs them all)
MIN_MATCHED = 3  # (a form with fewer columns needs them all)
# A numbering column (序号) is filled in on empty template rows: it never makes a row data.
NUMBERING = frozenset({"序号", "编号"})
# Templates come with empty bordered rows before 合计; a longer blank run ends the table.
BLANK_RUN = 20
FIELD_SEARCH_ROWS = 10  # how far above a header 汇总单位 / 填写日期 are looked for
TRAILER_ROWS = 5  # …and below the table (填表人、填写日期 under it)


@dataclass
class Layout:
    grid: Grid
    spec: FormSpec
    forms: FormSet  # every form in play: the body ends at another's header or title
    header_rows: tuple[int, ...]
    columns: dict[str, int]  # field → column index
    money_units: dict[str, str] = field(default_factory=dict)  # field → unit of bare numbers
    body: list[int] = field(default_factory=list)
    total_row: int | None = None
    end: int = 0  # first row after the table
    unit: str | None = None
    date: str | None = None

    @property
    def first_col(self) -> int:
        return min(self.columns.values())


def _with_units(layout: Layout) -> Layout:
    for column in layout.spec.columns:
        if column.type is ValueType.DECIMAL and column.field in layout.columns:
            header = "".join(layout.grid.text(r, layout.columns[column.field]) for r in layout.header_rows)
            layout.money_units[column.field] = money_unit(header)
    return layout


def find_layouts(grids: list[Grid], forms: FormSet) -> list[Layout]:
    found = []
    for grid in grids:
        row, floor = 0, 0
        while row < grid.height:
            layout = header_at(grid, row, forms)
            if layout is None:
                row += 1
                continue
            _read_body(layout)
            _read_fields(layout, floor)
            found.append(layout)
            row = floor = layout.end
    return found


def header_at(grid: Grid, row: int, forms: FormSet) -> Layout | None:
    """The form whose header starts at `row`, with its columns; None when it is no header."""
    top = _assign(grid, (row,), forms)
    if row + 1 < grid.height and len(top.columns) >= MIN_DISTINCT:
        # Two rows form one header when together they name more columns than the top row
        # and no fewer than the row below: a group header above its sub-headers.
        double, below = _assign(grid, (row, row + 1), forms), _assign(grid, (row + 1,), forms)
        if double.qualifies and len(double.columns) > len(top.columns) and len(double.columns) >= len(below.columns):
            return _with_units(Layout(grid, double.spec, forms, double.rows, double.columns))
    return _with_units(Layout(grid, top.spec, forms, top.rows, top.columns)) if top.qualifies else None


@dataclass
class _Candidate:
    spec: FormSpec
    columns: dict[str, int]
    rows: tuple[int, ...]
    distinct: frozenset[str]  # the spec's fields no other form in play has

    @property
    def distinct_found(self) -> int:
        return len(set(self.columns) & self.distinct)

    @property
    def qualifies(self) -> bool:
        return (self.distinct_found >= min(MIN_DISTINCT, len(self.distinct))
                and len(self.columns) >= min(MIN_MATCHED, len(self.spec.columns)))


@lru_cache(maxsize=8)
def distinct_fields(forms: FormSet) -> dict[str, frozenset[str]]:
    """Per form key, the fields whose labels (and aliases) name no column of another form
    in play: only those tell the forms apart (序号 and a shared 竞赛名称 do not). A form
    defined the same way in two campaigns is one form to the eye and is not compared."""
    names = {spec.key: {c.field: _names(c) for c in spec.columns} for spec in forms}
    shapes = {spec.key: frozenset(frozenset(n) for n in names[spec.key].values()) for spec in forms}
    found = {}
    for spec in forms:
        others = set().union(*(n for key, cols in names.items() if shapes[key] != shapes[spec.key]
                                for n in cols.values()))
        found[spec.key] = frozenset(f for f, n in names[spec.key].items() if not n & others)
    return found


def _names(column: Column) -> frozenset[str]:
    spellings = (column.label, *column.aliases)
    return frozenset(normalize(n) for n in spellings) | frozenset(core(n) for n in spellings)


def _assign(grid: Grid, rows: tuple[int, ...], forms: FormSet) -> _Candidate:
    """The form these header rows fit best, each matched field with its column."""
    per_column: dict[int, tuple[Match, ...]] = {}
    for col in range(grid.width):
        texts = [grid.text(r, col) for r in rows]
        candidates = [texts[-1]]
        if len(texts) == 2 and texts[0] != texts[1]:
            candidates += [texts[0] + texts[1], texts[0]]
        matches = [m for text in candidates if text for m in match_header(text, forms)]
        if len(texts) == 2 and texts[1]:
            matches = [_part(m, texts[1], forms) for m in matches]
        if matches:
            top = max(m.rank for m in matches)
            per_column[col] = tuple(m for m in matches if m.rank == top)
    distinct = distinct_fields(forms)
    choices = []
    for index, spec in enumerate(forms):
        columns: dict[str, tuple[tuple[int, int], int]] = {}
        for col, matches in per_column.items():
            for m in matches:
                score = (m.rank, -col)
                if m.form == spec.key and (m.column.field not in columns or score > columns[m.column.field][0]):
                    columns[m.column.field] = (score, col)
        candidate = _Candidate(spec, {f: c for f, (_, c) in columns.items()}, rows, distinct[spec.key])
        choices.append(((candidate.distinct_found, len(columns), -index), candidate))
    return max(choices, key=lambda choice: choice[0])[1]


def _part(match: Match, sub_header: str, forms: FormSet) -> Match:
    """A sub-header naming a part (`其中：非公企业`) under a group header (`预计参赛企业数`)
    is the column defined as that part of the group (Column.part_of / part_label)."""
    spec = forms.get(match.form)
    key = normalize(sub_header)
    part = next((c for c in spec.columns if c.part_of == match.column.field
                 and normalize(c.part_label) in key), None) if spec is not None else None
    return match if part is None else Match(match.form, part, match.exact)


def _read_body(layout: Layout) -> None:
    grid, forms = layout.grid, layout.forms
    data_fields = [f for f in layout.columns if core(layout.spec.column(f).label) not in NUMBERING]
    last = layout.header_rows[-1]
    for row in range(last + 1, grid.height):
        lead = _lead_text(grid, row, max(layout.columns.values()))
        if lead is not None and (is_note(lead) or is_title(lead, forms) or header_fields(lead, forms)):
            break
        if lead is not None and is_total(lead, forms):
            layout.total_row = last = row
            break
        if lead is not None and is_subtotal(lead) or not layout.body and _unit_row(layout, row):
            last = row
            continue
        if all(grid.value(row, layout.columns[f]) is None for f in data_fields) or _spread_row(layout, row):
            if row - last > BLANK_RUN:
                break
        elif header_at(grid, row, forms) is not None:
            break
        else:
            layout.body.append(row)
            last = row
    layout.end = last + 1


def _unit_row(layout: Layout, row: int) -> bool:
    """A row of units such as `（家）`, `（人）` right under the header."""
    texts = [layout.grid.value(row, c) for c in layout.columns.values()]
    filled = [t for t in texts if t is not None]
    return bool(filled) and all(isinstance(t, str) and is_unit_note(t) for t in filled)


def _lead_text(grid: Grid, row: int, last_col: int) -> str | None:
    """The first text in the row (past a 序号), where 合计 or a note would be written."""
    return next((v for c in range(last_col + 1) if isinstance(v := grid.value(row, c), str)), None)


def _spread_row(layout: Layout, row: int) -> bool:
    """Every cell of the row is spread by merges from elsewhere: nothing was typed here."""
    return all(layout.grid.is_covered(row, c) or layout.grid.value(row, c) is None for c in layout.columns.values())


def _read_fields(layout: Layout, floor: int) -> None:
    grid = layout.grid
    above = range(max(floor, layout.header_rows[0] - FIELD_SEARCH_ROWS), layout.header_rows[0])
    below = range(layout.end, min(grid.height, layout.end + TRAILER_ROWS))
    lines = [[text] for text in grid.preamble] + [_row_texts(grid, r) for r in (*above, *below)]
    for cells in lines:
        for i, text in enumerate(cells):
            for key, value in header_fields(text, layout.forms).items():
                if not value and i + 1 < len(cells) and not header_fields(cells[i + 1], layout.forms):
                    value = cells[i + 1]  # the label in one cell, its value in the next
                if value and getattr(layout, key) is None:
                    setattr(layout, key, value)


def _row_texts(grid: Grid, row: int) -> list[str]:
    texts = []
    for col in range(grid.width):
        value = grid.value(row, col)
        if value is None or grid.is_covered(row, col):
            continue
        texts.append(value.date().isoformat() if isinstance(value, dt.datetime) else
                     value.isoformat() if isinstance(value, dt.date) else str(value).strip())
    return texts
