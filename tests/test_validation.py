"""Every cell, row and 合计 check, each problem naming the file and the cell in Chinese."""

from __future__ import annotations

from decimal import Decimal

from parsers.model import Severity
from tests.fixtures import forms as fx
from tests.fixtures.forms import parse

NAME = "济南市.xlsx"


def problems(form: int, rows: list[list], **sheet: object) -> list[tuple[str, str | None, str]]:
    report = parse(fx.xlsx(fx.form_sheet(form, rows, **sheet)), NAME)
    return [(p.code.value, p.cell, p.message) for p in report.problems]


def form1(*changes: tuple[int, int, object]) -> list[list]:
    rows = [list(r) for r in fx.FORM1_ROWS]
    for row, col, value in changes:
        rows[row][col] = value
    return rows


def test_a_count_that_is_not_a_number_is_named_with_file_cell_and_value() -> None:
    assert problems(1, form1((0, 2, "约300"))) == [
        ("non_numeric", "Sheet1!D4", "《济南市.xlsx》Sheet1!D4：预计参赛企业数“约300”不是数字，请填写阿拉伯数字。")]


def test_a_fraction_in_a_count_column_asks_for_a_whole_number() -> None:
    assert problems(1, form1((1, 4, "12.5"))) == [
        ("non_numeric", "Sheet1!F5", "《济南市.xlsx》Sheet1!F5：预计参赛职工数“12.5”不是整数，请填写整数。")]


def test_a_negative_count_is_flagged() -> None:
    found = problems(1, form1((2, 3, -2)), total=None)
    assert found == [("negative_number", "Sheet1!E6", "《济南市.xlsx》Sheet1!E6：预计参赛非公企业数为负数（-2），请核实。")]


def test_a_blank_competition_name_is_missing() -> None:
    assert problems(1, form1((0, 0, None))) == [
        ("missing_required", "Sheet1!B4", "《济南市.xlsx》Sheet1!B4：竞赛名称未填写。")]


def test_a_blank_required_count_is_missing_but_a_blank_investment_is_not() -> None:
    found = problems(1, form1((0, 5, None), (0, 6, None)), total=None)
    assert [(code, cell) for code, cell, _ in found] == [("missing_required", "Sheet1!G4")]


def test_more_private_enterprises_than_enterprises_is_flagged() -> None:
    assert problems(1, form1((1, 3, 7)), total=None) == [
        ("private_gt_total", "Sheet1!E5", "《济南市.xlsx》Sheet1!E5：预计参赛非公企业数（7）大于预计参赛企业数（6），请核实。")]


def test_more_private_workers_than_workers_is_flagged() -> None:
    assert [c for c, _, _ in problems(1, form1((0, 5, 1501)), total=None)] == ["private_gt_total"]


def test_more_finalists_than_preliminary_entrants_is_flagged() -> None:
    rows = [list(r) for r in fx.FORM2_ROWS]
    rows[0][5] = 301
    assert problems(2, rows, total=None) == [
        ("final_gt_prelim", "Sheet1!G4", "《济南市.xlsx》Sheet1!G4：预计决赛人数（301）大于预计初赛人数（300），请核实。")]


def test_a_wrong_total_names_the_total_cell_and_both_numbers() -> None:
    assert problems(1, fx.FORM1_ROWS, total="value", total_values={4: 3600}) == [
        ("total_mismatch", "Sheet1!F7", "《济南市.xlsx》Sheet1!F7：合计行预计参赛职工数为 3600，但各行相加为 3500，请核对。")]


def test_a_total_rounded_to_fewer_decimals_agrees() -> None:
    rows = form1((0, 6, Decimal("1.234")), (1, 6, Decimal("2.001")), (2, 6, Decimal("0")))
    assert problems(1, rows, total="value", total_values={6: Decimal("3.24")}) == []


def test_a_total_is_not_compared_over_a_column_with_unreadable_cells() -> None:
    found = problems(1, form1((0, 2, "若干")), total="value", total_values={2: 1})
    assert [c for c, _, _ in found] == ["non_numeric"]


def test_a_form2_cell_that_says_to_be_decided_is_not_a_number() -> None:
    rows = [list(r) for r in fx.FORM2_ROWS]
    rows[1][4] = "待定"
    assert [(c, cell) for c, cell, _ in problems(2, rows, total=None)] == [("non_numeric", "Sheet1!F5")]


def test_every_cell_problem_is_an_error() -> None:
    report = parse(fx.xlsx(fx.form_sheet(1, fx.bad_rows(1), total="value", total_values={4: 1})), NAME)
    assert {p.code.value for p in report.problems} == {
        "non_numeric", "private_gt_total", "missing_required", "negative_number", "total_mismatch"}
    assert {p.severity for p in report.problems} == {Severity.ERROR}
    assert all(p.file == NAME and p.message.startswith(f"《{NAME}》{p.cell}：") for p in report.problems)


def test_a_header_without_a_required_column_says_so_once() -> None:
    sheet = fx.form_sheet(2, total=None, title=False)
    for cell in [k for k in sheet.cells if k[1] == 6 and k[0] >= 1]:  # drop the 预计决赛人数 column
        del sheet.cells[cell]
    found = [(c, cell, m) for c, cell, m in problems_of(fx.xlsx(sheet))]
    assert found == [("missing_required", "Sheet1!A2",
                      "《济南市.xlsx》Sheet1!A2：表头中没有“预计决赛人数”一栏，请按通知表样填写。")]


def problems_of(data: bytes) -> list[tuple[str, str | None, str]]:
    return [(p.code.value, p.cell, p.message) for p in parse(data, NAME).problems]


def test_investment_under_a_wan_yuan_header_is_read_in_yi_yuan() -> None:
    sheet = fx.form_sheet(1, form1((0, 6, 456000), (1, 6, 123000), (2, 6, 300000)), total="value",
                          total_values={6: 879000})
    sheet.cells[(2, 7)] = "年度投资总额（万元）"
    report = parse(fx.xlsx(sheet), NAME)
    assert report.problems == [] and report.forms[0].rows[0].values["investment"] == "45.6"
    assert report.forms[0].totals["investment"] == Decimal("87.9")


def test_a_form_1_row_without_its_project_name_is_missing() -> None:
    # In 重点工程类 every row is a competition on a named project (issue 13).
    assert problems(1, form1((1, 1, None))) == [
        ("missing_required", "Sheet1!C5", "《济南市.xlsx》Sheet1!C5：参赛工程项目名称未填写。")]
