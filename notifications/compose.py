"""Building an outgoing mail and putting it in the outbox, once per dedupe key.

Every mail intake sends is built here, so the headers that keep auto-replies from
looping (Auto-Submitted, X-Loop, X-Auto-Response-Suppress) are never forgotten.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import random
import re
from collections.abc import Sequence
from functools import lru_cache
import email.header
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from notifications.render import DISPLAY_TZ
from storage.models import OutboxItem, OutboxKind, OutboxState

# CR, LF and the other controls: a header value containing them could start a new header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_MSG_ID = re.compile(r"<[^<>\s]+>")
# SMTP line endings; headers set raw (an attachment's RFC 2047 name) are sent as written.
SMTP_WIRE = policy.SMTP.clone(refold_source="none")


class RawWire(policy.Compat32):
    """compat32, which folds nothing with no line limit, writing a value already folded
    into plain ASCII lines as it stands: the bytes email.header.Header would give, without
    running each header of each reply through it."""

    def fold_binary(self, name: str, value: object) -> bytes:
        if type(value) is str and _plain_folded(value):
            return f"{name}: {value}\n".replace("\n", self.linesep).encode("ascii")
        return super().fold_binary(name, value)


def _plain_folded(value: str) -> bool:
    """Printable ASCII lines, none blank or ending in white space, each after the first
    folded (starting with white space): what Header writes unchanged. (Header splits with
    str.splitlines, which also ends a line at some control characters.)"""
    if not value.isascii() or not value.replace("\n", "").replace("\t", " ").isprintable():
        return False
    lines = value.split("\n")
    return (all(line.strip() and not line[-1].isspace() for line in lines)
            and all(line[0] in " \t" for line in lines[1:]))


# The same bytes for raw ASCII headers.
RAW_WIRE = RawWire(linesep="\r\n", max_line_length=None, mangle_from_=False)


def one_line(value: str) -> str:
    """A header-safe value: controls (CR/LF above all) become one space."""
    return _CONTROL.sub(" ", value).strip()


def _msg_id(value: str) -> str:
    value = one_line(value)
    found = _MSG_ID.search(value)
    return found.group(0) if found else f"<{value.strip('<>')}>"


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def build_message(
    *,
    from_address: str,
    from_name: str,
    to: str | tuple[str, str],
    subject: str,
    text: str,
    html: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    auto_submitted: str = "auto-generated",
    domain: str | None = None,
) -> EmailMessage:
    """A UTF-8 multipart/alternative mail (multipart/mixed with attachments).

    `to` is a header value, or (display name, address) for one recipient whose name is
    someone's own text: the name is then encoded as it stands, never decoded again.

    Headers are written ready-folded (set_raw), so neither building nor serialising runs
    them through email.headerregistry (milliseconds a mail); a value that is not plain
    short ASCII goes the registry's way, except the subject and a recipient's name, which
    are always encoded as text (a literal encoded-word in them stays literal).
    """
    msg = EmailMessage(policy=policy.SMTP)
    msg.set_raw("From", _from_header(one_line(from_name), one_line(from_address)))
    if isinstance(to, tuple):
        _set_recipient(msg, one_line(to[0]), one_line(to[1]))
    else:
        _set(msg, "To", one_line(to))
    msg.set_raw("Subject", _text_header("Subject", one_line(subject)))
    _set(msg, "Date", format_datetime(dt.datetime.now(DISPLAY_TZ)))
    _set(msg, "Message-ID", make_msgid(domain=domain or _domain(from_address)))
    if in_reply_to:
        _set(msg, "In-Reply-To", _msg_id(in_reply_to))
    if references:
        _set(msg, "References", " ".join(_msg_id(r) for r in references))
    # RFC 3834; X-Loop is what Request Tracker and procmail recipes look for; the
    # suppress header asks Exchange/Outlook not to answer us with an out-of-office.
    msg.set_raw("Auto-Submitted", _fixed_header("Auto-Submitted", one_line(auto_submitted)))
    msg.set_raw("X-Loop", _fixed_header("X-Loop", one_line(from_address)))
    msg.set_raw("X-Auto-Response-Suppress", "All")
    msg.set_raw("MIME-Version", "1.0")
    # The email package's own form, and its own random (secrets would cost a system call
    # or two a reply): no base64 line starts with "--", so no part can match any boundary.
    boundary = f"{'=' * 15}{random.randrange(10**19):019d}=="
    msg.set_raw("Content-Type", f'multipart/alternative;\n boundary="{boundary}"')
    msg.set_payload([_text_part("plain", text), _text_part("html", html)])
    for filename, mime_type, data in attachments:
        maintype, _, subtype = mime_type.partition("/")
        name = one_line(filename) or "attachment"
        # The email package writes non-ASCII filenames as RFC 2231 parameters, which QQ
        # Mail shows as "tcmime.*.bin"; Content-Type's name= as an RFC 2047 encoded word
        # is what Foxmail and QQ themselves send, and what such clients read.
        msg.add_attachment(data, maintype=maintype or "application", subtype=subtype or "octet-stream", filename=name)
        if not name.isascii():
            _add_encoded_word_name(msg.get_payload()[-1], name)
    return msg


# --- ready-folded headers ----------------------------------------------------------------
# policy.SMTP writes a raw value as it is when no line is longer than this; a longer
# line would be refolded by email.headerregistry, so values are folded to fit it.
_FOLD = 78


def _fold_plain(name: str, value: str) -> str | None:
    """`value` folded at its spaces into lines of at most _FOLD octets, or None when it
    is not plain: non-ASCII, an encoded-word look-alike a reader would decode, runs of
    spaces (a fold there could leave a blank line) or a word too long for a line."""
    if not value.isascii() or "=?" in value or "  " in value:
        return None
    lines, line, width = [], "", _FOLD - len(name) - 2
    for word in value.split(" "):
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line, width = word, _FOLD - 1
        if len(line) > width:
            return None
    lines.append(line)
    return "\n ".join(lines)  # the generator joins the lines with CRLF


def _set(msg: EmailMessage, name: str, value: str) -> None:
    """A structured value: raw when plain, otherwise parsed and folded by the registry."""
    folded = _fold_plain(name, value)
    if folded is None:
        msg[name] = value
    else:
        msg.set_raw(name, folded)


def _encoded_words(name: str, text: str) -> str:
    """`text` as RFC 2047 UTF-8 encoded words, each line within _FOLD octets."""
    return email.header.Header(text, "utf-8", header_name=name, continuation_ws=" ").encode(
        linesep="\n", maxlinelen=_FOLD)


def _text_header(name: str, text: str) -> str:
    """Free text (a subject): plain words as they are, anything else encoded whole, so
    a reader decodes it exactly once."""
    folded = _fold_plain(name, text)
    return folded if folded is not None else _encoded_words(name, text)


def _set_recipient(msg: EmailMessage, display_name: str, address: str) -> None:
    """To: one mailbox whose name is someone's text; the name is quoted or encoded as
    it stands (formataddr's quoting for plain ASCII, encoded words otherwise)."""
    if _fold_plain("To", address) is None or " " in address:
        msg["To"] = Address(display_name=display_name, addr_spec=address)  # unusual: the registry's way
        return
    if not display_name:
        msg.set_raw("To", address)
        return
    plain = _fold_plain("To", email.utils.formataddr((display_name, address)))
    if plain is not None:
        msg.set_raw("To", plain)
        return
    words = _encoded_words("To", display_name)
    last_line = words.rpartition("\n")[2]
    width = len(last_line) + (0 if "\n" in words else len("To: "))
    separator = " " if width + len(f" <{address}>") <= _FOLD else "\n "
    msg.set_raw("To", f"{words}{separator}<{address}>")


@lru_cache(maxsize=32)
def _fixed_header(name: str, value: str) -> str:
    """A value that is the same in every mail (from the settings), folded once by the
    registry exactly as it always was, then written raw."""
    folded = policy.SMTP.header_factory(name, value).fold(policy=SMTP_WIRE)
    return folded[len(name) + 2 :].rstrip("\r\n").replace("\r\n", "\n")


def _from_header(display_name: str, address: str) -> str:
    return _fixed_header("From", str(Address(display_name=display_name, addr_spec=address)))


_TEXT_PART_HEADERS = {
    subtype: (f'text/{subtype}; charset="utf-8"', "base64") for subtype in ("plain", "html")
}


def _text_part(subtype: str, content: str) -> EmailMessage:
    """A UTF-8 text part in base64 (7-bit clean, lines of 76), lines ending in CRLF as
    set_content wrote them; its headers are fixed strings."""
    part = EmailMessage(policy=policy.SMTP)
    content_type, encoding = _TEXT_PART_HEADERS[subtype]
    part.set_raw("Content-Type", content_type)
    part.set_raw("Content-Transfer-Encoding", encoding)
    body = b"\r\n".join(content.encode("utf-8").splitlines()) + b"\r\n"
    part.set_payload(base64.encodebytes(body).decode("ascii"))
    return part


def _add_encoded_word_name(part: EmailMessage, name: str) -> None:
    """Content-Type's name= as RFC 2047 encoded words, written as is (SMTP_WIRE keeps raw
    headers unfolded): the email package would otherwise turn it back into RFC 2231."""
    words = email.header.Header(name, "utf-8").encode(maxlinelen=76)
    content_type = part.get_content_type()
    del part["Content-Type"]
    part.set_raw("Content-Type", f'{content_type};\n name="{words}"')  # lines re-joined with CRLF


def wire_bytes(message: EmailMessage) -> bytes:
    """The bytes the outbox stores and SMTP sends.

    A mail whose headers are all raw ASCII text (build_message's, without attachments)
    gives the same bytes under RAW_WIRE, which reads Content-Type with the plain
    parameter parser instead of email.headerregistry (each generator step reads it).
    """
    wire = RAW_WIRE if all(_raw_ascii_headers(part) for part in message.walk()) else SMTP_WIRE
    return message.as_bytes(policy=wire)


def _raw_ascii_headers(part: EmailMessage) -> bool:
    # Header objects are str subclasses: only a plain str is a value written as set.
    return all(type(value) is str and value.isascii() for _, value in part.raw_items())


def enqueue(session: Session, *, kind: OutboxKind, dedupe_key: str, message: EmailMessage,
            **fields: object) -> OutboxItem | None:
    """Add `message` to the outbox in the caller's transaction; None when the key exists.
    `fields` are insert_outbox's."""
    new_id = insert_outbox(session, kind=kind, dedupe_key=dedupe_key, message=message, **fields)
    return None if new_id is None else session.get(OutboxItem, new_id)


def insert_outbox(
    session: Session,
    *,
    kind: OutboxKind,
    dedupe_key: str,
    message: EmailMessage,
    raw: bytes | None = None,
    submission_id: int | None = None,
    reply_kind: str | None = None,
    priority: int = 0,
    auth_failed: bool | None = None,
) -> int | None:
    """enqueue's row, by id: no ORM object is built for it (the poller queues a reply a
    mail, and building one cost more than the insert).

    Lower `priority` is sent first (0: units and staff; 1: short replies to strangers).
    `auth_failed`: a reply's, whether the mail it answers failed authentication (the daily cap).
    `raw` is `wire_bytes(message)` when the caller has it already (serialising costs
    milliseconds a mail).
    """
    values = {
        "dedupe_key": dedupe_key,
        "kind": kind,
        "reply_kind": reply_kind,
        "submission_id": submission_id,
        "to_address": ", ".join(a.addr_spec for a in message["To"].addresses),
        "subject": str(message["Subject"]),
        "message_id": str(message["Message-ID"]),
        "raw": wire_bytes(message) if raw is None else raw,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "priority": priority,
        "auth_failed": auth_failed,
        "next_attempt_at": dt.datetime.now(dt.UTC),
    }
    session.flush()  # what the row refers to (its submission), and what the caps count, first
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        return session.execute(_insert_new(dialect, tuple(values)), values).scalar()
    if session.scalar(select(OutboxItem.id).where(OutboxItem.dedupe_key == dedupe_key)) is not None:
        return None
    return session.execute(insert(OutboxItem.__table__).values(**values).returning(OutboxItem.id)).scalar()


@lru_cache  # built once per dialect: building it cost more than running it
def _insert_new(dialect: str, columns: tuple[str, ...]):  # noqa: ANN202 - a Core insert
    # ON CONFLICT DO NOTHING: a concurrent writer with the same key cannot fail the
    # caller's transaction, as a unique-violation would. RETURNING: one statement, not
    # an insert and then a SELECT.
    table = OutboxItem.__table__
    return (_dialect_insert(dialect)(table)
            .values({name: bindparam(name) for name in columns})
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.id))


def _dialect_insert(dialect: str):  # noqa: ANN202 - returns a dialect's insert() constructor
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert
