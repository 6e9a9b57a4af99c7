"""Builders for hostile mail: complete raw messages anyone on the internet could send.

Two styles: `attach(...)` goes through `intake.samples.mime_message` (a known unit's
address, names RFC 2231-encoded the way Outlook writes them) for hostile *files*;
`raw_mail(...)` / `part(...)` write every byte by hand for hostile *MIME*. Large inputs
are cheap to build (zeros compress and repeat) and cached: each is made once per session.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import uuid
import zipfile

from intake.samples import form_workbook, mime_message
from tests.fixtures.forms import add_part, rewrite_parts
from tests.support.campaigns import FORM1
from tests.support.intake_env import DEADLINE

SENDER = ("济南市总工会", "jinan@example.cn")
SENT = DEADLINE - dt.timedelta(days=1)
MB = 1024 * 1024


def attach(*files: tuple[str, bytes], body: str = "请查收。\n济南市总工会", **headers: str) -> bytes:
    """A mail from a known unit carrying these files as base64 attachments."""
    return mime_message(sender=SENDER, subject="济南市总工会竞赛项目申报", body=body, attachments=list(files),
                        date=SENT, extra_headers=headers or None)


def part(content_type: str, payload: bytes, *, name: str | None = None, cte: str = "base64",
         extra: tuple[bytes, ...] = ()) -> bytes:
    """One MIME body part; payload is written as given when cte is not base64."""
    lines = [f"Content-Type: {content_type}".encode(), *extra]
    if name is not None:
        lines.append(f'Content-Disposition: attachment; filename="{name}"'.encode())
    lines.append(f"Content-Transfer-Encoding: {cte}".encode())
    body = base64.encodebytes(payload) if cte == "base64" else payload
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def multipart(*parts: bytes, subtype: str = "mixed", boundary: str | None = None, close: bool = True) -> bytes:
    """A multipart entity (its own Content-Type header first); close=False omits the end line."""
    boundary = boundary or "b" + uuid.uuid4().hex
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()]
    for item in parts:
        out.append(f"--{boundary}\r\n".encode() + item + b"\r\n")
    if close:
        out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def raw_mail(entity: bytes, *, headers: tuple[bytes, ...] = (), sender: bytes = b"jinan@example.cn") -> bytes:
    """Envelope headers (unique Message-ID) followed by one entity (its headers, blank line, body)."""
    head = [
        b"From: " + sender,
        b"To: szscbhb@163.com",
        b"Subject: =?UTF-8?B?" + base64.b64encode("竞赛项目申报".encode()) + b"?=",
        b"Date: Sat, 24 Feb 2024 17:00:00 +0800",
        f"Message-ID: <{uuid.uuid4().hex}@example.cn>".encode(),
        b"MIME-Version: 1.0",
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n" + entity


def text_part(text: str = "请查收。") -> bytes:
    return part("text/plain; charset=utf-8", text.encode())


# --- files ---------------------------------------------------------------------------------


@functools.cache
def form1_xlsx() -> bytes:
    return form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会")


def zip_of(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip whose member names are written exactly as given (no sanitising)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 2, 20, 10, 0, 0)), data, compress_type=method)
    return buffer.getvalue()


def zip_with_raw_name(raw_name: bytes, data: bytes) -> bytes:
    """A zip whose one member name holds bytes zipfile would refuse to write (e.g. NUL)."""
    placeholder = b"P" * len(raw_name)
    packed = zip_of({placeholder.decode(): data})
    return packed.replace(placeholder, raw_name)


@functools.cache
def zip_bomb() -> bytes:
    """One member of 200 MB of zeros: deflate makes it ~200 KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("汇总表.xlsx", "w") as member:
        chunk = bytes(MB)
        for _ in range(200):
            member.write(chunk)
    return buffer.getvalue()


def nested_zip(depth: int) -> bytes:
    data = form1_xlsx()
    name = "汇总表.xlsx"
    for level in range(depth):
        data, name = zip_of({name: data}), f"第{level}层.zip"
    return data


