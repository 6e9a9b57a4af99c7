"""The seal check on a reduced problem gives the same answers as on the whole page.

Three shortcuts (issue 14): the red mask is cut to the red pixels' bounding box plus a
margin wider than any kernel before the openings and grouping; a high-dpi scan's JPEG is
decoded at 1/2–1/8 scale instead of in full; a colour image is told from a grey one on
every 4th pixel first. Each must change no verdict and, for the cut, no pixel.
"""

from __future__ import annotations

import time

import numpy as np
import pypdfium2 as pdfium
import pytest

from parsers import seal
from parsers.seal import detect_seal, document_seal, is_greyscale, page_image, seal_boxes
from tests.fixtures import scans

DPI = 150
SCANS = [scans.sealed_scan, scans.oval_seal_scan, scans.faded_seal_scan, scans.two_page_scan,
         scans.rotated_sealed_scan, scans.unsealed_scan, scans.neutral_unsealed_scan, scans.red_lines_scan]


def _pages(data: bytes) -> list[seal.PageImage]:
    pdf = pdfium.PdfDocument(data)
    return [page_image(pdf[i], DPI) for i in range(len(pdf))]


@pytest.mark.parametrize("make", SCANS, ids=lambda f: f.__name__)
def test_cutting_the_mask_to_the_red_changes_no_pixel(make) -> None:  # noqa: ANN001
    for shot in _pages(make()):
        whole, _, _, origin = seal._working_mask(shot.pixels, shot.px_per_mm, seal.WINDOW, crop=False)
        cut, _, _, (x, y) = seal._working_mask(shot.pixels, shot.px_per_mm, seal.WINDOW)
        assert origin == (0, 0)
        assert np.array_equal(whole[y:y + cut.shape[0], x:x + cut.shape[1]], cut)
        outside = whole.copy()
        outside[y:y + cut.shape[0], x:x + cut.shape[1]] = 0
        assert not outside.any()
        if not cut.any():
            continue
        px = min(shot.px_per_mm, seal.WORKING_PX_PER_MM)
        for gap in seal.WINDOW.group_mm:
            assert (list(seal._seal_boxes(whole, px, seal.WINDOW, gap))
                    == list(seal._seal_boxes(cut, px, seal.WINDOW, gap, (x, y))))


def test_a_colour_page_without_red_gives_an_empty_mask() -> None:
    rng = np.random.default_rng(0)
    page = (np.full((1754, 1240, 3), (235, 245, 250)) + rng.normal(0, 3, (1754, 1240, 3))).clip(0, 255).astype(np.uint8)
    mask, *_ = seal._working_mask(page, DPI / seal.MM_PER_INCH, seal.WINDOW)
    assert mask.size == 0
    assert detect_seal(page, DPI / seal.MM_PER_INCH) is False
    assert seal_boxes(page, DPI / seal.MM_PER_INCH) == []


