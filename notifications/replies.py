"""The reply to a submitted mail: which kind and which form (one rule each), what it says,
how much it may repeat, and queueing it once.

The caller decides the submission, records `Submission.reply = reply_kind(...)` and
`Submission.trust`, then calls `queue_reply` in the same transaction, so the reply row
exists exactly when the verdict does.

Every byte a sender wrote is attacker-controlled, and a reply goes out from the official
account: so only a unit's registered address hears back what it sent (the full form),
everyone else gets a fixed text that quotes nothing (the short form), every reply is
bounded in size, and short replies are capped per domain and in total.
"""

from __future__ import annotations

import datetime as dt
import email.message
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from config.settings import Settings, SmtpSettings
from intake.authenticity import domain_of
from intake.mailread import MailView
from intake.mime import decode_header_value
from intake.trust import TRUSTED, authentication_failed
from notifications.compose import build_message, insert_outbox, wire_bytes
from notifications.render import render
from config.campaigns import CampaignSpec
from intake.board import campaign_of
from parsers.forms import Column, FormSpec
from parsers.model import ProblemCode, Severity
from storage.models import (
    Message,
    OutboxItem,
    OutboxKind,
    ProblemRecord,
    ReplyForm,
    ReplyKind,
    Submission,
    SubmissionStatus,
)

SUBJECT_PREFIX = {
    ReplyKind.RECEIPT: "【已收到】",
    ReplyKind.LATE: "【逾期】",
    ReplyKind.INCOMPLETE: "【材料不全】",
    ReplyKind.INVALID: "【需修改】",
    ReplyKind.LINK: "【已收到链接】",
    ReplyKind.CLOSED: "【已截止】",
}
# The plain acknowledgement of mail for no campaign ([other_mail] acknowledge): its subject,
# like its text, quotes nothing of the mail.
OTHER_SUBJECT = "【已收到】来信已转工作人员"
SHORT_SUBJECT_PREFIX = "【自动回复】"
SHORT_TEMPLATE = "short"
# Warnings the submitter can act on; the rest (sender checks, quarantine) are for staff.
SUBMITTER_WARNINGS = frozenset(
    {ProblemCode.SEAL_NOT_FOUND, ProblemCode.PDF_MISMATCH, ProblemCode.UNSUPPORTED_FILE}
)
# Sending order in the outbox: replies to registered addresses never wait behind strangers.
PRIORITY = {ReplyForm.FULL: 0, ReplyForm.SHORT: 1}

# Bounds on what any reply repeats: a 107 KB mail once produced a 67 MB reply.
MAX_PROBLEMS = 20
MAX_FILES = 50
MAX_QUOTED = 40  # a value, file name, cell or name quoted from the mail
MAX_PROBLEM_TEXT = 240  # a whole problem message, after its quoted values are cut
MAX_SUBJECT = 200
MAX_REPLY_BYTES = 256 * 1024
# Threading headers: message ids only, the last few, and short enough for one header.
MAX_REFERENCES = 10
MAX_MESSAGE_ID = 250
MAX_REFERENCES_CHARS = 1000

DAY = dt.timedelta(hours=24)
HOUR = dt.timedelta(hours=1)
_MSG_ID = re.compile(r"<[^<>\s]+>")
# What problem messages quote: a value “…”, a file 《…》 (parsers.validate, crosscheck).
_QUOTED = re.compile(r"“[^”]*”|《[^》]*》|「[^」]*」")


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
    if status is SubmissionStatus.AWAITING_DOWNLOAD:
        return ReplyKind.LINK
    return ReplyKind.RECEIPT


def reply_form(submission: Submission) -> ReplyForm:
    """The one rule: FULL only to a unit's registered address whose authentication did not
    fail (trust verified/registered); SHORT to anyone else, since From is only a claim."""
    if submission.trust in TRUSTED and not authentication_failed(submission.message.auth_results):
        return ReplyForm.FULL
    return ReplyForm.SHORT


# --- what a full reply shows, bounded -------------------------------------------------


