"""The database schema: a ledger of mail, submissions, their files, rows, problems and replies.

Statuses are enums stored by value (native enums are off so SQLite and PostgreSQL
store the same strings and a migration never has to alter a type).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware in Python, stored as UTC; SQLite would otherwise drop the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _enum(cls: type[StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class MessageState(StrEnum):
    ARCHIVED = "archived"  # raw bytes on disk and recorded; not yet processed
    PROCESSED = "processed"
    DUPLICATE = "duplicate"  # same bytes as an earlier message in the same mailbox
    QUARANTINED = "quarantined"  # processing failed; flagged for staff, never blocks others


class SubmissionStatus(StrEnum):
    ACCEPTED = "accepted"
    INCOMPLETE = "incomplete"
    INVALID = "invalid"
    SUPERSEDED = "superseded"
    IGNORED = "ignored"
    UNMATCHED = "unmatched"
    # A claimed submission (intake.trust) waiting for staff while its unit's trusted
    # record stands: it changes nothing until confirmed.
    HELD = "held"
    REJECTED = "rejected"  # staff said it is not the unit's: it never counts
    # What is missing was sent as a large-attachment link (intake.links): staff fetch it.
    AWAITING_DOWNLOAD = "awaiting_download"
    # A registered unit's mail for no open campaign (a letter, a question, another
    # notice): not a submission; listed for staff under 其他来信, never changes a state.
    OTHER = "other"


class ReplyKind(StrEnum):
    RECEIPT = "receipt"
    LATE = "late"
    INCOMPLETE = "incomplete"
    INVALID = "invalid"
    LINK = "link"  # the missing file came as a large-attachment link: received, staff fetch it
    CLOSED = "closed"  # the mail's campaign has closed (closes_at): 已截止, staff decide
    OTHER = "other"  # the optional plain acknowledgement of an `other` mail
    NONE = "none"


class Trust(StrEnum):
    """How far a submission's unit can be believed (intake.trust.trust_level is the rule)."""

    VERIFIED = "verified"  # a registered address or domain, and authentication passed
    REGISTERED = "registered"  # a registered address, nothing checked either way
    CLAIMED = "claimed"  # unit named only by the mail's text, or a registered address failed authentication
    UNKNOWN = "unknown"  # no unit


class Confirmation(StrEnum):
    """Staff's word on a claimed submission: it waits (待确认) until confirmed or rejected."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class LateDecision(StrEnum):
    """The office's word on a late submission (the late reply promised one)."""

    ACCEPTED = "accepted"  # 受理: counts as 逾期受理
    REJECTED = "rejected"  # 不受理: never counts for the unit


class Role(StrEnum):
    STAFF = "staff"
    ADMIN = "admin"  # also manages users


class ReplyForm(StrEnum):
    FULL = "full"  # to a registered address: everything about the submission
    SHORT = "short"  # to anyone else: a fixed text that quotes nothing they wrote


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # handed to SMTP; must be checked against Sent before a resend
    SENT = "sent"
    FAILED = "failed"  # gave up after max attempts; shown to staff
    SKIPPED = "skipped"  # [smtp] mode = "off": deliberately never sent


class OutboxKind(StrEnum):
    REPLY = "reply"
    DIGEST = "digest"
    REMINDER = "reminder"
    NOTICE = "notice"  # to a unit's registered address: a confirmed claim replaced its record
    FOLLOW_UP = "follow_up"  # the office's decision on a late submission, in the mail's thread


class MailboxCursor(Base):
    """The last UID seen per (folder, UIDVALIDITY), so a re-poll asks only for newer mail."""

    __tablename__ = "mailbox_cursors"
    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(255))
    folder: Mapped[str] = mapped_column(String(255))
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit: past PostgreSQL's signed INTEGER.
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    __table_args__ = (UniqueConstraint("account", "folder", name="uq_cursor_account_folder"),)


