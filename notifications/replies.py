"""The reply to a submitted mail: which kind (one rule), what it says, and queueing it once.

The caller decides the submission, records `Submission.reply = reply_kind(...)` and calls
`queue_reply` in the same transaction, so the reply row exists exactly when the verdict does.
"""

from __future__ import annotations

import datetime as dt
import email.message
import email.utils
import re
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from intake.mime import decode_header_value
from notifications.compose import build_message, enqueue
from notifications.render import render
from parsers.forms import FORM1, FORM2
from parsers.model import ProblemCode, Severity
from storage.models import (
    OutboxItem,
    OutboxKind,
    ProblemRecord,
    ReplyKind,
    Submission,
    SubmissionStatus,
)

SUBJECT_PREFIX = {
    ReplyKind.RECEIPT: "【已收到】",
    ReplyKind.LATE: "【逾期】",
    ReplyKind.INCOMPLETE: "【材料不全】",
    ReplyKind.INVALID: "【需修改】",
}
# Warnings the submitter can act on; the rest (sender checks, quarantine) are for staff.
SUBMITTER_WARNINGS = frozenset(
    {ProblemCode.SEAL_NOT_FOUND, ProblemCode.PDF_MISMATCH, ProblemCode.UNSUPPORTED_FILE}
)
CAP_WINDOW = dt.timedelta(hours=24)
_MSG_ID = re.compile(r"<[^<>\s]+>")


def reply_kind(status: SubmissionStatus, late: bool) -> ReplyKind:
    """The one rule. `status` is Submission.content_status, the verdict on the mail itself."""
    if status is SubmissionStatus.IGNORED:
        return ReplyKind.NONE
    if late:
        return ReplyKind.LATE
    if status is SubmissionStatus.INCOMPLETE:
        return ReplyKind.INCOMPLETE
    if status is SubmissionStatus.INVALID:
        return ReplyKind.INVALID
    return ReplyKind.RECEIPT


@dataclass(frozen=True)
class FormSummary:
    """One recognised form as the reply states it: 重点工程类 3 项、合计投资 12.5 亿元."""

    title: str
    count: int
    totals: list[tuple[str, Decimal, str]] = field(default_factory=list)  # (label, value, unit)


def _sum(values: list[int | Decimal | None]) -> Decimal | None:
    present = [Decimal(v) for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None


def form_summaries(submission: Submission) -> list[FormSummary]:
    out = []
    if submission.form1_rows:
        investment = _sum([r.investment for r in submission.form1_rows])
        totals = [("合计投资", investment, "亿元")] if investment is not None else []
        out.append(FormSummary(FORM1.short_title, len(submission.form1_rows), totals))
    if submission.form2_rows:
        totals = []
        for label, values in (
            ("预计初赛", [r.prelim for r in submission.form2_rows]),
            ("决赛", [r.final for r in submission.form2_rows]),
        ):
            total = _sum(values)
            if total is not None:
                totals.append((label, total, "人"))
        out.append(FormSummary(FORM2.short_title, len(submission.form2_rows), totals))
    return out


def _problems(submission: Submission, severity: Severity) -> list[ProblemRecord]:
    return [p for p in submission.problems if p.severity == severity.value]


def reply_context(
    submission: Submission, settings: Settings, replaces: Submission | None = None
) -> dict:
    """Everything a reply template may use; the templates own the wording."""
    codes = {p.code for p in submission.problems}
    no_attachments = not submission.files or ProblemCode.NO_ATTACHMENTS.value in codes
    return {
        "kind": submission.reply.value,
        "campaign": settings.campaign,
        "submission": submission,
        "message": submission.message,
        "arrived_at": submission.message.arrived_at,
        "deadline": settings.campaign.deadline,
        "files": [f for f in submission.files if f.kind != "zip"],
        "forms": form_summaries(submission),
        "no_attachments": no_attachments,
        "missing_pdf": not no_attachments and not submission.has_pdf,
        "missing_editable": not no_attachments and not submission.has_editable,
        "errors": _problems(submission, Severity.ERROR),
        "notices": [p for p in _problems(submission, Severity.WARNING) if p.code in SUBMITTER_WARNINGS],
        "replaces": replaces,
    }


def reply_subject(kind: ReplyKind, original_subject: str, campaign_name: str) -> str:
    return SUBJECT_PREFIX[kind] + (original_subject.strip() or campaign_name)


def _message_ids(value: str) -> list[str]:
    return _MSG_ID.findall(value or "")


def _replies_today(session: Session, address: str, now: dt.datetime) -> int:
    return session.scalar(
        select(func.count(OutboxItem.id)).where(
            OutboxItem.kind == OutboxKind.REPLY,
            func.lower(OutboxItem.to_address) == address.lower(),
            OutboxItem.created_at > now - CAP_WINDOW,
        )
    ) or 0


def queue_reply(
    session: Session,
    submission: Submission,
    *,
    original: email.message.Message,
    settings: Settings,
    replaces: Submission | None = None,
    now: dt.datetime | None = None,
) -> OutboxItem | None:
    """Queue the reply recorded on `submission.reply`; None when there is nothing to send.

    Suppression (no sender, the daily cap) is recorded on `submission.reply_suppressed`.
    """
    kind = ReplyKind(submission.reply)
    if kind is ReplyKind.NONE:
        return None
    now = now or dt.datetime.now(dt.UTC)
    if submission.id is None:
        session.flush()  # the outbox row refers to the submission by id
    dedupe_key = f"reply:{submission.message_pk}"
    if session.scalar(select(OutboxItem.id).where(OutboxItem.dedupe_key == dedupe_key)) is not None:
        return None  # reprocessing the same mail never queues a second reply
    message = submission.message
    recipient = message.from_address
    if not recipient:
        submission.reply_suppressed = "no_sender"
        return None
    if _replies_today(session, recipient, now) >= settings.smtp.daily_cap_per_recipient:
        submission.reply_suppressed = "daily_cap"
        return None

    text, html = render(kind.value, reply_context(submission, settings, replaces), settings.smtp.templates_dir)
    parent_id = message.message_id or decode_header_value(original.get("Message-ID"))
    parent = _message_ids(parent_id)
    references = _message_ids(decode_header_value(original.get("References")))
    references += [mid for mid in parent if mid not in references]
    subject_source = message.subject or decode_header_value(original.get("Subject"))
    mail = build_message(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name,
        to=email.utils.formataddr((message.from_name or "", recipient)),
        subject=reply_subject(kind, subject_source, settings.campaign.name),
        text=text,
        html=html,
        in_reply_to=parent[0] if parent else None,
        references=references or None,
        auto_submitted="auto-replied",
    )
    return enqueue(
        session,
        kind=OutboxKind.REPLY,
        dedupe_key=dedupe_key,
        message=mail,
        submission_id=submission.id,
        reply_kind=kind.value,
    )
