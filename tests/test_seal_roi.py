"""The seal check masks red only where the red on every 2nd pixel says it can be, and
gives exactly what masking the whole page gives: the same mask pixels, verdicts and boxes.

The reference here is the check as it was: the red mask of the whole page, the 2×2
opening, line removal and grouping on all of it, built from the module's own primitives.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import seal
from parsers.seal import detect_seal, page_image, seal_boxes
from tests.fixtures import scans

RED = (40, 35, 215)  # BGR of seal ink on a scan


@dataclass
class Reference:
    mask: np.ndarray  # the whole page's working mask
    found: bool | None
    boxes: list[seal.Box]


def _reference(image: np.ndarray, px_per_mm: float) -> Reference:
    """detect_seal and seal_boxes with the red mask computed over the whole page."""
    if seal.is_greyscale(image):
        return Reference(np.zeros((0, 0), np.uint8), None, [])
    factor = 1.0
    if px_per_mm > seal.WORKING_PX_PER_MM:
        factor = seal.WORKING_PX_PER_MM / px_per_mm
        image = cv2.resize(image[..., :3], None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        px_per_mm = seal.WORKING_PX_PER_MM
    mask = seal.red_mask(np.ascontiguousarray(image[..., :3]))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    mask = seal._without_lines(mask, px_per_mm, seal.WINDOW)
    boxes: list[seal.Box] = []
    for gap in seal.WINDOW.group_mm:
        boxes = list(seal._seal_boxes(mask, px_per_mm, seal.WINDOW, gap))
        if boxes:
            break
    return Reference(mask, bool(boxes), [tuple(round(v / factor) for v in box) for box in boxes])


def _placed(image: np.ndarray, px_per_mm: float, shape: tuple[int, ...]) -> np.ndarray:
    """The cut working mask put back in a page-sized (`shape`) mask of nothing."""
    cut, _, _, (x, y) = seal._working_mask(image, px_per_mm, seal.WINDOW)
    page = np.zeros(shape, np.uint8)
    page[y:y + cut.shape[0], x:x + cut.shape[1]] = cut
    return page


def _assert_same_as_whole_page(image: np.ndarray, px_per_mm: float) -> Reference:
    expected = _reference(image, px_per_mm)
    assert detect_seal(image, px_per_mm) is expected.found
    assert seal_boxes(image, px_per_mm) == expected.boxes
    if expected.found is not None:
        assert np.array_equal(_placed(image, px_per_mm, expected.mask.shape), expected.mask)
    return expected


# --- synthetic pages ------------------------------------------------------------------

# Where a feature is, as a share of the page's width or height: off the edges too.
coords = st.one_of(st.floats(0.2, 0.8), st.floats(-0.1, 1.1))
inks = st.sampled_from([RED, (70, 60, 225), (120, 115, 235), (30, 30, 150)])  # fresh, worn, faded, dark
reds = st.one_of(inks, st.tuples(st.integers(0, 120), st.integers(0, 110), st.integers(120, 255)))


@st.composite
def features(draw: st.DrawFn, kinds: tuple[str, ...] = ("ring", "seal", "oval", "hline", "vline", "line",
                                                          "speck", "text", "disc")) -> tuple:
    kind = draw(st.sampled_from(kinds))
    seal_size = st.floats(seal.WINDOW.major[0] - 4, seal.WINDOW.major[1] + 4)  # about a 公章's
    size = draw(seal_size if kind in ("ring", "seal", "oval") and draw(st.booleans()) else st.floats(0.5, 70.0))
    return (kind, draw(coords), draw(coords), size, draw(st.floats(0.3, 1.0)),
            draw(st.integers(1, 4)), draw(reds), draw(st.integers(0, 179)))


def _draw(page: np.ndarray, feature: tuple, px_per_mm: float) -> None:
    kind, fx, fy, size_mm, aspect, thick, colour, angle = feature
    height, width = page.shape[:2]
    centre = (round(fx * (width - 1)), round(fy * (height - 1)))
    half = max(1, round(size_mm * px_per_mm / 2))
    axes = (half, max(1, round(half * aspect)))
    if kind in ("ring", "seal", "oval"):
        if kind == "ring":
            axes = (half, half)
        cv2.ellipse(page, centre, axes, angle, 0, 360, colour, thick + 1)
        if kind == "seal":  # a star and text inside, as a 公章 has
            star = cv2.ellipse2Poly(centre, (half // 3, half // 3), angle, 0, 360, 72)
            cv2.fillPoly(page, [star], colour)
            cv2.putText(page, "SEAL 123", (centre[0] - half // 2, centre[1] + half // 2),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.3, half / 120), colour, 1)
    elif kind in ("hline", "vline", "line"):
        dx, dy = {"hline": (1, 0), "vline": (0, 1)}.get(kind, (np.cos(np.radians(angle)), np.sin(np.radians(angle))))
        end = (round(centre[0] + dx * half * 2), round(centre[1] + dy * half * 2))
        cv2.line(page, centre, end, colour, thick)
    elif kind == "speck":
        page[max(0, centre[1]):centre[1] + thick, max(0, centre[0]):centre[0] + thick] = colour
    elif kind == "text":
        cv2.putText(page, "No.2024 ok", centre, cv2.FONT_HERSHEY_SIMPLEX, max(0.3, half / 60), colour, thick)
    else:
        cv2.ellipse(page, centre, axes, angle, 0, 360, colour, -1)


@st.composite
def pages(draw: st.DrawFn) -> tuple[np.ndarray, float]:
    px_per_mm = draw(st.sampled_from([seal.DECODE_PX_PER_MM, 2.95, seal.WORKING_PX_PER_MM, 5.0]))
    sizes = st.one_of(st.integers(40, 300), st.integers(300, 900))
    height, width = draw(sizes), draw(sizes)
    tint = draw(st.tuples(st.integers(185, 255), st.integers(195, 255), st.integers(205, 255)))
    page = np.empty((height, width, 3), np.uint8)
    page[:] = tint
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    noise = draw(st.sampled_from([0, 2, 6]))
    if noise:
        page[:] = (page + rng.normal(0, noise, page.shape)).clip(0, 255).astype(np.uint8)
    for _ in range(draw(st.integers(0, 4))):  # black print: its JPEG fringes are red-ish specks
        cv2.putText(page, "2024 form", (int(rng.integers(0, width)), int(rng.integers(0, height))),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1)
    for feature in draw(st.lists(features(), max_size=5)) + draw(st.lists(features(("ring", "seal", "oval")),
                                                                          max_size=2)):
        _draw(page, feature, px_per_mm)
    if (quality := draw(st.sampled_from([None, 40, 75, 95]))) is not None:
        page = cv2.imdecode(cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
    return page, px_per_mm


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow])
@given(pages())
def test_masking_only_round_the_sampled_red_gives_the_whole_pages_mask_verdict_and_boxes(
        page: tuple[np.ndarray, float]) -> None:
    _assert_same_as_whole_page(*page)


# --- the edges that matter: the page's, where erosion counts the outside as ink ---------


@pytest.mark.parametrize(("height", "width"), [(300, 240), (301, 241)])
@pytest.mark.parametrize("edge", ["top", "bottom", "left", "right"])
@pytest.mark.parametrize("thick", [1, 2, 3])
def test_red_along_each_page_edge_is_treated_as_on_the_whole_page(height: int, width: int, edge: str,
                                                                    thick: int) -> None:
    """OpenCV's opening counts the outside as ink at the page's top and left edges (a 1-px
    red line there survives it) but not at the bottom and right: the located mask does
    the same at each edge, for odd and even page sizes."""
    page = np.full((height, width, 3), 245, np.uint8)
    cv2.circle(page, (width // 2, height // 2), 60, RED, 4)  # a 40 mm seal at 3 px/mm
    # 20 mm of red along the edge: shorter than a line, so only the opening can remove it.
    band = {"top": np.s_[:thick, 20:80], "bottom": np.s_[-thick:, 20:80], "left": np.s_[20:80, :thick],
            "right": np.s_[20:80, -thick:]}[edge]
    page[band] = RED
    expected = _assert_same_as_whole_page(page, 3.0)
    assert bool(expected.mask[band].any()) is (thick > 1 or edge in ("top", "left"))


def test_hairlines_and_specks_the_opening_removes_are_not_masked_at_all() -> None:
    """Red that no 2×2 square of ink holds (hairlines, lone pixels, a chequer) never reaches
    the sample's (even, even) pixels, so nothing is masked: no seal, an empty mask."""
    page = np.full((400, 300, 3), 245, np.uint8)
    page[101, 10:290] = RED  # odd row
    page[20:380, 151] = RED  # odd column
    page[301:340:2, 11:60:2] = RED  # odd rows, odd columns
    page[201:260, 201:260][::2, 1::2] = RED
    page[201:260, 201:260][1::2, ::2] = RED
    assert seal.red_mask(page).any()
    mask, *_ = seal._working_mask(page, 3.0, seal.WINDOW)
    assert mask.size == 0
    assert not _assert_same_as_whole_page(page, 3.0).mask.any()


