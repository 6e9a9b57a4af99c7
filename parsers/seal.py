"""Is a red seal (公章) pressed on the page? A colour-and-shape test on the page image.

The physics: seal ink is a saturated red (hue within ~20° of red), a seal is a ring
30–50 mm across (round 公章) or about 38×26 mm (oval), with a star and text inside.
So: balance the paper to white (scanner tint, photos under warm light), keep the red,
drop long straight red strokes (table lines, rules, underlines), group what is left
into blobs the size of a seal and accept a blob whose outline is an ellipse in the
size window with ink running round most of its rim. A letterhead band, a red table or
a handwritten red note fails the size, roundness or ring test.

A greyscale scan can show no red at all, so it proves nothing: `None`, not `False`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from intake import stages

MM_PER_INCH = 25.4
Box = tuple[int, int, int, int]  # x, y, width, height in pixels
A4_SHORT_MM = 210.0
# Pages smaller or larger than this are not paper as scanned: a photo saved at 72 dpi
# gives a "page" a metre wide. Such pages are taken to be A4 across their short side.
PAPER_SHORT_MM = (120.0, 450.0)
# A page that is one image covering at least this much of it is a scan.
SCAN_COVER = 0.85
GREY_COLOURSPACES = frozenset({pdfium_c.FPDF_COLORSPACE_DEVICEGRAY, pdfium_c.FPDF_COLORSPACE_CALGRAY})

# Detection runs at about 100 dpi whatever the scan's resolution (seals are large).
WORKING_PX_PER_MM = 4.0
# ... or down to about 74 dpi when a scan's JPEG decodes to that at 1/2, 1/4 or 1/8 of its
# size (a 150-dpi scan at 1/2 is 2.95 px/mm): a quarter of the decoding and half the pixels.
# The smallest seal (20 mm across) is still ~58 px, and a seal's 1 mm rim ~3 px, wider
# than the 2-px opening that clears specks.
DECODE_PX_PER_MM = 2.9
# Red ink after white balance (OpenCV hue is 0..180, i.e. degrees / 2).
RED_HUE_LOW, RED_HUE_HIGH = 10, 160
MIN_SATURATION = 45  # a faded seal still has ~60; balanced paper stays under ~20
MIN_VALUE = 70  # below this hue is noise: black text and its colour fringes
# A colour sensor leaves chroma on paper and ink; a grey image stored as RGB has none at
# all (JPEG keeps neutral chroma exactly neutral). Under this share of pixels whose
# channels differ by at least CHROMA_SPREAD, the image is a greyscale one.
CHROMA_SPREAD, MIN_CHROMA_SHARE = 2, 1e-4


@dataclass(frozen=True)
class SealWindow:
    """Accepted seal sizes, in mm, and the shape tests."""

    major: tuple[float, float] = (28.0, 56.0)
    minor_min: float = 20.0
    aspect_min: float = 0.55  # 38×26 mm oval is 0.68; a photo at an angle squeezes a circle
    roundness_min: float = 0.84  # 4πA/P² of the outline: circle 1, ellipse 3:2 0.96, square 0.79
    rim_min: float = 0.55  # share of the rim's angular sectors that carry ink
    fill: tuple[float, float] = (0.03, 0.85)  # ink share inside: a solid disc is no seal
    line_mm: float = 30.0  # straight red strokes longer than this are lines, not a seal
    # How far apart pieces of one seal may lie: a good print is one piece within 3 mm;
    # a worn, dry or unevenly pressed seal breaks its ring into arcs with wider gaps.
    group_mm: tuple[float, ...] = (3.0, 8.0)


WINDOW = SealWindow()


def paper_mm(width_pt: float, height_pt: float) -> tuple[float, float]:
    """The physical size of a page; an implausible page size is taken as A4 (short side)."""
    w, h = width_pt / 72 * MM_PER_INCH, height_pt / 72 * MM_PER_INCH
    short = min(w, h)
    if short <= 0:
        return (A4_SHORT_MM, A4_SHORT_MM * math.sqrt(2))
    if PAPER_SHORT_MM[0] <= short <= PAPER_SHORT_MM[1]:
        return (w, h)
    scale = A4_SHORT_MM / short
    return (w * scale, h * scale)


def is_greyscale(image: np.ndarray) -> bool:
    """Whether the image is a greyscale one (so it cannot show a red seal): one channel, or
    three with no chroma at all. The absence of red proves nothing either way."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    pixels = image.shape[0] * image.shape[1]
    # Every 16th, then every 4th pixel each way first: enough chroma in a sample is enough
    # in the whole image (the same verdict, for 1/256 of the work on any colour scan).
    for step in (16, 4):
        if _coloured(image[::step, ::step]) >= MIN_CHROMA_SHARE * pixels:
            return False
    return _coloured(image) / pixels < MIN_CHROMA_SHARE


