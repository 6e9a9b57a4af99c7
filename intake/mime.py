"""Reading a raw message the way Chinese mail clients actually write it.

A mail is read from a file in chunks (`parse_mail_file`): the stdlib parser builds the
tree and its headers, but every leaf part's body is decoded (base64, quoted-printable or
as sent) into a spool file of its own while the parser reaches it, so neither the whole
mail nor an encoded attachment is ever held in memory, and a decoded attachment only when
its reader asks for it (`Attachment.read`).

Foxmail and QQ Mail put RFC 2047 encoded-words inside quoted filename parameters,
Outlook and 163 webmail use RFC 2231, some clients send raw 8-bit GBK. Labels such as
gb2312 and gbk are always read as gb18030, their superset: a name with 镕 or 𠮷 in it is
not gb2312 but is still sent labelled so. We take parameters from the raw header text
(compat32 keeps undecodable bytes as surrogates) and decode them ourselves.

Every byte is written by a possible attacker: the From address is taken the way servers
and DMARC take it (never from a decoded display name), header decoding does bounded work
whatever its size, and text shown to people loses controls and bidi overrides.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email._header_value_parser as address_parser  # the RFC 5322 grammar behind email.headerregistry
import email.errors
import email.feedparser
import email.header
import email.parser
import hashlib
import io
import quopri
import re
import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.policy import Compat32
from html.parser import HTMLParser
from itertools import compress, count, islice
from operator import methodcaller
from pathlib import Path
from typing import BinaryIO


GB_ALIASES = {"gb2312", "gbk", "x-gbk", "cp936", "ms936", "gb_2312-80", "euc-cn", "csgb2312", "x-euc-cn", "chinese", "936"}
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
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
# email.header.decode_header is quadratic in the number of encoded-words on one line (a
# 3.4 MB Subject held a poll for 90 s), so a header is cut before it is decoded: after
# this many encoded-words or this many characters, and its decoded text after LIMIT.
MAX_ENCODED_WORDS = 2_000
_RAW_HEADER_LIMIT = 200_000
HEADER_TEXT_LIMIT = 10_000
# A From longer than this is no sender's address: it is not parsed at all.
_FROM_LIMIT = 4_000
# The header block is read at most this far (real headers are a few KB; a mail with no
# blank line would otherwise be "all header" and cost ~8 times its size to parse). The
# poller reads only this much of an archived mail itself (intake.mailread).
HEADER_BLOCK_LIMIT = 1024 * 1024
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
# Why a From yields no address we may trust or answer.
FROM_MISSING = "missing"
FROM_MULTIPLE = "multiple"
FROM_UNPARSEABLE = "unparseable"
_ZERO_WIDTH_JOINER = "\u200d"  # joins emoji and Indic letters; shows nothing by itself


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
    """Decode with the declared charset when it works; else as undeclared text (decode_raw)."""
    if (declared := normalize_charset(charset)) is not None:
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    return decode_raw(data)


def decode_raw(data: bytes) -> str:
    """Text sent without a usable charset label: UTF-8 (also when cut inside its last
    character: names are truncated by byte count), else GB18030, else Latin-1 for a name
    whose GB18030 reading is mostly outside GB 2312 while its Latin-1 reading is letters
    (b"Fr\xf6sche" is "Frösche", not "Fr鰏che")."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(data) - 3 and err.reason == "unexpected end of data":
            return data[: err.start].decode("utf-8")  # a trailing partial character dropped
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")
    return data.decode("latin-1") if _latin1_more_plausible(text, data) else text


