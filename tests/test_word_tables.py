"""Forms filled in as Word tables (.docx)."""

from __future__ import annotations

import io

import docx
import pytest

from parsers.model import FileKind
from tests.fixtures import forms as fx
from tests.fixtures.forms import codes, parse


@pytest.mark.parametrize("form", [1, 2])
def test_it_reads_each_form_from_a_word_table(form: int) -> None:
    report = parse(fx.docx_file(fx.form_sheet(form)), f"表{form}.docx")
    assert report.kind is FileKind.DOCX and report.problems == []
    (table,) = report.forms
    assert (table.form, table.location, len(table.rows)) == (fx.KEYS[form], "表格1", len(fx.SAMPLE_ROWS[form]))


def test_it_reads_unit_and_date_from_the_paragraphs_above_the_table() -> None:
    table = parse(fx.docx_file(fx.form_sheet(2)), "a.docx").forms[0]
    assert (table.unit, table.filled_date) == (fx.UNIT, fx.DATE)


def test_a_horizontally_merged_total_label_is_read_once() -> None:
    report = parse(fx.docx_file(fx.form_sheet(2), merge_total_label=True), "a.docx")
    assert report.forms[0].totals == {"prelim": 500, "final": 50} and report.problems == []


def test_a_merged_number_is_counted_once() -> None:
    document = docx.Document(io.BytesIO(fx.docx_file(fx.form_sheet(2, total="value"))))
    table = document.tables[0]
    # Both competitions share one merged 初赛 cell of 500: the 合计 must still be 500.
    table.cell(1, 5).text, table.cell(2, 5).text = "500", ""
    table.cell(1, 5).merge(table.cell(2, 5))
    out = io.BytesIO()
    document.save(out)
    report = parse(out.getvalue(), "m.docx")
    assert [r.values["prelim"] for r in report.forms[0].rows] == [500, None]
    assert "total_mismatch" not in codes(report)


def test_cells_in_a_word_table_are_named_by_row_and_column() -> None:
    bad = [list(r) for r in fx.FORM2_ROWS]
    bad[0][4] = "约300"
    report = parse(fx.docx_file(fx.form_sheet(2, bad)), "w.docx")
    assert [p.cell for p in report.problems if p.code == "non_numeric"] == ["表格1第2行第6列"]


def test_a_document_without_the_form_is_an_unknown_layout() -> None:
    document = docx.Document()
    document.add_paragraph("关于报送竞赛项目的函")
    out = io.BytesIO()
    document.save(out)
    assert codes(parse(out.getvalue(), "letter.docx")) == ["unknown_layout"]
