"""parse_file: the kind from the bytes, limits first, and never an exception."""

from __future__ import annotations

import hashlib
import pickle
import sys
import types

import pytest

from config.settings import LimitsSettings, ParsingSettings
from parsers.dispatch import parse_file
from parsers.forms import FormSet
from parsers.model import FileKind, PdfReport, Problem, ProblemCode
from tests.fixtures import forms as fx
from tests.fixtures.forms import codes, parse
from tests.support.campaigns import DEFAULT_FORMS


def test_it_records_name_kind_hash_size_and_parent() -> None:
    data = fx.notice_xlsx(1)
    report = parse_file(data, "表1.xlsx", limits=LimitsSettings(), parsing=ParsingSettings(), forms=DEFAULT_FORMS,
                        parent="材料.zip")
    assert (report.name, report.kind, report.size, report.parent) == ("表1.xlsx", FileKind.XLSX, len(data), "材料.zip")
    assert report.sha256 == hashlib.sha256(data).hexdigest()


def test_the_kind_comes_from_the_bytes_not_the_name() -> None:
    report = parse(fx.notice_xlsx(2), "表2.xls")
    assert report.kind is FileKind.XLSX and len(report.forms[0].rows) == 2


def test_a_file_over_the_size_limit_is_too_large_and_not_read() -> None:
    report = parse(fx.notice_xlsx(1), "big.xlsx", max_file_bytes=1000)
    assert codes(report) == ["too_large"] and report.forms == []


def test_a_workbook_without_the_form_names_the_sheets_looked_at() -> None:
    sheet, other = fx.Sheet("说明"), fx.Sheet("数据")
    sheet.cells[(0, 0)] = "请见附件"
    other.cells[(0, 0)] = "姓名"
    (problem,) = parse(fx.xlsx(sheet, other), "x.xlsx").problems
    assert problem.code is ProblemCode.UNKNOWN_LAYOUT and "说明、数据" in problem.message


def test_an_executable_named_as_a_workbook_is_unsafe() -> None:
    assert codes(parse(b"MZ\x90\x00" + bytes(200), "表1.xlsx")) == ["unsafe_file"]


@pytest.mark.parametrize("name", ["表1.doc", "表1.wps", "表1.et"])
def test_a_biff_workbook_under_a_wps_or_word_name_is_read_as_xls(name: str) -> None:
    report = parse(fx.xls(fx.form_sheet(1)), name)
    assert (report.kind, report.problems, len(report.forms[0].rows)) == (FileKind.XLS, [], 3)


def test_text_named_as_a_workbook_is_unreadable() -> None:
    assert codes(parse("竞赛名称".encode(), "表1.xlsx")) == ["unreadable_file"]


def test_an_image_has_no_forms_and_no_problems() -> None:
    report = parse(b"\x89PNG\r\n\x1a\n" + bytes(64), "scan.png")
    assert (report.kind, report.forms, report.problems) == (FileKind.IMAGE, [], [])


def test_a_reader_that_fails_becomes_an_unreadable_file_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import parsers.recognize

    def explode(grids: object, forms: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(parsers.recognize, "find_layouts", explode)
    (problem,) = parse(fx.notice_xlsx(1), "表1.xlsx").problems
    assert problem.code is ProblemCode.UNREADABLE_FILE and "表1.xlsx" in problem.message


def test_a_pdf_goes_to_the_pdf_inspector(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def inspect_pdf(data: bytes, name: str, *, parsing: object, limits: object, forms: FormSet
                    ) -> tuple[PdfReport, list[Problem]]:
        seen.append((name, forms))
        return PdfReport(pages=1, has_text=True, seal=True), []

    monkeypatch.setitem(sys.modules, "parsers.pdf", types.SimpleNamespace(inspect_pdf=inspect_pdf))
    report = parse(b"%PDF-1.7\n%stub\n", "盖章版.pdf")
    assert seen == [("盖章版.pdf", DEFAULT_FORMS)] and report.kind is FileKind.PDF and report.pdf.seal is True


def test_the_report_survives_a_trip_to_a_worker_process() -> None:
    report = parse(fx.xlsx(fx.form_sheet(1, fx.bad_rows(1))), "表1.xlsx")
    assert pickle.loads(pickle.dumps(report)) == report
