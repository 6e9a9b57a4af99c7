"""What a submitted PDF tells us: its pages, its text (汇总单位, which forms, the 合计 row),
whether it carries a red seal, and, for an image-only scan, what OCR reads.

Nothing in a PDF is ever executed: pdfium renders without a form environment, so
JavaScript, OpenAction and Launch actions are inert, and pdfplumber only reads text.
Work per file is bounded by `limits.seconds_per_file` and by page caps.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

import pdfplumber
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from config.settings import LimitsSettings, ParsingSettings
from parsers.esign import pdf_signatures, settle_seal
from parsers.forms import FormSet, FormSpec, ValueType
from parsers.labels import header_fields, is_total, match_header, normalize
from parsers.model import PdfReport, Problem, ProblemCode, split_total_key, total_key
from parsers.numbers import NotANumber, to_decimal
from parsers.seal import SealResult, document_seal

MAX_TEXT_PAGES = 10  # the two forms fill a page or two each; the rest is annexes
MAX_SEAL_PAGES = 6
MAX_OCR_PAGES = 4  # ~2 s a page
MAX_FORM_NESTING = 16  # far deeper than producers nest forms; pdfium stops at 40, pdfminer does not
T = TypeVar("T")


@dataclass(frozen=True)
class Cell:
    """A piece of text on a page and its horizontal extent (any unit, one per page)."""

    text: str
    x0: float
    x1: float

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    x1: float
    top: float
    bottom: float


@dataclass
class Summary:
    """What the words of a PDF say, from its text layer or from OCR."""

    unit: str | None = None
    forms: list[str] = field(default_factory=list)  # form keys
    totals: dict[str, Decimal | None] = field(default_factory=dict)  # by total_key(form, field)
    has_text: bool = False

    def add(self, other: Summary) -> None:
        """Fill in from another page or reading; what is already known stays."""
        self.unit = self.unit or other.unit
        self.forms = sorted(set(self.forms) | set(other.forms))
        for key, value in other.totals.items():
            self.totals.setdefault(key, value)
        self.has_text = self.has_text or other.has_text


# --- reading rows of text ---------------------------------------------------------------


def rows_from_words(words: Iterable[Word]) -> list[list[Cell]]:
    """Group words into lines by vertical overlap, each line left to right."""
    lines: list[tuple[float, float, list[Word]]] = []
    for word in sorted(words, key=lambda w: (w.top + w.bottom) / 2):
        middle = (word.top + word.bottom) / 2
        if lines and lines[-1][0] <= middle <= lines[-1][1]:
            lines[-1][2].append(word)
            continue
        lines.append((word.top, word.bottom, [word]))
    return [[Cell(w.text, w.x0, w.x1) for w in sorted(members, key=lambda w: w.x0)] for _, _, members in lines]


def _forms_named(text: str, forms: FormSet) -> list[str]:
    """Forms whose title words (重点工程类, 技术技能类, …) or title appear in the text."""
    key = normalize(text)
    return [spec.key for spec in forms
            if any(normalize(part) in key for part in (*spec.short_title.split("、"), spec.title) if part.strip())]


def _unit(rows: Sequence[Sequence[Cell]], forms: FormSet) -> str | None:
    for row in rows:
        for i, cell in enumerate(row):
            fields = header_fields(" ".join(c.text for c in row[i:]), forms)
            if "unit" not in fields:
                continue
            value = fields["unit"] or (row[i + 1].text.strip() if i + 1 < len(row) else "")
            return value or None
    return None


def _number(text: str, kind: ValueType = ValueType.DECIMAL) -> Decimal | None:
    try:
        return to_decimal(text, kind)
    except NotANumber:
        return None


def _stacked(rows: Sequence[Sequence[Cell]]) -> Iterable[Cell]:
    """Every cell, and every cell joined with what sits right under it on the next line:
    a header wrapped inside its cell (`预计参赛非公企` over `业数`) reads as one label."""
    for i, row in enumerate(rows):
        below = rows[i + 1] if i + 1 < len(rows) else ()
        for cell in row:
            yield cell
            under = [c for c in below if cell.x0 <= c.centre <= cell.x1 or c.x0 <= cell.centre <= c.x1]
            if under:
                yield Cell(cell.text + "".join(c.text for c in under), min(cell.x0, *(c.x0 for c in under)),
                           max(cell.x1, *(c.x1 for c in under)))


def _header_columns(rows: Sequence[Sequence[Cell]], forms: FormSet) -> dict[str, dict[str, Cell]]:
    """Per form key, where each numeric column's header sits (the best-matching label wins)."""
    best: dict[tuple[str, str], tuple[tuple[int, int], Cell]] = {}
    for cell in _stacked(rows):
        for match in match_header(cell.text, forms):
            key = (match.form, match.column.field)
            if match.column.type.numeric and (key not in best or match.rank > best[key][0]):
                best[key] = (match.rank, cell)
    found: dict[str, dict[str, Cell]] = {}
    for (form, name), (_, cell) in best.items():
        found.setdefault(form, {})[name] = cell
    return found


