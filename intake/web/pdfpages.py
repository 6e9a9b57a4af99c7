"""A PDF page as a PNG with the detected seal outlined, for the 报送 page.

The PDF is a sender's file: pdfium reads it in a child process with a memory and CPU
cap and a timeout, so a hostile file can cost one failed image, never the console.
`python -m intake.web.pdfpages FILE PAGE` writes the PNG to standard output.
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from threading import Lock

DPI = 110
MEMORY_BYTES = 1536 * 1024 * 1024
CPU_SECONDS = 20
TIMEOUT_SECONDS = 30
OUTLINE = (0, 160, 255)  # a blue no seal ink has
_cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
_cache_lock = Lock()
CACHE_PAGES = 48


class PageError(Exception):
    """The page could not be drawn (Chinese message)."""


def page_png(path: Path, index: int, key: str) -> bytes:
    """Page `index` (0-based) of the PDF at `path`; `key` (its sha256) names it in the cache."""
    with _cache_lock:
        if (key, index) in _cache:
            _cache.move_to_end((key, index))
            return _cache[(key, index)]
    try:
        done = subprocess.run([sys.executable, "-m", "intake.web.pdfpages", str(path), str(index)],
                              capture_output=True, timeout=TIMEOUT_SECONDS, preexec_fn=_limits, check=False)
    except subprocess.TimeoutExpired:
        raise PageError("生成页面图像超时。") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        raise PageError("无法生成该页的图像。")
    with _cache_lock:
        _cache[(key, index)] = done.stdout
        while len(_cache) > CACHE_PAGES:
            _cache.popitem(last=False)
    return done.stdout


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def draw(path: Path, index: int) -> bytes:
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    from parsers.seal import MM_PER_INCH, render, seal_boxes

    pdf = pdfium.PdfDocument(str(path))
    try:
        page = pdf[index]
        pixels = render(page, DPI)  # BGR
        page.close()
    finally:
        pdf.close()
    boxes = seal_boxes(pixels, DPI / MM_PER_INCH)
    image = Image.fromarray(pixels[..., ::-1].copy())
    pen = ImageDraw.Draw(image)
    for x, y, w, h in boxes:
        pad = max(4, w // 12)
        pen.ellipse((x - pad, y - pad, x + w + pad, y + h + pad), outline=OUTLINE, width=4)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()


if __name__ == "__main__":  # the child process
    sys.stdout.buffer.write(draw(Path(sys.argv[1]), int(sys.argv[2])))
