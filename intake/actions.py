"""What a person may do to the record, one function per act, for the CLI and the web console.

Each function takes the open session and the acting person's name, changes the rows,
queues whatever mail the act implies (in the same transaction, so the mail exists
exactly when the act does), and writes one audit row with the submission as it was
before and after. The rules themselves live where they always did (intake.tracking,
intake.trust, notifications.*); nothing here is a view or a template.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from config.campaigns import CampaignSpec
from config.settings import Settings
from intake import tracking
from intake.board import STATE_LABELS, UnitState, build_board, campaign_of, reminder_key
from intake.deadline import effective_settings, set_deadline_override
from intake.decide import is_late
from intake.registry import UnitRegistry
from intake.trust import TRUSTED
from notifications.compose import build_message, enqueue
from notifications.notices import queue_replacement_notice
from notifications.reminders import REMIND_STATES, reminder_mail, unit_addresses
from notifications.render import render
from storage.models import (
    AuditEntry,
    LateDecision,
    OutboxItem,
    OutboxKind,
    OutboxState,
    Submission,
    SubmissionStatus,
)

TrackingError = tracking.TrackingError  # the one error type of a refused act (Chinese message)


# --- the audit log ---------------------------------------------------------------------------

ACTION_LABELS = {
    "assign": "指定单位", "confirm": "确认报送", "reject": "驳回报送", "late_accepted": "逾期受理",
    "late_rejected": "逾期不予受理", "review": "人工复核", "remind": "催报", "deadline": "修改截止时间",
    "reprocess": "重新处理", "route": "归入征集", "outbox_retry": "重新发送", "outbox_dismiss": "放弃发送", "user_add": "添加用户", "user_disable": "停用用户", "login": "登录",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def snapshot(submission: Submission) -> dict[str, Any]:
    """The fields a person's act can change, as plain JSON."""

    def value(v: Any) -> Any:
        return v.value if hasattr(v, "value") else (v.isoformat() if isinstance(v, dt.datetime) else v)

    fields = ("campaign", "routed_by", "unit", "unit_source", "status", "trust", "confirmation", "late_decision", "seal", "seal_override",
              "mismatch_checked", "needs_review", "review_note", "late_note")
    return {name: value(getattr(submission, name)) for name in fields}


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None,
    before: dict | None = None,
    after: dict | None = None,
    note: str | None = None,
    now: dt.datetime | None = None,
) -> AuditEntry:
    entry = AuditEntry(at=now or dt.datetime.now(dt.UTC), actor=actor, action=action, target=target,
                       before=before, after=after, note=note)
    session.add(entry)
    return entry


def recent_audit(session: Session, limit: int = 200) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)))


def _submission(session: Session, submission_id: int) -> Submission:
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise TrackingError(f"没有编号为 {submission_id} 的报送记录。")
    return submission


def _target(submission: Submission) -> str:
    return f"submission:{submission.id}"


# --- units and claims ------------------------------------------------------------------------


def assign_unit(session: Session, registry: UnitRegistry, submission_id: int, unit: str, *,
                actor: str, now: dt.datetime) -> Submission:
    """Name the unit of a submission (unmatched, or claimed for the wrong unit)."""
    before = snapshot(_submission(session, submission_id))
    submission = tracking.assign(session, submission_id, unit, by=actor, now=now, registry=registry)
    audit(session, actor=actor, action="assign", target=_target(submission), before=before,
          after=snapshot(submission), now=now)
    return submission


def confirm_claim(session: Session, settings: Settings, submission_id: int, *, actor: str,
                  now: dt.datetime) -> tuple[Submission, OutboxItem | None]:
    """Confirm a 待确认 submission; the unit hears of it when it replaced the unit's record."""
    before = snapshot(_submission(session, submission_id))
    submission, replaced = tracking.confirm(session, submission_id, by=actor, now=now)
    notice = queue_replacement_notice(session, settings, submission, replaced) if replaced is not None else None
    audit(session, actor=actor, action="confirm", target=_target(submission), before=before,
          after=snapshot(submission), now=now,
          note=f"替代了报送 {replaced.id}，已通知单位" if notice is not None and replaced is not None else None)
    return submission, notice