def cut(value: str | None, limit: int = MAX_QUOTED) -> str:
    """`value` with at most `limit` characters of it kept, marked with … when cut."""
    value = value or ""
    return value if len(value) <= limit else value[:limit] + "…"


def cut_problem_text(message: str) -> str:
    """A problem message with every quoted value cut, then the whole message bounded."""
    shortened = _QUOTED.sub(lambda m: m.group(0)[0] + cut(m.group(0)[1:-1]) + m.group(0)[-1], message)
    return cut(shortened, MAX_PROBLEM_TEXT)


@dataclass(frozen=True)
class ShownProblem:
    """A problem as a reply shows it: message, file and cell cut the same way, so a
    template can still tell whether the message already names its file."""

    message: str
    file: str | None
    cell: str | None

    @classmethod
    def of(cls, record: ProblemRecord) -> ShownProblem:
        return cls(cut_problem_text(record.message), cut(record.file) or None, cut(record.cell) or None)


@dataclass(frozen=True)
class ShownFile:
    name: str
    parent: str | None
    photo: bool = False  # a photo taken as the stamped copy: the reply says so
    refused: str | None = None  # an archive none of whose files could be read: why


ARCHIVE_KINDS = ("zip", "7z", "rar")
# Why an archive's files were not read, in a few words (the problems list says the rest).
_REFUSALS = {
    ProblemCode.ENCRYPTED_FILE.value: "设有密码",
    ProblemCode.UNSAFE_FILE.value: "疑似压缩炸弹或含非法路径",
    ProblemCode.UNREADABLE_FILE.value: "文件已损坏",
    ProblemCode.TOO_LARGE.value: "超过大小限制",
    ProblemCode.UNSUPPORTED_FILE.value: "无法解压",
}


def shown_files(submission: Submission) -> list[ShownFile]:
    """The files as the unit sent them: each file read, and each archive none of whose
    files was read (with why), so a refused archive never disappears from the list."""
    shown = []
    for f in submission.files:
        if f.kind == "link":
            continue  # a large-attachment link is listed as such (reply_context's "links")
        refused = None
        if f.kind in ARCHIVE_KINDS:
            path = f"{f.parent}/{f.name}" if f.parent else f.name
            inside = [g for g in submission.files if g.parent == path or (g.parent or "").startswith(path + "/")]
            if inside:
                continue  # its files are listed, each "in" it
            why = [p.code for p in submission.problems if p.file == path or (p.file or "").startswith(path + "/")]
            refused = _REFUSALS.get(why[0], "无法解压") if why else "其中没有文件"
        shown.append(ShownFile(cut(f.name), cut(f.parent) or None, f.kind == "photo", refused))
    return shown


@dataclass(frozen=True)
class FormSummary:
    """One recognised form as the reply states it: 重点工程类 3 项、年度投资总额 12.5 亿元."""

    title: str
    count: int
    totals: list[tuple[str, Decimal, str]] = field(default_factory=list)  # (label, value, unit)


# A header's unit in brackets at its end: 年度投资总额(亿元) → 亿元.
_UNIT_IN_LABEL = re.compile(r"[（(]\s*([^（）()]{1,3}?)\s*[）)]\s*$")
_BRACKETS = re.compile(r"[（(][^（）()]*[）)]")
# Counting words a header ends with and the measure a sum of it reads in:
# 预计初赛人数 → 预计初赛 … 人, 预计参赛企业数 → 预计参赛企业 … 家.
_MEASURES = (("人数", "", "人"), ("职工数", "职工", "人"), ("企业数", "企业", "家"), ("单位数", "单位", "个"))


def summary_label(column: Column) -> tuple[str, str]:
    """(short label, unit) a sum of the column is stated under, from its header alone."""
    label, unit = column.label.strip(), ""
    found = _UNIT_IN_LABEL.search(label)
    if found:
        label, unit = label[: found.start()], found.group(1)
    label = _BRACKETS.sub("", label).strip()
    for suffix, replacement, measure in _MEASURES:
        if not unit and label.endswith(suffix) and len(label) > len(suffix):
            return label[: -len(suffix)] + replacement, measure
    return label, unit