def size_lying_zip() -> bytes:
    """A member whose headers claim 10 bytes; the deflate stream holds 5 MB of zeros."""
    data = zip_of({"汇总表.xlsx": bytes(5 * MB)})
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    real = info.file_size.to_bytes(4, "little")
    return data.replace(real, (10).to_bytes(4, "little"))


def encrypted_zip_member() -> bytes:
    """A zip whose member has the 'encrypted' flag set, as a password-protected archive does."""
    data = bytearray(zip_of({"汇总表.xlsx": form1_xlsx()}))
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature)
        data[at + flag_at] |= 0x01
    return bytes(data)


def rar_file() -> bytes:
    """A RAR 5 signature and a little of a header: a damaged RAR (unreadable_file)."""
    return b"Rar!\x1a\x07\x01\x00" + bytes(range(64))


def xlsm_with_macro() -> bytes:
    """A macro-enabled workbook: a real vbaProject.bin part (an OLE2 container with an
    auto-run module name) plus the content types Excel writes for .xlsm."""
    import olefile  # noqa: F401 - the part must at least look like an OLE2 container

    vba = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + b"Attribute VB_Name = \"ThisWorkbook\"\r\nSub Auto_Open()\r\nShell \"calc.exe\"\r\nEnd Sub\r\n"

    def macro_types(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return data.replace(b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                                b"application/vnd.ms-excel.sheet.macroEnabled.main+xml").replace(
                b"</Types>", b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>')
        if name == "xl/_rels/workbook.xml.rels":
            return data.replace(b"</Relationships>", b'<Relationship Id="rIdVBA" '
                                b'Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" '
                                b'Target="vbaProject.bin"/></Relationships>')
        return data

    return add_part(rewrite_parts(form1_xlsx(), macro_types), "xl/vbaProject.bin", vba)


def xxe_docx() -> bytes:
    """A Word document whose body declares an external entity pointing at a local file."""
    from intake.samples import word_table

    document = word_table(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会")

    def inject(name: str, data: bytes) -> bytes:
        if name != "word/document.xml":
            return data
        head, _, rest = data.partition(b"?>")
        return (head + b'?><!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + rest).replace(
            b"<w:t>", b"<w:t>&xxe;", 1)

    return rewrite_parts(document, inject)


def shared_strings_xlsx(count: int) -> bytes:
    """The form-1 workbook (its cells hold inline strings) plus a registered sharedStrings
    part listing `count` distinct strings nobody uses."""
    strings = "".join(f"<si><t>字符串{n}</t></si>" for n in range(count))
    sst = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://schemas.openxmlformats.org/'
           f'spreadsheetml/2006/main" count="{count}" uniqueCount="{count}">{strings}</sst>').encode()

    def register(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
        if name == "xl/_rels/workbook.xml.rels":
            return data.replace(b"</Relationships>", b'<Relationship Id="rIdSST" Type="http://schemas.openxmlformats.org/'
                                b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>')
        return data

    return add_part(rewrite_parts(form1_xlsx(), register), "xl/sharedStrings.xml", sst)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


# --- MIME shapes ---------------------------------------------------------------------------


def nested_multipart(depth: int, leaf: bytes) -> bytes:
    """`depth` multipart/mixed containers, one inside the other, around one leaf part."""
    entity = leaf
    for _ in range(depth):
        entity = multipart(entity, boundary=f"n{_}")
    return entity


def nested_forwards(depth: int, leaf: bytes) -> bytes:
    """A mail forwarded `depth` times, each time as a message/rfc822 attachment."""
    entity = leaf
    for level in range(depth):
        inner = raw_mail(entity)
        entity = multipart(text_part(f"转发 {level}"), b"Content-Type: message/rfc822\r\n\r\n" + inner, boundary=f"f{level}")
    return entity
