"""Forms as data: a second notice (五一劳动奖章推荐) read from its definition alone, several
campaigns' forms told apart, and a campaign file's mistakes explained in Chinese."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from config.campaigns import CampaignFileError, campaign_from_entry
from config.settings import LimitsSettings, ParsingSettings
from intake.samples import form_workbook, sample_rows, word_table
from parsers.dispatch import parse_file
from parsers.forms import FormSet
from parsers.model import FileReport
from tests.support.campaigns import BOTH, LDJS, WUYI

CANDIDATES = WUYI.form("candidates")
NAME = "推荐人选.xlsx"


def parse(data: bytes, name: str = NAME, forms: FormSet = BOTH) -> FileReport:
    return parse_file(data, name, limits=LimitsSettings(), parsing=ParsingSettings(seal_detection=False), forms=forms)


def candidates(*changes: dict[str, Any]) -> list[dict[str, Any]]:
    rows = sample_rows(CANDIDATES, 3)
    for row, change in zip(rows, changes):
        row.update(change)
    return rows


def problems(rows: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    report = parse(form_workbook(CANDIDATES, CANDIDATES.title, "济南市总工会", rows))
    return [(p.code.value, p.cell, p.message) for p in report.problems]


def test_the_second_notice_is_read_from_an_xlsx_with_typed_dates_and_scores() -> None:
    report = parse(form_workbook(CANDIDATES, CANDIDATES.title, "济南市总工会", candidates()))
    (table,) = report.forms
    assert report.problems == [] and (table.form, table.unit) == (CANDIDATES.key, "济南市总工会")
    assert [r.values for r in table.rows] == candidates()
    assert table.rows[0].values["birth_date"] == "1985-06-01" and table.rows[0].values["score"] == "92.5"


def test_the_second_notice_is_read_from_a_word_table() -> None:
    report = parse(word_table(CANDIDATES, CANDIDATES.title, "济南市总工会", candidates()), "推荐人选.docx")
    (table,) = report.forms
    assert report.problems == [] and [r.values for r in table.rows] == candidates()
    assert (table.unit, table.filled_date) == ("济南市总工会", "2024年2月21日")


def test_a_form_without_totals_has_no_total_row_and_its_total_line_is_no_data() -> None:
    rows = candidates()
    book = form_workbook(CANDIDATES, CANDIDATES.title, "济南市总工会", [*rows, {"seq": "合计", "score": "276"}])
    report = parse(book)
    (table,) = report.forms
    assert report.problems == [] and table.totals is None and len(table.rows) == len(rows)


def test_a_score_above_the_full_score_breaks_the_row_rule() -> None:
    assert problems(candidates({"score": "92.5", "full_score": "90"})) == [
        ("rule_violated", "推荐人选!E4", "《推荐人选.xlsx》推荐人选!E4：考评得分（92.5）大于满分（90），请核实。")]


def test_a_score_above_its_column_maximum_is_out_of_range() -> None:
    assert problems(candidates({}, {"score": "120", "full_score": "150"})) == [
        ("out_of_range", "推荐人选!E5", "《推荐人选.xlsx》推荐人选!E5：考评得分（120）超出范围（0–100），请核实。")]


def test_a_birth_date_that_is_no_date_is_named_and_kept_as_written() -> None:
    rows = candidates({}, {}, {"birth_date": "八五年六月"})
    report = parse(form_workbook(CANDIDATES, CANDIDATES.title, "济南市总工会", rows))
    assert [(p.code.value, p.cell) for p in report.problems] == [("not_a_date", "推荐人选!D6")]
    assert "出生年月“八五年六月”不是日期" in report.problems[0].message
    row = report.forms[0].rows[2]
    assert row.values["birth_date"] is None and row.as_written == {"birth_date": "八五年六月"}


@pytest.mark.parametrize("written", ["1985.06", "1985年6月", "1985/6/1", "1985-06-01"])
def test_a_birth_date_in_any_common_spelling_reads_as_one_date(written: str) -> None:
    report = parse(word_table(CANDIDATES, CANDIDATES.title, "济南市总工会", candidates({"birth_date": written})),
                   "推荐人选.docx")
    assert report.problems == [] and report.forms[0].rows[0].values["birth_date"] == "1985-06-01"


def test_with_both_campaigns_in_play_each_sheet_is_recognised_as_its_own_form() -> None:
    form1 = LDJS.form("form1")
    ldjs = parse(form_workbook(form1, form1.title, "济南市总工会"), "附件1.xlsx")
    wuyi = parse(form_workbook(CANDIDATES, CANDIDATES.title, "济南市总工会"))
    assert [t.form for t in ldjs.forms] == ["ldjs-2024/form1"] and ldjs.problems == []
    assert [t.form for t in wuyi.forms] == ["wuyi-2024/candidates"] and wuyi.problems == []


def test_a_form_of_a_campaign_not_in_play_is_not_recognised() -> None:
    report = parse(form_workbook(CANDIDATES, CANDIDATES.title, "济南市总工会"), forms=FormSet(LDJS.forms))
    assert report.forms == [] and [p.code.value for p in report.problems] == ["unknown_layout"]


def _campaign(form: dict[str, Any]) -> None:
    entry = {"id": "t", "name": "测试征集", "deadline": dt.datetime(2024, 3, 1, 17, tzinfo=dt.timezone.utc),
             "forms": [{"id": "f", "title": "测试表", "short_title": "测试", **form}]}
    campaign_from_entry(entry, Path("."))


@pytest.mark.parametrize(("form", "says"), [
    ({"columns": [{"field": "a", "label": "金额", "type": "money"}]}, "只能是 'text', 'int', 'decimal' 或 'date'"),
    ({"columns": [{"field": "a", "label": "甲", "type": "int"}], "rules": [{"check": "a <= b"}]},
     "规则「a <= b」用到了不存在的栏 b"),
    ({"columns": [{"field": "a", "label": "姓名"}, {"field": "b", "label": "姓 名"}]}, "表头文字“姓名”对应了不止一栏"),
    ({"columns": [{"field": "a", "label": "姓名"}, {"field": "b", "label": "人数", "type": "int"}], "totals": ["a"]},
     "合计栏 a 不是数字栏"),
])
def test_a_form_definition_mistake_is_explained_in_chinese(form: dict[str, Any], says: str) -> None:
    with pytest.raises(CampaignFileError, match=says):
        _campaign(form)