def _coloured(image: np.ndarray) -> int:
    """How many pixels' channels differ by at least CHROMA_SPREAD."""
    b, g, r = cv2.split(np.ascontiguousarray(image[..., :3]))
    spread = cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r))
    return cv2.countNonZero(cv2.threshold(spread, CHROMA_SPREAD - 1, 255, cv2.THRESH_BINARY)[1])


def white_balance(bgr: np.ndarray) -> np.ndarray:
    """Scale each channel so the paper (the bright majority) is white."""
    return cv2.LUT(np.ascontiguousarray(bgr), _balance_luts(bgr))  # each channel its own table, one pass


def _balance_luts(bgr: np.ndarray) -> np.ndarray:
    """white_balance's tables (1×256×3), from the paper level of every 4th pixel each way."""
    sample = _every(bgr, 4)
    luts = np.empty((1, 256, 3), np.uint8)
    for c in range(3):
        gain = min(2.0, 255.0 / max(_percentile(sample, c, PAPER_PERCENTILE), 1.0))
        luts[0, :, c] = np.clip(np.arange(256) * gain, 0, 255).astype(np.uint8)
    return luts


PAPER_PERCENTILE = 90


def _every(bgr: np.ndarray, step: int) -> np.ndarray:
    """bgr[::step, ::step] (BGR) as a contiguous array. Each pixel is copied as one 3-byte
    item: numpy copies a strided uint8 array a byte at a time, 2–3 times slower."""
    pixels = np.ascontiguousarray(bgr[..., :3])
    items = pixels.reshape(pixels.shape[0], pixels.shape[1] * 3).view(np.dtype("V3"))[::step, ::step]
    return np.ascontiguousarray(items).view(np.uint8).reshape(*items.shape, 3)


def _percentile(sample: np.ndarray, channel: int, q: float) -> float:
    """np.percentile(sample[..., channel], q) to the last bit (its "linear" method), read
    off the channel's histogram instead of partitioning a copy of the pixels."""
    if sample.shape[0] * sample.shape[1] >= 2**24:  # calcHist counts in float32: exact below 2**24
        return float(np.percentile(sample[..., channel], q))
    below = np.cumsum(cv2.calcHist([sample], [channel], None, [256], [0, 256]).ravel().astype(np.int64))
    n = int(below[-1])
    position = (n - 1) * (q / 100)
    lo = math.floor(position)
    hi = min(lo + 1, n - 1)
    a, b = np.searchsorted(below, [lo + 1, hi + 1])  # the values of order statistics lo and hi
    t = position - lo
    diff = float(b - a)
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def red_mask(bgr: np.ndarray) -> np.ndarray:
    return _red(bgr, _balance_luts(bgr))