def reject_claim(session: Session, submission_id: int, *, actor: str, now: dt.datetime) -> Submission:
    before = snapshot(_submission(session, submission_id))
    submission = tracking.reject(session, submission_id, by=actor, now=now)
    audit(session, actor=actor, action="reject", target=_target(submission), before=before,
          after=snapshot(submission), now=now)
    return submission


# --- late submissions ------------------------------------------------------------------------

LATE_TEMPLATES = {LateDecision.ACCEPTED: "late_accepted", LateDecision.REJECTED: "late_rejected"}
LATE_SUBJECTS = {LateDecision.ACCEPTED: "【逾期受理】", LateDecision.REJECTED: "【逾期不予受理】"}


def decide_late(session: Session, settings: Settings, submission_id: int, decision: LateDecision, *,
                actor: str, now: dt.datetime, note: str | None = None) -> tuple[Submission, OutboxItem | None]:
    """受理 or 不受理 a late submission; the sender hears it in the mail's thread.

    A 不受理 submission never counts for its unit (the unit keeps its on-time record, or
    none); a 受理 one counts as 逾期受理.
    """
    submission = _submission(session, submission_id)
    deadline = campaign_of(settings, submission).deadline
    if not is_late(submission.message.arrived_at, deadline):
        raise TrackingError(f"报送 {submission_id} 不是逾期报送（截止时间 {deadline:%Y-%m-%d %H:%M}）。")
    if submission.unit is None:
        raise TrackingError(f"报送 {submission_id} 尚未确定单位，请先指定单位。")
    before = snapshot(submission)
    note = (note or "").strip()[:500] or None
    submission.late_decision = decision
    submission.late_note = note
    submission.late_decided_by = actor
    submission.late_decided_at = now
    tracking.settle_current(session, submission)
    mail = _queue_late_follow_up(session, settings, submission, decision)
    audit(session, actor=actor, action=f"late_{decision.value}", target=_target(submission), before=before,
          after=snapshot(submission), note=note, now=now)
    return submission, mail


def _queue_late_follow_up(session: Session, settings: Settings, submission: Submission,
                          decision: LateDecision) -> OutboxItem | None:
    message = submission.message
    # Only a trusted sender hears back at the address it wrote from; a claim's answer goes
    # to the unit's registered address, never to a stranger.
    trusted_sender = submission.trust in TRUSTED and message.from_address
    to = [message.from_address] if trusted_sender else unit_addresses(settings, submission.unit or "")
    if not to:
        return None
    campaign = campaign_of(settings, submission)
    context = {"campaign": campaign, "unit": submission.unit, "submission": submission,
               "arrived_at": message.arrived_at, "deadline": campaign.deadline, "note": submission.late_note}
    text, html = render(LATE_TEMPLATES[decision], context, settings.smtp.templates_dir)
    mail = build_message(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name or campaign.name,
        to=", ".join(to),
        subject=LATE_SUBJECTS[decision] + campaign.name,
        text=text,
        html=html,
        in_reply_to=message.message_id,  # in the late mail's thread
        references=[message.message_id] if message.message_id else None,
        auto_submitted="auto-replied",
    )
    return enqueue(session, kind=OutboxKind.FOLLOW_UP, dedupe_key=f"follow-up:{submission.id}:{decision.value}",
                   message=mail, submission_id=submission.id, reply_kind=LATE_TEMPLATES[decision])


# --- staff review of what the machine flagged ------------------------------------------------


def review(session: Session, submission_id: int, *, actor: str, now: dt.datetime, seal: bool | None = None,
           mismatch_checked: bool | None = None, note: str | None = None) -> Submission:
    """Set the seal verdict by hand and/or mark a PDF/Excel mismatch as checked."""
    submission = _submission(session, submission_id)
    before = snapshot(submission)
    if seal is not None:
        submission.seal_override = seal
        submission.seal = seal
    if mismatch_checked is not None:
        submission.mismatch_checked = mismatch_checked
    if note:
        submission.review_note = note.strip()[:1000]
    audit(session, actor=actor, action="review", target=_target(submission), before=before,
          after=snapshot(submission), note=note, now=now)
    return submission