def _sum(values: list[object]) -> Decimal | None:
    present = [Decimal(v) for v in values if isinstance(v, int | Decimal)]
    return sum(present, Decimal(0)) if present else None


def form_totals(spec: FormSpec, rows: list) -> list[tuple[str, Decimal, str]]:
    """(short label, sum, unit) of each total field that has any number in `rows`
    (FormRowRecords); cells written as text are not counted."""
    totals = []
    for name in spec.total_fields:
        total = _sum([spec.typed(name, r.values.get(name)) for r in rows])
        if total is not None:
            label, unit = summary_label(spec.column(name))
            totals.append((label, total, unit))
    return totals


def form_summaries(submission: Submission, campaign: CampaignSpec) -> list[FormSummary]:
    """Each form of the submission's campaign that has rows: its count and sums."""
    out = []
    for spec in campaign.forms:
        rows = submission.rows_of(spec.id)
        if rows:
            out.append(FormSummary(spec.short_title, len(rows), form_totals(spec, rows)))
    return out


def _problems(submission: Submission, severity: Severity) -> list[ProblemRecord]:
    return [p for p in submission.problems if p.severity == severity.value]


def reply_context(
    submission: Submission,
    settings: Settings,
    replaces: Submission | None = None,
    *,
    max_problems: int = MAX_PROBLEMS,
    max_files: int = MAX_FILES,
) -> dict:
    """Everything a full reply's templates may use; the templates own the wording.

    Lists are bounded (errors first, then notices, `max_problems` in all) and every
    quoted value is cut; the `*_hidden` counts say how many were left out.
    """
    codes = {p.code for p in submission.problems}
    files = shown_files(submission)
    # An archive none of whose files could be read was still sent: the reply lists it and
    # says what is missing, rather than "no attachment".
    no_attachments = not submission.files or (ProblemCode.NO_ATTACHMENTS.value in codes
                                              and not any(f.refused for f in files))
    errors = _problems(submission, Severity.ERROR)
    notices = [p for p in _problems(submission, Severity.WARNING) if p.code in SUBMITTER_WARNINGS]
    shown_errors = errors[:max_problems]
    shown_notices = notices[: max_problems - len(shown_errors)]
    links = [f for f in submission.files if f.kind == "link"]  # listed apart: not files yet
    message = submission.message
    campaign = campaign_of(settings, submission)
    return {
        "kind": submission.reply.value,
        "form": ReplyForm.FULL.value,
        "campaign": campaign,
        "reply_note": campaign.reply_note,
        "submission": submission,
        "message": message,
        "greeting": submission.unit or cut(message.from_name) or "您好",
        "arrived_at": message.arrived_at,
        "deadline": campaign.deadline,
        "files": files[:max_files],
        "files_hidden": max(len(files) - max_files, 0),
        "files_total": len(files),
        "links": [ShownFile(cut(f.name or "（未写明文件名）"), None) for f in links[:max_files]],
        "forms": form_summaries(submission, campaign),
        "no_attachments": no_attachments,
        "missing_pdf": not no_attachments and not submission.has_pdf,
        "missing_editable": not no_attachments and not submission.has_editable,
        "errors": [ShownProblem.of(p) for p in shown_errors],
        "errors_hidden": len(errors) - len(shown_errors),
        "notices": [ShownProblem.of(p) for p in shown_notices],
        "notices_hidden": len(notices) - len(shown_notices),
        "replaces": replaces,
    }


def short_context(submission: Submission, settings: Settings) -> dict:
    """The short reply's context: configuration and our own clock, nothing the sender wrote."""
    return {
        "kind": submission.reply.value,
        "form": ReplyForm.SHORT.value,
        "campaign": campaign_of(settings, submission),
        "greeting": "您好",
        "arrived_at": submission.message.arrived_at,
        # Saying what a mail replaces would tell a stranger about a unit's history.
        "replaces": None,
    }


def reply_subject(kind: ReplyKind, original_subject: str, campaign_name: str) -> str:
    return SUBJECT_PREFIX[kind] + (cut(original_subject.strip(), MAX_SUBJECT) or campaign_name)


def short_subject(campaign_name: str) -> str:
    return SHORT_SUBJECT_PREFIX + campaign_name


