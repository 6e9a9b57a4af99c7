"""Reading a raw message the way Chinese mail clients actually write it.

Foxmail and QQ Mail put RFC 2047 encoded-words inside quoted filename parameters,
Outlook and 163 webmail use RFC 2231, some clients send raw 8-bit GBK. Labels such as
gb2312 and gbk are always read as gb18030, their superset: a name with 镕 or 𠮷 in it is
not gb2312 but is still sent labelled so. We take parameters from the raw header text
(compat32 keeps undecodable bytes as surrogates) and decode them ourselves.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.header
import email.utils
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message
from email.policy import Compat32
from html.parser import HTMLParser


GB_ALIASES = {"gb2312", "gbk", "x-gbk", "cp936", "ms936", "gb_2312-80", "euc-cn", "csgb2312", "x-euc-cn", "chinese", "936"}
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An address we can reply to (the HTML5 pattern): ASCII, no spaces. A From header with
# raw 8-bit junk in front of the address parses as one long "address" that no SMTP
# library can write; such a sender is treated as having no usable address.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
# The top-level boundary is missing or never found: the parts (and attachments) are lost.
_LOST_PARTS = {"NoBoundaryInMultipartDefect", "StartBoundaryNotFoundDefect"}
BODY_TEXT_LIMIT = 20_000
# Real mail nests a few levels (a forward of a reply of a signed mail); a hostile one
# nests thousands, and both the stdlib parser and every walk over the tree recurse.
MAX_NESTING = 50
# Parts that are containers or bodies, not files someone attached.
_BODY_TYPES = {"text/plain", "text/html"}


class _RawHeaders(Compat32):
    """compat32, but header values come back as sent (8-bit bytes as surrogates), so we
    decode them ourselves instead of getting compat32's lossy unknown-8bit Header."""

    def header_fetch_parse(self, name: str, value: str) -> str:  # noqa: ARG002
        return value


RAW_HEADERS = _RawHeaders()


def normalize_charset(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip('"').lower()
    if label in GB_ALIASES or label.startswith("gb2312") or label.startswith("gbk"):
        return "gb18030"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset when it works; else UTF-8, else GB18030."""
    for candidate in (normalize_charset(charset), "utf-8", "gb18030"):
        if candidate:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("gb18030", errors="replace")


def decode_header_value(value: str | email.header.Header | None) -> str:
    """A header as a person would read it: encoded-words and raw 8-bit both decoded."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    if _has_8bit(value):
        value = decode_bytes(value.encode("utf-8", "surrogateescape"))
    if "=?" not in value:
        return _clean(value)
    out = []
    try:
        parts = email.header.decode_header(value)
    except (ValueError, email.errors.HeaderParseError):
        return _clean(value)
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return _clean("".join(out))


def _clean(text: str) -> str:
    # Folded header lines and stray controls must never reach a reply header or a log.
    return _CONTROL.sub(" ", text).strip()


def safe_filename(name: str) -> str:
    """A display name only: last path component, no controls. Never used as a path."""
    name = _CONTROL.sub("", name.replace("\\", "/")).split("/")[-1].strip().strip(".")
    return name[:200] or "未命名附件"


def _param_filename(part: Message) -> str | None:
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        if header not in part:
            continue
        value = part.get_param(param, header=header, unquote=True)
        if value is None:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded latin-1 text)
            charset, _lang, text = value
            return decode_bytes(text.encode("latin-1", "surrogateescape"), charset or "utf-8")
        if _ENCODED_WORD.search(value):
            return decode_header_value(value)
        return decode_bytes(value.encode("utf-8", "surrogateescape")) if _has_8bit(value) else value
    return None


def _has_8bit(value: str) -> bool:
    return any(ord(c) > 127 for c in value)


@dataclass
class Attachment:
    name: str  # decoded display name
    data: bytes
    content_type: str
    forwarded: bool = False  # found inside a forwarded message/rfc822 part


@dataclass
class ParsedMail:
    message: Message
    message_id: str | None
    from_name: str
    from_address: str | None
    to: str
    subject: str
    date_header: str | None
    body_text: str
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    too_deep: bool = False  # nested beyond MAX_NESTING: headers only, no parts read

    @property
    def parts_lost(self) -> bool:
        """The mail says it has parts but its boundary cannot be found."""
        return bool(_LOST_PARTS.intersection(self.defects))