def _latin1_more_plausible(gb_text: str, data: bytes) -> bool:
    wide = [c for c in gb_text if ord(c) > 127]
    rare = sum(not _in_gb2312(c) for c in wide)
    if not wide or rare * 2 <= len(wide):
        return False
    latin = [c for c in data.decode("latin-1") if ord(c) > 127]
    return all(c.isalpha() for c in latin)


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def decode_header_value(value: str | email.header.Header | None, limit: int = HEADER_TEXT_LIMIT) -> str:
    """A header as a person would read it: encoded-words and raw 8-bit both decoded, on
    one line, at most `limit` characters; the work is bounded whatever the header holds."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        value = str(value)
    return _clean(_decode_words(_bounded(value)))[:limit]


def _decode_words(value: str) -> str:
    """RFC 2047 by hand, in one linear pass: raw 8-bit text around and inside encoded-words
    is decoded as text (the stdlib turns it into literal "\\u56de" escapes), whitespace
    between two encoded-words is dropped, and adjacent words in one charset are joined
    before decoding (clients split a character's bytes across two words)."""
    chunks: list[tuple[bytes, str | None]] = []  # (bytes, charset); charset None: raw text
    position = 0
    for word in _ENCODED_WORD.finditer(value):
        between = value[position : word.start()]
        if between and not (between.isspace() and chunks and chunks[-1][1] is not None):
            chunks.append((_raw(between), None))
        data, charset = _word_bytes(word.group(0))
        if chunks and chunks[-1][1] == charset and charset is not None:
            chunks[-1] = (chunks[-1][0] + data, charset)
        else:
            chunks.append((data, charset))
        position = word.end()
    if position < len(value):
        chunks.append((_raw(value[position:]), None))
    return "".join(decode_bytes(data, charset) if charset else decode_raw(data) for data, charset in chunks)


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _word_bytes(word: str) -> tuple[bytes, str]:
    """(payload bytes, charset label) of one encoded-word; a bad payload is kept as text."""
    charset, encoding, payload = word[2:-2].split("?", 2)
    charset = charset.partition("*")[0].lower()  # RFC 2231 language suffix: utf-8*zh
    data = _raw(payload)
    try:
        if encoding in "bB":
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4)), charset
        return quopri.decodestring(data.replace(b"_", b" "), header=True), charset
    except (binascii.Error, ValueError):
        return _raw(word), charset


def _bounded(value: str) -> str:
    """The header cut after MAX_ENCODED_WORDS encoded-words and _RAW_HEADER_LIMIT characters."""
    value = value[:_RAW_HEADER_LIMIT]
    last = None
    for last in islice(_ENCODED_WORD.finditer(value), MAX_ENCODED_WORDS):
        pass
    if last is not None and _ENCODED_WORD.search(value, last.end()):
        value = value[: last.end()]
    return value


def _clean(text: str) -> str:
    # Folded header lines and stray controls must never reach a reply header or a log.
    return display_text(text).strip()


def display_text(text: str, control: str = " ") -> str:
    """Text fit to show a person, the one rule for every name, subject and filename:
    control characters become `control`; invisible format characters (bidi overrides such
    as U+202E, which makes "invoice<U+202E>xcod.pdf" read "invoicefdp.docx", isolates,
    marks, zero-width and tag characters) are removed, except the zero width joiner."""
    if text.isprintable():
        return text
    return "".join(_shown(char, control) for char in text)


def _shown(char: str, control: str) -> str:
    category = unicodedata.category(char)
    if category in ("Cc", "Zl", "Zp"):
        return control
    if category == "Cf":
        return char if char == _ZERO_WIDTH_JOINER else ""
    if category == "Cs":  # an undecodable byte kept as a surrogate
        return "\ufffd"
    return char


def safe_filename(name: str) -> str:
    """A display name only: last path component, no controls. Never used as a path."""
    name = display_text(name, control="").replace("\\", "/").split("/")[-1].strip().strip(".")
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
        return decode_raw(_raw(value)) if _has_8bit(value) else value
    return None


def _has_8bit(value: str) -> bool:
    return any(ord(c) > 127 for c in value)


@dataclass
class Attachment:
    name: str  # decoded display name
    data: bytes  # b"" while the content is still in `payload` (parse_mail_file)
    content_type: str
    forwarded: bool = False  # found inside a forwarded message/rfc822 part
    payload: PartPayload | None = None

    def read(self) -> bytes:
        """The decoded content (read from its spool file when streamed)."""
        return self.payload.read() if self.payload is not None else self.data

    @property
    def sha256(self) -> str:
        """sha256 of `read()`: hashed while it was spooled, so not read again for it."""
        return self.payload.sha256 if self.payload is not None else hashlib.sha256(self.data).hexdigest()

    def release(self) -> None:
        """Drop the content (its spool file too): call once it is filed."""
        self.data = b""
        if self.payload is not None:
            self.payload.close()
            self.payload = None


