"""Which kind of file this is, decided from its bytes; the extension only breaks ties."""

from __future__ import annotations

import io
import zipfile

from parsers.model import FileKind
from parsers.sniff import is_heif, ole_kind, text_kind

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, .doc, and Office-encrypted .xlsx
EXTENSIONS = {
    "xlsx": FileKind.XLSX, "xlsm": FileKind.XLSX, "xls": FileKind.XLS, "docx": FileKind.DOCX,
    "csv": FileKind.CSV, "pdf": FileKind.PDF, "zip": FileKind.ZIP, "ofd": FileKind.OFD,
}
# Legacy Word/WPS formats (OLE2 containers too) that no reader here understands.
LEGACY_EXTENSIONS = frozenset({"doc", "dot", "wps", "wpt", "et", "ett"})


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _ooxml_kind(data: bytes, ext: str) -> FileKind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        # Broken: a truncated workbook or document goes to its reader, which says so;
        # anything else to the zip reader.
        return EXTENSIONS[ext] if ext in ("xlsx", "xlsm", "docx", "ofd") else FileKind.ZIP
    if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
        return FileKind.XLSX
    if "word/document.xml" in names:
        return FileKind.DOCX
    if any(n.lstrip("/").lower() == "ofd.xml" for n in names):  # GB/T 33190: never unpacked as an archive
        return FileKind.OFD
    return FileKind.ZIP


def detect_kind(data: bytes, name: str = "") -> FileKind:
    head = data[:8]
    ext = extension(name)
    if data[:1024].lstrip().startswith(b"%PDF") or b"%PDF-" in data[:1024]:
        return FileKind.PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _ooxml_kind(data, ext)
    if head == OLE2:
        # An OLE2 container named .xlsx is usually an Office-encrypted workbook; the
        # spreadsheet reader tells the two apart and reports encrypted_file.
        # Otherwise the streams inside decide: a BIFF workbook under any name (a WPS .et)
        # is read as .xls, an old Word/WPS writer file is converted.
        return FileKind.XLSX if ext in ("xlsx", "xlsm") else ole_kind(data, ext)
    if (head[:3] in (b"\xff\xd8\xff",) or head.startswith(b"\x89PNG") or head[:4] in (b"II*\x00", b"MM\x00*")
            or is_heif(data)):
        return FileKind.IMAGE
    sniffed = text_kind(data, ext)
    if sniffed is not None:
        return sniffed
    if ext == "csv" and _looks_like_text(data):
        return FileKind.CSV
    return FileKind.OTHER


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    return b"\x00" not in sample