# --- reminders (催报) -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderDraft:
    unit: str
    state: UnitState
    to: list[str]
    subject: str
    text: str
    refused: str | None = None  # why it will not be sent (no address, state, daily cap)


def _sent_today(session: Session, address: str, now: dt.datetime) -> int:
    return session.scalar(
        select(func.count(OutboxItem.id)).where(
            OutboxItem.kind.in_((OutboxKind.REPLY, OutboxKind.REMINDER)),
            func.lower(OutboxItem.to_address).contains(address.lower()),
            OutboxItem.created_at > now - dt.timedelta(hours=24),
        )
    ) or 0


def reminder_drafts(session: Session, settings: Settings, units: list[str], *, now: dt.datetime,
                    campaign: CampaignSpec | None = None) -> list[ReminderDraft]:
    """Exactly the mail each unit would get about a campaign (default: settings.campaign,
    the preview), and why any would not go."""
    campaign = campaign or settings.campaign
    states = {row.name: row.state for row in build_board(session, settings, campaign).rows}
    drafts = []
    for unit in units:
        state = states.get(unit)
        if state is None:
            raise TrackingError(f"「{unit}」不是登记的报送单位。")
        addresses = unit_addresses(settings, unit)
        mail = reminder_mail(settings, unit, state, addresses or ["（无）"], now, campaign)
        refused = None
        if state not in REMIND_STATES:
            refused = f"状态为「{STATE_LABELS[state]}」，无需催报"
        elif not addresses:
            refused = "未登记可收信的邮箱"
        elif any(_sent_today(session, a, now) >= settings.smtp.daily_cap_per_recipient for a in addresses):
            refused = f"今天已发送 {settings.smtp.daily_cap_per_recipient} 封，达到每日上限"
        drafts.append(ReminderDraft(unit, state, addresses, str(mail["Subject"]),
                                    mail.get_body(preferencelist=("plain",)).get_content(), refused))
    return drafts


def remind(session: Session, settings: Settings, units: list[str], *, actor: str,
           now: dt.datetime, campaign: CampaignSpec | None = None) -> list[ReminderDraft]:
    """Queue a 催报 about a campaign to each unit whose draft is not refused; returns every draft."""
    campaign = campaign or settings.campaign
    drafts = reminder_drafts(session, settings, units, now=now, campaign=campaign)
    for draft in drafts:
        if draft.refused:
            continue
        mail = reminder_mail(settings, draft.unit, draft.state, draft.to, now, campaign)
        enqueue(session, kind=OutboxKind.REMINDER, dedupe_key=reminder_key(draft.unit, f"manual:{now.isoformat()}",
                                                                           campaign.id), message=mail)
        audit(session, actor=actor, action="remind", target=f"unit:{draft.unit}",
              after={"state": draft.state.value, "to": draft.to}, now=now)
    return drafts


# --- the deadline as data --------------------------------------------------------------------


def set_deadline(session: Session, settings: Settings, new: dt.datetime, *, actor: str, now: dt.datetime,
                 note: str | None = None, campaign: str | None = None) -> dt.datetime:
    """Change a campaign's deadline (default: settings.campaign) for every state, the
    board, digest and workbook at once.

    Replies already sent are not taken back; the audit log keeps the old and new value.
    """
    if new.tzinfo is None:
        raise TrackingError("截止时间需要带时区，例如 2024-02-28T17:00:00+08:00。")
    spec = effective_settings(settings, session).campaign_set.get(campaign or settings.campaign.id)
    if spec is None:
        raise TrackingError(f"没有 id 为 {campaign} 的征集。")
    old = spec.deadline
    set_deadline_override(session, spec.id, new)
    audit(session, actor=actor, action="deadline", target=f"campaign:{spec.id}" if campaign else "campaign",
          before={"deadline": old.isoformat()}, after={"deadline": new.isoformat()}, note=note, now=now)
    return new


# --- reprocess -------------------------------------------------------------------------------