def _red(bgr: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """The red mask under given white-balance tables. Pixel by pixel (a table, a colour
    conversion, two range tests), so on any part of a page it is that part of the page's."""
    hsv = cv2.cvtColor(cv2.LUT(np.ascontiguousarray(bgr), luts), cv2.COLOR_BGR2HSV)
    # Red hue at either end of the circle, saturated and bright enough: (h low or h high)
    # and s and v, as two box tests over the three channels.
    return cv2.bitwise_or(cv2.inRange(hsv, (0, MIN_SATURATION, MIN_VALUE), (RED_HUE_LOW, 255, 255)),
                          cv2.inRange(hsv, (RED_HUE_HIGH, MIN_SATURATION, MIN_VALUE), (180, 255, 255)))


def _without_lines(mask: np.ndarray, px_per_mm: float, window: SealWindow) -> np.ndarray:
    """Remove long horizontal and vertical strokes; a few degrees of skew are tolerated
    because the mask is thickened before the long openings look for them."""
    length = max(5, round(window.line_mm * px_per_mm))
    thick = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)), iterations=_thickening(px_per_mm))
    lines = cv2.bitwise_or(
        cv2.morphologyEx(thick, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))),
        cv2.morphologyEx(thick, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, length))),
    )
    return cv2.bitwise_and(mask, cv2.bitwise_not(lines))


def _is_seal(points: np.ndarray, px_per_mm: float, window: SealWindow) -> bool:
    """points: (N, 2) x,y of red pixels in one blob."""
    hull = cv2.convexHull(points.astype(np.int32))
    if len(hull) < 5:
        return False
    (cx, cy), (d1, d2), angle = cv2.fitEllipse(hull)
    major, minor = max(d1, d2) / px_per_mm, min(d1, d2) / px_per_mm
    if not (window.major[0] <= major <= window.major[1] and minor >= window.minor_min
            and minor / major >= window.aspect_min):
        return False
    area, perimeter = cv2.contourArea(hull), cv2.arcLength(hull, True)
    if perimeter <= 0 or 4 * math.pi * area / perimeter**2 < window.roundness_min:
        return False
    # Into the ellipse's frame: rho 1 on the rim, theta round it.
    t = math.radians(angle)
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    u = (dx * math.cos(t) + dy * math.sin(t)) / (d1 / 2)
    w = (-dx * math.sin(t) + dy * math.cos(t)) / (d2 / 2)
    rho = np.hypot(u, w)
    inside = np.count_nonzero(rho <= 1.05) / (math.pi * d1 * d2 / 4)
    if not window.fill[0] <= inside <= window.fill[1]:
        return False
    rim = (rho >= 0.8) & (rho <= 1.1)
    sectors = np.bincount(((np.arctan2(w[rim], u[rim]) + math.pi) / (2 * math.pi) * 36).astype(int) % 36,
                          minlength=36)
    return np.count_nonzero(sectors >= 2) / 36 >= window.rim_min


