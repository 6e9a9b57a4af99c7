"""Header labels as people type them still find their column."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.labels import header_fields, is_note, is_total, match_header, normalize
from tests.support.campaigns import DEFAULT_FORMS, FORM1, FORM2

NUMBER = {FORM1.key: 1, FORM2.key: 2}  # the notice calls its forms 1 and 2
OFFICIAL = [(NUMBER[spec.key], column) for spec in DEFAULT_FORMS for column in spec.columns]
WIDE_BRACKETS = str.maketrans("()", "（）")


def fields(text: str) -> set[tuple[int, str]]:
    return {(NUMBER[m.form], m.column.field) for m in match_header(text, DEFAULT_FORMS)}


def test_it_reads_a_header_broken_over_lines() -> None:
    assert fields("预计初\n赛人数") == {(2, "prelim")}


def test_it_treats_full_and_half_width_brackets_alike() -> None:
    assert normalize("年度投资总额（亿元）") == normalize("年度投资总额(亿元)")
    assert fields("年度投资总额（亿元）") == {(1, "investment")}


def test_it_matches_a_header_that_contains_the_label_and_more() -> None:
    assert fields("预计参赛职工数（含第三方员工、临时工等）（人）") == {(1, "workers")}
    assert fields("劳动竞赛名称（全称）") == {(1, "competition"), (2, "competition")}


def test_it_keeps_private_columns_apart_from_their_totals() -> None:
    assert fields("预计参赛非公企业职工数（人）") == {(1, "private_workers")}
    assert fields("预计参赛非公企业数（家）") == {(1, "private_enterprises")}


def test_it_matches_no_column_for_unrelated_headers() -> None:
    for text in ("类别", "备注", "联系人", "合计", ""):
        assert fields(text) == set()


@given(st.sampled_from(OFFICIAL), st.data())
def test_any_official_label_with_stray_spaces_and_breaks_matches_its_column(official, data) -> None:
    form, column = official
    label = column.label.translate(WIDE_BRACKETS) if data.draw(st.booleans()) else column.label
    noisy = "".join(ch + data.draw(st.sampled_from(["", "", " ", "\n", "\u3000", "\r\n"])) for ch in label)
    assert (form, column.field) in fields(noisy)


@pytest.mark.parametrize("text", ["合计", "合 计", "总计", "合计：", "合\u3000计"])
def test_it_recognises_the_total_row_label(text: str) -> None:
    assert is_total(text, DEFAULT_FORMS)


@pytest.mark.parametrize("text", ["注：1.此表由各单位汇总填报", "填表说明", "联系人：张三", "注1：人数填整数"])
def test_it_recognises_note_rows(text: str) -> None:
    assert is_note(text)


def test_a_competition_that_starts_like_a_note_is_data() -> None:
    assert not is_note("注塑工职业技能竞赛") and not is_note("说明书编写大赛")


def test_it_reads_unit_and_date_from_one_line() -> None:
    line = "汇总单位（公章）：济南市总工会        填写日期：2024年2月20日"
    assert header_fields(line, DEFAULT_FORMS) == {"unit": "济南市总工会", "date": "2024年2月20日"}


def test_a_label_alone_leaves_its_value_to_the_next_cell() -> None:
    assert header_fields("汇总单位：", DEFAULT_FORMS) == {"unit": ""}


def test_both_forms_share_only_the_competition_column() -> None:
    shared = {c.field for c in FORM1.columns} & {c.field for c in FORM2.columns}
    assert shared == {"competition"}
