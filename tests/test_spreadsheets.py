"""Workbooks (xlsx, xls) in the notice's layout and in the layouts units make of it."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from config.settings import LimitsSettings
from parsers.model import FileKind, Row
from parsers.spreadsheet import read_xlsx_openpyxl
from tests.fixtures import forms as fx
from tests.fixtures.forms import codes, parse

FORM1_TOTALS = {"enterprises": Decimal(27), "private_enterprises": Decimal(19), "workers": Decimal(3500),
                "private_workers": Decimal(2400), "investment": Decimal("87.9")}


@pytest.mark.parametrize("form", [1, 2])
def test_it_reads_the_notice_layout_of_each_form(form: int) -> None:
    report = parse(fx.notice_xlsx(form), f"济南市表{form}.xlsx")
    assert report.kind is FileKind.XLSX and report.problems == []
    (table,) = report.forms
    assert (table.form, table.location, table.unit, table.filled_date) == (fx.KEYS[form], "Sheet1", fx.UNIT, fx.DATE)
    assert len(table.rows) == len(fx.SAMPLE_ROWS[form])


def test_it_types_every_field_of_a_form1_row_and_notes_where_it_starts() -> None:
    row = parse(fx.notice_xlsx(1), "a.xlsx").forms[0].rows[0]
    assert row == Row({"competition": "济南市重点工程建设劳动竞赛", "project": "济南轨道交通3号线二期工程",
                       "enterprises": 12, "private_enterprises": 8, "workers": 1500, "private_workers": 900,
                       "investment": "45.6"}, cell="Sheet1!A4")


def test_it_types_every_field_of_a_form2_row() -> None:
    row = parse(fx.notice_xlsx(2), "a.xlsx").forms[0].rows[1]
    assert row == Row({"seq": "2", "competition": "济南市数控车工技能大赛", "organizer": "济南市总工会",
                       "undertaker": "济南职业学院", "event": "数控车工", "prelim": 200, "final": 20,
                       "final_time_place": "2024年9月 章丘"}, cell="Sheet1!A5")


def test_it_reads_the_cached_values_of_sum_formulas_in_the_total_row() -> None:
    assert parse(fx.notice_xlsx(1), "a.xlsx").forms[0].totals == FORM1_TOTALS


def test_it_reads_numbers_stored_as_text() -> None:
    report = parse(fx.xlsx(fx.form_sheet(1, as_text=True)), "a.xlsx")
    assert report.problems == []
    assert report.forms[0].rows[2].values["workers"] == 1200 and report.forms[0].rows[0].values["investment"] == "45.6"


def test_it_reads_all_rows_of_a_wps_file_that_declares_a1_as_its_dimension() -> None:
    data = fx.xlsx(fx.form_sheet(2), wps_dimension=True)
    assert len(parse(data, "wps.xlsx").forms[0].rows) == 2


def test_the_openpyxl_fallback_resets_a_wrong_dimension() -> None:
    (grid,) = read_xlsx_openpyxl(fx.xlsx(fx.form_sheet(2), wps_dimension=True), LimitsSettings())
    assert grid.text(3, 1) == "济南市焊工职业技能竞赛" and grid.height >= 6


@pytest.mark.parametrize("form", [1, 2])
def test_it_reads_both_forms_as_xls(form: int) -> None:
    report = parse(fx.xls(fx.form_sheet(form, total="value")), "old.xls")
    assert report.kind is FileKind.XLS and report.problems == []
    assert [len(t.rows) for t in report.forms] == [len(fx.SAMPLE_ROWS[form])] and report.forms[0].unit == fx.UNIT


def test_it_finds_both_forms_in_one_workbook() -> None:
    report = parse(fx.both_forms_xlsx(), "both.xlsx")
    assert [(t.form, t.location) for t in report.forms] == [(fx.KEYS[1], "重点工程类"), (fx.KEYS[2], "技术技能类")]


def test_it_merges_a_form_split_over_sheets_and_checks_the_grand_total() -> None:
    report = parse(fx.split_form_xlsx(), "split.xlsx")
    (table,) = report.forms
    assert table.location == "第一页、第二页" and len(table.rows) == 3
    assert table.totals == FORM1_TOTALS and report.problems == []


def test_it_tolerates_extra_columns_and_a_missing_sequence_column() -> None:
    report = parse(fx.xlsx(fx.form_sheet(2, seq=False, extras=("类别", "备注", "联系人"))), "x.xlsx")
    rows = report.forms[0].rows
    assert report.problems == [] and [r.values["prelim"] for r in rows] == [300, 200] and rows[0].values["seq"] is None


def test_it_finds_a_header_that_is_not_on_the_first_rows() -> None:
    report = parse(fx.xlsx(fx.form_sheet(1, top=7, title=False)), "low.xlsx")
    assert len(report.forms[0].rows) == 3 and report.forms[0].rows[0].cell == "Sheet1!A10"


def test_it_reads_a_header_spanning_two_rows() -> None:
    report = parse(fx.xlsx(fx.form_sheet(2, two_row_header=True)), "two.xlsx")
    assert report.problems == [] and [(r.values["prelim"], r.values["final"]) for r in report.forms[0].rows] == [(300, 30), (200, 20)]


def test_note_rows_under_the_table_are_not_data() -> None:
    report = parse(fx.xlsx(fx.form_sheet(1, total=None, notes=True)), "notes.xlsx")
    assert len(report.forms[0].rows) == 3 and report.problems == []


def test_blank_template_rows_before_the_total_are_skipped() -> None:
    rows = fx.FORM2_ROWS + [[None] * 7] * 8
    report = parse(fx.xlsx(fx.form_sheet(2, rows)), "blank.xlsx")
    assert len(report.forms[0].rows) == 2 and report.forms[0].totals == {"prelim": 500, "final": 50}


def test_a_competition_merged_down_over_its_projects_fills_each_row() -> None:
    sheet = fx.form_sheet(1)
    sheet.cells.pop((4, 1))
    sheet.merges.append((3, 1, 4, 1))  # 竞赛名称 of the first two projects in one cell
    rows = parse(fx.xlsx(sheet), "m.xlsx").forms[0].rows
    assert rows[1].values["competition"] == rows[0].values["competition"] == "济南市重点工程建设劳动竞赛"


def test_an_encrypted_xlsx_is_refused_as_encrypted() -> None:
    assert codes(parse(fx.encrypted_xlsx(), "locked.xlsx")) == ["encrypted_file"]


def test_an_xls_with_a_filepass_record_is_refused_as_encrypted() -> None:
    assert codes(parse(fx.encrypted_xls(), "locked.xls")) == ["encrypted_file"]


def test_an_entity_bomb_is_refused_as_unsafe_without_expanding_it() -> None:
    started = time.perf_counter()
    assert codes(parse(fx.entity_bomb_xlsx(), "bomb.xlsx")) == ["unsafe_file"]
    assert time.perf_counter() - started < 2


def test_a_part_that_inflates_beyond_the_unpacked_limit_is_unsafe() -> None:
    assert codes(parse(fx.zip_bomb_xlsx(3 * 1024 * 1024), "zb.xlsx", max_unpacked_bytes=2 * 1024 * 1024)) == ["unsafe_file"]


def test_a_part_with_an_absurd_compression_ratio_is_unsafe() -> None:
    assert codes(parse(fx.zip_bomb_xlsx(4 * 1024 * 1024), "ratio.xlsx")) == ["unsafe_file"]


def test_a_truncated_workbook_is_unreadable() -> None:
    data = fx.notice_xlsx(1)
    assert codes(parse(data[: len(data) // 2], "cut.xlsx")) == ["unreadable_file"]


def test_a_sheet_longer_than_the_row_limit_is_too_large() -> None:
    rows = fx.FORM2_ROWS * 30
    assert codes(parse(fx.xlsx(fx.form_sheet(2, rows)), "long.xlsx", max_rows=50)) == ["too_large"]


def test_a_macro_workbook_is_read_for_its_values_only() -> None:
    with_macro = fx.add_part(fx.notice_xlsx(2), "xl/vbaProject.bin", b"\xd0\xcf\x11\xe0 not run")
    report = parse(with_macro, "macro.xlsm")
    assert report.kind is FileKind.XLSX and len(report.forms[0].rows) == 2


def test_hidden_sheets_are_not_read() -> None:
    data = fx.xlsx(fx.form_sheet(1, name="表1"), fx.form_sheet(2, name="旧表"), hidden=("旧表",))
    assert [t.form for t in parse(data, "h.xlsx").forms] == [fx.KEYS[1]]


def test_sub_headers_for_the_private_part_of_a_group_find_their_columns() -> None:
    report = parse(fx.grouped_form1_xlsx(), "grouped.xlsx")
    row = report.forms[0].rows[0]
    assert report.problems == [] and tuple(row.values[f] for f in ("enterprises", "private_enterprises", "workers", "private_workers")) == (
        12, 8, 1500, 900)


def test_it_finds_both_forms_stacked_on_one_sheet() -> None:
    first, second = fx.form_sheet(1), fx.form_sheet(2, top=14)
    first.cells.update(second.cells)
    first.merges += second.merges
    first.formulas.update(second.formulas)
    report = parse(fx.xlsx(first), "stacked.xlsx")
    assert [(t.form, len(t.rows), t.unit) for t in report.forms] == [(fx.KEYS[1], 3, fx.UNIT), (fx.KEYS[2], 2, fx.UNIT)]
    assert report.problems == []


def test_a_fill_date_typed_as_an_excel_date_is_kept_as_a_date() -> None:
    sheet = fx.form_sheet(2)
    sheet.cells[(1, 7)] = dt.datetime(2024, 2, 20)
    assert parse(fx.xlsx(sheet), "d.xlsx").forms[0].filled_date == "2024-02-20"


@pytest.mark.parametrize("damage", ["truncated", "tiny", "garbage"])
def test_a_broken_xls_is_unreadable(damage: str) -> None:
    data = fx.xls(fx.form_sheet(1, total="value"))
    broken = {"truncated": data[: len(data) // 2], "tiny": data[:8] + bytes(100),
              "garbage": data[:512] + bytes(range(256)) * 12}[damage]
    assert codes(parse(broken, "broken.xls")) == ["unreadable_file"]


def test_a_row_of_units_under_the_header_is_part_of_the_header() -> None:
    sheet = fx.form_sheet(1, title=False, top=0, total=None, notes=False)
    sheet.cells = {(r + 1 if r >= 2 else r, c): v for (r, c), v in sheet.cells.items()}
    sheet.put_row(2, [None, None, None, "（家）", "（家）", "（人）", "（人）", "（亿元）"])
    report = parse(fx.xlsx(sheet), "units.xlsx")
    assert report.problems == [] and len(report.forms[0].rows) == 3


def test_subtotal_rows_are_neither_data_nor_the_total() -> None:
    rows = [*fx.FORM2_ROWS[:1], ["小计", None, None, None, 300, 30, None], *fx.FORM2_ROWS[1:]]
    sheet = fx.form_sheet(2, [list(r) for r in rows], total_values={4: 500, 5: 50})
    del sheet.cells[(4, 0)]  # the 小计 row has no 序号
    report = parse(fx.xlsx(sheet), "sub.xlsx")
    table = report.forms[0]
    assert len(table.rows) == 2 and table.totals == {"prelim": 500, "final": 50} and report.problems == []