@dataclass
class ParsedMail:
    message: Message
    message_id: str | None
    from_name: str
    from_address: str | None  # None unless the mail names exactly one usable address
    to: str
    subject: str
    date_header: str | None
    body_text: str
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    too_deep: bool = False  # nested beyond MAX_NESTING: headers only, no parts read
    # Why there is no from_address: FROM_MISSING, FROM_MULTIPLE or FROM_UNPARSEABLE.
    from_problem: str | None = None
    # Every part's content type (only the top-level one when the tree was not read).
    content_types: set[str] = field(default_factory=set)
    # Message-IDs of mail carried inside (a forward, or the mail a bounce returns).
    returned_ids: list[str] = field(default_factory=list)
    delivery_status: str = ""  # a bounce's first Diagnostic-Code or Status, as sent
    # (content type, decoded text) of every body part, forwards included, bounded: where
    # large-attachment links are found (intake.links).
    bodies: list[tuple[str, str]] = field(default_factory=list)

    spools: list[PartPayload] = field(default_factory=list, repr=False)  # every streamed part's

    @property
    def parts_lost(self) -> bool:
        """The mail says it has parts but its boundary cannot be found."""
        return bool(_LOST_PARTS.intersection(self.defects))

    def close(self) -> None:
        """Drop every spool file (attachments not yet read included)."""
        for spool in self.spools:
            spool.close()
        self.spools.clear()


def parse_mail(raw: bytes, *, headers_only: bool = False) -> ParsedMail:
    """The mail's headers, body text and attachments (their bytes in `data`); with
    headers_only, the header block alone (no parts, no attachments): the cost is that of
    the header block. A large mail is better read with parse_mail_file."""
    if headers_only:
        return _parsed(_header_message(header_block(raw)), too_deep=False, headers_only=True)
    parsed = parse_mail_file(io.BytesIO(raw))
    try:
        for attachment in parsed.attachments:
            attachment.data, attachment.payload = attachment.read(), None
    finally:
        parsed.close()
    return parsed


def parse_mail_file(source: BinaryIO, spool_dir: Path | None = None) -> ParsedMail:
    """parse_mail of a mail read from a seekable binary file in chunks. The attachments'
    content stays in spool files (in `spool_dir`, else the temp folder) until
    `Attachment.read`; close the result (ParsedMail.close) to drop them. Memory: the
    parser's tree and headers, a chunk, and no part's body."""
    parser = _StreamingParser(spool_dir)
    message, too_deep = None, False
    try:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            parser.feed(chunk)
        message = parser.close()
        for part in parser.spooled:
            part.finish_spool()
        too_deep = _deeper_than(message, MAX_NESTING)
    except RecursionError:
        too_deep = True
    except BaseException:
        _close_all(parser.spooled)
        raise
    if message is None or too_deep:
        # Keep the headers (sender, subject, threading) and drop the tree, so nothing
        # downstream (loop checks, reply threading) walks it and overflows the stack.
        _close_all(parser.spooled)
        source.seek(0)
        return _parsed(_header_message(header_block(source.read(HEADER_BLOCK_LIMIT))), too_deep=True,
                       headers_only=False)
    parsed = _parsed(message, too_deep=False, headers_only=False,
                     spools=[part.spooled for part in parser.spooled if part.spooled is not None])
    return parsed


def _header_message(block: bytes) -> Message:
    """The header block as a message with an empty body. Read as headers only: the body
    is not looked into, so a multipart type neither reports its (absent) parts lost nor
    costs the compiling of a regex for its boundary, a new one in every mail (~0.3 ms)."""
    message = email.parser.BytesHeaderParser(policy=RAW_HEADERS).parsebytes(block)
    message.set_payload("")
    return message


def _close_all(parts: list[_Part]) -> None:
    for part in parts:
        if part.spooled is not None:
            part.spooled.close()


