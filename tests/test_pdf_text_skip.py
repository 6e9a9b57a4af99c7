"""A PDF that pdfium finds no text in (a scan) is not read by pdfplumber, and reports as before."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from functools import cache

import pdfplumber
import pypdfium2 as pdfium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import LimitsSettings, ParsingSettings
from parsers import pdf
from parsers.model import PdfReport, Problem
from tests.fixtures import scans
from tests.support.campaigns import DEFAULT_FORMS

PARSING, LIMITS = ParsingSettings(), LimitsSettings()
logging.getLogger("pdfminer").setLevel(logging.ERROR)  # the hand-made PDFs below are broken on purpose


def inspect(data: bytes) -> tuple[PdfReport | None, list[Problem]]:
    return pdf.inspect_pdf(data, "汇总表.pdf", parsing=PARSING, limits=LIMITS, forms=DEFAULT_FORMS)


def inspect_as_before(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[PdfReport | None, list[Problem]]:
    """The report with the text layer always read by pdfplumber, as before the pdfium check."""
    with monkeypatch.context() as patch:
        patch.setattr(pdf, "may_hold_text", lambda *_args, **_kwargs: True)
        return inspect(data)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every file pdfplumber opens from now on (it still opens them)."""
    calls: list[object] = []
    real = pdfplumber.open

    def spy(*args: object, **kwargs: object) -> pdfplumber.PDF:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pdfplumber, "open", spy)
    return calls


def may_hold_text(data: bytes) -> bool:
    document = pdfium.PdfDocument(data)
    try:
        return pdf.may_hold_text(document)
    finally:
        document.close()


# --- PDFs made for these tests ---------------------------------------------------------------


def raw_pdf(content: bytes, *, objects: dict[int, bytes] | None = None) -> bytes:
    """One Letter page drawing `content`, its objects written by hand: Helvetica as /F1
    (object 4), the image /Im (6) and the form /Fm (7, which shows text in /F1)."""
    body = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R /Resources"
           b" << /Font << /F1 4 0 R >> /XObject << /Im 6 0 R /Fm 7 0 R >> >> >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        5: _stream(content),
        6: _stream(b"\x80" * 4, b"/Subtype /Image /Width 2 /Height 2 /BitsPerComponent 8 /ColorSpace /DeviceGray"),
        7: _stream(b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET", b"/Subtype /Form /BBox [0 0 612 792]"
                   b" /Resources << /Font << /F1 4 0 R >> >>"),
        **(objects or {}),
    }
    out = bytearray(b"%PDF-1.7\n")
    offsets = {}
    for number in sorted(body):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body[number])
    size = max(body) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
                    for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def _stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), entries, data)


def nested_forms_pdf(depth: int) -> bytes:
    """Text inside `depth` form XObjects, each drawing the next."""
    objects = {7 + level: _stream(b"/Fm Do", b"/Subtype /Form /BBox [0 0 612 792]"
                                  b" /Resources << /XObject << /Fm %d 0 R >> >>" % (8 + level))
               for level in range(depth - 1)}
    objects[7 + depth - 1] = _stream(b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET", b"/Subtype /Form /BBox [0 0 612 792]"
                                     b" /Resources << /Font << /F1 4 0 R >> >>")
    return raw_pdf(b"/Fm Do", objects=objects)


def _reportlab_canvas() -> tuple[io.BytesIO, object]:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    return buf, canvas.Canvas(buf, pagesize=landscape(A4))


UNIT_LINE = f"汇总单位（公章）：{scans.UNIT}"


@cache
def ocr_layer_pdf() -> bytes:
    """A scan with an OCR program's invisible text (render mode 3) laid over it."""
    from reportlab.lib.utils import ImageReader

    buf, c = _reportlab_canvas()
    width, height = c._pagesize
    c.drawImage(ImageReader(scans.scanify(scans.form_page(scans.FORM1_SHEET))), 0, 0, width, height)
    text = c.beginText(40, height - 80)
    text.setTextRenderMode(3)
    text.setFont("STSong-Light", 11)
    text.textLine(UNIT_LINE)
    c.drawText(text)
    c.showPage()
    c.save()
    return buf.getvalue()


@cache
def form_xobject_pdf() -> bytes:
    """The unit line drawn inside a form XObject, as some exporters and stampers write text."""
    buf, c = _reportlab_canvas()
    c.beginForm("header")
    c.setFont("STSong-Light", 11)
    c.drawString(40, 500, UNIT_LINE)
    c.endForm()
    c.doForm("header")
    c.showPage()
    c.save()
    return buf.getvalue()


# --- the scans skip pdfplumber -------------------------------------------------------------


@pytest.mark.parametrize("make", [scans.sealed_scan, scans.two_page_scan, scans.grey_sealed_scan,
                                  scans.active_content_pdf], ids=lambda make: make.__name__)
