"""The stamped PDF against the editable file: same 汇总单位, same 合计 figures; and the submission's seal."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from config.settings import LimitsSettings, ParsingSettings
from parsers.crosscheck import cross_check, seal_verdict, unit_key
from parsers.model import FileKind, FileReport, Form1Row, FormTable, PdfReport, ProblemCode
from parsers.pdf import inspect_pdf
from tests.fixtures import scans


def pdf_file(unit: str | None = scans.UNIT, totals: dict[str, Decimal | None] | None = None,
             seal: bool | None = True, name: str = "盖章版.pdf") -> FileReport:
    report = PdfReport(pages=1, has_text=True, seal=seal, unit=unit,
                       totals=dict(scans.FORM1_SHEET.totals) if totals is None else totals, forms=[1])
    return FileReport(name, FileKind.PDF, "0" * 64, 1, pdf=report)


def editable(unit: str | None = "济南市总工会", totals: dict[str, Decimal | None] | None = None,
             rows: list[Form1Row] | None = None, name: str = "汇总表.xlsx") -> FileReport:
    table = FormTable(form=1, location="Sheet1", unit=unit, rows=rows or [],
                      totals=dict(scans.FORM1_SHEET.totals) if totals is None and rows is None else totals)
    return FileReport(name, FileKind.XLSX, "1" * 64, 1, forms=[table])


def test_matching_files_raise_no_warning() -> None:
    assert cross_check([pdf_file(), editable()]) == []


def test_unit_names_match_despite_brackets_spaces_and_the_seal_remark() -> None:
    assert unit_key("（公章） 济南市 总工会") == unit_key("济南市总工会")
    assert cross_check([pdf_file(unit="济南市总工会（公章）"), editable(unit=" 济南市总工会")]) == []


def test_it_warns_when_the_unit_differs_naming_both_files() -> None:
    [problem] = cross_check([pdf_file(unit="历下区总工会"), editable()])
    assert problem.code is ProblemCode.PDF_MISMATCH
    assert "《盖章版.pdf》" in problem.message and "《汇总表.xlsx》" in problem.message
    assert "历下区总工会" in problem.message


def test_it_warns_when_a_total_differs_naming_the_figure() -> None:
    totals = {**scans.FORM1_SHEET.totals, "workers": Decimal(4100)}
    [problem] = cross_check([pdf_file(totals=totals), editable()])
    assert problem.code is ProblemCode.PDF_MISMATCH
    assert "预计参赛职工数" in problem.message and "4100" in problem.message and "4160" in problem.message
    assert "《盖章版.pdf》" in problem.message and "《汇总表.xlsx》" in problem.message


def test_a_figure_equal_as_printed_is_no_mismatch() -> None:
    exact = {**scans.FORM1_SHEET.totals, "investment": Decimal("56.046")}
    printed = {**scans.FORM1_SHEET.totals, "investment": Decimal("56.05")}
    assert cross_check([pdf_file(totals=printed), editable(totals=exact)]) == []


def test_a_figure_the_pdf_does_not_show_is_not_compared() -> None:
    assert cross_check([pdf_file(unit=None, totals={"workers": None}), editable()]) == []


def test_without_a_total_row_the_editable_rows_are_summed() -> None:
    rows = [Form1Row("赛", "甲", 10, 4, 3000, 500, Decimal("40")), Form1Row("赛", "乙", 8, 2, 1160, 370, Decimal("16"))]
    assert cross_check([pdf_file(), editable(rows=rows)]) == []
    rows[0].enterprises = 11
    [problem] = cross_check([pdf_file(), editable(rows=rows)])
    assert "预计参赛企业数" in problem.message


def test_it_compares_what_a_real_pdf_text_layer_says() -> None:
    sheet = dataclasses.replace(scans.FORM1_SHEET, unit="历城区总工会")
    report, _ = inspect_pdf(scans.text_layer_pdf((sheet,)), "盖章版.pdf", parsing=ParsingSettings(),
                            limits=LimitsSettings())
    stamped = FileReport("盖章版.pdf", FileKind.PDF, "0" * 64, 1, pdf=report)
    [problem] = cross_check([stamped, editable()])
    assert "历城区总工会" in problem.message


def test_the_submission_is_sealed_if_any_pdf_shows_a_seal() -> None:
    assert seal_verdict([pdf_file(seal=False), pdf_file(seal=True), editable()]) is True


def test_the_submission_is_unsealed_if_colour_pdfs_show_none() -> None:
    assert seal_verdict([pdf_file(seal=False), pdf_file(seal=None)]) is False


def test_the_seal_cannot_be_verified_without_a_colour_pdf() -> None:
    assert seal_verdict([pdf_file(seal=None), editable()]) is None
    assert seal_verdict([editable()]) is None