def _parsed(message: Message, *, too_deep: bool, headers_only: bool, spools: list[PartPayload] | None = None
            ) -> ParsedMail:
    sender = read_from(message.get_all("From") or [])
    message_id = decode_header_value(message.get("Message-ID")) or None
    parsed = ParsedMail(
        message=message,
        message_id=message_id[:998] if message_id else None,
        from_name=sender.name,
        from_address=sender.address,
        from_problem=sender.problem,
        to=decode_header_value(message.get("To")),
        subject=decode_header_value(message.get("Subject")),
        date_header=decode_header_value(message.get("Date")) or None,
        body_text="",
        too_deep=too_deep,
        spools=spools or [],
    )
    if not (too_deep or headers_only):
        try:
            _walk(message, parsed, forwarded=False, depth=0)
        except BaseException:
            parsed.close()
            raise
    # walk() recurses, but only into a tree already known to nest at most MAX_NESTING deep.
    parsed.content_types = {part.get_content_type() for part in message.walk()}
    parsed.body_text = parsed.body_text[:BODY_TEXT_LIMIT]
    parsed.defects = [type(d).__name__ for d in getattr(message, "defects", [])]
    return parsed


@dataclass(frozen=True)
class Sender:
    name: str  # decoded display name, for people only
    address: str | None  # lower-case addr-spec; None when there is not exactly one
    problem: str | None = None  # FROM_MISSING | FROM_MULTIPLE | FROM_UNPARSEABLE


def read_from(values: list[str]) -> Sender:
    """The From header(s) as sent (8-bit bytes as surrogates), read the way receiving
    servers and DMARC read them: the address comes from the addr-spec that the RFC 5322
    grammar finds in the raw header, and the display name is decoded on its own
    afterwards, so an encoded-word such as =?utf-8?q?jinan=40example=2Ecn?= in front of
    <attacker@evil.example> is only a name. Several addresses, or junk that makes the
    address a matter of interpretation, yield no address at all. We read the parse tree
    that email.headerregistry builds its .addresses from, because its Address objects
    hide whether the parser skipped junk around the address."""
    if not values:
        return Sender("", None, FROM_MISSING)
    if len(values) > 1:
        return Sender("", None, FROM_MULTIPLE)
    value = re.sub(r"\r?\n(?=[ \t])", "", values[0]).strip()  # unfold (RFC 5322 §2.2.3)
    if not value:
        return Sender("", None, FROM_MISSING)
    if len(value) > _FROM_LIMIT:
        return Sender("", None, FROM_UNPARSEABLE)
    try:
        addresses, rest = address_parser.get_address_list(value)
    except (email.errors.HeaderParseError, RecursionError, IndexError, ValueError):
        return Sender("", None, FROM_UNPARSEABLE)
    mailboxes = addresses.all_mailboxes
    if rest or any(a[0].token_type == "group" for a in addresses.addresses):
        return Sender("", None, FROM_UNPARSEABLE)
    if not mailboxes:
        return Sender("", None, FROM_MISSING)
    if len(mailboxes) > 1:
        return Sender("", None, FROM_MULTIPLE)
    (mailbox,) = mailboxes
    name = _display_name(mailbox, value)
    address = mailbox.addr_spec if _unambiguous(mailbox) else None
    if not address or not _ADDRESS.fullmatch(address):
        return Sender(name, None, FROM_UNPARSEABLE)
    return Sender(name, address.lower())


def _unambiguous(mailbox: address_parser.TokenList) -> bool:
    # The parser marks a mailbox invalid for a display name it dislikes (an encoded-word
    # in quotes, no space before "<") and for text around the address ("a@x <b@y>"):
    # only the first leaves the address beyond doubt.
    return mailbox.token_type == "mailbox" or (len(mailbox) == 1 and mailbox[0].token_type == "name-addr")


def _display_name(mailbox: address_parser.TokenList, value: str) -> str:
    """The raw text before the angle-addr, decoded with our charset rules (the parser
    would read a gb2312 label as strict GB 2312 and lose 镕)."""
    if mailbox[0].token_type != "name-addr":
        return ""
    angle = next((t for t in mailbox[0] if t.token_type == "angle-addr"), None)
    cut = value.find(str(angle).lstrip()) if angle is not None else -1
    if cut <= 0:
        return ""
    name = decode_header_value(value[:cut], limit=500)
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1]).strip()
    return name


