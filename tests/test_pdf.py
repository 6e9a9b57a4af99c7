"""PDF basics: pages, text layer, damaged and hostile files, limits, the seal warning."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import LimitsSettings, ParsingSettings
from parsers.model import PdfReport, Problem, ProblemCode
from parsers.pdf import inspect_pdf, total_key
from tests.fixtures import scans
from tests.support.campaigns import DEFAULT_FORMS, FORM1, FORM2

PARSING, LIMITS = ParsingSettings(), LimitsSettings()


def inspect(data: bytes, name: str = "汇总表.pdf", *, parsing: ParsingSettings = PARSING,
            limits: LimitsSettings = LIMITS) -> tuple[PdfReport | None, list[Problem]]:
    return inspect_pdf(data, name, parsing=parsing, limits=limits, forms=DEFAULT_FORMS)


def codes(problems: list[Problem]) -> list[ProblemCode]:
    return [p.code for p in problems]


def test_it_counts_the_pages_of_a_two_page_scan() -> None:
    report, _ = inspect(scans.two_page_scan())
    assert report is not None and report.pages == 2


def test_a_scan_has_no_text_layer() -> None:
    report, _ = inspect(scans.sealed_scan())
    assert report is not None and report.has_text is False and report.unit is None


def test_it_reads_unit_forms_and_totals_from_a_text_layer() -> None:
    report, _ = inspect(scans.text_layer_pdf((scans.FORM1_SHEET, scans.FORM2_SHEET)))
    assert report is not None and report.has_text
    assert report.unit == "济南市总工会"
    assert report.forms == [FORM1.key, FORM2.key]
    assert report.totals == {**scans.FORM1_SHEET.keyed_totals, **scans.FORM2_SHEET.keyed_totals}


def test_it_reads_totals_from_a_table_printed_without_grid_lines() -> None:
    report, _ = inspect(scans.text_layer_pdf((scans.FORM2_SHEET,), ruled=False))
    assert report is not None and report.totals == scans.FORM2_SHEET.keyed_totals


def test_it_leaves_a_blank_total_cell_empty_instead_of_shifting_figures() -> None:
    totals = {**scans.FORM1_SHEET.totals}
    del totals["private_enterprises"]
    sheet = dataclasses.replace(scans.FORM1_SHEET, totals=totals)
    report, _ = inspect(scans.text_layer_pdf((sheet,)))
    assert report is not None and report.totals == {**sheet.keyed_totals, total_key(FORM1.key, "private_enterprises"): None}


def test_it_flags_an_encrypted_pdf() -> None:
    report, problems = inspect(scans.encrypted_pdf(), "加密.pdf")
    assert report is None and codes(problems) == [ProblemCode.ENCRYPTED_FILE]
    assert "《加密.pdf》" in problems[0].message


def test_it_opens_a_pdf_whose_user_password_is_empty() -> None:
    report, problems = inspect(scans.encrypted_pdf(user_password=""))
    assert report is not None and report.unit == "济南市总工会"
    assert ProblemCode.ENCRYPTED_FILE not in codes(problems)


def test_it_flags_a_truncated_pdf_as_unreadable() -> None:
    report, problems = inspect(scans.truncated_pdf(), "半截.pdf")
    assert report is None and codes(problems) == [ProblemCode.UNREADABLE_FILE]
    assert "《半截.pdf》" in problems[0].message


def test_it_flags_too_many_pages_and_still_reports_the_count() -> None:
    report, problems = inspect(scans.many_pages_pdf(200))
    assert report is not None and report.pages == 200
    assert codes(problems) == [ProblemCode.TOO_LARGE]


def test_it_flags_a_file_over_the_size_limit() -> None:
    data = scans.sealed_scan()
    report, problems = inspect(data, limits=LimitsSettings(max_file_bytes=len(data) - 1))
    assert report is None and codes(problems) == [ProblemCode.TOO_LARGE]


def test_it_reads_a_pdf_with_javascript_and_launch_actions_without_running_them() -> None:
    report, problems = inspect(scans.active_content_pdf())
    assert report is not None and report.seal is True and problems == []


def test_it_warns_when_a_colour_scan_has_no_seal() -> None:
    report, problems = inspect(scans.unsealed_scan(), "无章.pdf")
    assert report is not None and report.seal is False
    assert problems == [Problem(ProblemCode.SEAL_NOT_FOUND, "《无章.pdf》未检测到红色公章，请确认已盖章后扫描。",
                                file="无章.pdf")]


def test_a_grey_scan_has_no_seal_verdict_and_a_staff_warning_that_it_cannot_be_verified() -> None:
    report, problems = inspect(scans.grey_sealed_scan(), "黑白.pdf")
    assert report is not None and report.seal is None
    assert problems == [Problem(ProblemCode.SEAL_UNVERIFIABLE, "《黑白.pdf》扫描件为黑白，无法判断是否盖章，请工作人员核对。",
                                file="黑白.pdf")]


def test_a_colour_scan_of_white_paper_without_a_seal_is_not_taken_for_a_grey_one() -> None:
    report, problems = inspect(scans.neutral_unsealed_scan(), "无章.pdf")
    assert report is not None and report.seal is False
    assert [p.code for p in problems] == [ProblemCode.SEAL_NOT_FOUND]


def test_it_gives_no_seal_verdict_when_detection_is_off() -> None:
    report, problems = inspect(scans.unsealed_scan(), parsing=ParsingSettings(seal_detection=False))
    assert report is not None and report.seal is None and problems == []


def test_it_stops_looking_for_the_seal_when_the_time_per_file_is_spent() -> None:
    report, problems = inspect(scans.unsealed_scan(), limits=LimitsSettings(seconds_per_file=0))
    assert report is not None and report.seal is None and problems == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(min_size=1, max_size=64))
def test_it_never_crashes_on_a_damaged_pdf(cut: int, junk: bytes) -> None:
    data = scans.text_layer_pdf()
    at = cut % len(data)
    report, problems = inspect(data[:at] + junk + data[at + len(junk):])
    assert report is not None or problems
    if report is not None and report.totals:
        assert all(v is None or isinstance(v, Decimal) for v in report.totals.values())
