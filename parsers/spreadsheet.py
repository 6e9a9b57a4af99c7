"""Reads workbooks (xlsx, xlsm, xls) into grids: values as last saved, merged cells resolved.

python-calamine reads both formats through one API, returns formulas' cached values and
merged ranges, and never runs macros. openpyxl (read-only, with defusedxml guarding its
XML parser) is the fallback for an xlsx calamine cannot read.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import olefile
import openpyxl
import python_calamine

from config.settings import LimitsSettings
from parsers.grid import FileRejected, Grid
from parsers.model import FileKind, ProblemCode
from parsers.ooxml import check_package

if not openpyxl.DEFUSEDXML:
    raise ImportError("intake needs openpyxl to use defusedxml against XML entity bombs: pip install defusedxml")

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BIFF_FILEPASS = 0x002F
_BIFF_EOF = 0x000A
# A stray value far to the right would make a dense grid of millions of empty cells.
_CELLS_PER_ROW = 200
_ENCRYPTED = "文件设置了打开密码，无法读取；请去掉密码后重新发送"


def read_workbook(data: bytes, kind: FileKind, limits: LimitsSettings) -> list[Grid]:
    """Every visible worksheet as a Grid; raises FileRejected for a file it must refuse."""
    if data.startswith(OLE2):
        _refuse_encrypted_ole(data)
    elif kind is FileKind.XLSX:
        check_package(data, limits)
    try:
        return _read_calamine(data, limits)
    except (FileRejected, KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # calamine's errors; a Rust panic arrives as a BaseException
        if kind is not FileKind.XLSX or data.startswith(OLE2):
            raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件已损坏或格式无法识别，无法打开") from None
    return read_xlsx_openpyxl(data, limits)


def _refuse_encrypted_ole(data: bytes) -> None:
    try:
        # A file object, never bytes: olefile takes short bytes for a file name.
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            if ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage"):
                raise FileRejected(ProblemCode.ENCRYPTED_FILE, _ENCRYPTED)
            stream = next((s for s in ("Workbook", "Book") if ole.exists(s)), None)
            if stream is None:
                raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件不是 Excel 工作簿，无法读取")
            if has_filepass(ole.openstream(stream).read()):
                raise FileRejected(ProblemCode.ENCRYPTED_FILE, _ENCRYPTED)
    except FileRejected:
        raise
    except Exception:  # olefile raises OSError, ValueError, struct.error … on a broken container
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件已损坏，无法打开") from None


def has_filepass(stream: bytes) -> bool:
    """True when the workbook globals of a BIFF stream carry a FilePass (encryption) record."""
    offset = 0
    while offset + 4 <= len(stream):
        record, length = struct.unpack_from("<HH", stream, offset)
        if record == _BIFF_FILEPASS:
            return True
        if record == _BIFF_EOF:
            return False
        offset += 4 + length
    return False


def _read_calamine(data: bytes, limits: LimitsSettings) -> list[Grid]:
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.PasswordError:
        raise FileRejected(ProblemCode.ENCRYPTED_FILE, _ENCRYPTED) from None
    grids = []
    for meta in book.sheets_metadata:
        if meta.typ != python_calamine.SheetTypeEnum.WorkSheet or meta.visible != python_calamine.SheetVisibleEnum.Visible:
            continue
        sheet = book.get_sheet_by_name(meta.name)
        last_row, last_col = sheet.end or (-1, -1)  # None for an empty sheet
        _check_size(meta.name, last_row + 1, last_col + 1, limits)
        rows = sheet.to_python(skip_empty_area=False) if sheet.end else []
        grids.append(Grid.build(meta.name, rows, sheet.merged_cell_ranges or ()))
    return grids


def read_xlsx_openpyxl(data: bytes, limits: LimitsSettings) -> list[Grid]:
    """The fallback reader. Read-only mode trusts the sheet's declared dimension, which
    WPS may write as A1:A1, so the dimension is reset and the rows read as they come."""
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception:
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件已损坏或格式无法识别，无法打开") from None
    grids = []
    try:
        for sheet in book.worksheets:
            if sheet.sheet_state != "visible":
                continue
            sheet.reset_dimensions()
            rows: list[tuple[Any, ...]] = []
            for row in sheet.iter_rows(values_only=True):
                rows.append(row)
                _check_size(sheet.title, len(rows), len(row), limits)
            grids.append(Grid.build(sheet.title, rows))
    finally:
        book.close()
    return grids


def _check_size(sheet: str, height: int, width: int, limits: LimitsSettings) -> None:
    if height > limits.max_rows:
        raise FileRejected(ProblemCode.TOO_LARGE, f"工作表“{sheet}”超过 {limits.max_rows} 行，超出处理上限")
    if height * width > limits.max_rows * _CELLS_PER_ROW:
        raise FileRejected(ProblemCode.TOO_LARGE, f"工作表“{sheet}”的数据区域过大，超出处理上限")