def _working_mask(image: np.ndarray, px_per_mm: float, window: SealWindow, *, crop: bool = True
                  ) -> tuple[np.ndarray, float, float, tuple[int, int]]:
    """The red-ink mask at the working scale, specks and lines removed: (mask, px_per_mm,
    scale, origin). With `crop` the red is located on every 2nd pixel first and masked only
    where it can survive the opening (see _red_core); the mask is that plus a margin of
    nothing (see _margin: every opening, dilation and grouping gives the same pixels as on
    the whole page); origin is where it starts on the page, (x, y). Without, the whole
    page's mask."""
    factor = 1.0
    if px_per_mm > WORKING_PX_PER_MM:
        # A 28 mm seal is still ~110 px across at this scale; the work shrinks with the square.
        factor = WORKING_PX_PER_MM / px_per_mm
        image = cv2.resize(image[..., :3], None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        px_per_mm = WORKING_PX_PER_MM
    image = np.ascontiguousarray(image[..., :3])
    height, width = image.shape[:2]
    luts = _balance_luts(image)  # the whole page's paper level, whatever part is masked
    core = _red_core(image, luts) if crop else (0, 0, width, height)
    if core is None:
        return np.zeros((0, 0), np.uint8), px_per_mm, factor, (0, 0)
    margin = _margin(px_per_mm, window) if crop else 0
    x0, y0, x1, y1 = core
    cx0, cy0 = max(0, x0 - margin), max(0, y0 - margin)
    mask = np.zeros((min(height, y1 + margin) - cy0, min(width, x1 + margin) - cx0), np.uint8)
    mask[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = _opened_red(image, luts, core)
    if mask.any():
        mask = _without_lines(mask, px_per_mm, window)
    return mask, px_per_mm, factor, (cx0, cy0)


# OpenCV anchors a 2×2 kernel at its lower-right pixel, for the erosion and the dilation
# alike: a pixel survives the opening iff some all-ink 2×2 square lies within the 3×3 block
# ending at it, i.e. survivors lie 0–2 px right of and below an all-ink square.
OPEN_REACH = 2


def _red_core(image: np.ndarray, luts: np.ndarray) -> tuple[int, int, int, int] | None:
    """A box, (x0, y0, x1, y1) with x1 and y1 exclusive, outside which the red mask after
    the 2×2 opening is empty; None when it is empty everywhere.

    Every pixel that survives the opening comes from an all-ink 2×2 square (the page's
    edge counting as ink: the pixels of such a square that lie on the page include one at
    even row and column too), and every such square holds exactly one pixel at (even row,
    even column). So the red on every 2nd pixel each way, a quarter of the work, has a
    pixel at most OPEN_REACH above and left of every survivor: their bounding box grown by
    OPEN_REACH holds all of the opened mask. Red outside it (specks, hairlines, a chequer)
    is red the opening removes, so it need not be masked at all.
    """
    x, y, w, h = cv2.boundingRect(_red(_every(image, 2), luts))
    if w == 0 or h == 0:
        return None
    height, width = image.shape[:2]
    return (max(0, 2 * x - OPEN_REACH), max(0, 2 * y - OPEN_REACH),
            min(width, 2 * (x + w - 1) + 1 + OPEN_REACH), min(height, 2 * (y + h - 1) + 1 + OPEN_REACH))


def _opened_red(image: np.ndarray, luts: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The red mask after the 2×2 opening (specks, fringes) in `box`, pixel for pixel what
    the whole page's is there. The mask is computed OPEN_REACH px beyond the box (clipped to
    the page): erosion counts what lies past its input as ink, which on the page's edge is
    what the whole page's opening does too, but inside the page could let a hairline cut by
    the edge survive. Such false survivors stay within OPEN_REACH of that edge, in the band
    that is cut off, and every pixel of the box sees all the mask its opening reads."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    bx0, by0 = max(0, x0 - OPEN_REACH), max(0, y0 - OPEN_REACH)
    bx1, by1 = min(width, x1 + OPEN_REACH), min(height, y1 + OPEN_REACH)
    mask = _red(image[by0:by1, bx0:bx1], luts)
    if mask.any():
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    return mask[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]


def _margin(px_per_mm: float, window: SealWindow) -> int:
    """How far past the red the mask must reach for every step after it to give the whole
    page's pixels there (past the red the page holds none). The thickening before line
    removal and the grouping's dilation spread ink that far and no farther: their result
    must fit. The line openings need only a frame of nothing beyond the thickened ink,
    not their length: an erosion reads what lies past its input as ink, but a window that
    leaves the mask crosses that frame first, so it erodes to nothing there, as it does
    on the whole page."""
    return _thickening(px_per_mm) + _join(max(window.group_mm), px_per_mm) // 2 + 2


def _thickening(px_per_mm: float) -> int:
    """Iterations of the 3×3 dilation that thickens the mask before line removal (~0.3 mm)."""
    return max(1, round(0.3 * px_per_mm))


def _join(gap_mm: float, px_per_mm: float) -> int:
    """The (odd) width of the disc that joins pieces of one seal up to `gap_mm` apart."""
    return max(3, round(gap_mm * px_per_mm)) | 1


def detect_seal(image: np.ndarray, px_per_mm: float, window: SealWindow = WINDOW) -> bool | None:
    """True: a red seal is on this page image (BGR); False: a colour image without one;
    None: a greyscale image, which cannot show one."""
    if is_greyscale(image):
        return None
    mask, px_per_mm, _, origin = _working_mask(image, px_per_mm, window)
    return bool(mask.any()) and any(_any_seal(mask, px_per_mm, window, gap, origin) for gap in window.group_mm)


def _any_seal(mask: np.ndarray, px_per_mm: float, window: SealWindow, gap_mm: float,
              origin: tuple[int, int] = (0, 0)) -> bool:
    return next(_seal_boxes(mask, px_per_mm, window, gap_mm, origin), None) is not None


def _seal_boxes(mask: np.ndarray, px_per_mm: float, window: SealWindow, gap_mm: float,
                origin: tuple[int, int] = (0, 0)) -> Iterator[Box]:
    """Seals in `mask` as boxes in the page's working pixels (`origin`: where the mask
    was cut from the page, so the shape test sees the page's own coordinates)."""
    ox, oy = origin
    join = _join(gap_mm, px_per_mm)
    groups = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (join, join)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(groups, connectivity=8)
    smallest, largest = window.minor_min * px_per_mm, (window.major[1] * 1.2 + gap_mm) * px_per_mm
    for i in range(1, count):
        x, y, w, h = stats[i, :4]
        if max(w, h) < smallest or max(w, h) > largest:
            continue
        box = labels[y:y + h, x:x + w] == i
        ys, xs = np.nonzero(box & (mask[y:y + h, x:x + w] > 0))
        if len(xs) >= 5 and _is_seal(np.column_stack([xs + x + ox, ys + y + oy]), px_per_mm, window):
            yield (int(x + ox), int(y + oy), int(w), int(h))


def seal_boxes(image: np.ndarray, px_per_mm: float, window: SealWindow = WINDOW) -> list[Box]:
    """Where the seals on a page image (BGR) are, as (x, y, width, height) in its pixels:
    the same test as detect_seal, for staff to see what it found."""
    if is_greyscale(image):
        return []
    mask, px_per_mm, factor, origin = _working_mask(image, px_per_mm, window)
    found: list[Box] = []
    for gap in window.group_mm if mask.any() else ():
        found = list(_seal_boxes(mask, px_per_mm, window, gap, origin))
        if found:
            break
    return [tuple(round(v / factor) for v in box) for box in found]  # type: ignore[misc]


# --- pages of a PDF ---------------------------------------------------------------------


@dataclass
class PageImage:
    pixels: np.ndarray  # BGR, or 2-D grey
    px_per_mm: float
    scanned: bool  # one image covering the page, as a scanner makes


def _fit(pixels: np.ndarray, px_per_mm: float, dpi: int) -> tuple[np.ndarray, float]:
    """Shrink to the working dpi: a 600-dpi scan holds no more seal than a 150-dpi one."""
    target = dpi / MM_PER_INCH
    if px_per_mm <= target * 1.05:
        return pixels, px_per_mm
    scale = target / px_per_mm
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR), target


def _scan_image(page: pdfium.PdfPage) -> pdfium.PdfImage | None:
    width, height = page.get_size()
    images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))
    if len(images) != 1:
        return None
    left, bottom, right, top = images[0].get_bounds()
    covered = max(0.0, min(right, width) - max(left, 0)) * max(0.0, min(top, height) - max(bottom, 0))
    return images[0] if covered >= SCAN_COVER * width * height else None


