"""Reads a CSV file into a grid: the encoding detected, the delimiter sniffed.

Chinese spreadsheets exported as CSV are usually GB18030 (Excel calls it ANSI); a
detector's `gbk` or `gb2312` is read as its superset gb18030 so no rare character is lost.
"""

from __future__ import annotations

import csv
import io

import charset_normalizer

from config.settings import LimitsSettings
from parsers.grid import FileRejected, Grid
from parsers.model import ProblemCode

_CHINESE = {"gbk", "gb2312", "cp936", "gb18030", "hz", "ms936"}
_DELIMITERS = ",\t;|"


def decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Without a BOM and without NUL bytes the text cannot be UTF-16/32, whatever a short
    # sample may look like to the detector.
    exclude = [] if b"\x00" in data else ["utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be"]
    matches = list(charset_normalizer.from_bytes(data, cp_exclusion=exclude))
    if not matches:
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "无法识别文件的文字编码，请另存为 xlsx 后重新发送")
    # A short Chinese sample fits Korean and Japanese code pages as well; these files are
    # Chinese, so a Chinese candidate wins whenever the detector finds one plausible.
    if any(m.encoding.lower() in _CHINESE for m in matches):
        return data.decode("gb18030", errors="replace")
    return data.decode(matches[0].encoding, errors="replace")


def read_csv(data: bytes, name: str, limits: LimitsSettings) -> list[Grid]:
    text = decode(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], delimiters=_DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    rows = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), dialect):
            rows.append(row)
            if len(rows) > limits.max_rows:
                raise FileRejected(ProblemCode.TOO_LARGE, f"超过 {limits.max_rows} 行，超出处理上限")
    except csv.Error:
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "CSV 格式有误，无法读取") from None
    stem = name.rsplit(".", 1)[0] or "CSV"
    return [Grid.build(stem, rows)]