def reprocess_submission(app: Any, submission_id: int, *, actor: str, now: dt.datetime) -> Submission:
    """Parse a submission's mail again from the archive (`intake reprocess`), audited.

    `app` is an intake.app.App; the parse runs in its own transactions, so this opens its own.
    """
    from intake.runs import reprocess_messages  # the pipeline: not needed by the other acts

    with app.db.session() as session:
        submission = _submission(session, submission_id)
        before, message_pk = snapshot(submission), submission.message_pk
    reprocess_messages(app, [message_pk])
    with app.db.session() as session:
        submission = session.scalar(select(Submission).where(Submission.message_pk == message_pk))
        audit(session, actor=actor, action="reprocess", target=_target(submission), before=before,
              after=snapshot(submission), now=now)
        return submission


def route_submission(app: Any, submission_id: int, campaign_id: str, *, actor: str, now: dt.datetime) -> Submission:
    """Staff put a submission (or an `other` mail) in a campaign (`intake route`), audited.

    The mail is decided again under that campaign (its rows, lateness, status, the unit's
    record); the choice survives later reprocessing. A reply is queued only if the mail
    had none (an `other` mail now gets its campaign's reply); `app` is an intake.app.App.
    """
    from intake.pipeline import STAFF_ROUTED
    from intake.runs import reprocess_messages

    spec = app.settings.campaign_set.get(campaign_id)
    if spec is None:
        known = "、".join(c.id for c in app.settings.campaign_set)
        raise TrackingError(f"没有编号为「{campaign_id}」的征集（已配置：{known}）。")
    with app.db.session() as session:
        submission = _submission(session, submission_id)
        if submission.content_status is SubmissionStatus.IGNORED:
            raise TrackingError(f"报送记录 {submission_id} 是自动回复或无关邮件，已忽略，不能归入征集。")
        before, message_pk = snapshot(submission), submission.message_pk
        submission.campaign, submission.routed_by = spec.id, STAFF_ROUTED
        submission.routing = f"工作人员（{actor}）归入“{spec.name}”"
    reprocess_messages(app, [message_pk])
    with app.db.session() as session:
        submission = session.scalar(select(Submission).options(joinedload(Submission.message))
                                    .where(Submission.message_pk == message_pk))
        audit(session, actor=actor, action="route", target=_target(submission), before=before,
              after=snapshot(submission), note=spec.name, now=now)
        return submission


# --- mail that could not be sent ---------------------------------------------------------------


def retry_failed(session: Session, item_ids: list[int] | None, *, actor: str, now: dt.datetime) -> list[int]:
    """Give failed mail (all of it, or these rows) a fresh set of attempts, from now."""
    query = select(OutboxItem).where(OutboxItem.state == OutboxState.FAILED)
    if item_ids:
        query = query.where(OutboxItem.id.in_(item_ids))
    rows = list(session.scalars(query.order_by(OutboxItem.id)))
    if item_ids and len(rows) != len(set(item_ids)):
        found = {row.id for row in rows}
        missing = "、".join(str(i) for i in item_ids if i not in found)
        raise TrackingError(f"发件编号 {missing} 不存在或不是发送失败的邮件。")
    for row in rows:
        audit(session, actor=actor, action="outbox_retry", target=f"outbox:{row.id}",
              before={"state": row.state.value, "attempts": row.attempts, "last_error": row.last_error},
              after={"state": OutboxState.PENDING.value, "attempts": 0}, now=now)
        row.state, row.attempts, row.next_attempt_at = OutboxState.PENDING, 0, now
    return [row.id for row in rows]


def dismiss_failed(session: Session, item_id: int, *, actor: str, now: dt.datetime, note: str | None = None) -> OutboxItem:
    """Give up on one failed mail for good (e.g. the address no longer exists); kept, audited."""
    row = session.get(OutboxItem, item_id)
    if row is None or row.state is not OutboxState.FAILED:
        raise TrackingError(f"发件编号 {item_id} 不存在或不是发送失败的邮件。")
    audit(session, actor=actor, action="outbox_dismiss", target=f"outbox:{row.id}",
          before={"state": row.state.value}, after={"state": OutboxState.SKIPPED.value}, note=note, now=now)
    row.state = OutboxState.SKIPPED
    return row