def parse_headers(raw: bytes) -> ParsedMail:
    """Sender, subject and ids only: for the ledger, and for mail too big to read."""
    return parse_mail(raw, headers_only=True)


def header_block(raw: bytes) -> bytes:
    """The mail's header block, at most HEADER_BLOCK_LIMIT bytes: `raw` may be the whole
    mail or only its start. (The stdlib parser holds ~8 times a mail's size while it
    splits the body into lines; nothing that needs only headers should pay that.)"""
    end = _BLANK_LINE.search(raw, 0, HEADER_BLOCK_LIMIT)
    return raw[: end.end()] if end else raw[:HEADER_BLOCK_LIMIT]


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


# --- Streaming: leaf bodies decoded into spool files while the parser reads the mail ---

_CHUNK = 64 * 1024  # read from the mail file, and batched per part before decoding
# A part's decoded bytes stay in memory up to this size, then go to a temp file: a mail of
# thousands of tiny parts costs no file descriptors, a 21 MB attachment no memory.
SPOOL_IN_MEMORY = 512 * 1024
# Transfer encodings left to the stdlib (held whole, as before): uuencode is rare and its
# decoder falls back to the raw text on any error.
_KEPT_WHOLE = {"x-uuencode", "uuencode", "uue", "x-uue"}
# A text body longer than this is decoded from its start only: what is kept of it
# (BODY_CHARS_KEPT, BODY_TEXT_LIMIT, html_to_text's 200,000) is far shorter.
TEXT_READ_LIMIT = 4 * 1024 * 1024
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="  # and "=", as _NOT_BASE64


class SpoolError(OSError):
    """A spool file could not be written (disk full): a fault of ours, not of the mail."""


class _Base64:
    """Incremental base64 with the stdlib's lenient reading (binascii.a2b_base64, not
    strict; as Message.get_payload(decode=True)): characters outside the alphabet are
    skipped, "=" counts only where it completes a quantum and ends the data there, and a
    last quantum of 2 or 3 characters is read as if padded. One difference: a stray
    last character (1 past a quantum: a truncated attachment) is dropped, where the stdlib
    gives back the whole undecoded text."""

    def __init__(self) -> None:
        self._carry = b""  # fewer than 4 alphabet characters not yet decoded
        self._pad_seen = False  # one "=" after a quantum's 2nd character
        self._done = False

    def decode(self, data: bytes) -> bytes:
        if self._done:
            return b""
        data = _base64_alphabet_only(data)
        if b"=" not in data:
            return self._quanta(data)
        out = []
        pieces = data.split(b"=")
        for index, piece in enumerate(pieces):
            out.append(self._quanta(piece))
            if index == len(pieces) - 1:
                break
            held = len(self._carry)
            if held == 3 or (held == 2 and self._pad_seen):
                out.append(self.finish())
                self._done = True
                break
            self._pad_seen = held == 2  # "=" after 0 or 1 characters is skipped
        return b"".join(out)

    def _quanta(self, alphabet: bytes) -> bytes:
        if not alphabet:
            return b""
        self._pad_seen = False
        data = self._carry + alphabet
        cut = len(data) - len(data) % 4
        self._carry = data[cut:]
        return binascii.a2b_base64(data[:cut]) if cut else b""

    def finish(self) -> bytes:
        carry, self._carry = self._carry, b""
        if self._done or len(carry) < 2:
            return b""
        return binascii.a2b_base64(carry + b"=" * (4 - len(carry)))


def _base64_alphabet_only(data: bytes) -> bytes:
    """`data` without the characters outside the base64 alphabet (and "="). Line breaks
    are the only ones in well-formed base64, so they go in one C pass; the regex runs
    only when something else is left."""
    data = data.translate(None, b"\r\n")
    if data.translate(None, _BASE64_ALPHABET):
        data = _NOT_BASE64.sub(b"", data)
    return data