class Message(Base):
    """One message in the mailbox, archived raw before anything reads it."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(255))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)  # unsigned 32-bit, as above
    uid: Mapped[int | None] = mapped_column(BigInteger)
    source_key: Mapped[str | None] = mapped_column(String(512))  # maildir file key
    # Text, not VARCHAR(n): PostgreSQL enforces lengths SQLite ignores, and a sender
    # decides how long these are.
    message_id: Mapped[str | None] = mapped_column(Text, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    from_name: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(Text, index=True)
    to: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    date_header: Mapped[str | None] = mapped_column(Text)
    arrived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state: Mapped[MessageState] = mapped_column(_enum(MessageState), default=MessageState.ARCHIVED)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    error: Mapped[str | None] = mapped_column(Text)
    auth_results: Mapped[dict | None] = mapped_column(JSON)
    moved: Mapped[bool] = mapped_column(Boolean, default=False)
    archived_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    submission: Mapped[Submission | None] = relationship(back_populates="message", uselist=False)
    __table_args__ = (
        UniqueConstraint("account", "folder", "uidvalidity", "uid", name="uq_message_location"),
        UniqueConstraint("account", "folder", "source_key", name="uq_message_source_key"),
    )


class Submission(Base):
    """What one message submitted, as judged."""

    __tablename__ = "submissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    unit: Mapped[str | None] = mapped_column(String(255), index=True)
    # The campaign (config.campaigns) the mail was routed to; None for `other` mail.
    campaign: Mapped[str | None] = mapped_column(String(64), index=True)
    routed_by: Mapped[str | None] = mapped_column(String(16))  # form|keyword|only|staff|none
    routing: Mapped[str | None] = mapped_column(Text)  # why, in Chinese, for staff
    unit_source: Mapped[str | None] = mapped_column(String(32))  # sender|sheet|subject|body|staff
    sheet_unit: Mapped[str | None] = mapped_column(Text)  # 汇总单位 as written
    # status is what staff see (superseded / unmatched win); content_status is the verdict
    # on the mail itself (accepted / incomplete / invalid / ignored) and decides the reply.
    status: Mapped[SubmissionStatus] = mapped_column(_enum(SubmissionStatus))
    content_status: Mapped[SubmissionStatus] = mapped_column(_enum(SubmissionStatus))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), index=True)
    # The message's arrival, copied when the message is set (it never changes): a unit's
    # chain is then ordered by the ix_submissions_chain index alone (intake.tracking._link).
    arrived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    reply: Mapped[ReplyKind] = mapped_column(_enum(ReplyKind), default=ReplyKind.NONE)
    reply_suppressed: Mapped[str | None] = mapped_column(String(64))  # why no reply
    has_pdf: Mapped[bool] = mapped_column(Boolean, default=False)
    has_editable: Mapped[bool] = mapped_column(Boolean, default=False)
    seal: Mapped[bool | None] = mapped_column(Boolean)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    # Image-only scans wait for OCR, which runs after the reply is sent (seconds per page).
    ocr_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_by: Mapped[str | None] = mapped_column(String(255))
    assigned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    trust: Mapped[Trust] = mapped_column(_enum(Trust), default=Trust.UNKNOWN)
    # Set while a claimed submission waits for staff; it never supersedes a trusted one
    # on its own (intake.tracking).
    confirmation: Mapped[Confirmation | None] = mapped_column(_enum(Confirmation))
    confirmed_by: Mapped[str | None] = mapped_column(String(255))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reply_form: Mapped[ReplyForm | None] = mapped_column(_enum(ReplyForm))
    late_decision: Mapped[LateDecision | None] = mapped_column(_enum(LateDecision))
    late_note: Mapped[str | None] = mapped_column(Text)
    late_decided_by: Mapped[str | None] = mapped_column(String(255))
    late_decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Staff's review of what the machine flagged: the seal verdict set by a person (None:
    # the detector's stands), and a PDF/Excel mismatch looked at.
    seal_override: Mapped[bool | None] = mapped_column(Boolean)
    mismatch_checked: Mapped[bool] = mapped_column(Boolean, default=False)
    review_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    message: Mapped[Message] = relationship(back_populates="submission")
    files: Mapped[list[StoredFile]] = relationship(
        back_populates="submission", cascade="all, delete-orphan", order_by="StoredFile.id"
    )
    problems: Mapped[list[ProblemRecord]] = relationship(
        back_populates="submission", cascade="all, delete-orphan", order_by="ProblemRecord.id"
    )
    rows: Mapped[list[FormRowRecord]] = relationship(
        back_populates="submission", cascade="all, delete-orphan",
        order_by="(FormRowRecord.form, FormRowRecord.ordinal)"
    )

    __table_args__ = (
        # A unit's chain within a campaign, by arrival: a new submission's neighbours are
        # one index step each way, however long the unit's history (intake.tracking._link).
        Index("ix_submissions_chain", "unit", "campaign", "arrived_at", "id"),
    )

    @validates("message")
    def _copy_arrival(self, _key: str, message: Message) -> Message:
        self.arrived_at = message.arrived_at if message is not None else None
        return message

    def rows_of(self, form: str) -> list[FormRowRecord]:
        """The rows of one form (by its id within the submission's campaign), in order."""
        return [r for r in self.rows if r.form == form]


class StoredFile(Base):
    """An attachment (or a zip member), stored under its sha256, never its sender's name."""

    __tablename__ = "files"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    parent: Mapped[str | None] = mapped_column(Text)
    pdf_pages: Mapped[int | None] = mapped_column(Integer)
    seal: Mapped[bool | None] = mapped_column(Boolean)
    seal_kind: Mapped[str | None] = mapped_column(String(16))  # "scan" | "electronic" (parsers.model.SealKind)
    signer: Mapped[str | None] = mapped_column(Text)  # an electronic seal's signer, from its certificate
    derived_sha256: Mapped[str | None] = mapped_column(String(64))  # the PDF made from a photo, in the archive
    # A large-attachment link (kind "link", intake.links): where the file is and until when.
    url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    submission: Mapped[Submission] = relationship(back_populates="files")


class ProblemRecord(Base):
    __tablename__ = "problems"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    file: Mapped[str | None] = mapped_column(Text)
    cell: Mapped[str | None] = mapped_column(String(255))
    submission: Mapped[Submission] = relationship(back_populates="problems")


class FormRowRecord(Base):
    """One row of one form, whatever the campaign's columns (parsers.forms): values by
    field in their plain form (an int, a decimal string, an ISO date, text)."""

    __tablename__ = "form_rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    form: Mapped[str] = mapped_column(String(64))  # the form's id within its campaign
    ordinal: Mapped[int] = mapped_column(Integer)  # position within the form
    cell: Mapped[str | None] = mapped_column(String(255))
    values: Mapped[dict] = mapped_column(JSON)
    as_written: Mapped[dict | None] = mapped_column(JSON)  # number/date cells filled with text, as typed
    submission: Mapped[Submission] = relationship(back_populates="rows")


class OutboxItem(Base):
    """A mail to send. Written in the transaction that decides it; sent at most once.

    dedupe_key makes "one reply per submitted mail" and "one digest per day" a database
    constraint rather than a hope: "reply:<message pk>", "digest:2024-02-20",
    "reminder:<unit>:<slot>".
    """

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[OutboxKind] = mapped_column(_enum(OutboxKind))
    reply_kind: Mapped[str | None] = mapped_column(String(32))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"), index=True)
    to_address: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState), default=OutboxState.PENDING)
    # 0 = to a registered address: sent first, never behind replies to strangers.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A bounce that returned this mail arrived (state stays SENT: the server took it).
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    bounce_reason: Mapped[str | None] = mapped_column(Text)
    # A reply's: whether the mail it answers failed authentication (intake.trust), so the
    # daily cap counts forged and genuine mail apart from this index alone (None: not a reply).
    auth_failed: Mapped[bool | None] = mapped_column(Boolean)
    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        # The reply caps count recent rows: a day's or an hour's worth, never the whole outbox.
        Index("ix_outbox_kind_created", "kind", "created_at"),
        # …and the daily cap one address's rows of the day, of one kind of mail, from the
        # index alone (no row read, no join): not every reply of the day.
        Index("ix_outbox_reply_cap", "kind", "to_address", "auth_failed", "created_at"),
    )


class User(Base):
    """A staff account of the web console (intake user add)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[Role] = mapped_column(_enum(Role), default=Role.STAFF)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """One act of a person (web or CLI): who, when, what, and the row before and after."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))  # e.g. "submission:12", "unit:济南市总工会"
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class KeyValue(Base):
    """Small durable facts, e.g. when the last digest covered up to."""

    __tablename__ = "kv"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
