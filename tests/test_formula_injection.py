"""Formula injection: what a sender typed reaches staff's workbook as text, never as a formula.

A unit's mail goes through `intake.pipeline.ingest` (real archive, parser worker, database)
with form cells, a sheet name and an attachment filename carrying spreadsheet payloads; the
consolidated workbook is then read back with openpyxl and through LibreOffice headless. The
合计 SUMs must stay the only formulas and still compute.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from tests.support.campaigns import FORM1, FORM2
from typing import Any

import openpyxl
import pytest
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from intake.app import App
from intake.pipeline import Location, ingest
from intake.samples import mime_message
from notifications.workbook import HEADER_ROW, PROBLEMS_SHEET, UNSHOWABLE, build_workbook, sheet_title
from parsers.forms import FormSpec, ValueType
from tests.fixtures.forms import Sheet, csv_file, form_sheet
from tests.support.intake_env import DEADLINE, intake_settings

PAYLOADS = ['=HYPERLINK("http://evil.example","x")', "=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1)"]
# Attachment names lose everything up to a "/" (intake.mime.safe_filename), so these carry none.
FORM1_NAME = '=HYPERLINK("mailto:x@evil.example","x").xlsx'
FORM2_NAME = "=cmd|' -C calc'!A0.xlsx"
SHEET_NAME = "=SUM(1,1)"  # becomes the sheet part of every cell reference in a problem
SENDER = ("济南市总工会", "jinan@example.cn")
ARRIVED = DEADLINE - dt.timedelta(days=1)
# Form 1: the payloads as 竞赛名称 and 参赛工程项目名称, then one payload where a number belongs.
FORM1_ROWS: list[list[Any]] = [[p, p, 10, 5, 100, 50, Decimal("1.5")] for p in PAYLOADS] + [
    ["正常竞赛", "正常项目", PAYLOADS[1], 1, 10, 5, Decimal("2")],
]
# Form 2: the payloads as 主办单位, 承办单位, 竞赛项目 and 决赛时间地点 too.
FORM2_ROWS: list[list[Any]] = [[p, p, p, p, 30, 3, p] for p in PAYLOADS]


def text_xlsx(sheet: Sheet) -> bytes:
    """The sheet as a unit's xlsx whose str cells are text cells, as Excel stores '=... typed."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet.name
    for (r, c), value in sheet.cells.items():
        cell = ws.cell(r + 1, c + 1, float(value) if isinstance(value, Decimal) else value)
        if isinstance(value, str):
            cell.data_type = "s"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def submit(tmp_path: Path, attachments: list[tuple[str, bytes]]) -> bytes:
    """One mail from 济南 through the whole pipeline; the consolidated workbook afterwards."""
    settings = intake_settings(tmp_path)
    raw = mime_message(sender=SENDER, subject="济南市总工会竞赛项目申报", body="请查收。",
                       attachments=attachments, date=ARRIVED)
    with App(settings) as app:
        ingest(app, raw, ARRIVED, Location(app.account, "INBOX", 1, 1))
        with app.db.session() as session:
            return build_workbook(session, settings, now=ARRIVED)


@pytest.fixture(scope="module")
def xlsx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return submit(tmp_path_factory.mktemp("injection"), [
        (FORM1_NAME, text_xlsx(form_sheet(1, FORM1_ROWS, name=SHEET_NAME, total="value"))),
        (FORM2_NAME, text_xlsx(form_sheet(2, FORM2_ROWS, total="value"))),
    ])


@pytest.fixture(scope="module")
def book(xlsx: bytes) -> Workbook:
    return openpyxl.load_workbook(io.BytesIO(xlsx))


def body(ws: Worksheet, rows: int) -> list[list[Cell]]:
    """The unit's rows without the 报送单位 column."""
    return [list(row)[1:] for row in ws.iter_rows(min_row=HEADER_ROW + 1, max_row=HEADER_ROW + rows)]


def values(cells: list[Cell]) -> list[Any]:
    return [c.value for c in cells]


def expected_totals(rows: list[list[Any]], spec: FormSpec) -> dict[str, Decimal]:
    """Column letter -> the sum of the numbers the unit wrote (a payload in a number column is none)."""
    lead = len(spec.columns) - len(rows[0])  # form 2's 序号, which the sample rows leave out
    numbers = [i for i, column in enumerate(spec.columns[lead:]) if column.type is not ValueType.TEXT]
    typed = [[Decimal(str(v)) if isinstance(v, int | Decimal) else Decimal(0) for v in r] for r in rows]
    return {get_column_letter(2 + lead + i): sum((r[i] for r in typed), Decimal(0)) for i in numbers}


def total_cells() -> set[tuple[str, str]]:
    found = set()
    for spec, rows in ((FORM1, FORM1_ROWS), (FORM2, FORM2_ROWS)):
        total_row = HEADER_ROW + len(rows) + 1
        found |= {(sheet_title(spec), f"{letter}{total_row}") for letter in expected_totals(rows, spec)}
    return found


def test_the_sum_totals_are_the_only_formulas_in_the_workbook(book: Workbook) -> None:
    formulas = {(ws.title, c.coordinate) for ws in book for row in ws.iter_rows() for c in row if c.data_type == "f"}
    assert formulas == total_cells()
    total_row = HEADER_ROW + len(FORM1_ROWS) + 1
    assert book[sheet_title(FORM1)][f"D{total_row}"].value == f"=SUM(D{HEADER_ROW + 1}:D{total_row - 1})"


