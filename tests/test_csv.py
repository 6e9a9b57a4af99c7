"""Forms saved as CSV: the encoding and delimiter are detected, not assumed."""

from __future__ import annotations

import pytest

from parsers.csvfile import decode
from parsers.model import FileKind
from tests.fixtures import forms as fx
from tests.fixtures.forms import parse


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8", "utf-8-sig"])
def test_it_reads_form2_in_the_encodings_excel_and_wps_write(encoding: str) -> None:
    report = parse(fx.csv_file(fx.form_sheet(2, total="value"), encoding=encoding), "济南市.csv")
    assert report.kind is FileKind.CSV and report.problems == []
    (table,) = report.forms
    assert table.unit == fx.UNIT and [r.values["competition"] for r in table.rows] == [r[0] for r in fx.FORM2_ROWS]


def test_it_sniffs_a_tab_delimiter() -> None:
    report = parse(fx.csv_file(fx.form_sheet(1, total="value"), delimiter="\t"), "tab.csv")
    assert len(report.forms[0].rows) == 3 and report.forms[0].rows[0].values["investment"] == str(fx.FORM1_ROWS[0][6])


def test_a_short_gb18030_text_is_not_mistaken_for_utf16() -> None:
    assert decode("竞赛名称,人数\n焊工比赛,30\n".encode("gb18030")) == "竞赛名称,人数\n焊工比赛,30\n"


def test_a_character_outside_gbk_survives_gb18030() -> None:
    text = "竞赛名称,承办单位\n技能大赛,𠀀字号公司\n" * 5
    assert decode(text.encode("gb18030")) == text


def test_cells_are_named_like_the_sheet_excel_shows() -> None:
    bad = [list(r) for r in fx.FORM2_ROWS]
    bad[1][5] = "待定"
    report = parse(fx.csv_file(fx.form_sheet(2, bad, title=False)), "济南市.csv")
    assert [(p.code, p.cell) for p in report.problems] == [("non_numeric", "济南市!G4")]
