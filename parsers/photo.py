"""A phone photo of the stamped form (JPG, PNG, HEIC) taken as the stamped copy.

The photo is turned upright (its EXIF orientation), made into a one-page PDF the size
of A4 across its short side, and that PDF is inspected like a scan (parsers.pdf: seal,
text, OCR). The PDF goes back in the report for the archive; the original stays as sent.
A small picture (a logo in a signature, an icon) is not a photo of a page and is left alone.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

from config.settings import LimitsSettings, ParsingSettings
from parsers.forms import FormSet
from parsers.model import PdfReport, Problem, ProblemCode

try:  # HEIC from iPhones; without pillow-heif such a photo simply does not open
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - a declared dependency
    pass

# A photographed page: a phone gives thousands of pixels a side; a signature logo a few hundred.
MIN_SHORT_SIDE = 600
MAX_PIXELS = 80_000_000  # above any phone camera; a larger "photo" is a decompression bomb
# The PDF keeps enough for the seal and OCR (300 dpi A4) and no more.
MAX_LONG_SIDE = 3508
A4_SHORT_INCH = 210 / 25.4
JPEG_QUALITY = 85
PHOTO_FORMATS = frozenset({"JPEG", "MPO", "PNG", "HEIF", "AVIF", "TIFF", "WEBP"})


def photo_pdf(data: bytes) -> bytes | None:
    """The photo upright as a one-page PDF, or None when it is no photo of a page."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in PHOTO_FORMATS or min(image.size) < MIN_SHORT_SIDE:
                    return None
                upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None  # not an image Pillow can decode (or one it must not)
    upright.thumbnail((MAX_LONG_SIDE, MAX_LONG_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    upright.save(buffer, "PDF", resolution=min(upright.size) / A4_SHORT_INCH, quality=JPEG_QUALITY)
    return buffer.getvalue()


def inspect_photo(data: bytes, name: str, *, parsing: ParsingSettings, limits: LimitsSettings, forms: FormSet
                  ) -> tuple[bytes, PdfReport | None, list[Problem]] | None:
    """The derived PDF, what inspecting it found, and the problems (photo_not_pdf first);
    None when the file is no photo of a page."""
    from parsers.pdf import inspect_pdf

    pdf = photo_pdf(data)
    if pdf is None:
        return None
    report, problems = inspect_pdf(pdf, name, parsing=parsing, limits=limits, forms=forms)
    notice = Problem(ProblemCode.PHOTO_NOT_PDF, f"《{name}》是照片而不是扫描的 PDF，已按盖章件处理；"
                                                "如有条件，请改用扫描仪扫描为 PDF 后发送。", name)
    return pdf, report, [notice, *problems]