class _QuotedPrintable:
    """quopri.decodestring in pieces that each end with a line feed: a2b_qp reads nothing
    across one ("=" then CR skips up to the next LF, so a piece never ends after a CR)."""

    def __init__(self) -> None:
        self._carry = b""

    def decode(self, data: bytes) -> bytes:
        data = self._carry + data
        cut = data.rfind(b"\n") + 1
        self._carry = data[cut:]
        return binascii.a2b_qp(data[:cut]) if cut else b""

    def finish(self) -> bytes:
        carry, self._carry = self._carry, b""
        return binascii.a2b_qp(carry) if carry else b""


class _AsSent:
    def decode(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class PartPayload:
    """A leaf part's decoded content in a spool file, with its size and sha256."""

    def __init__(self, transfer_encoding: str, spool_dir: Path | None = None) -> None:
        if transfer_encoding == "base64":
            self._decoder: _Base64 | _QuotedPrintable | _AsSent = _Base64()
        elif transfer_encoding == "quoted-printable":
            self._decoder = _QuotedPrintable()
        else:
            self._decoder = _AsSent()
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=spool_dir)
        self._pending: list[str] = []  # raw lines not yet decoded
        self._pending_chars = 0
        self._hash = hashlib.sha256()
        self.size = 0

    @classmethod
    def of(cls, data: bytes) -> PartPayload:
        payload = cls("")
        payload._write(data)
        return payload

    def feed(self, line: str) -> None:
        """One raw line of the body, as the parser holds it (bytes as surrogates)."""
        self._pending.append(line)
        self._pending_chars += len(line)
        if self._pending_chars >= _CHUNK:
            self._decode_pending()

    def _decode_pending(self) -> None:
        raw = "".join(self._pending).encode("ascii", "surrogateescape")
        self._pending, self._pending_chars = [], 0
        self._write(self._decoder.decode(raw))

    def finish(self, tail: str) -> None:
        """The body's last line, as the parser left it (the line break before a boundary
        belongs to the boundary, so the parser has taken it off)."""
        if tail:
            self._pending.append(tail)
        self._decode_pending()
        self._write(self._decoder.finish())

    def _write(self, data: bytes) -> None:
        if data:
            try:
                self._file.write(data)
            except OSError as err:
                raise SpoolError(err.errno, f"spool file: {err.strerror or err}") from err
            self._hash.update(data)
            self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def read(self, limit: int = -1) -> bytes:
        self._file.seek(0)
        return self._file.read(limit)

    def close(self) -> None:
        self._file.close()


class _Part(Message):
    spooled: PartPayload | None = None  # set while the parser reads a leaf's body

    def finish_spool(self) -> None:
        if self.spooled is not None:
            self.spooled.finish(self._payload if isinstance(self._payload, str) else "")
            self._payload = ""