def test_hairlines_running_out_of_the_masked_region_leave_nothing_behind() -> None:
    """1-px red lines from far outside into the seal's region: only part of each is masked,
    and none of it may survive there."""
    page = np.full((500, 400, 3), 245, np.uint8)
    cv2.circle(page, (200, 250), 60, RED, 4)
    page[161, :] = RED
    page[250, :][::2] = RED  # even row, every other pixel: sampled, yet no 2×2 square
    page[:, 139] = RED
    expected = _assert_same_as_whole_page(page, 3.0)
    assert expected.found is True


def test_the_red_is_located_with_the_whole_pages_paper_level() -> None:
    """The sample is balanced with the page's own gains (from every 4th pixel), not its own
    (every 8th): here the two differ, and only the page's make the faint ring red."""
    page = np.full((600, 500, 3), (255, 255, 200), np.uint8)  # cool paper: red needs a gain
    grid = page[::8, ::8]  # white on 30% of every 8th pixel: 7.5% of every 4th
    grid[np.random.default_rng(0).random(grid.shape[:2]) < 0.3] = (255, 255, 255)
    cv2.circle(page, (250, 300), 60, (160, 150, 170), 4)
    assert seal._balance_luts(page)[0, 200, 2] > 250  # R gain 255/200
    assert seal._balance_luts(seal._every(page, 2))[0, 200, 2] == 200
    assert _assert_same_as_whole_page(page, 3.0).found is True


