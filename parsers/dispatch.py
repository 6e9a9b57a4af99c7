"""parse_file: one attachment's bytes in, one FileReport out; it never raises.

The kind comes from the bytes (parsers.filetypes), not the name. Editable kinds go to the
readers and form recognition, PDFs to parsers.pdf; whatever a reader cannot handle
becomes a coded problem naming the file.
"""

from __future__ import annotations

import hashlib
import logging

from config.settings import LimitsSettings, ParsingSettings
from parsers.convert import ConverterMissing
from parsers.forms import FormSet
from parsers.filetypes import LEGACY_EXTENSIONS, detect_kind, extension
from parsers.grid import FileRejected, Grid
from parsers.model import FileKind, FileReport, FormTable, Problem, ProblemCode
from parsers.sniff import PRESENTATION_EXTENSIONS, SPREADSHEET_EXTENSIONS, WORD_EXTENSIONS

log = logging.getLogger(__name__)

CLAIMED = {"xlsx", "xlsm", "xls", "docx", "csv", "pdf", "ofd"}  # extensions that promise a readable file
EXECUTABLE = (b"MZ", b"\x7fELF")


def parse_file(data: bytes, name: str, *, limits: LimitsSettings, parsing: ParsingSettings, forms: FormSet,
               parent: str | None = None) -> FileReport:
    """`forms`: every form of every campaign in play (config.campaigns.Campaigns.forms)."""
    kind = FileKind.OTHER
    try:
        kind = detect_kind(data, name)
    except Exception:  # a broken file must still produce a report
        log.exception("detect_kind failed for %s", name)
    report = FileReport(name=name, kind=kind, sha256=hashlib.sha256(data).hexdigest(), size=len(data), parent=parent)
    if len(data) > limits.max_file_bytes:
        report.problems.append(_problem(ProblemCode.TOO_LARGE, name, f"文件大小超过 {limits.max_file_bytes // (1024 * 1024)} MB，"
                                                                     "超出处理上限，请压缩或拆分后重新发送。"))
        return report
    try:
        if kind.editable:
            report.forms, report.problems = read_forms(data, name, kind, limits, forms)
        elif kind is FileKind.IMAGE and parsing.photos_as_scan:
            _photo(report, data, parsing, limits, forms)
        elif kind is FileKind.PDF:
            from parsers.pdf import inspect_pdf  # written alongside; imported only when needed

            report.pdf, report.problems = inspect_pdf(data, name, parsing=parsing, limits=limits, forms=forms)
        elif kind is FileKind.OFD:
            from parsers.ofd import inspect_ofd

            report.pdf, report.problems = inspect_ofd(data, name, parsing=parsing, limits=limits, forms=forms)
        elif kind is FileKind.OTHER:
            report.problems = _other(data, name)
    except ConverterMissing:  # an old Word/WPS file and no LibreOffice here: not an editable file
        report.kind = FileKind.OTHER
        report.problems = [_problem(ProblemCode.UNSUPPORTED_FILE, name, "是旧版 Word/WPS 格式，本机无法转换读取，"
                                                                        "请另存为 xlsx（Excel 工作簿）或 docx（Word 文档）后重新发送。")]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # any bug or a Rust panic in a reader: the file, not the run, fails
        log.exception("reading %s failed", name)
        report.problems = [_problem(ProblemCode.UNREADABLE_FILE, name, "文件无法读取，可能已损坏，请检查后重新发送。")]
    return report


def read_forms(data: bytes, name: str, kind: FileKind, limits: LimitsSettings, forms: FormSet
               ) -> tuple[list[FormTable], list[Problem]]:
    """The forms in an editable file and the problems found in them."""
    from parsers.recognize import find_layouts
    from parsers.validate import build_tables

    try:
        grids = _read_grids(data, name, kind, limits)
    except FileRejected as rejected:
        return [], [_problem(rejected.code, name, rejected.reason + "。")]
    layouts = find_layouts(grids, forms)
    if not layouts:
        looked = "、".join(g.name for g in grids) or "无"
        return [], [_problem(ProblemCode.UNKNOWN_LAYOUT, name, f"未找到汇总表的表头（已查看：{looked}），"
                                                               "请按通知所附表样填写。")]
    return build_tables(layouts, name)


