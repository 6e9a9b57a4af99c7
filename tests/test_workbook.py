from __future__ import annotations

import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pdfplumber
import pytest
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook

from intake.tracking import settle_current
from notifications.workbook import PROBLEMS_SHEET, STATUS_SHEET, UNIT_COLUMN, build_workbook, sheet_title
from tests.support.campaigns import FORM1, FORM2
from parsers.model import ProblemCode
from storage.models import SubmissionStatus as S
from tests.support.submissions import add_submission, before_deadline, make_db, make_settings

SETTINGS = make_settings()
NOW = datetime(2024, 2, 24, 1, 0, tzinfo=UTC)
BAD_NUMBER = (ProblemCode.NON_NUMERIC, "「预计参赛企业数」应填数字", "青岛.xlsx", "Sheet1!C5")


@pytest.fixture(scope="module")
def xlsx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """济南 resubmitted (3 + 2 rows current, 5 + 5 superseded), 青岛 invalid, one unmatched mail."""
    db = make_db(tmp_path_factory.mktemp("workbook"))
    with db.session() as s:
        for unit, status, hours, extra in [
            ("济南市总工会", S.ACCEPTED, 30, {"form1": 5, "form2": 5}),
            ("济南市总工会", S.ACCEPTED, 20, {"form1": 3, "form2": 2}),
            ("青岛市总工会", S.INVALID, 10, {"form1": 2, "problems": [BAD_NUMBER]}),
            (None, S.ACCEPTED, 5, {"form1": 4, "sender": "who@qq.com"}),
        ]:
            settle_current(s, add_submission(s, unit=unit, status=status, arrived_at=before_deadline(hours=hours), **extra))
        return build_workbook(s, SETTINGS, now=NOW)


@pytest.fixture(scope="module")
def book(xlsx: bytes) -> Workbook:
    return load_workbook(io.BytesIO(xlsx))


def column(ws, col: str) -> list:
    return [c.value for c in ws[col]]


def test_it_has_one_sheet_per_form_then_status_and_problems(book: Workbook) -> None:
    assert book.sheetnames == [sheet_title(FORM1, 1), sheet_title(FORM2, 2), STATUS_SHEET, PROBLEMS_SHEET]
    assert book.sheetnames[:2] == ["表1 重点工程类", "表2 技术技能类、创新创意类、工作推进类"]


def test_each_form_sheet_has_the_campaign_title_unit_and_date_lines(book: Workbook) -> None:
    for number, spec in enumerate(SETTINGS.campaign.forms, 1):
        ws, title = book[sheet_title(spec, number)], spec.title
        assert ws["A1"].value == title
        last = chr(ord("A") + len(spec.columns))
        assert f"A1:{last}1" in {r.coord for r in ws.merged_cells.ranges}
        line = [c.value for c in ws[2] if c.value]
        assert line[0].startswith("汇总单位") and line[1] == "填写日期：2024年2月24日"


def test_the_headers_are_the_notices_after_a_leading_unit_column(book: Workbook) -> None:
    for number, spec in ((1, FORM1), (2, FORM2)):
        ws = book[sheet_title(spec, number)]
        assert [c.value for c in ws[3]] == [UNIT_COLUMN, *(c.label for c in spec.columns)]
        assert ws["B3"].alignment.wrap_text


def test_only_current_submissions_rows_appear_and_unmatched_ones_are_left_out(book: Workbook) -> None:
    units = column(book[sheet_title(FORM1, 1)], "A")[3:-1]
    assert units == ["济南市总工会"] * 3 + ["青岛市总工会（需修改）"] * 2
    assert column(book[sheet_title(FORM2, 2)], "A")[3:-1] == ["济南市总工会"] * 2


def test_the_rows_carry_the_stored_values_in_the_notices_columns(book: Workbook) -> None:
    ws = book[sheet_title(FORM1, 1)]
    assert [c.value for c in ws[4]][:4] == ["济南市总工会", "重点工程劳动竞赛0", "工程项目0", 10]
    assert float(ws.cell(4, 8).value) == 12.5
    assert ws.cell(4, 8).number_format == "#,##0.00"


def test_the_total_row_sums_each_numeric_column_with_live_formulas(book: Workbook) -> None:
    ws = book[sheet_title(FORM1, 1)]
    total = [c.value for c in ws[9]]
    assert total[0] == "合计"
    assert total[1:3] == [None, None]
    assert total[3:] == [f"=SUM({col}4:{col}8)" for col in "DEFGH"]
    form2_total = [c.value for c in book[sheet_title(FORM2, 2)][6]]
    assert form2_total[6:8] == ["=SUM(G4:G5)", "=SUM(H4:H5)"]


def test_form_sheets_are_bordered_frozen_and_set_up_for_a4_landscape(book: Workbook) -> None:
    for number, spec in ((1, FORM1), (2, FORM2)):
        ws = book[sheet_title(spec, number)]
        assert ws.freeze_panes == "A4"
        assert ws["C5"].border.left.style == "thin"
        assert ws.page_setup.orientation == "landscape"
        assert str(ws.page_setup.paperSize) == ws.PAPERSIZE_A4
        assert (int(ws.page_setup.fitToWidth), int(ws.page_setup.fitToHeight)) == (1, 0)
        assert ws.sheet_properties.pageSetUpPr.fitToPage
        assert str(ws.print_title_rows) == "$1:$3"
        assert all(8 <= ws.column_dimensions[c].width <= 40 for c in "ABCDEFGH")


def test_the_status_sheet_lists_every_unit_with_its_state(book: Workbook) -> None:
    ws = book[STATUS_SHEET]
    assert column(ws, "B")[1:] == [u.name for u in SETTINGS.units]
    assert column(ws, "D")[1:] == ["已受理", "需修改", "未报送", "未报送", "未报送"]
    assert ws["E2"].value == "2024-02-24 21:00"
    assert ws.freeze_panes == "A2"


def test_the_problem_sheet_names_unit_file_cell_code_and_message(book: Workbook) -> None:
    rows = [[c.value for c in row] for row in book[PROBLEMS_SHEET].iter_rows(min_row=2)]
    assert ["青岛市总工会", "青岛.xlsx", "Sheet1!C5", "错误", "non_numeric", "「预计参赛企业数」应填数字"] in rows
    assert any(r[0] == "未识别（who@qq.com）" and r[4] == "unmatched" for r in rows)


def test_libreoffice_opens_it_and_prints_four_pages_with_computed_totals(xlsx: bytes, tmp_path: Path) -> None:
    source = tmp_path / "汇总.xlsx"
    source.write_bytes(xlsx)
    result = subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation=file://{tmp_path / 'profile'}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    pdf = tmp_path / "汇总.pdf"
    assert result.returncode == 0, result.stderr
    assert pdf.stat().st_size > 0
    with pdfplumber.open(pdf) as doc:
        assert len(doc.pages) == 4
        first = doc.pages[0].extract_text()
    assert FORM1.title in first
    assert "62.50" in first  # 5 rows × 12.5 亿元: LibreOffice evaluated the 合计 formula
