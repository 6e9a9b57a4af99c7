"""Checks an OOXML package (xlsx, docx) before any XML parser sees it.

A zip bomb (parts that inflate far beyond their compressed size or the unpacked limit)
and an XML entity bomb (a part that declares a DTD) are refused as unsafe_file. Office
never writes a DOCTYPE into a package, so any DTD is refused, whatever the encoding.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from config.settings import LimitsSettings
from parsers.grid import FileRejected
from parsers.model import ProblemCode

_CHUNK = 1 << 16
_DTD_MARKS = tuple(mark.encode(enc) for mark in ("<!DOCTYPE", "<!ENTITY") for enc in ("utf-8", "utf-16-le", "utf-16-be"))
_OVERLAP = max(len(m) for m in _DTD_MARKS)
# Small parts compress well by nature; the ratio only matters for a part this large.
_RATIO_FLOOR = 1 << 20


def check_package(data: bytes, limits: LimitsSettings) -> None:
    """Raise FileRejected unless the package can be opened safely."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件已损坏，无法打开") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_zip_members * 50:
            raise FileRejected(ProblemCode.UNSAFE_FILE, "文件内部结构异常（部件过多），已拒收")
        if sum(m.file_size for m in members) > limits.max_unpacked_bytes:
            raise FileRejected(ProblemCode.UNSAFE_FILE, "文件解压后体积异常巨大，疑似压缩炸弹，已拒收")
        for member in members:
            if member.file_size > _RATIO_FLOOR and member.file_size > limits.max_zip_ratio * max(member.compress_size, 1):
                raise FileRejected(ProblemCode.UNSAFE_FILE, "文件内部压缩比异常，疑似压缩炸弹，已拒收")
        unpacked = 0
        for member in members:
            unpacked = _scan_member(archive, member, unpacked, limits)


def _scan_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, unpacked: int, limits: LimitsSettings) -> int:
    xml = member.filename.lower().endswith((".xml", ".rels", ".vml"))
    tail = b""
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(_CHUNK):
                unpacked += len(chunk)
                if unpacked > limits.max_unpacked_bytes:
                    raise FileRejected(ProblemCode.UNSAFE_FILE, "文件解压后体积异常巨大，疑似压缩炸弹，已拒收")
                if xml:
                    window = tail + chunk
                    if any(mark in window for mark in _DTD_MARKS):
                        raise FileRejected(ProblemCode.UNSAFE_FILE, "文件含有 XML 实体声明（可能是恶意构造的文件），已拒收")
                    tail = window[-_OVERLAP:]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError):
        # RuntimeError: a password-protected zip entry; NotImplementedError: an exotic method.
        raise FileRejected(ProblemCode.UNREADABLE_FILE, "文件已损坏或不完整，无法打开") from None
    return unpacked