def _read_grids(data: bytes, name: str, kind: FileKind, limits: LimitsSettings) -> list[Grid]:
    if kind is FileKind.DOCX:
        from parsers.wordtables import read_document

        return read_document(data, limits)
    if kind is FileKind.CSV:
        from parsers.csvfile import read_csv

        return read_csv(data, name, limits)
    if kind in (FileKind.HTML, FileKind.MHTML):
        from parsers.htmltable import read_html, read_mhtml

        return (read_html if kind is FileKind.HTML else read_mhtml)(data, name, limits)
    if kind is FileKind.SPREADSHEETML:
        from parsers.spreadsheetml import read_spreadsheetml

        return read_spreadsheetml(data, limits)
    if kind is FileKind.DOC:
        return _converted(data, name, limits)
    from parsers.spreadsheet import read_workbook

    try:
        return read_workbook(data, kind, limits)
    except FileRejected as rejected:
        # A WPS sheet calamine cannot read: LibreOffice may still (an encrypted one never).
        if rejected.code is not ProblemCode.UNREADABLE_FILE or extension(name) not in SPREADSHEET_EXTENSIONS:
            raise
        return _converted(data, name, limits)


def _converted(data: bytes, name: str, limits: LimitsSettings) -> list[Grid]:
    """An old Word/WPS file through LibreOffice, then the .docx or .xlsx reader."""
    from parsers.convert import convert

    ext = extension(name)
    if ext in SPREADSHEET_EXTENSIONS:
        from parsers.spreadsheet import read_workbook

        return read_workbook(convert(data, ext, "xlsx", limits), FileKind.XLSX, limits)
    from parsers.wordtables import read_document

    suffix = ext if ext in WORD_EXTENSIONS | {"rtf"} else "doc"
    return read_document(convert(data, suffix, "docx", limits), limits)


def _photo(report: FileReport, data: bytes, parsing: ParsingSettings, limits: LimitsSettings, forms: FormSet) -> None:
    """A photo of a page becomes the stamped copy; any other picture stays a plain image."""
    from parsers.photo import inspect_photo

    found = inspect_photo(data, report.name, parsing=parsing, limits=limits, forms=forms)
    if found is not None:
        report.kind = FileKind.PHOTO
        report.derived_pdf, report.pdf, report.problems = found


def _other(data: bytes, name: str) -> list[Problem]:
    ext = extension(name)
    if data.startswith(EXECUTABLE) and ext in CLAIMED | LEGACY_EXTENSIONS:
        return [_problem(ProblemCode.UNSAFE_FILE, name, "实际是可执行程序，已拒收。")]
    if ext in PRESENTATION_EXTENSIONS:
        return [_problem(ProblemCode.UNSUPPORTED_FILE, name, "是演示文稿（WPS 演示/PowerPoint），不是表格，系统不读取；"
                                                             "请发送 xlsx（Excel 工作簿）或 docx（Word 文档）格式的汇总表。")]
    if ext in LEGACY_EXTENSIONS:
        return [_problem(ProblemCode.UNSUPPORTED_FILE, name, "是旧版 Word/WPS 格式，系统无法读取，"
                                                             "请另存为 xlsx（Excel 工作簿）后重新发送。")]
    if ext in CLAIMED:
        return [_problem(ProblemCode.UNREADABLE_FILE, name, f"扩展名为 .{ext}，但内容不是有效的该类文件，无法读取。")]
    return []


def _problem(code: ProblemCode, name: str, text: str) -> Problem:
    return Problem(code, f"《{name}》{text}", name)