# A scan's JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling) when
# that still gives at least the dpi asked for: a 600-dpi page costs what a 150-dpi one does.
JPEG_MAX_BYTES = 64 * 1024 * 1024
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _jpeg_pixels(image: pdfium.PdfImage, meta, long_px: float) -> np.ndarray | None:  # noqa: ANN001 - pdfium metadata
    """The scan's pixels (BGR) straight from its JPEG stream, decoded at the smallest DCT
    scale whose long side is still at least `long_px`; None when no reduction is possible
    or the image is anything but a plain 24-bit colour JPEG (pdfium decodes those)."""
    if meta.bits_per_pixel != 24 or max(meta.width, meta.height) < 2 * long_px:
        return None
    if image.get_filters() != ["DCTDecode"]:
        return None
    reduce, flag = next((r, f) for r, f in _REDUCED if max(meta.width, meta.height) / r >= long_px)
    data = bytes(image.get_data(decode_simple=False))
    if len(data) > JPEG_MAX_BYTES or _jpeg_size(data) != (meta.width, meta.height):
        return None  # the stream's own header must agree with the PDF before anything is decoded
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    expected = (math.ceil(meta.height / reduce), math.ceil(meta.width / reduce))
    if pixels is None or pixels.ndim != 3 or pixels.shape[:2] != expected:
        return None
    return pixels


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's header (nothing decoded), or None if it is no JPEG."""
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(data), formats=["JPEG"]) as jpeg:
            return jpeg.size if jpeg.mode == "RGB" else None
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def page_image(page: pdfium.PdfPage, dpi: int, *, least_px_per_mm: float | None = None) -> PageImage:
    """The page as pixels: the scanner's own image when the page is one (fast, and tells
    a grey scan by its colour space), else a render. With `least_px_per_mm` a scan's JPEG
    may be decoded down to that scale (never above `dpi`): what the seal check asks for."""
    width_mm, height_mm = paper_mm(*page.get_size())
    image = _scan_image(page)
    if image is not None:
        try:
            meta = image.get_metadata()
            if meta.bits_per_pixel == 1 or meta.colorspace in GREY_COLOURSPACES:
                return PageImage(np.zeros((1, 1), np.uint8), dpi / MM_PER_INCH, True)
            least = dpi / MM_PER_INCH if least_px_per_mm is None else min(dpi / MM_PER_INCH, least_px_per_mm)
            if (pixels := _jpeg_pixels(image, meta, max(width_mm, height_mm) * least)) is not None:
                fitted, scale = _fit(pixels, max(pixels.shape[:2]) / max(width_mm, height_mm), dpi)
                return PageImage(fitted, scale, True)
            bitmap = image.get_bitmap()
            if bitmap.format in (pdfium_c.FPDFBitmap_Gray, pdfium_c.FPDFBitmap_BGR,
                                 pdfium_c.FPDFBitmap_BGRx, pdfium_c.FPDFBitmap_BGRA):
                pixels = bitmap.to_numpy()
                pixels = pixels if pixels.ndim == 2 else pixels[..., :3]
                long_px = max(pixels.shape[:2])
                fitted, scale = _fit(pixels, long_px / max(width_mm, height_mm), dpi)
                return PageImage(fitted, scale, True)
        except pdfium.PdfiumError:
            pass  # an image pdfium cannot decode alone may still render
    return PageImage(render(page, dpi), dpi / MM_PER_INCH, image is not None)


