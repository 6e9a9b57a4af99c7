"""OCR for image-only scans: rapidocr on onnxruntime, with the models that ship inside the
rapidocr wheel (nothing is downloaded; a wheel without them means OCR is unavailable).

Off the reply path and off by default (`parsing.ocr`): ~2 s a page on two cores. The
engine loads once per process, on first use.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pypdfium2 as pdfium

from parsers.forms import FormSet
from parsers.pdf import Summary, Word, read_rows, rows_from_words
from parsers.seal import page_order, render

OCR_DPI = 150  # table text at 10 pt is ~25 px high: plenty for the recogniser
MODEL_FILES = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
_engine: Any = None
_lock = threading.Lock()


class OcrUnavailable(RuntimeError):
    """rapidocr is not installed, or its wheel carries no models."""


def packaged_models() -> dict[str, str]:
    """The model files inside the installed rapidocr package, by rapidocr's param name."""
    try:
        import rapidocr
    except ImportError as err:
        raise OcrUnavailable("rapidocr is not installed: pip install 'intake[ocr]'") from err
    folder = Path(rapidocr.__file__).parent / "models"
    paths = {key: folder / name for key, name in MODEL_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise OcrUnavailable(f"rapidocr models missing (would be downloaded): {missing}")
    return {key: str(path) for key, path in paths.items()}


def engine() -> Any:
    """The process's one RapidOCR engine, built on first use."""
    global _engine
    with _lock:
        if _engine is None:
            from rapidocr import RapidOCR

            _engine = RapidOCR(params={**packaged_models(), "Global.log_level": "warning"})
        return _engine


def ink_only(bgr: np.ndarray) -> np.ndarray:
    """The red channel as grey: black and blue ink stay dark, a red seal over the text
    turns pale, so the recogniser reads the unit's name through the seal."""
    grey = bgr if bgr.ndim == 2 else bgr[..., 2]
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR)


def _skew(boxes: np.ndarray) -> float:
    """The page's skew (radians) from the top edges of the longer text boxes: a degree of
    skew moves one end of an A4 line by half a line height, which would split rows."""
    edges = boxes[:, 1] - boxes[:, 0]
    long = np.hypot(edges[:, 0], edges[:, 1]) > 3 * np.hypot(*(boxes[:, 3] - boxes[:, 0]).T)
    if not long.any():
        return 0.0
    return float(np.median(np.arctan2(edges[long, 1], edges[long, 0])))


def _sideways(boxes: np.ndarray) -> bool:
    """Most text lines run up the page: it was fed in sideways."""
    width = np.hypot(*(boxes[:, 1] - boxes[:, 0]).T)
    height = np.hypot(*(boxes[:, 3] - boxes[:, 0]).T)
    lines = (width > 2 * height) | (height > 2 * width)
    return int(np.count_nonzero(height[lines] > width[lines])) * 2 > int(np.count_nonzero(lines))


def _recognise(grey: np.ndarray) -> tuple[np.ndarray, list[str]]:
    result = engine()(grey)
    if result.boxes is None or result.txts is None or not len(result.txts):
        return np.zeros((0, 4, 2)), []
    return np.asarray(result.boxes, dtype=np.float64).reshape(-1, 4, 2), [str(t) for t in result.txts]


def read_words(bgr: np.ndarray) -> list[Word]:
    """The words on a page image, in page-aligned coordinates (turned upright, skew out).
    A page scanned sideways costs a second pass; upside-down lines are the recogniser's
    angle classifier's job."""
    grey = ink_only(bgr)
    boxes, texts = _recognise(grey)
    if len(texts) and _sideways(boxes):
        boxes, texts = _recognise(np.ascontiguousarray(np.rot90(grey, k=-1)))
    if not texts:
        return []
    angle = _skew(boxes)
    cos, sin = np.cos(-angle), np.sin(-angle)
    x, y = boxes[..., 0], boxes[..., 1]
    xs, ys = x * cos - y * sin, x * sin + y * cos
    return [Word(text, float(xs[i].min()), float(xs[i].max()), float(ys[i].min()), float(ys[i].max()))
            for i, text in enumerate(texts)]


def read_scan(pdf: pdfium.PdfDocument, forms: FormSet, *, deadline: float, max_pages: int = 4) -> Summary:
    """汇总单位, forms and 合计 figures read by OCR from the first and last pages."""
    summary = Summary()
    for index in sorted(page_order(len(pdf), max_pages)):
        if time.monotonic() > deadline:
            break
        page = pdf[index]
        try:
            pixels = render(page, OCR_DPI)
        finally:
            page.close()
        summary.add(read_rows(rows_from_words(read_words(pixels)), forms))
    return summary