def parse_mail(raw: bytes, *, headers_only: bool = False) -> ParsedMail:
    """The mail's headers, body text and attachments; with headers_only, the header block
    alone (no parts, no attachments): the cost is that of the header block."""
    message, too_deep = None, False
    if not headers_only:
        try:
            message = email.message_from_bytes(raw, policy=RAW_HEADERS)
            too_deep = _deeper_than(message, MAX_NESTING)
        except RecursionError:
            too_deep = True
    if message is None or too_deep:
        # Keep the headers (sender, subject, threading) and drop the tree, so nothing
        # downstream (loop checks, reply threading) walks it and overflows the stack.
        message = email.message_from_bytes(_header_block(raw), policy=RAW_HEADERS)
        message.set_payload("")
    from_name, from_address = email.utils.parseaddr(decode_header_value(message.get("From")))
    message_id = decode_header_value(message.get("Message-ID")) or None
    parsed = ParsedMail(
        message=message,
        message_id=message_id[:998] if message_id else None,
        from_name=from_name,
        from_address=from_address.lower() if from_address and _ADDRESS.fullmatch(from_address) else None,
        to=decode_header_value(message.get("To")),
        subject=decode_header_value(message.get("Subject")),
        date_header=decode_header_value(message.get("Date")) or None,
        body_text="",
        too_deep=too_deep,
    )
    if not (too_deep or headers_only):
        _walk(message, parsed, forwarded=False, depth=0)
    parsed.body_text = parsed.body_text[:BODY_TEXT_LIMIT]
    parsed.defects = [type(d).__name__ for d in getattr(message, "defects", [])]
    return parsed


def parse_headers(raw: bytes) -> ParsedMail:
    """Sender, subject and ids only: for the ledger, and for mail too big to read."""
    return parse_mail(raw, headers_only=True)


def _header_block(raw: bytes) -> bytes:
    # The stdlib parser holds ~8 times a mail's size while it splits the body into lines.
    end = re.search(rb"\r?\n\r?\n", raw)
    return raw[: end.end()] if end else raw


def _deeper_than(message: Message, limit: int) -> bool:
    """Whether the part tree nests deeper than limit (iterative: the tree may be hostile)."""
    stack = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > limit:
            return True
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((inner, depth + 1) for inner in payload if isinstance(inner, Message))
    return False


def _walk(part: Message, parsed: ParsedMail, *, forwarded: bool, depth: int) -> None:
    if depth > MAX_NESTING:
        # Only reachable through base64-encoded forwards, each parsed on its own.
        parsed.too_deep = True
        return
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        for inner in _embedded_messages(part):
            _walk(inner, parsed, forwarded=True, depth=depth + 1)
        return
    if part.is_multipart():
        for inner in part.get_payload() or []:
            if isinstance(inner, Message):
                _walk(inner, parsed, forwarded=forwarded, depth=depth + 1)
        return
    name = _param_filename(part)
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if name is None and content_type in _BODY_TYPES and disposition != "attachment":
        if not forwarded or not parsed.body_text:
            parsed.body_text += "\n" + _body_text(part)
        return
    if name is None and content_type.startswith(("multipart/", "message/")):
        return
    data = part.get_payload(decode=True) or b""
    if name is None:
        if not data or content_type in ("application/pgp-signature", "application/pkcs7-signature"):
            return
        name = f"未命名附件.{_guess_extension(content_type)}"
    parsed.attachments.append(
        Attachment(name=safe_filename(name), data=data, content_type=content_type, forwarded=forwarded)
    )


def _embedded_messages(part: Message) -> list[Message]:
    """A forwarded mail. Some clients base64-encode message/rfc822 (RFC 2046 forbids it;
    it is sent anyway): the parser then holds the encoded text, so decode and parse it."""
    payload = part.get_payload()
    inner = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    encoding = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding not in ("base64", "quoted-printable"):
        return inner
    text = inner[0].as_string() if inner else str(payload or "")
    body = text.split("\n\n", 1)[-1] if inner and inner[0].keys() else text
    raw = body.encode("ascii", "ignore")
    try:
        data = binascii.a2b_base64(raw) if encoding == "base64" else quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return inner
    return [email.message_from_bytes(data, policy=RAW_HEADERS)]


def _guess_extension(content_type: str) -> str:
    known = {
        "application/pdf": "pdf",
        "application/vnd.ms-excel": "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
        "application/zip": "zip",
        "text/calendar": "ics",
        "application/ms-tnef": "dat",
    }
    return known.get(content_type, "bin")


def _body_text(part: Message) -> str:
    data = part.get_payload(decode=True) or b""
    text = decode_bytes(data, part.get_content_charset())
    return html_to_text(text) if part.get_content_type() == "text/html" else text


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ARG002
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html[:200_000])
    return re.sub(r"\n\s*\n+", "\n", "".join(extractor.chunks)).strip()