def _map_by_position(spec: FormSpec, columns: dict[str, Cell], numbers: list[Cell]) -> dict[str, Cell] | None:
    """Each figure goes to the 合计 column header above it; None unless all those columns
    are known and every figure lands in a different one."""
    if not spec.total_fields or not set(spec.total_fields) <= set(columns):
        return None
    placed: dict[str, Cell] = {}
    for number in numbers:
        under = [f for f in spec.total_fields if columns[f].x0 - 2 <= number.centre <= columns[f].x1 + 2]
        if len(under) != 1 or under[0] in placed:
            return None
        placed[under[0]] = number
    return placed


def _totals_row(row: Sequence[Cell], headers: dict[str, dict[str, Cell]], named: list[str], forms: FormSet
                ) -> dict[str, Decimal | None]:
    start = next((i for i, c in enumerate(row) if is_total(c.text, forms)), None)
    if start is None:
        return {}
    numbers = [c for c in row[start + 1:] if _number(c.text) is not None]
    if not numbers:
        return {}
    candidates = sorted((s for s in forms if s.total_fields), key=lambda s: s.key not in named)
    for spec in candidates:
        placed = _map_by_position(spec, headers.get(spec.key, {}), numbers)
        if placed is not None:
            return _read(spec, placed)
    # No usable header: only a full row can be read in column order.
    for spec in candidates:
        if len(numbers) == len(spec.total_fields) and (not named or spec.key in named):
            return _read(spec, dict(zip(spec.total_fields, numbers)))
    return {}


def _read(spec: FormSpec, placed: dict[str, Cell]) -> dict[str, Decimal | None]:
    return {total_key(spec.key, f): (_number(placed[f].text, spec.column(f).type) if f in placed else None)
            for f in spec.total_fields}


def read_rows(rows: Sequence[Sequence[Cell]], forms: FormSet) -> Summary:
    """汇总单位, the forms named and the 合计 figures in rows of text from one page."""
    text = "\n".join(" ".join(c.text for c in row) for row in rows)
    named = _forms_named(text, forms)
    headers = _header_columns(rows, forms)
    summary = Summary(unit=_unit(rows, forms), forms=sorted(set(named) | set(headers)), has_text=bool(text.strip()))
    for row in rows:
        for key, value in _totals_row(row, headers, named, forms).items():
            summary.totals.setdefault(key, value)
    for spec in forms:
        if spec.total_fields and not any(split_total_key(k)[0] == spec.key for k in summary.totals):
            summary.totals.update(_unlabelled_totals(spec, rows, headers.get(spec.key, {})))
    return summary


def _unlabelled_totals(spec: FormSpec, rows: Sequence[Sequence[Cell]], columns: dict[str, Cell]
                       ) -> dict[str, Decimal | None]:
    """OCR can miss a short 合计 label. The 合计 row is then still the last row of the
    table that holds figures under the numeric headers and no text: every data row names
    its competition. Only rows after at least one such data row qualify."""
    found: dict[str, Decimal | None] = {}
    seen_data = False
    for row in rows:
        if not row:
            continue
        numbers = [c for c in row if _number(c.text) is not None]
        placed = _map_by_position(spec, columns, numbers) if numbers else None
        if placed is None:
            continue
        if len(numbers) == len(row) and seen_data and len(numbers) >= 2:
            found = _read(spec, placed)
        elif len(numbers) < len(row):
            seen_data = True
    return found


# --- the text layer -----------------------------------------------------------------------


def _table_rows(page: pdfplumber.page.Page) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for table in page.find_tables():
        for row, texts in zip(table.rows, table.extract()):
            rows.append([Cell(t or "", box[0], box[2]) for box, t in zip(row.cells, texts) if box is not None])
    return rows


def read_text_layer(data: bytes, forms: FormSet, *, deadline: float, max_pages: int = MAX_TEXT_PAGES) -> Summary:
    """The text layer read with pdfplumber; ruled tables first, then plain lines."""
    summary = Summary()
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for page in pdf.pages[:max_pages]:
            if time.monotonic() > deadline:
                break
            words = [Word(w["text"], w["x0"], w["x1"], w["top"], w["bottom"]) for w in page.extract_words()]
            if words:
                summary.add(read_rows(_table_rows(page), forms))
                summary.add(read_rows(rows_from_words(words), forms))
            page.close()  # pdfplumber caches each page's objects until closed
    return summary