def test_a_scan_is_not_read_by_pdfplumber_and_reports_as_before(make: Callable[[], bytes], opened: list[object],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    before = inspect_as_before(make(), monkeypatch)
    opened.clear()
    assert inspect(make()) == before
    assert opened == []


# --- text, wherever it sits, is still read by pdfplumber -----------------------------------


TEXT_PDFS = {
    "table": lambda: scans.text_layer_pdf((scans.FORM1_SHEET, scans.FORM2_SHEET)),
    "table_without_grid_lines": lambda: scans.text_layer_pdf((scans.FORM2_SHEET,), ruled=False),
    "invisible_ocr_text_over_a_scan": ocr_layer_pdf,
    "text_in_a_form_xobject": form_xobject_pdf,
    "password_free_encrypted": lambda: scans.encrypted_pdf(user_password=""),
}


@pytest.mark.parametrize("make", TEXT_PDFS.values(), ids=TEXT_PDFS.keys())
def test_a_text_pdf_is_read_by_pdfplumber_and_reports_as_before(make: Callable[[], bytes], opened: list[object],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    before = inspect_as_before(make(), monkeypatch)
    opened.clear()
    report, problems = inspect(make())
    assert opened and (report, problems) == before
    assert report is not None and report.has_text and report.unit == scans.UNIT


# pdfium's own character count leaves these out; pdfminer reads each as the word "Hello".
UNPLACED_TEXT = {
    "font_size_zero": b"BT /F1 0 Tf 72 700 Td (Hello) Tj ET",
    "horizontal_scale_zero": b"BT /F1 12 Tf 0 Tz 72 700 Td (Hello) Tj ET",
    "degenerate_text_matrix": b"BT /F1 12 Tf 0 0 0 0 72 700 Tm (Hello) Tj ET",
    "degenerate_page_matrix": b"0 0 0 0 0 0 cm BT /F1 12 Tf 72 700 Td (Hello) Tj ET",
    "huge_font_size": b"BT /F1 1e30 Tf 72 700 Td (Hello) Tj ET",
}


@pytest.mark.parametrize("content", UNPLACED_TEXT.values(), ids=UNPLACED_TEXT.keys())
def test_text_pdfium_cannot_place_is_still_read_by_pdfplumber(content: bytes, opened: list[object]) -> None:
    report, _ = inspect(raw_pdf(b"/Im Do " + content))
    assert opened and report is not None and report.has_text


def test_text_nested_deeper_than_pdfium_parses_forms_is_still_read_by_pdfplumber(opened: list[object]) -> None:
    report, _ = inspect(nested_forms_pdf(41))  # pdfium stops at 40 levels, pdfminer does not
    assert opened and report is not None and report.has_text


def test_a_page_pdfium_parses_nothing_on_is_still_read_by_pdfplumber(opened: list[object]) -> None:
    # An unfiltered inline image whose data is shorter than its size says: pdfium takes
    # the rest of the stream for pixels, pdfminer stops at EI and reads the text after it.
    report, _ = inspect(raw_pdf(b"BI /W 100 /H 100 /BPC 8 /CS /G ID x EI BT /F1 12 Tf 72 700 Td (Hello) Tj ET"))
    assert opened and report is not None and report.has_text


def test_a_pdfium_error_leaves_the_reading_to_pdfplumber(opened: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise pdfium.PdfiumError("Failed to get pageobject.")

    monkeypatch.setattr(pdfium.PdfPage, "get_objects", broken)
    report, _ = inspect(scans.text_layer_pdf())
    assert opened and report is not None and report.unit == scans.UNIT


# --- the claim itself, on content streams made to disagree ---------------------------------
# Left out on purpose: tokens the two parsers lex apart (an unterminated hex string `<48`, an
# inline image `BI … ID … EI` shorter than its size), the gap parsers.pdf.may_hold_text names.

FRAGMENTS = [
    b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET", b"BT /F1 0 Tf (Hello) Tj ET", b"BT /F1 1e30 Tf (Hello) Tj ET",
    b"0 0 0 0 0 0 cm", b"1e30 0 0 1e30 0 0 cm", b"2 0 0 2 10 10 cm", b"q", b"Q", b"3 Tr", b"7 Tr", b"0 Tz",
    b"0 0 0 0 1 1 Tm", b"BT", b"ET", b"/F1 12 Tf", b"/F9 12 Tf", b"(Hello) Tj", b"[(He) -20 (llo)] TJ",
    b"(Hello) '", b"1 2 (Hello) \"", b"<48656c6c6f> Tj", b"42 Tj", b"/Im Do", b"/Fm Do", b"/Missing Do",
    b"<<", b">>", b"[", b"]", b"(", b")", b"{", b"}", b"%", b"\x00", b"\\", b"EI", b"endstream",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14), st.sampled_from([b" ", b"\n", b""]))
def test_when_pdfium_finds_no_text_pdfplumber_finds_no_words(parts: list[bytes], sep: bytes) -> None:
    data = raw_pdf(sep.join(parts))
    if may_hold_text(data):
        return
    try:
        summary = pdf.read_text_layer(data, DEFAULT_FORMS, deadline=time.monotonic() + 60)
    except Exception:  # inspect_pdf takes a failed reading for an empty one
        summary = pdf.Summary()
    assert summary == pdf.Summary()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=100_000), junk=st.binary(min_size=1, max_size=64))
def test_a_damaged_text_pdf_reports_as_before(cut: int, junk: bytes) -> None:
    data = form_xobject_pdf()
    at = cut % len(data)
    damaged = data[:at] + junk + data[at + len(junk):]
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert inspect(damaged) == inspect_as_before(damaged, monkeypatch)
