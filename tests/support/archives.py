"""Archive fixtures: RAR written by hand (stored, uncompressed members), 7z by py7zr, TNEF
(Outlook's winmail.dat) by hand, and the real RAR files committed under
tests/fixtures/archives/ (see its README: compressed and encrypted ones need WinRAR).

RAR has no free writer, but its "store" method is plain framing (RAR 5.0 and RAR 2.9/4.x
technical notes, rarlab.com/technote.htm): headers with a CRC, then the bytes as they are.
TNEF is a list of attributes: level, id, type, length, data, checksum (MS-OXTNEF).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "archives"
DOS_TIME = ((2024 - 1980) << 25) | (2 << 21) | (24 << 16) | (9 << 11)  # 2024-02-24 09:00


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- RAR 5 ----------------------------------------------------------------------------------


def _vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _rar5_block(kind: int, flags: int, fields: bytes, extra: bytes = b"") -> bytes:
    body = _vint(kind) + _vint(flags) + extra + fields
    sized = _vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(sized)) + sized


def rar5(files: dict[str, bytes]) -> bytes:
    """A RAR 5 archive of stored members with UTF-8 names."""
    out = [b"Rar!\x1a\x07\x01\x00", _rar5_block(1, 0, _vint(0))]
    for name, data in files.items():
        encoded = name.encode()
        fields = (_vint(0x0004) + _vint(len(data)) + _vint(0x20) + struct.pack("<I", zlib.crc32(data))
                  + _vint(0) + _vint(0) + _vint(len(encoded)) + encoded)
        out.append(_rar5_block(2, 0x0002, fields, extra=_vint(len(data))) + data)
    out.append(_rar5_block(5, 0, _vint(0)))
    return b"".join(out)


# --- RAR 4 (2.9) ------------------------------------------------------------------------------


def _rar4_block(kind: int, flags: int, rest: bytes) -> bytes:
    head = struct.pack("<BHH", kind, flags, 2 + 5 + len(rest)) + rest
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def rar4(files: dict[str, bytes], encoding: str = "gbk") -> bytes:
    """A RAR 4 archive of stored members whose names are in a code page, without the Unicode
    flag: what WinRAR 3/4 and Chinese archivers on a GBK Windows write."""
    out = [b"Rar!\x1a\x07\x00", _rar4_block(0x73, 0, bytes(6))]
    for name, data in files.items():
        encoded = name.encode(encoding)
        rest = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data), DOS_TIME, 20, 0x30,
                           len(encoded), 0x20) + encoded
        out.append(_rar4_block(0x74, 0x8000, rest) + data)
    out.append(_rar4_block(0x7B, 0x4000, b""))
    return b"".join(out)


# --- 7z ---------------------------------------------------------------------------------------


def seven_zip(files: dict[str, bytes], password: str | None = None, *, encrypt_names: bool = False) -> bytes:
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password, header_encryption=encrypt_names) as archive:
        for name, data in files.items():
            archive.writestr(data, name)
    return buffer.getvalue()


# --- TNEF (winmail.dat) -----------------------------------------------------------------------

_LEVEL_MESSAGE, _LEVEL_ATTACHMENT = 1, 2
_ATT_TNEF_VERSION = (0x9006, 0x0008)  # (id, type): attTnefVersion, a dword
_ATT_OEM_CODEPAGE = (0x9007, 0x0006)  # attOemCodepage, a byte array
_ATT_RENDDATA = (0x9002, 0x0006)  # attAttachRendData: starts an attachment
_ATT_TITLE = (0x8010, 0x0001)  # attAttachTitle: the 8.3 name, in the OEM code page
_ATT_DATA = (0x800F, 0x0006)  # attAttachData
_ATT_ATTACHMENT = (0x9005, 0x0006)  # attAttachment: MAPI properties
_PT_UNICODE, _PR_ATTACH_LONG_FILENAME = 0x001F, 0x3707


def _tnef_attribute(level: int, attribute: tuple[int, int], data: bytes) -> bytes:
    ident, kind = attribute
    return struct.pack("<BHHI", level, ident, kind, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _long_name(name: str) -> bytes:
    value = (name + "\0").encode("utf-16-le")
    padded = value + bytes(-len(value) % 4)
    return struct.pack("<IHHII", 1, _PT_UNICODE, _PR_ATTACH_LONG_FILENAME, 1, len(value)) + padded


def tnef(files: list[tuple[str, bytes]], *, codepage: int = 936, long_names: bool = False) -> bytes:
    """A winmail.dat carrying these files: titles in the code page (GBK by default, as a
    Chinese Outlook writes them), and with `long_names` also the Unicode long names."""
    out = [struct.pack("<IH", 0x223E9F78, 0x0001),
           _tnef_attribute(_LEVEL_MESSAGE, _ATT_TNEF_VERSION, struct.pack("<I", 0x00010000)),
           _tnef_attribute(_LEVEL_MESSAGE, _ATT_OEM_CODEPAGE, struct.pack("<II", codepage, 0))]
    for number, (name, data) in enumerate(files, 1):
        # With long names, the title is the 8.3 alias Outlook makes (FILE~1.XLS).
        title = f"FILE~{number}.{name.rsplit('.', 1)[-1][:3].upper()}" if long_names else name
        out.append(_tnef_attribute(_LEVEL_ATTACHMENT, _ATT_RENDDATA, bytes(14)))
        out.append(_tnef_attribute(_LEVEL_ATTACHMENT, _ATT_TITLE, title.encode(f"cp{codepage}") + b"\0"))
        out.append(_tnef_attribute(_LEVEL_ATTACHMENT, _ATT_DATA, data))
        if long_names:
            out.append(_tnef_attribute(_LEVEL_ATTACHMENT, _ATT_ATTACHMENT, _long_name(name)))
    return b"".join(out)