def may_hold_text(pdf: pdfium.PdfDocument, max_pages: int = MAX_TEXT_PAGES) -> bool:
    """Whether pdfplumber could find words on the first pages. False only when pdfium parsed
    content on each page and none of it is a text object, at any form depth: a scan.

    pdfium's character count (FPDFText_CountChars) would not do: it leaves out text it
    cannot place (font size 0, a degenerate matrix) that pdfminer still reads as words.
    Any pdfium error counts as text, and pdfplumber decides as it always has. Not covered:
    malformed content the two parsers tokenise apart (an unterminated hex string, an inline
    image shorter than its declared size) or a page tree whose /Count hides a page can hide
    text from pdfium alone; such a crafted file is then read as the scan pdfium renders,
    which is all its seal check sees too."""
    try:
        return any(_page_may_hold_text(pdf, index) for index in range(min(len(pdf), max_pages)))
    except Exception:  # whatever pdfium or its bindings raise, pdfplumber reads the file
        return True


def _page_may_hold_text(pdf: pdfium.PdfDocument, index: int) -> bool:
    page = pdf[index]
    try:
        seen = False
        for obj in page.get_objects(max_depth=MAX_FORM_NESTING + 1):
            if obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT or obj.level >= MAX_FORM_NESTING:
                return True
            seen = True
        return not seen  # nothing parsed at all: blank, or content pdfium could not read
    finally:
        page.close()


# --- the file -----------------------------------------------------------------------------


def _problem(code: ProblemCode, message: str, name: str) -> Problem:
    return Problem(code, message, file=name)


def _open(data: bytes, name: str) -> tuple[pdfium.PdfDocument | None, list[Problem]]:
    try:
        return pdfium.PdfDocument(data), []
    except pdfium.PdfiumError as err:
        if getattr(err, "err_code", None) in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            return None, [_problem(ProblemCode.ENCRYPTED_FILE,
                                   f"《{name}》设置了打开密码，无法读取，请发送未加密的PDF。", name)]
        return None, [_problem(ProblemCode.UNREADABLE_FILE,
                               f"《{name}》无法打开，文件可能已损坏或未完整发送，请重新导出后发送。", name)]


def inspect_pdf(data: bytes, name: str, *, parsing: ParsingSettings, limits: LimitsSettings, forms: FormSet
                ) -> tuple[PdfReport | None, list[Problem]]:
    """Pages, text, seal and (optionally) OCR of one PDF; bad input becomes problems."""
    deadline = time.monotonic() + limits.seconds_per_file
    if len(data) > limits.max_file_bytes:
        return None, [_problem(ProblemCode.TOO_LARGE, f"《{name}》大小 {len(data) / 2**20:.1f} MB，超过"
                               f" {limits.max_file_bytes / 2**20:.0f} MB 的上限，未作检查。", name)]
    pdf, problems = _open(data, name)
    if pdf is None:
        return None, problems
    try:
        pages = len(pdf)
        if pages == 0:
            return None, [_problem(ProblemCode.UNREADABLE_FILE, f"《{name}》没有任何页面，请重新导出后发送。", name)]
        if pages > limits.max_pdf_pages:
            return PdfReport(pages=pages, has_text=False, seal=None), [_problem(
                ProblemCode.TOO_LARGE, f"《{name}》共 {pages} 页，超过 {limits.max_pdf_pages} 页的上限，"
                "未作检查。请只发送两张汇总表的盖章扫描件。", name)]
        summary = Summary()  # what pdfplumber reads from a page without text objects
        if may_hold_text(pdf):
            summary = _safely(lambda: read_text_layer(data, forms, deadline=deadline), summary)
        checked = SealResult(None)
        if parsing.seal_detection:
            checked = _safely(lambda: document_seal(pdf, parsing.seal_dpi, deadline=deadline,
                                                    max_pages=MAX_SEAL_PAGES), checked)
        seal = checked.found
        report = PdfReport(pages=pages, has_text=summary.has_text, seal=seal)
        if parsing.ocr and not summary.has_text:
            from parsers.ocr import read_scan  # onnxruntime loads only when OCR is on

            read = _safely(lambda: read_scan(pdf, forms, deadline=deadline, max_pages=MAX_OCR_PAGES), None)
            if read is not None:
                summary, report.ocr_used = read, True
        report.unit, report.forms = summary.unit, summary.forms
        report.totals = summary.totals or None
        if seal is False:
            problems.append(_problem(ProblemCode.SEAL_NOT_FOUND, f"《{name}》未检测到红色公章，请确认已盖章后扫描。",
                                     name))
        elif checked.greyscale:
            problems.append(_problem(ProblemCode.SEAL_UNVERIFIABLE,
                                     f"《{name}》扫描件为黑白，无法判断是否盖章，请工作人员核对。", name))
        signatures = _safely(lambda: pdf_signatures(pdf), [])
        return report, settle_seal(report, problems, name, signatures)
    finally:
        pdf.close()


def _safely(work: Callable[[], T], fallback: T) -> T:
    """A damaged page or stream costs that reading, never the whole file."""
    try:
        return work()
    except Exception:  # pdfminer, pdfium and OpenCV each raise their own zoo on bad input
        return fallback