class _DivertingInput(email.feedparser.BufferedSubFile):
    """The parser's line buffer. While `divert` is set (a leaf's body), every line up to
    the part's end goes to it instead of to the parser, except the last one: the parser
    keeps that as the payload and strips the line break before a boundary from it, as it
    would from the whole body.

    The body is handed over in bulk: only a line that some end-of-part matcher accepts
    ends it, and when every matcher is a multipart boundary's (the usual case) only a line
    starting with "--" can be one, so only those lines are tested, and text with no "-"
    in it is not even split into lines (`push`)."""

    def __init__(self) -> None:
        super().__init__()
        self.divert: PartPayload | None = None
        self._held: str | None = None
        self._dashes_only = False  # every end-of-part matcher is a boundary's

    def divert_to(self, payload: PartPayload) -> None:
        """Send the body that follows to `payload` (called once its headers are read)."""
        self.divert = payload
        # The matchers stay as they are until the body ends: the parser pushes and pops
        # them only around a part's headers and subparts.
        self._dashes_only = all(_is_boundary_matcher(at_eof) for at_eof in self._eofstack)

    def push(self, data: str) -> None:
        """As BufferedSubFile.push, but while a body is diverted and no line is queued, the
        text up to the first "-" is not split into lines: it is body, so it goes to the
        payload whole (its last line held back); only the rest is split."""
        if self.divert is None or not self._dashes_only or self._lines:
            super().push(data)
            return
        text = self._partial.getvalue() + data
        dash = text.find("-")
        # Cut after a line feed (a line start, never inside a CRLF), before any "-".
        cut = text.rfind("\n", 0, len(text) if dash < 0 else dash) + 1
        if not cut:
            super().push(data)
            return
        self._partial.seek(0)
        self._partial.truncate()
        # The held text ends the body if a boundary follows: from a line start, so that
        # the parser strips exactly the last line break from it.
        last = text.rfind("\n", 0, cut - 1) + 1
        if self._held is not None:  # text[:cut] has a whole line: the held one is not last
            self.divert.feed(self._held)
        self.divert.feed(text[:last])
        self._held = text[last:cut]
        super().push(text[cut:])

    def readline(self) -> str | object:
        if self.divert is None:
            return super().readline()
        if not self._lines:
            return self._release() if self._closed else email.feedparser.NeedMoreData
        lines = list(self._lines)
        self._lines.clear()
        for index in self._candidates(lines):
            line = lines[index]
            # As BufferedSubFile.readline: the innermost to outermost boundary.
            if any(at_eof(line) for at_eof in reversed(self._eofstack)):
                self._pass_on(lines[:index])
                self._lines.extend(lines[index:])
                return self._release()
        self._pass_on(lines)
        return self._release() if self._closed else email.feedparser.NeedMoreData

    def _candidates(self, lines: list[str]) -> Iterable[int]:
        """Indexes of the lines that may end the body, in order."""
        if not self._dashes_only:
            return range(len(lines))
        if "-" not in "".join(lines):  # one C scan; base64 has no "-" at all
            return ()
        return compress(count(), map(_STARTS_WITH_DASHES, lines))

    def _pass_on(self, lines: list[str]) -> None:
        """`lines` are body: all but the last go to the payload (after the line held so
        far), and the last is held."""
        if not lines:
            return
        if self._held is not None:
            self.divert.feed(self._held)
        self.divert.feed("".join(lines[:-1]))
        self._held = lines[-1]

    def _release(self) -> str:
        line, self._held = self._held, None
        if line is None:
            self.divert = None
            return ""
        return line  # the parser asks again and then gets "", the end of the body


_STARTS_WITH_DASHES = methodcaller("startswith", "--")
_BOUNDARY_PATTERN_START = "(?P<sep>" + re.escape("--")


def _is_boundary_matcher(at_eof: object) -> bool:
    """Whether an end-of-part matcher is the stdlib's boundary test (`boundaryre.match`
    in email.feedparser), which accepts only lines starting with "--". Anything else
    (a delivery-status block's blank-line test) makes every line a candidate."""
    pattern = getattr(at_eof, "__self__", None)
    return (isinstance(pattern, re.Pattern) and getattr(at_eof, "__name__", "") == "match"
            and isinstance(pattern.pattern, str) and pattern.pattern.startswith(_BOUNDARY_PATTERN_START))


class _StreamingParser(email.feedparser.BytesFeedParser):
    """The stdlib parser (so boundaries, defects and nesting are read as before) whose
    leaf parts' bodies are decoded into spool files instead of kept as text."""

    def __init__(self, spool_dir: Path | None) -> None:
        super().__init__(_factory=_Part, policy=RAW_HEADERS)
        self._input = _DivertingInput()
        self._spool_dir = spool_dir
        self.spooled: list[_Part] = []

    def _parse_headers(self, lines: list[str]) -> None:
        super()._parse_headers(lines)
        part = self._cur
        # The same tests _parsegen makes next: neither branch reads a body of its own.
        if part.get_content_maintype() in ("message", "multipart"):
            return
        transfer_encoding = str(part.get("content-transfer-encoding", "")).lower()  # as get_payload reads it
        if transfer_encoding in _KEPT_WHOLE or _encoded_forward(self._msgstack):
            return
        part.spooled = PartPayload(transfer_encoding, self._spool_dir)
        self.spooled.append(part)
        self._input.divert_to(part.spooled)