# --- threading headers -----------------------------------------------------------------


def _message_ids(value: str) -> list[str]:
    return [mid for mid in _MSG_ID.findall(value or "") if len(mid) <= MAX_MESSAGE_ID]


def thread_ids(message: Message, original: MailView) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References): the parent's id, and the newest few ids of the thread
    ending with it, within MAX_REFERENCES_CHARS (RFC 5322 §3.6.4 allows trimming)."""
    parent = _message_ids(message.message_id or decode_header_value(original.get("Message-ID")))[:1]
    # Ids are ASCII and the newest come last: read only the header's tail, undecoded.
    tail = str(original.get("References") or "")[-MAX_REFERENCES * (MAX_MESSAGE_ID + 1) :]
    references = _message_ids(tail)
    references = [mid for mid in references if mid not in parent] + parent
    references = references[-MAX_REFERENCES:]
    while references and len(" ".join(references)) > MAX_REFERENCES_CHARS:
        references.pop(0)
    return (parent[0] if parent else None), references


# --- caps ------------------------------------------------------------------------------


def _replies_within_day(session: Session, address: str, now: dt.datetime, *, failed: bool) -> int:
    """Replies to `address` in the last 24 hours about mail whose authentication did (or
    did not) fail: forged mail has its own count, so it cannot use up a unit's. Counted
    on ix_outbox_reply_cap alone: the cost is the count, whatever else the outbox holds."""
    # Replies go to the lowercased From.
    return session.scalar(_replies_since(), {"address": address.lower(), "failed": failed, "since": now - DAY}) or 0


@cache  # built once: building and keying it cost more than running it
def _replies_since() -> Select:
    return (select(func.count()).select_from(OutboxItem)
            .where(OutboxItem.kind == OutboxKind.REPLY, OutboxItem.to_address == bindparam("address"),
                   OutboxItem.auth_failed == bindparam("failed"), OutboxItem.created_at > bindparam("since")))


def _short_replies_within_hour(session: Session, now: dt.datetime) -> list[str]:
    """Addresses of the short replies queued in the last hour (at most hourly_cap_total)."""
    return list(
        session.scalars(
            select(OutboxItem.to_address)
            .join(Submission, OutboxItem.submission_id == Submission.id)
            .where(
                OutboxItem.kind == OutboxKind.REPLY,
                Submission.reply_form == ReplyForm.SHORT,
                OutboxItem.created_at > now - HOUR,
            )
        )
    )


def cap_reason(
    session: Session, failed: bool, form: ReplyForm, recipient: str, smtp: SmtpSettings, now: dt.datetime
) -> str | None:
    """Why this reply must not be sent now ("daily_cap", "domain_cap", "global_cap"), or None.
    `failed`: the mail it answers failed authentication (its replies are counted apart).

    The hourly caps bound replies to strangers only: a unit is never suppressed by them.
    """
    if _replies_within_day(session, recipient, now, failed=failed) >= smtp.daily_cap_per_recipient:
        return "daily_cap"
    if form is ReplyForm.FULL:
        return None
    recent = _short_replies_within_hour(session, now)
    domain = domain_of(recipient)
    if sum(domain_of(address) == domain for address in recent) >= smtp.hourly_cap_per_domain:
        return "domain_cap"
    if len(recent) >= smtp.hourly_cap_total:
        return "global_cap"
    return None


# --- queueing --------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposedReply:
    """A reply built and serialised once: the outbox stores `raw` as it is."""

    mail: email.message.EmailMessage
    raw: bytes


def _compose(
    submission: Submission,
    form: ReplyForm,
    *,
    original: MailView,
    settings: Settings,
    replaces: Submission | None,
) -> ComposedReply | None:
    """The reply mail, within MAX_REPLY_BYTES: a full reply too long even with its lists
    left out (only possible with overridden templates) is not sent at all."""
    kind = ReplyKind(submission.reply)
    message = submission.message
    in_reply_to, references = thread_ids(message, original)
    to: str | tuple[str, str]
    campaign_name = campaign_of(settings, submission).name
    if form is ReplyForm.SHORT:
        renderings = [(SHORT_TEMPLATE, lambda: short_context(submission, settings))]
        to = message.from_address  # the bare address: a display name is the sender's text
        subject = short_subject(campaign_name)
    else:
        # The context without lists is built only when the full one comes out too large.
        renderings = [
            (kind.value, lambda problems=problems, files=files: reply_context(
                submission, settings, replaces, max_problems=problems, max_files=files))
            for problems, files in ((MAX_PROBLEMS, MAX_FILES), (0, 0))
        ]
        to = (cut(message.from_name), message.from_address)
        subject = OTHER_SUBJECT if kind is ReplyKind.OTHER else reply_subject(
            kind, message.subject or decode_header_value(original.get("Subject")), campaign_name)
    for template, context in renderings:
        text, html = render(template, context(), settings.smtp.templates_dir)
        mail = build_message(
            from_address=settings.smtp.from_address,
            from_name=settings.smtp.from_name,
            to=to,
            subject=subject,
            text=text,
            html=html,
            in_reply_to=in_reply_to,
            references=references or None,
            auto_submitted="auto-replied",
        )
        # Serialised once, as the outbox stores it; a reply has no raw headers, so these
        # are the bytes the message's own policy would give.
        raw = wire_bytes(mail)
        if len(raw) <= MAX_REPLY_BYTES:
            return ComposedReply(mail, raw)
    return None


def _not_sent(submission: Submission, reason: str) -> None:
    submission.reply_suppressed = reason
    if submission.reply_form is not None:  # (an unchanged value would still cost a flush)
        submission.reply_form = None


def queue_reply(
    session: Session,
    submission: Submission,
    *,
    original: MailView,
    settings: Settings,
    replaces: Submission | None = None,
    now: dt.datetime | None = None,
    first: bool = False,
) -> int | None:
    """Queue the reply recorded on `submission.reply`, in the form `reply_form` decides:
    its outbox row's id, or None when there is nothing to send. `first`: the mail is
    processed for the first time.

    The form is stored on `submission.reply_form` (None when no reply is queued);
    suppression (no sender, a cap, too large) on `submission.reply_suppressed`.
    """
    kind = ReplyKind(submission.reply)
    if kind is ReplyKind.NONE:
        submission.reply_form = None
        return None
    now = now or dt.datetime.now(dt.UTC)
    if submission.id is None:
        session.flush()  # the outbox row refers to the submission by id
    dedupe_key = f"reply:{submission.message_pk}"
    # On a mail's first processing no reply of it can be queued yet (enqueue's ON CONFLICT
    # would catch one anyway): the look-up is for reprocessing, where the form stands.
    if not first and session.scalar(select(OutboxItem.id).where(OutboxItem.dedupe_key == dedupe_key)) is not None:
        return None  # reprocessing the same mail never queues a second reply; its form stands
    recipient = submission.message.from_address
    if not recipient:
        _not_sent(submission, "no_sender")
        return None
    form = reply_form(submission)
    failed = authentication_failed(submission.message.auth_results)
    # The counts read the outbox and earlier mails' reply forms (flushed with their outbox
    # rows): this mail's pending links need not be flushed for them.
    with session.no_autoflush:
        reason = cap_reason(session, failed, form, recipient, settings.smtp, now)
    if reason is not None:
        _not_sent(submission, reason)
        return None
    composed = _compose(submission, form, original=original, settings=settings, replaces=replaces)
    if composed is None:
        _not_sent(submission, "too_large")
        return None
    # Flushed with the outbox row at the latest (insert_outbox flushes first): the hourly
    # caps count short replies by their submission's form. A mail processed the first
    # time has it already, set with its INSERT (intake.pipeline): no UPDATE then.
    if submission.reply_form is not form:
        submission.reply_form = form
    return insert_outbox(
        session,
        kind=OutboxKind.REPLY,
        dedupe_key=dedupe_key,
        message=composed.mail,
        raw=composed.raw,
        submission_id=submission.id,
        reply_kind=kind.value,
        priority=PRIORITY[form],
        auth_failed=failed,
    )
