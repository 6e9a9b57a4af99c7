"""OFD (GB/T 33190), China's fixed-layout format: the stamped copy, like a PDF.

An OFD is a zip of XML: OFD.xml → DocBody/DocRoot → Document.xml → Pages/Page_N/Content.xml,
whose TextObjects carry the text (TextCode, positioned in mm) and whose ImageObjects point
at MultiMedia resources (the page scan, a seal picture). A signed OFD lists its seals in
DocBody/Signatures → Signatures.xml → Sign_N/Signature.xml, whose SignedValue.dat is a
GB/T 38540 SES_Signature holding the signer's certificate.

What is read: the text (汇总单位, forms, 合计, as from a PDF's text layer), the red-seal
check on every page image, and the signatures (an electronic seal, never verified). The
package is attacker-made: members are capped in number and size before they are read
(never trusting the sizes the zip declares), XML goes through defusedxml, and a path in
the XML never leaves the package.
"""

from __future__ import annotations

import io
import posixpath
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from PIL import Image

from config.settings import LimitsSettings, ParsingSettings
from parsers.forms import FormSet
from parsers.esign import MAX_CONTENTS, MAX_SIGNATURES, Signature, settle_seal, signer_from_der
from parsers.model import PdfReport, Problem, ProblemCode
from parsers.pdf import MAX_SEAL_PAGES, MAX_TEXT_PAGES, Summary, Word, read_rows, rows_from_words
from parsers.seal import detect_seal

MAX_XML_BYTES = 8 << 20  # a page's Content.xml with thousands of glyphs is well under 1 MB
MAX_IMAGES_PER_PAGE = 8
MAX_IMAGE_PIXELS = 60_000_000  # an A4 page at 600 dpi is 35 Mpx
A4_MM = (210.0, 297.0)


