"""OCR of image-only scans: reads 汇总单位 and the 合计 row, with the models shipped in the rapidocr wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
import rapidocr

from config.settings import LimitsSettings, ParsingSettings
from parsers import ocr
from parsers.pdf import inspect_pdf
from tests.fixtures import scans
from tests.support.campaigns import DEFAULT_FORMS, FORM1


def test_it_uses_the_models_inside_the_rapidocr_wheel() -> None:
    package = Path(rapidocr.__file__).parent
    paths = ocr.packaged_models()
    assert paths and all(Path(p).is_file() and Path(p).is_relative_to(package) for p in paths.values())


def test_it_does_not_run_ocr_when_it_is_off() -> None:
    report, _ = inspect_pdf(scans.sealed_scan(), "扫描.pdf", parsing=ParsingSettings(ocr=False),
                            limits=LimitsSettings(), forms=DEFAULT_FORMS)
    assert report is not None and report.ocr_used is False and report.unit is None


@pytest.mark.slow
def test_ocr_reads_the_unit_and_totals_through_the_seal_of_a_scan() -> None:
    report, _ = inspect_pdf(scans.sealed_scan(), "扫描.pdf", parsing=ParsingSettings(ocr=True),
                            limits=LimitsSettings(), forms=DEFAULT_FORMS)
    assert report is not None and report.ocr_used is True
    assert report.unit == scans.UNIT
    assert report.forms == [FORM1.key]
    assert report.totals == scans.FORM1_SHEET.keyed_totals
    assert ocr.engine() is ocr.engine()  # loaded once, reused
