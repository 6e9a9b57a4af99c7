"""Red-seal detection: seals of every kind are seen; red lines, letterheads and grey scans are not taken for one."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from parsers.seal import MM_PER_INCH, detect_seal, document_seal, page_image
from tests.fixtures import scans

DPI = 150


def verdict(data: bytes) -> bool | None:
    pdf = pdfium.PdfDocument(data)
    try:
        return document_seal(pdf, DPI, deadline=time.monotonic() + 60).found
    finally:
        pdf.close()


@pytest.mark.parametrize(("make", "expected"), [
    (scans.sealed_scan, True),
    (scans.oval_seal_scan, True),
    (scans.faded_seal_scan, True),
    (scans.two_page_scan, True),
    (scans.rotated_sealed_scan, True),
    (scans.unsealed_scan, False),
    (scans.neutral_unsealed_scan, False),
    (scans.red_lines_scan, False),
    (scans.grey_sealed_scan, None),
    (scans.grey_unsealed_scan, None),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_it_gives_the_right_seal_verdict_for_each_kind_of_scan(make: Callable[[], bytes], expected: bool | None) -> None:
    assert verdict(make()) is expected


def test_it_finds_a_seal_on_the_last_page_only() -> None:
    pdf = pdfium.PdfDocument(scans.two_page_scan())
    shots = [page_image(pdf[i], DPI) for i in range(2)]
    assert [detect_seal(s.pixels, s.px_per_mm) for s in shots] == [False, True]


def test_it_says_a_printed_pdf_without_a_seal_has_none() -> None:
    assert verdict(scans.text_layer_pdf()) is False


def test_a_grey_image_stored_as_colour_cannot_prove_a_seal() -> None:
    shot = page_image(pdfium.PdfDocument(scans.sealed_scan())[0], DPI)
    grey = cv2.cvtColor(cv2.cvtColor(shot.pixels, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert detect_seal(grey, shot.px_per_mm) is None


def _warm_cast(bgr: np.ndarray) -> np.ndarray:
    """A phone photo under tungsten light: blue and green fall away."""
    return (bgr.astype(np.float32) * np.array([0.62, 0.82, 1.0], np.float32)).astype(np.uint8)


def test_it_sees_a_seal_through_a_warm_colour_cast() -> None:
    shot = page_image(pdfium.PdfDocument(scans.sealed_scan())[0], DPI)
    assert detect_seal(_warm_cast(shot.pixels), shot.px_per_mm) is True


def test_it_does_not_take_a_warm_colour_cast_for_a_seal() -> None:
    shot = page_image(pdfium.PdfDocument(scans.unsealed_scan())[0], DPI)
    assert detect_seal(_warm_cast(shot.pixels), shot.px_per_mm) is False


def test_it_measures_seals_in_millimetres_not_pixels() -> None:
    """The same seal is a seal at 100 dpi and at 300 dpi; its size is what is tested."""
    shot = page_image(pdfium.PdfDocument(scans.sealed_scan())[0], DPI)
    for dpi in (100, 300):
        scale = dpi / DPI
        resized = cv2.resize(shot.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        assert detect_seal(resized, dpi / MM_PER_INCH) is True


def test_a_seal_twice_too_big_for_the_paper_is_not_a_seal() -> None:
    """A page image read at half its real scale shows an 80 mm 'seal': no 公章 is that big."""
    shot = page_image(pdfium.PdfDocument(scans.sealed_scan())[0], DPI)
    assert detect_seal(shot.pixels, shot.px_per_mm / 2) is False


def test_a_greyscale_scan_is_reported_as_greyscale_and_a_colour_one_is_not() -> None:
    def result(data: bytes):  # noqa: ANN202
        pdf = pdfium.PdfDocument(data)
        try:
            return document_seal(pdf, DPI, deadline=time.monotonic() + 60)
        finally:
            pdf.close()

    assert result(scans.grey_unsealed_scan()).greyscale is True
    assert result(scans.neutral_unsealed_scan()).greyscale is False
    assert result(scans.sealed_scan()).greyscale is False