def test_form_1_text_cells_are_text_cells_reading_back_exactly_as_typed(book: Workbook) -> None:
    rows = body(book[sheet_title(FORM1)], len(FORM1_ROWS))
    assert [values(r[:2]) for r in rows] == [r[:2] for r in FORM1_ROWS]
    assert {c.data_type for r in rows for c in r[:2]} == {"s"}
    assert [values(r[2:6]) for r in rows[:-1]] == [r[2:6] for r in FORM1_ROWS[:-1]]  # numbers stay numbers
    assert {c.data_type for r in rows[:-1] for c in r[2:]} == {"n"}
    # The payload typed where a number belongs is shown as typed (issue 13), as text.
    assert (rows[-1][2].value, rows[-1][2].data_type) == (PAYLOADS[1], "s")


def test_form_2_text_cells_are_text_cells_reading_back_exactly_as_typed(book: Workbook) -> None:
    rows = body(book[sheet_title(FORM2)], len(FORM2_ROWS))
    assert [values(r[1:]) for r in rows] == FORM2_ROWS
    assert {c.data_type for r in rows for c in r[1:5] + r[7:]} == {"s"}
    assert {c.data_type for r in rows for c in r[5:7]} == {"n"}


def test_the_problem_sheet_shows_filename_cell_reference_and_quoted_value_as_text(book: Workbook) -> None:
    ws = book[PROBLEMS_SHEET]
    (row,) = [r for r in ws.iter_rows(min_row=2) if r[4].value == "non_numeric"]
    unit, file, cell, _level, _code, message = row
    assert file.value == FORM1_NAME
    assert cell.value.startswith(f"{SHEET_NAME}!")
    assert PAYLOADS[1] in message.value
    assert {c.data_type for c in row} == {"s"}


def test_control_characters_from_a_csv_form_do_not_stop_the_workbook(tmp_path: Path) -> None:
    rows = [["竞赛\x07名称", "=cmd|' /C calc'!A0\x1b[31m", 10, 5, 100, 50, Decimal("1.5")]]
    xlsx = submit(tmp_path, [("附件1.csv", csv_file(form_sheet(1, rows, total="value"), encoding="utf-8"))])
    ws = openpyxl.load_workbook(io.BytesIO(xlsx))[sheet_title(FORM1)]
    first = HEADER_ROW + 1
    assert [ws.cell(first, 2).value, ws.cell(first, 3).value] == [
        f"竞赛{UNSHOWABLE}名称", f"=cmd|' /C calc'!A0{UNSHOWABLE}[31m"
    ]
    assert ws.cell(first, 3).data_type == "s"


# --- LibreOffice -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def as_libreoffice_shows(xlsx: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[list[str]]]:
    """Every sheet as LibreOffice computes it: cell values (not formulas), one CSV per sheet."""
    folder = tmp_path_factory.mktemp("libreoffice")
    source = folder / "汇总.xlsx"
    source.write_bytes(xlsx)
    # UTF-8, values not as formatted, no formulas, every sheet to its own "汇总-<sheet>.csv".
    csv_filter = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
    result = subprocess.run(
        ["soffice", f"-env:UserInstallation=file://{folder / 'profile'}", "--headless",
         "--convert-to", csv_filter, "--outdir", str(folder / "out"), str(source)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return {path.stem.removeprefix("汇总-"): list(csv.reader(io.StringIO(path.read_text("utf-8"))))
            for path in (folder / "out").glob("*.csv")}


def csv_rows(sheets: dict[str, list[list[str]]], spec: FormSpec, rows: int) -> Iterator[list[str]]:
    yield from (r[1:] for r in sheets[sheet_title(spec)][HEADER_ROW:HEADER_ROW + rows])


def test_libreoffice_shows_the_payloads_as_literal_text(as_libreoffice_shows: dict[str, list[list[str]]]) -> None:
    form1 = list(csv_rows(as_libreoffice_shows, FORM1, len(FORM1_ROWS)))
    assert [r[:2] for r in form1] == [r[:2] for r in FORM1_ROWS]
    form2 = list(csv_rows(as_libreoffice_shows, FORM2, len(FORM2_ROWS)))
    assert [r[1:5] + r[7:] for r in form2] == [r[:4] + r[6:] for r in FORM2_ROWS]
    problems = as_libreoffice_shows[PROBLEMS_SHEET]
    (problem,) = [r for r in problems if r[4] == "non_numeric"]
    assert problem[1] == FORM1_NAME and problem[2].startswith(f"{SHEET_NAME}!")


def test_libreoffice_computes_the_sum_totals(as_libreoffice_shows: dict[str, list[list[str]]]) -> None:
    for spec, rows in ((FORM1, FORM1_ROWS), (FORM2, FORM2_ROWS)):
        total = as_libreoffice_shows[sheet_title(spec)][HEADER_ROW + len(rows)]
        expected = expected_totals(rows, spec)
        assert total[0] == "合计"
        assert {letter: Decimal(total[ord(letter) - ord("A")]) for letter in expected} == expected
