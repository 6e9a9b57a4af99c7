"""Reads tables from HTML and MHTML into grids: a `.xls` saved as a web page, a system
export that writes an HTML table under an Excel name, or a "single file web page".

lxml's HTML parser (libxml2; no network, no entities fetched) builds the tree; rowspan
and colspan become merged ranges, so a two-row header reads as it does in Excel. MHTML
is a MIME message: the stdlib email parser finds the text/html parts and undoes their
quoted-printable or base64 transfer encoding.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator

import lxml.html
from lxml import etree

from config.settings import LimitsSettings
from parsers.csvfile import decode
from parsers.grid import FileRejected, Grid, MergedRange
from parsers.model import ProblemCode

_CELLS_PER_ROW = 200  # as parsers.spreadsheet
# Cells covered by spans in one table: a form merges a few dozen; this bounds memory.
MAX_SPANNED = 100_000
_PREAMBLE_LINES = 6
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# GBK and GB2312 are subsets of GB18030; reading as the superset loses no rare character.
_CHINESE = {"gbk", "gb2312", "cp936", "ms936", "x-gbk", "gb18030", "euc-cn"}
_BLOCKS = ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "span", "font", "b", "strong", "center")


def read_html(data: bytes, name: str, limits: LimitsSettings) -> list[Grid]:
    """Every top-level table of an HTML file as a Grid."""
    return _grids(_tables(_text(data, None), limits), name)


def read_mhtml(data: bytes, name: str, limits: LimitsSettings) -> list[Grid]:
    """Every top-level table of every HTML part of a saved web page."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    tables: list[tuple[list[list[str | None]], list[MergedRange], tuple[str, ...]]] = []
    for part in message.walk():
        if part.get_content_type() != "text/html":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            tables += _tables(_text(payload, part.get_content_charset()), limits)
    if not tables and not any(p.get_content_type() == "text/html" for p in message.walk()):
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "是网页存档（MHTML），但其中没有网页内容，无法读取")
    return _grids(tables, name)


def _text(data: bytes, charset: str | None) -> str:
    """The page as text: the charset the MIME part or the page's <meta> names, else detected."""
    if charset is None:
        found = _META_CHARSET.search(data[:8192])
        charset = found.group(1).decode("ascii") if found else None
    if charset:
        charset = "gb18030" if charset.lower() in _CHINESE else charset
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            pass  # a name Python does not know: detect instead
    return decode(data)


def _tables(text: str, limits: LimitsSettings) -> list[tuple[list[list[str | None]], list[MergedRange], tuple[str, ...]]]:
    text = _XML_DECLARATION.sub("", text, count=1)  # lxml refuses a str that declares an encoding
    if not text.strip():
        return []
    parser = lxml.html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, huge_tree=False)
    root = lxml.html.document_fromstring(text, parser=parser)
    for br in root.iter("br"):  # a line break inside a cell stays a break, as in Excel
        br.tail = "\n" + (br.tail or "")
    return [(*_table_rows(table, limits), _preamble(table)) for table in _top_tables(root)]


def _top_tables(root: etree._Element) -> Iterator[etree._Element]:
    for table in root.iter("table"):
        if not any(a.tag == "table" for a in table.iterancestors()):
            yield table


def _table_rows(table: etree._Element, limits: LimitsSettings) -> tuple[list[list[str | None]], list[MergedRange]]:
    rows: list[list[str | None]] = []
    merged: list[MergedRange] = []
    taken: set[tuple[int, int]] = set()  # positions filled by a span from above
    for r, tr in enumerate(table.xpath("./tr|./thead/tr|./tbody/tr|./tfoot/tr")):
        if r >= limits.max_rows:
            raise FileRejected(ProblemCode.TOO_LARGE, f"表格超过 {limits.max_rows} 行，超出处理上限")
        row: list[str | None] = []
        c = 0
        for td in tr.xpath("./td|./th"):
            while (r, c) in taken:
                c += 1
            rowspan = _span(td.get("rowspan"), limits.max_rows - r)
            colspan = _span(td.get("colspan"), _CELLS_PER_ROW - c)
            if colspan < 1:
                raise FileRejected(ProblemCode.TOO_LARGE, f"表格第 {r + 1} 行超过 {_CELLS_PER_ROW} 列，超出处理上限")
            row.extend([None] * (c + 1 - len(row)))
            row[c] = td.text_content()
            if len(taken) + rowspan * colspan > MAX_SPANNED:
                raise FileRejected(ProblemCode.TOO_LARGE, "表格的合并单元格区域过大，超出处理上限")
            if rowspan > 1 or colspan > 1:
                merged.append(((r, c), (r + rowspan - 1, c + colspan - 1)))
                taken.update((r + i, c + j) for i in range(rowspan) for j in range(colspan) if i or j)
            c += colspan
        rows.append(row)
    return rows, merged


def _span(value: str | None, room: int) -> int:
    """A rowspan or colspan as a browser reads it (junk is 1), never beyond `room`."""
    try:
        span = int(str(value).strip()) if value is not None else 1
    except ValueError:
        span = 1
    return min(max(span, 1), room)


def _preamble(table: etree._Element) -> tuple[str, ...]:
    """Text written just above the table (汇总单位, 填写日期), nearest last."""
    lines: list[str] = []
    for sibling in table.itersiblings(preceding=True):
        if sibling.tag == "table" or len(lines) >= _PREAMBLE_LINES:
            break
        if isinstance(sibling.tag, str) and sibling.tag in _BLOCKS:
            text = sibling.text_content().strip()
            if text:
                lines.append(text)
    return tuple(reversed(lines))


def _grids(tables: list[tuple[list[list[str | None]], list[MergedRange], tuple[str, ...]]], name: str) -> list[Grid]:
    """One table reads like the sheet Excel would open (named after the file, lettered
    cells); several are named 表格1, 表格2, … by number."""
    stem = name.rsplit(".", 1)[0] or "表格1"
    if len(tables) == 1:
        rows, merged, preamble = tables[0]
        return [Grid.build(stem, rows, merged, preamble=preamble)]
    return [Grid.build(f"表格{i}", rows, merged, preamble=preamble, lettered=False)
            for i, (rows, merged, preamble) in enumerate(tables, start=1)]