@pytest.mark.parametrize(("make", "expected"), [
    (scans.sealed_scan, True), (scans.faded_seal_scan, True), (scans.unsealed_scan, False),
    (scans.red_lines_scan, False),
], ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("dpi", [300, 400])
def test_a_high_dpi_scan_is_decoded_reduced_with_the_same_verdict(make, expected: bool, dpi: int,  # noqa: ANN001
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = make(dpi)
    scan = seal._scan_image(pdfium.PdfDocument(data)[0])
    meta = scan.get_metadata()
    decoded = seal._jpeg_pixels(scan, meta, 297 / seal.MM_PER_INCH * DPI)
    assert decoded is not None and decoded.shape[:2] == (-(-meta.height // 2), -(-meta.width // 2))
    shot = _pages(data)[0]
    # Decoded at 1/2 (libjpeg's scaling), then fitted to 150 dpi: A4's long side is ~1754 px.
    assert 1700 <= max(shot.pixels.shape[:2]) <= 1760
    reduced = document_seal(pdfium.PdfDocument(data), DPI, deadline=time.monotonic() + 60)
    monkeypatch.setattr(seal, "_jpeg_pixels", lambda *_: None)  # pdfium's full decode instead
    full = document_seal(pdfium.PdfDocument(data), DPI, deadline=time.monotonic() + 60)
    assert reduced == full
    assert reduced.found is expected


def test_a_scan_at_the_working_dpi_is_left_to_pdfium() -> None:
    pdf = pdfium.PdfDocument(scans.sealed_scan(150))
    image = seal._scan_image(pdf[0])
    assert seal._jpeg_pixels(image, image.get_metadata(), 1754) is None


@pytest.mark.parametrize("make", [*SCANS, scans.grey_sealed_scan], ids=lambda f: f.__name__)
def test_the_quick_colour_test_agrees_with_the_full_one(make) -> None:  # noqa: ANN001
    for shot in _pages(make()):
        pixels = shot.pixels
        if pixels.ndim == 2:
            continue
        full = seal._coloured(pixels) / (pixels.shape[0] * pixels.shape[1]) < seal.MIN_CHROMA_SHARE
        assert is_greyscale(pixels) is full
    # A grey page with a few coloured pixels: too few on the sample, so the full count decides.
    grey = np.full((400, 300, 3), 200, np.uint8)
    grey[5, 7] = (0, 0, 255)
    assert is_greyscale(grey) is True
    grey[1:40:4, 1:40:4] = (0, 0, 255)
    assert is_greyscale(grey) is False


def test_seal_boxes_are_in_the_page_pixels_after_the_cut() -> None:
    shot = _pages(scans.sealed_scan())[0]
    [(x, y, w, h)] = seal_boxes(shot.pixels, shot.px_per_mm)
    mm = shot.px_per_mm
    # The seal is stamped centred at SEAL_AT (mm), 40 mm across; allow the scan's skew.
    assert abs((x + w / 2) / mm - scans.SEAL_AT[0]) < 6 and abs((y + h / 2) / mm - scans.SEAL_AT[1]) < 6
    assert 36 < w / mm < 52


def _reference_red_mask(bgr: np.ndarray) -> np.ndarray:
    """The red mask as first written: per-channel LUTs, channels split, four ranges."""
    import cv2

    paper = np.percentile(bgr[::4, ::4].reshape(-1, 3), 90, axis=0)
    balanced = np.empty_like(bgr)
    for c in range(3):
        gain = min(2.0, 255.0 / max(float(paper[c]), 1.0))
        balanced[..., c] = cv2.LUT(bgr[..., c], np.clip(np.arange(256) * gain, 0, 255).astype(np.uint8))
    h, s, v = cv2.split(cv2.cvtColor(balanced, cv2.COLOR_BGR2HSV))
    red = cv2.bitwise_or(cv2.inRange(h, 0, seal.RED_HUE_LOW), cv2.inRange(h, seal.RED_HUE_HIGH, 180))
    strong = cv2.bitwise_and(cv2.inRange(s, seal.MIN_SATURATION, 255), cv2.inRange(v, seal.MIN_VALUE, 255))
    return cv2.bitwise_and(red, strong)


def test_the_one_pass_red_mask_equals_the_channel_by_channel_one() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(10)]
    images += [(image // 4 + 180).astype(np.uint8) for image in images]  # paper-like: the gains bite
    images += [shot.pixels for shot in _pages(scans.sealed_scan())]
    for image in images:
        assert np.array_equal(seal.red_mask(image), _reference_red_mask(image))


def test_a_jpeg_whose_header_disagrees_with_the_pdf_is_left_to_pdfium() -> None:
    """A stream claiming other dimensions than the PDF gives is never decoded here (its
    header could promise a bomb); pdfium reads it as before."""
    from types import SimpleNamespace

    scan = seal._scan_image(pdfium.PdfDocument(scans.sealed_scan(300))[0])
    meta = scan.get_metadata()
    assert seal._jpeg_pixels(scan, meta, 1754) is not None
    other = SimpleNamespace(width=meta.width * 2, height=meta.height * 2, bits_per_pixel=24)
    assert seal._jpeg_pixels(scan, other, 1754) is None
    assert seal._jpeg_size(b"not a jpeg") is None


@pytest.mark.parametrize(("make", "expected"), [
    (scans.sealed_scan, True), (scans.oval_seal_scan, True), (scans.faded_seal_scan, True),
    (scans.two_page_scan, True), (scans.rotated_sealed_scan, True), (scans.unsealed_scan, False),
    (scans.neutral_unsealed_scan, False), (scans.red_lines_scan, False),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_seal_check_decodes_a_150_dpi_scan_at_half_size_with_the_same_verdict(
        make, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The check may read a scan's JPEG down to DECODE_PX_PER_MM (a 150-dpi scan at 1/2),
    below the 4 px/mm it otherwise works at; page_image without it still gives 150 dpi."""
    data = make(150)
    pdf = pdfium.PdfDocument(data)
    for i in range(len(pdf)):
        shot = page_image(pdf[i], DPI, least_px_per_mm=seal.DECODE_PX_PER_MM)
        assert seal.DECODE_PX_PER_MM <= shot.px_per_mm < seal.WORKING_PX_PER_MM
        assert abs(shot.px_per_mm - DPI / 2 / seal.MM_PER_INCH) < 0.05
        full = page_image(pdf[i], DPI)
        assert abs(full.px_per_mm - DPI / seal.MM_PER_INCH) < 0.05
        assert detect_seal(shot.pixels, shot.px_per_mm) == detect_seal(full.pixels, full.px_per_mm)
    reduced = document_seal(pdfium.PdfDocument(data), DPI, deadline=time.monotonic() + 60)
    monkeypatch.setattr(seal, "_jpeg_pixels", lambda *_: None)  # pdfium's full decode instead
    assert document_seal(pdfium.PdfDocument(data), DPI, deadline=time.monotonic() + 60) == reduced
    assert reduced.found is expected


def test_the_paper_level_read_off_the_histogram_equals_numpys_percentile() -> None:
    rng = np.random.default_rng(2)
    for i in range(400):
        h, w = rng.integers(1, 50, 2)
        image = [rng.integers(0, 256, (h, w, 3)), rng.integers(235, 256, (h, w, 3)),
                 rng.normal(200, 40, (h, w, 3)).clip(0, 255)][i % 3].astype(np.uint8)
        expected = np.percentile(image.reshape(-1, 3), seal.PAPER_PERCENTILE, axis=0)
        assert [seal._percentile(image, c, seal.PAPER_PERCENTILE) for c in range(3)] == list(expected)


def test_a_colour_test_on_a_sparse_sample_falls_back_to_the_denser_one() -> None:
    """Chroma on every 4th pixel but not on every 16th: still colour, as the full count says."""
    grey = np.full((400, 320, 3), 200, np.uint8)
    grey[2::4, 2::4] = (0, 0, 255)
    assert seal._coloured(grey[::16, ::16]) == 0
    assert is_greyscale(grey) is False
