"""What a file that is not a zip or PDF really holds, told from its bytes.

Units send tables under names that lie: Excel's "save as web page" or a system export
named .xls is HTML, MHTML or Excel 2003 XML (SpreadsheetML); an export named .xls may be
tab-separated GBK text; a WPS .et is usually a BIFF workbook. Only cheap byte tests run
here (`detect_kind` also runs in the poller), never a parser.
"""

from __future__ import annotations

import re

from parsers.model import FileKind

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# OLE directory entries name their streams in UTF-16LE.
_WORKBOOK_STREAMS = ("Workbook".encode("utf-16-le"), "Book\x00".encode("utf-16-le"))
_WORD_STREAM = "WordDocument".encode("utf-16-le")
_PRESENTATION_STREAM = "PowerPoint Document".encode("utf-16-le")
# Names that promise a table: generic HTML or delimited text is read only under these,
# so a mail client's ATT00001.htm or a readme.txt is not taken for a form.
TABLE_EXTENSIONS = frozenset({"xls", "xlsx", "xlsm", "xlt", "et", "ett", "csv", "tsv"})
SPREADSHEET_EXTENSIONS = frozenset({"et", "ett"})  # WPS spreadsheets
WORD_EXTENSIONS = frozenset({"doc", "dot", "wps", "wpt"})  # old Word / WPS writer
PRESENTATION_EXTENSIONS = frozenset({"dps", "dpt", "ppt", "pps", "pot"})
_HEAD = 4096
_EXCEL_HTML = b"urn:schemas-microsoft-com:office:excel"
_SPREADSHEETML = re.compile(rb"<(?:\w+:)?Workbook\b[^>]*urn:schemas-microsoft-com:office:spreadsheet")
_HTML_START = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|table|style)\b",
                         re.IGNORECASE | re.DOTALL)
_MHTML_TYPE = re.compile(rb"^content-type:\s*multipart/related", re.IGNORECASE | re.MULTILINE)
_DELIMITERS = (b"\t", b",", b";", b"|")
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"})
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def ole_kind(data: bytes, ext: str) -> FileKind:
    """An OLE2 container by the streams it holds: a workbook, a Word file or a deck. A
    file may embed another (a chart's workbook inside a .doc or .dps), so when several
    are present the name says which is the main one."""
    found = {FileKind.XLS: any(stream in data for stream in _WORKBOOK_STREAMS),
             FileKind.DOC: _WORD_STREAM in data, FileKind.OTHER: _PRESENTATION_STREAM in data}
    if ext in PRESENTATION_EXTENSIONS:
        return FileKind.OTHER
    preferred = FileKind.DOC if ext in WORD_EXTENSIONS else FileKind.XLS
    if found[preferred]:
        return preferred
    kind = next((k for k, present in found.items() if present), None)
    if kind is not None:
        return kind
    # Some other OLE file under a WPS name: LibreOffice may still know it.
    return FileKind.DOC if ext in WORD_EXTENSIONS | SPREADSHEET_EXTENSIONS else FileKind.OTHER


def is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def text_kind(data: bytes, ext: str) -> FileKind | None:
    """SpreadsheetML, MHTML, HTML or delimited text; None when the bytes are none of them."""
    head = data[:_HEAD]
    if head.startswith(_UTF16_BOMS):
        # Excel's "Unicode text": tab-separated UTF-16 with a BOM.
        text = head.decode("utf-16", errors="ignore").encode("utf-8")
        return FileKind.CSV if ext in TABLE_EXTENSIONS and _delimited(text) else None
    head = head.removeprefix(b"\xef\xbb\xbf")
    if b"\x00" in head:
        return None  # binary
    if _SPREADSHEETML.search(head):
        return FileKind.SPREADSHEETML
    if head.startswith(b"{\\rtf"):
        # Word and WPS save RTF under .doc; LibreOffice converts it like a .doc.
        return FileKind.DOC if ext in WORD_EXTENSIONS | {"rtf"} else None
    office_name = ext in TABLE_EXTENSIONS | WORD_EXTENSIONS  # Word's "web page" .doc holds tables too
    if _MHTML_TYPE.search(head) and b"mime-version" in head.lower():
        return FileKind.MHTML if office_name or _EXCEL_HTML in data[:65536] else None
    if _HTML_START.match(head):
        return FileKind.HTML if office_name or _EXCEL_HTML in head else None
    if ext in TABLE_EXTENSIONS and _delimited(data):
        return FileKind.CSV
    return None


def _delimited(data: bytes) -> bool:
    """Text whose first lines split on one delimiter: at least two lines with a field break."""
    if b"\x00" in data[:_HEAD]:
        return False
    lines = [line for line in data[:_HEAD].splitlines()[:20] if line.strip()]
    if len(lines) < 2:
        return False
    return any(sum(delimiter in line for line in lines) >= 2 for delimiter in _DELIMITERS)
