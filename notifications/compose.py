"""Building an outgoing mail and putting it in the outbox, once per dedupe key.

Every mail intake sends is built here, so the headers that keep auto-replies from
looping (Auto-Submitted, X-Loop, X-Auto-Response-Suppress) are never forgotten.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
import email.header
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from notifications.render import DISPLAY_TZ
from storage.models import OutboxItem, OutboxKind, OutboxState

# CR, LF and the other controls: a header value containing them could start a new header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_MSG_ID = re.compile(r"<[^<>\s]+>")
# SMTP line endings; headers set raw (an attachment's RFC 2047 name) are sent as written.
SMTP_WIRE = policy.SMTP.clone(refold_source="none")


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
    to: str,
    subject: str,
    text: str,
    html: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    auto_submitted: str = "auto-generated",
    domain: str | None = None,
) -> EmailMessage:
    """A UTF-8 multipart/alternative mail (multipart/mixed with attachments)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = Address(display_name=one_line(from_name), addr_spec=one_line(from_address))
    msg["To"] = one_line(to)
    msg["Subject"] = one_line(subject)
    msg["Date"] = format_datetime(dt.datetime.now(DISPLAY_TZ))
    msg["Message-ID"] = make_msgid(domain=domain or _domain(from_address))
    if in_reply_to:
        msg["In-Reply-To"] = _msg_id(in_reply_to)
    if references:
        msg["References"] = " ".join(_msg_id(r) for r in references)
    # RFC 3834; X-Loop is what Request Tracker and procmail recipes look for; the
    # suppress header asks Exchange/Outlook not to answer us with an out-of-office.
    msg["Auto-Submitted"] = one_line(auto_submitted)
    msg["X-Loop"] = one_line(from_address)
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
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


def _add_encoded_word_name(part: EmailMessage, name: str) -> None:
    """Content-Type's name= as RFC 2047 encoded words, written as is (SMTP_WIRE keeps raw
    headers unfolded): the email package would otherwise turn it back into RFC 2231."""
    words = email.header.Header(name, "utf-8").encode(maxlinelen=76)
    content_type = part.get_content_type()
    del part["Content-Type"]
    part.set_raw("Content-Type", f'{content_type};\n name="{words}"')  # lines re-joined with CRLF


def wire_bytes(message: EmailMessage) -> bytes:
    """The bytes the outbox stores and SMTP sends."""
    return message.as_bytes(policy=SMTP_WIRE)


def enqueue(
    session: Session,
    *,
    kind: OutboxKind,
    dedupe_key: str,
    message: EmailMessage,
    raw: bytes | None = None,
    submission_id: int | None = None,
    reply_kind: str | None = None,
    priority: int = 0,
) -> OutboxItem | None:
    """Add `message` to the outbox in the caller's transaction; None when the key exists.

    Lower `priority` is sent first (0: units and staff; 1: short replies to strangers).
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
        "next_attempt_at": dt.datetime.now(dt.UTC),
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        # ON CONFLICT DO NOTHING: a concurrent writer with the same key cannot fail
        # the caller's transaction, as a unique-violation would.
        dialect_insert = _dialect_insert(dialect)
        stmt = dialect_insert(OutboxItem).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
        # RETURNING the row itself: one statement, not an insert and then a SELECT.
        return session.scalars(stmt.returning(OutboxItem)).first()
    if session.scalar(select(OutboxItem.id).where(OutboxItem.dedupe_key == dedupe_key)) is not None:
        return None
    new_id = session.execute(insert(OutboxItem).values(**values).returning(OutboxItem.id)).scalar()
    return session.get(OutboxItem, new_id)


def _dialect_insert(dialect: str):  # noqa: ANN202 - returns a dialect's insert() constructor
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert
