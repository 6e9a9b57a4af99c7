"""One in-memory shape for every editable table: a sheet, a Word table or a CSV file.

Merged cells are resolved: every cell of a merged range holds the range's value, and
the cells other than its top-left one are `covered`, so a reader can tell a value that
was typed from one that was spread by a merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from openpyxl.utils.cell import get_column_letter

from parsers.model import ProblemCode

# ((first_row, first_col), (last_row, last_col)), zero-based and inclusive, as calamine gives them.
MergedRange = tuple[tuple[int, int], tuple[int, int]]


@dataclass
class Grid:
    name: str  # the sheet's name, or 表格1 for the first Word table
    rows: list[list[Any]]
    covered: frozenset[tuple[int, int]] = frozenset()
    # Word tables have no column letters: their cells are named by row and column number.
    lettered: bool = True
    preamble: tuple[str, ...] = ()  # text above the table (Word paragraphs)

    @classmethod
    def build(cls, name: str, rows: Sequence[Sequence[Any]], merged: Iterable[MergedRange] = (),
              **kwargs: Any) -> Grid:
        table = [[_clean(v) for v in row] for row in rows]
        covered: set[tuple[int, int]] = set(kwargs.pop("covered", ()))
        for (r0, c0), (r1, c1) in merged:
            if r0 >= len(table) or c0 >= len(table[r0]):
                continue
            anchor = table[r0][c0]
            for r in range(r0, min(r1, len(table) - 1) + 1):
                row = table[r]
                row.extend([None] * (c1 + 1 - len(row)))
                for c in range(c0, c1 + 1):
                    if (r, c) != (r0, c0):
                        row[c] = anchor
                        covered.add((r, c))
        return cls(name, table, frozenset(covered), **kwargs)

    @property
    def height(self) -> int:
        return len(self.rows)

    @cached_property
    def width(self) -> int:  # read for every row scanned; the rows never change after build
        return max((len(r) for r in self.rows), default=0)

    def value(self, row: int, col: int) -> Any:
        cells = self.rows[row] if row < len(self.rows) else ()
        return cells[col] if col < len(cells) else None

    def text(self, row: int, col: int) -> str:
        value = self.value(row, col)
        return "" if value is None else str(value).strip()

    def is_covered(self, row: int, col: int) -> bool:
        return (row, col) in self.covered

    def ref(self, row: int, col: int) -> str:
        """`Sheet1!D7` for a sheet, `表格1第7行第4列` for a Word table."""
        if self.lettered:
            return f"{self.name}!{get_column_letter(col + 1)}{row + 1}"
        return f"{self.name}第{row + 1}行第{col + 1}列"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class FileRejected(Exception):
    """A reader refuses a file as a whole: encrypted, unsafe, too large or unreadable."""

    def __init__(self, code: ProblemCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason  # Chinese, completes "《name》…"