def _encoded_forward(stack: list[Message]) -> bool:
    """The part is the body of a base64 or quoted-printable message/rfc822: the text that
    _embedded_messages decodes and parses again, so it stays in the tree."""
    if len(stack) < 2 or stack[-2].get_content_maintype() != "message":
        return False
    return (stack[-2].get("Content-Transfer-Encoding") or "").strip().lower() in ("base64", "quoted-printable")


def _payload_of(part: Message) -> PartPayload:
    """A leaf's decoded content: its spool, or (a part the stdlib kept whole) its bytes."""
    spooled = getattr(part, "spooled", None)
    return spooled if spooled is not None else PartPayload.of(part.get_payload(decode=True) or b"")


def _text_of(part: Message) -> str:
    """A text body decoded, from at most TEXT_READ_LIMIT bytes of it."""
    payload = _payload_of(part)
    charset = part.get_content_charset()
    if payload.size <= TEXT_READ_LIMIT:
        return decode_bytes(payload.read(), charset)
    start = payload.read(TEXT_READ_LIMIT)
    if (declared := normalize_charset(charset)) is not None:
        try:
            return codecs.getincrementaldecoder(declared)().decode(start, final=False)  # a cut character dropped
        except (UnicodeDecodeError, LookupError):
            pass
    return decode_raw(start)


def _walk(part: Message, parsed: ParsedMail, *, forwarded: bool, depth: int) -> None:
    if depth > MAX_NESTING:
        # Only reachable through base64-encoded forwards, each parsed on its own.
        parsed.too_deep = True
        return
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        for inner in _embedded_messages(part):
            _note_returned(parsed, inner)
            _walk(inner, parsed, forwarded=True, depth=depth + 1)
        return
    if content_type in _RETURNED_HEADERS:  # a bounce's copy of the returned mail's header
        copy = header_block(_payload_of(part).read(HEADER_BLOCK_LIMIT))
        _note_returned(parsed, email.message_from_bytes(copy, policy=RAW_HEADERS))
        return
    if content_type in _DELIVERY_STATUS:
        _note_delivery_status(parsed, part)
        return
    if part.is_multipart():
        for inner in part.get_payload() or []:
            if isinstance(inner, Message):
                _walk(inner, parsed, forwarded=forwarded, depth=depth + 1)
        return
    name = _param_filename(part)
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if name is None and content_type in _BODY_TYPES and disposition != "attachment":
        text = _text_of(part)
        if len(parsed.bodies) < MAX_BODIES:
            parsed.bodies.append((content_type, text[:BODY_CHARS_KEPT]))
        if not forwarded or not parsed.body_text:
            parsed.body_text += "\n" + (html_to_text(text) if content_type == "text/html" else text)
        return
    if name is None and content_type.startswith(("multipart/", "message/")):
        return
    payload = _payload_of(part)
    if payload is not getattr(part, "spooled", None):
        parsed.spools.append(payload)
    if name is None:
        if not payload.size or content_type in ("application/pgp-signature", "application/pkcs7-signature"):
            return
        name = f"未命名附件.{_guess_extension(content_type)}"
    parsed.attachments.append(
        Attachment(name=safe_filename(name), data=b"", content_type=content_type, forwarded=forwarded,
                   payload=payload)
    )


MAX_BODIES = 10
BODY_CHARS_KEPT = 400_000


_RETURNED_HEADERS = {"text/rfc822-headers", "text/global-headers"}
_DELIVERY_STATUS = {"message/delivery-status", "message/global-delivery-status"}
MAX_RETURNED_IDS = 5


def _note_returned(parsed: ParsedMail, inner: Message) -> None:
    message_id = decode_header_value(inner.get("Message-ID"), limit=998)
    if message_id and len(parsed.returned_ids) < MAX_RETURNED_IDS:
        parsed.returned_ids.append(message_id)


def _note_delivery_status(parsed: ParsedMail, part: Message) -> None:
    """The first per-recipient Diagnostic-Code (else Status) of a delivery report."""
    payload = part.get_payload()
    blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
    for name in ("Diagnostic-Code", "Status"):
        for block in blocks:
            if not parsed.delivery_status and (value := block.get(name)):
                parsed.delivery_status = decode_header_value(value, limit=500)


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
    text = _text_of(part)
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