def render(page: pdfium.PdfPage, dpi: int) -> np.ndarray:
    """The page as displayed (its rotation applied), BGR, at `dpi` of the assumed paper."""
    width_mm, height_mm = paper_mm(*page.get_size())
    scale = dpi / MM_PER_INCH * max(width_mm, height_mm) / max(page.get_size())
    return page.render(scale=scale).to_numpy()[..., :3]


def page_order(pages: int, cap: int) -> list[int]:
    """Where seals are: the first page (under 汇总单位) and the last, then the rest."""
    order = list(dict.fromkeys([0, pages - 1, *range(1, pages - 1)]))
    return [i for i in order if 0 <= i < pages][:cap]


@dataclass(frozen=True)
class SealResult:
    """found: True (a seal), False (colour pages, none shows one), None (nothing proved);
    greyscale: some checked page was a greyscale scan, which cannot show a red seal."""

    found: bool | None
    greyscale: bool = False


@stages.timing("seal (parser)")
def document_seal(pdf: pdfium.PdfDocument, dpi: int, *, deadline: float, max_pages: int = 6) -> SealResult:
    """True if any checked page shows a seal; False if some page is in colour and none
    does; None if no page could prove either (grey scans, or out of time)."""
    verdict: bool | None = None
    greyscale = False
    for index in page_order(len(pdf), max_pages):
        if time.monotonic() > deadline:
            break
        page = pdf[index]
        try:
            shot = page_image(page, dpi, least_px_per_mm=DECODE_PX_PER_MM)
        finally:
            page.close()
        found = detect_seal(shot.pixels, shot.px_per_mm)
        if found is None and not shot.scanned and shot.pixels.ndim == 3:
            # A page drawn, not scanned, in black only: it is in "colour" and has no seal.
            found = False
        if found:
            return SealResult(True)
        if found is False:
            verdict = False
        greyscale = greyscale or found is None
    return SealResult(verdict, greyscale=greyscale and verdict is None)