@st.composite
def boxes_on_red(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ink = rng.random((height, width)) < draw(st.floats(0.0, 0.9))
    page = np.where(ink[..., None], np.array(RED, np.uint8), np.uint8(245)).astype(np.uint8)
    x0, x1 = sorted(draw(st.lists(st.integers(0, width), min_size=2, max_size=2)))
    y0, y1 = sorted(draw(st.lists(st.integers(0, height), min_size=2, max_size=2)))
    return page, (x0, y0, x1, y1)


@settings(max_examples=400, deadline=None)
@given(boxes_on_red())
def test_the_opening_on_any_box_is_the_whole_pages_opening_there(case: tuple) -> None:
    """Whatever the box's edges (odd or even, on the page's edge or inside), the opened
    red in it is the whole page's opened red there: no hairline cut by the box survives."""
    page, (x0, y0, x1, y1) = case
    luts = seal._balance_luts(page)
    whole = cv2.morphologyEx(seal.red_mask(page), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    assert np.array_equal(seal._opened_red(page, luts, (x0, y0, x1, y1)), whole[y0:y1, x0:x1])


# --- the scans the other seal tests use -----------------------------------------------

SCANS = [scans.sealed_scan, scans.oval_seal_scan, scans.faded_seal_scan, scans.two_page_scan,
         scans.rotated_sealed_scan, scans.unsealed_scan, scans.neutral_unsealed_scan, scans.red_lines_scan,
         scans.grey_sealed_scan, scans.grey_unsealed_scan]


@pytest.mark.parametrize("make", SCANS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("least", [None, seal.DECODE_PX_PER_MM])
def test_each_fixture_scan_gives_the_whole_pages_mask_verdict_and_boxes(
        make, least: float | None) -> None:  # noqa: ANN001
    pdf = pdfium.PdfDocument(make())
    for i in range(len(pdf)):
        shot = page_image(pdf[i], 150, least_px_per_mm=least)
        _assert_same_as_whole_page(shot.pixels, shot.px_per_mm)