class OfdRejected(Exception):
    def __init__(self, code: ProblemCode, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Package:
    """The zip, read member by member within the limits."""

    def __init__(self, data: bytes, limits: LimitsSettings) -> None:
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        infos = self.zip.infolist()
        if len(infos) > limits.max_zip_members:
            raise OfdRejected(ProblemCode.UNSAFE_FILE, f"包含 {len(infos)} 个部件，超过 {limits.max_zip_members} 个的上限")
        # Producers differ in case and in a leading "/": look members up loosely.
        self.names = {info.filename.lstrip("/").lower(): info for info in infos}
        self.left = limits.max_unpacked_bytes
        self.ratio = limits.max_zip_ratio

    def read(self, path: str, cap: int) -> bytes:
        info = self.names.get(path.lower())
        if info is None:
            raise KeyError(path)
        if info.compress_size and info.file_size / info.compress_size > self.ratio:
            raise OfdRejected(ProblemCode.UNSAFE_FILE, "压缩比异常（疑似压缩炸弹）")
        with self.zip.open(info) as member:
            blob = member.read(min(cap, self.left) + 1)  # the declared size may lie
        if len(blob) > min(cap, self.left):
            raise OfdRejected(ProblemCode.TOO_LARGE, "解压后内容超过处理上限")
        self.left -= len(blob)
        return blob

    def xml(self, path: str) -> Element:
        return fromstring(self.read(path, MAX_XML_BYTES))

    def has(self, path: str) -> bool:
        return path.lower() in self.names


def resolve(base_dir: str, location: str | None) -> str | None:
    """A path written in the XML: absolute from the package root, else relative to the
    file that names it; None for one that would leave the package."""
    if not location or not location.strip():
        return None
    location = location.strip().replace("\\", "/")
    joined = location.lstrip("/") if location.startswith("/") else posixpath.join(base_dir, location)
    path = posixpath.normpath(joined)
    return None if path.startswith("..") or path.startswith("/") or path == "." else path


def _local(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _all(element: Element, name: str) -> Iterator[Element]:
    """Descendants by local name: producers disagree on the namespace (or use none)."""
    return (e for e in element.iter() if _local(e) == name)


def _first_text(element: Element, name: str) -> str | None:
    return next((e.text for e in _all(element, name) if e.text and e.text.strip()), None)


def _numbers(text: str | None) -> list[float]:
    try:
        return [float(v) for v in (text or "").split()]
    except ValueError:
        return []


# --- the document --------------------------------------------------------------------------


@dataclass
class Page:
    words: list[Word] = field(default_factory=list)
    images: list[tuple[str, float]] = field(default_factory=list)  # resource id, width in mm


@dataclass
class Document:
    pages: list[str]  # Content.xml paths, in order
    media: dict[str, str]  # MultiMedia ID → member path
    signatures: list[str]  # Signature.xml paths


def read_document(package: Package) -> Document:
    root = package.xml("OFD.xml")
    body = next(_all(root, "DocBody"), None)
    doc_path = resolve("", _first_text(body, "DocRoot") if body is not None else None)
    if doc_path is None:
        raise OfdRejected(ProblemCode.UNREADABLE_FILE, "缺少文档入口（DocRoot）")
    document = package.xml(doc_path)
    doc_dir = posixpath.dirname(doc_path)
    pages = [p for p in (resolve(doc_dir, e.get("BaseLoc")) for e in _all(document, "Page")) if p]
    media: dict[str, str] = {}
    for tag in ("PublicRes", "DocumentRes"):
        for entry in _all(document, tag):
            if (res_path := resolve(doc_dir, entry.text)) and package.has(res_path):
                media.update(_media(package.xml(res_path), posixpath.dirname(res_path)))
    signs_path = resolve("", _first_text(body, "Signatures")) if body is not None else None
    return Document(pages, media, _signature_files(package, signs_path))


def _media(res: Element, res_dir: str) -> dict[str, str]:
    base = resolve(res_dir, res.get("BaseLoc")) or res_dir
    found = {}
    for item in _all(res, "MultiMedia"):
        path = resolve(base, _first_text(item, "MediaFile"))
        if item.get("ID") and path:
            found[item.get("ID")] = path
    return found


def _signature_files(package: Package, signs_path: str | None) -> list[str]:
    if signs_path is None or not package.has(signs_path):
        # Some producers write Signs/ without naming it in OFD.xml.
        signs_path = next((key for key in package.names if key.endswith("signs/signatures.xml")), None)
        if signs_path is None:
            return []
    signs = package.xml(signs_path)
    base = posixpath.dirname(signs_path)
    return [p for p in (resolve(base, e.get("BaseLoc")) for e in _all(signs, "Signature")) if p][:MAX_SIGNATURES]


def read_page(package: Package, path: str) -> Page:
    page = Page()
    content = package.xml(path)
    for text in _all(content, "TextObject"):
        box = _numbers(text.get("Boundary"))
        size = (_numbers(text.get("Size")) or [3.5])[0]
        if len(box) != 4:
            continue
        for code in _all(text, "TextCode"):
            chars = (code.text or "").strip()
            x, y = (_numbers(code.get("X")) or [0.0])[0], (_numbers(code.get("Y")) or [size])[0]
            if chars:
                left, baseline = box[0] + x, box[1] + y
                page.words.append(Word(chars, left, left + size * len(chars), baseline - size, baseline))
    for image in _all(content, "ImageObject"):
        box = _numbers(image.get("Boundary"))
        if image.get("ResourceID") and len(box) == 4 and box[2] > 0:
            page.images.append((image.get("ResourceID"), box[2]))
    return page


# --- seals -----------------------------------------------------------------------------------


def _image_pixels(blob: bytes) -> np.ndarray | None:
    """BGR pixels (transparency over white paper), or None for what PIL cannot decode."""
    try:
        with Image.open(io.BytesIO(blob)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                return None
            image.load()
            if image.mode in ("1", "L", "I", "I;16", "F"):
                return np.asarray(image.convert("L"))
            rgba = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = np.asarray(Image.alpha_composite(paper, rgba).convert("RGB"))
    return np.ascontiguousarray(rgb[..., ::-1])


def page_seal(package: Package, page: Page, media: dict[str, str], cap: int) -> bool | None:
    """True: a page image shows a red seal; False: page images in colour without one, or a
    page of text with no image (drawn, not scanned: no red seal on it); None: only grey."""
    verdict: bool | None = False if page.words and not page.images else None
    for resource, width_mm in page.images[:MAX_IMAGES_PER_PAGE]:
        path = media.get(resource)
        pixels = _image_pixels(package.read(path, cap)) if path and package.has(path) else None
        if pixels is None:
            continue
        found = detect_seal(pixels, pixels.shape[1] / width_mm)
        if found:
            return True
        if found is False:
            verdict = False
    return verdict


def signatures(package: Package, files: list[str]) -> list[Signature]:
    found = []
    for path in files:
        if not package.has(path):
            continue
        signed = _first_text(package.xml(path), "SignedValue")
        value = resolve(posixpath.dirname(path), signed)
        blob = package.read(value, MAX_CONTENTS) if value and package.has(value) else b""
        found.append(Signature(signer_from_der(blob)))
    return found


# --- the file --------------------------------------------------------------------------------


def inspect_ofd(data: bytes, name: str, *, parsing: ParsingSettings, limits: LimitsSettings, forms: FormSet
                ) -> tuple[PdfReport | None, list[Problem]]:
    """Pages, text, seal (page images and signatures) of one OFD; bad input becomes problems."""
    deadline = time.monotonic() + limits.seconds_per_file
    try:
        package = Package(data, limits)
        document = read_document(package)
        if not document.pages:
            raise OfdRejected(ProblemCode.UNREADABLE_FILE, "没有任何页面")
        if len(document.pages) > limits.max_pdf_pages:
            return PdfReport(pages=len(document.pages), has_text=False, seal=None), [_problem(
                ProblemCode.TOO_LARGE, name, f"共 {len(document.pages)} 页，超过 {limits.max_pdf_pages} 页的上限，未作检查。")]
        report, problems = _read_pages(package, document, name, parsing, limits, deadline, forms)
        return report, settle_seal(report, problems, name, signatures(package, document.signatures))
    except OfdRejected as rejected:
        return None, [_problem(rejected.code, name, rejected.reason + "。")]
    except (zipfile.BadZipFile, KeyError, ParseError, DefusedXmlException, ValueError, OSError, EOFError):
        return None, [_problem(ProblemCode.UNREADABLE_FILE, name, "不是有效的 OFD 文件，无法读取，请重新导出后发送。")]


def _read_pages(package: Package, document: Document, name: str, parsing: ParsingSettings,
                limits: LimitsSettings, deadline: float, forms: FormSet) -> tuple[PdfReport, list[Problem]]:
    summary, seal = Summary(), None
    for index, path in enumerate(document.pages[:max(MAX_TEXT_PAGES, MAX_SEAL_PAGES)]):
        if time.monotonic() > deadline:
            break
        page = read_page(package, path)
        if index < MAX_TEXT_PAGES and page.words:
            summary.add(read_rows(rows_from_words(page.words), forms))
        if parsing.seal_detection and index < MAX_SEAL_PAGES and seal is not True:
            found = page_seal(package, page, document.media, limits.max_file_bytes)
            seal = found if found is not None else seal
    report = PdfReport(pages=len(document.pages), has_text=summary.has_text, seal=seal, unit=summary.unit,
                       totals=summary.totals or None, forms=summary.forms)
    problems = []
    if seal is False:
        problems.append(_problem(ProblemCode.SEAL_NOT_FOUND, name, "未检测到红色公章或电子签章，请确认已盖章。"))
    return report, problems


def _problem(code: ProblemCode, name: str, text: str) -> Problem:
    return Problem(code, f"《{name}》{text}", file=name)
