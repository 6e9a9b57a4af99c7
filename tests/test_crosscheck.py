"""The stamped PDF against the editable file: same 汇总单位, same 合计 figures; and the submission's seal."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from config.settings import LimitsSettings, ParsingSettings
from parsers.crosscheck import cross_check, seal_verdict, unit_key
from parsers.model import FileKind, FileReport, FormTable, PdfReport, ProblemCode, Row
from parsers.pdf import inspect_pdf, total_key
from tests.fixtures import scans
from tests.support.campaigns import DEFAULT_FORMS, FORM1, FORM2


def keyed(totals: dict[str, Decimal | None]) -> dict[str, Decimal | None]:
    """Form 1's figures by field, keyed as a PdfReport keys them."""
    return {total_key(FORM1.key, f): v for f, v in totals.items()}


def pdf_file(unit: str | None = scans.UNIT, totals: dict[str, Decimal | None] | None = None,
             seal: bool | None = True, name: str = "盖章版.pdf") -> FileReport:
    report = PdfReport(pages=1, has_text=True, seal=seal, unit=unit,
                       totals=keyed(scans.FORM1_SHEET.totals if totals is None else totals), forms=[FORM1.key])
    return FileReport(name, FileKind.PDF, "0" * 64, 1, pdf=report)


def editable(unit: str | None = "济南市总工会", totals: dict[str, Decimal | None] | None = None,
             rows: list[Row] | None = None, name: str = "汇总表.xlsx") -> FileReport:
    table = FormTable(form=FORM1.key, location="Sheet1", unit=unit, rows=rows or [],
                      totals=dict(scans.FORM1_SHEET.totals) if totals is None and rows is None else totals)
    return FileReport(name, FileKind.XLSX, "1" * 64, 1, forms=[table])


def row(*values: object) -> Row:
    return Row(dict(zip((c.field for c in FORM1.columns), values, strict=True)))


def test_matching_files_raise_no_warning() -> None:
    assert cross_check([pdf_file(), editable()], DEFAULT_FORMS) == []


def test_unit_names_match_despite_brackets_spaces_and_the_seal_remark() -> None:
    assert unit_key("（公章） 济南市 总工会") == unit_key("济南市总工会")
    assert cross_check([pdf_file(unit="济南市总工会（公章）"), editable(unit=" 济南市总工会")], DEFAULT_FORMS) == []


def test_it_warns_when_the_unit_differs_naming_both_files() -> None:
    [problem] = cross_check([pdf_file(unit="历下区总工会"), editable()], DEFAULT_FORMS)
    assert problem.code is ProblemCode.PDF_MISMATCH
    assert "《盖章版.pdf》" in problem.message and "《汇总表.xlsx》" in problem.message
    assert "历下区总工会" in problem.message


def test_it_warns_when_a_total_differs_naming_the_figure() -> None:
    totals = {**scans.FORM1_SHEET.totals, "workers": Decimal(4100)}
    [problem] = cross_check([pdf_file(totals=totals), editable()], DEFAULT_FORMS)
    assert problem.code is ProblemCode.PDF_MISMATCH
    assert "预计参赛职工数" in problem.message and "4100" in problem.message and "4160" in problem.message
    assert "《盖章版.pdf》" in problem.message and "《汇总表.xlsx》" in problem.message


def test_a_figure_equal_as_printed_is_no_mismatch() -> None:
    exact = {**scans.FORM1_SHEET.totals, "investment": Decimal("56.046")}
    printed = {**scans.FORM1_SHEET.totals, "investment": Decimal("56.05")}
    assert cross_check([pdf_file(totals=printed), editable(totals=exact)], DEFAULT_FORMS) == []


def test_a_figure_the_pdf_does_not_show_is_not_compared() -> None:
    assert cross_check([pdf_file(unit=None, totals={"workers": None}), editable()], DEFAULT_FORMS) == []


def test_without_a_total_row_the_editable_rows_are_summed() -> None:
    rows = [row("赛", "甲", 10, 4, 3000, 500, "40"), row("赛", "乙", 8, 2, 1160, 370, "16")]
    assert cross_check([pdf_file(), editable(rows=rows)], DEFAULT_FORMS) == []
    rows[0].values["enterprises"] = 11
    [problem] = cross_check([pdf_file(), editable(rows=rows)], DEFAULT_FORMS)
    assert "预计参赛企业数" in problem.message


def test_it_compares_what_a_real_pdf_text_layer_says() -> None:
    sheet = dataclasses.replace(scans.FORM1_SHEET, unit="历城区总工会")
    report, _ = inspect_pdf(scans.text_layer_pdf((sheet,)), "盖章版.pdf", parsing=ParsingSettings(),
                            limits=LimitsSettings(), forms=DEFAULT_FORMS)
    stamped = FileReport("盖章版.pdf", FileKind.PDF, "0" * 64, 1, pdf=report)
    [problem] = cross_check([stamped, editable()], DEFAULT_FORMS)
    assert "历城区总工会" in problem.message


def test_a_pdf_total_is_compared_only_with_the_sheet_of_its_own_form() -> None:
    other = FormTable(form=FORM2.key, location="Sheet2", unit="济南市总工会",
                      totals={"workers": Decimal(1), "enterprises": Decimal(1)})
    sheet = FileReport("表二.xlsx", FileKind.XLSX, "2" * 64, 1, forms=[other])
    assert cross_check([pdf_file(), sheet], DEFAULT_FORMS) == []


def test_the_submission_is_sealed_if_any_pdf_shows_a_seal() -> None:
    assert seal_verdict([pdf_file(seal=False), pdf_file(seal=True), editable()]) is True


def test_the_submission_is_unsealed_if_colour_pdfs_show_none() -> None:
    assert seal_verdict([pdf_file(seal=False), pdf_file(seal=None)]) is False


def test_the_seal_cannot_be_verified_without_a_colour_pdf() -> None:
    assert seal_verdict([pdf_file(seal=None), editable()]) is None
    assert seal_verdict([editable()]) is None
