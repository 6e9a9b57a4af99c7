"""The daily digest to staff: what arrived, where every unit stands, what needs a person.

One section per open campaign (its states, arrivals, what needs a person, its totals
per form, its consolidated workbook attached), then 其他来信: mail for no open campaign
and mail for a closed one. With one campaign it reads as it always did.
Sent through the outbox once per local day (dedupe key "digest:<date>"). When the last digest was queued is kept in the kv
table, so "since the last digest" survives a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.campaigns import CampaignSpec
from config.settings import Settings
from intake.board import (ARRIVAL_NOTES, KIND_LABELS, STATE_HEX, STATE_LABELS, Board, UnitState, belongs_to,
                          build_board, local_time, other_mail, quarantine_reason, state_for)
from intake.decide import is_late
from intake.trust import awaits_staff, claim_basis
from intake.login_pause import current_pause
from notifications.compose import build_message, enqueue
from notifications.render import render
from notifications.replies import form_totals
from parsers.model import Severity
from storage.files import safe_file_name
from storage.models import (
    KeyValue,
    Message,
    MessageState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    Submission,
    SubmissionStatus,
)

LAST_DIGEST_KEY = "digest.last_at"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Warnings staff must look at on a unit's current submission, in the digest's order.
ATTENTION_WARNINGS = {
    "seal_not_found": "未见公章",
    "e_seal_unverified": "电子签章待人工核实",
    "pdf_mismatch": "PDF 与 Excel 不一致",
    "unit_mismatch": "单位不一致",
    "sender_unverified": "发件人未验证",
    "photo_not_pdf": "照片代替扫描件",
    "link_pending": "超大附件链接待下载",
    "found_in_spam": "在垃圾邮件文件夹中找到",
}
MAX_DETAILS = 3  # problems quoted per unit before "等 N 处"


def time_left(deadline: datetime, now: datetime) -> str:
    """`距截止还有 2 天 3 小时`; `已截止` from the deadline on (on time is strictly before)."""
    if now >= deadline:
        return "已截止"
    minutes = int((deadline - now).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"距截止还有 {days} 天 {hours} 小时"
    if hours:
        return f"距截止还有 {hours} 小时 {mins} 分钟"
    return f"距截止还有 {max(mins, 1)} 分钟"


@dataclass
class Arrival:
    at: str
    who: str
    label: str  # what the mail was judged, e.g. 已受理 / 需修改 / 未识别单位
    note: str = ""  # e.g. 已被更新的报送替代


@dataclass
class AttentionItem:
    text: str
    submission_id: int | None = None  # what the web console links to


@dataclass
class Attention:
    title: str  # e.g. 未见公章
    entries: list[AttentionItem] = field(default_factory=list)
    key: str = ""  # stable name of the group (web console ids)

    @property
    def items(self) -> list[str]:
        return [entry.text for entry in self.entries]

    def add(self, text: str, submission_id: int | None = None) -> None:
        self.entries.append(AttentionItem(text, submission_id))


@dataclass
class FormTotal:
    """One form's line in 汇总数据: how many units sent rows, how many, and the sums."""

    number: int
    title: str
    units: int
    rows: int
    sums: list[tuple[str, Decimal, str]] = field(default_factory=list)  # (label, value, unit)


@dataclass
class Digest:
    subject: str
    text: str
    html: str
    # (file name, .xlsx bytes): one consolidated workbook per open campaign.
    attachments: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def workbook(self) -> bytes:  # the first (the only one with one campaign)
        return self.attachments[0][1]

    @property
    def filename(self) -> str:
        return self.attachments[0][0]


def build_digest(session: Session, settings: Settings, *, now: datetime, since: datetime | None,
                 campaign: CampaignSpec | None = None) -> Digest:
    """Every open campaign's section (none open: the default's), or only `campaign`'s
    (`intake digest --campaign`): then it reads as a single-campaign digest, with the
    mailbox-wide groups and 其他来信, less mail for other closed campaigns."""
    tz = ZoneInfo(settings.digest.timezone)
    campaigns = (campaign,) if campaign is not None else settings.campaign_set.open(now) or (settings.campaign,)
    shared = len(campaigns) == 1  # one campaign: the shared groups sit in its section, as always
    sections = [_section(session, settings, c, now=now, since=since, shared=shared) for c in campaigns]
    common = [] if shared else shared_groups(session, tz)
    pending = sum(len(a.items) for sec in sections for a in sec["attention"]) + sum(len(a.items) for a in common)
    local = now.astimezone(tz)
    if len(sections) == 1:
        sec = sections[0]
        subject = (f"【每日汇总】{sec['campaign'].name} {local.month}月{local.day}日：已受理 {sec['done']}/"
                   f"{len(sec['rows'])}，未报送 {len(sec['missing'])}")
    else:
        subject = f"【每日汇总】{local.month}月{local.day}日：" + "；".join(
            f"{sec['campaign'].name} 已受理 {sec['done']}/{len(sec['rows'])}" for sec in sections)
    if pending:
        subject += f"，待处理 {pending} 项"
    context = {
        "campaign": sections[0]["campaign"],
        "sections": sections,
        "common": common,
        "colours": {state.value: colour for state, colour in STATE_HEX.items()},
        "other": _other(session, settings, tz, since, now, only=campaign),
        "now": local_time(now, tz),
        "since": local_time(since, tz) if since else None,
    }
    text, html = render("digest", context, settings.smtp.templates_dir)
    from notifications.workbook import build_workbook  # openpyxl: loaded for a digest, not by every command

    attachments = [
        # The campaign name is configuration text: it must stay one name inside the output folder.
        (safe_file_name(f"{sec['campaign'].name}汇总表-{local:%Y%m%d}.xlsx", fallback="汇总表.xlsx"),
         build_workbook(session, settings, sec["campaign"], now=now, board=sec["board"]))
        for sec in sections
    ]
    return Digest(subject=subject, text=text, html=html, attachments=attachments)


def _section(session: Session, settings: Settings, campaign: CampaignSpec, *, now: datetime,
             since: datetime | None, shared: bool) -> dict:
    """One campaign's part of the digest."""
    board = build_board(session, settings, campaign)
    tz = board.timezone
    done = board.counts[UnitState.ACCEPTED] + board.counts[UnitState.ACCEPTED_LATE]
    return {
        "campaign": campaign,
        "deadline": local_time(campaign.deadline, tz),
        "time_left": time_left(campaign.deadline, now),
        "arrivals": _arrivals(session, settings, campaign, tz, since, now),
        "attention": attention_groups(session, board, shared=shared),
        "board": board,
        "rows": [
            {
                "name": r.name,
                "kind": KIND_LABELS[r.kind],
                "state": r.state.value,
                "label": STATE_LABELS[r.state],
                "at": local_time(r.arrived_at, tz),
                "problems": r.problems,
            }
            for r in board.rows
        ],
        "counts": [(STATE_LABELS[s], board.counts[s], s.value) for s in STATE_LABELS],
        "colours": {state.value: colour for state, colour in STATE_HEX.items()},
        "done": done,
        "missing": [r.name for r in board.rows_in(UnitState.MISSING)],
        "forms": _form_totals(board, campaign),
    }


def queue_digest(session: Session, settings: Settings, *, now: datetime) -> OutboxItem | None:
    """Queue today's digest to every recipient; None when there are none or today's is queued."""
    recipients = settings.digest.recipients
    key = f"digest:{now.astimezone(ZoneInfo(settings.digest.timezone)).date().isoformat()}"
    if not recipients or session.scalar(select(OutboxItem.id).where(OutboxItem.dedupe_key == key)):
        return None
    last = session.get(KeyValue, LAST_DIGEST_KEY)
    since = datetime.fromisoformat(last.value) if last else None
    digest = build_digest(session, settings, now=now, since=since)
    message = build_message(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name or settings.campaign.name,
        to=", ".join(recipients),
        subject=digest.subject,
        text=digest.text,
        html=digest.html,
        attachments=[(name, XLSX_MIME, data) for name, data in digest.attachments],
    )
    item = enqueue(session, kind=OutboxKind.DIGEST, dedupe_key=key, message=message)
    if item is not None:
        session.merge(KeyValue(key=LAST_DIGEST_KEY, value=now.isoformat()))
        session.flush()
    return item


def _who(submission: Submission) -> str:
    return submission.unit or f"未识别单位（{submission.message.from_address or '发件人不明'}）"


def _arrivals(session: Session, settings: Settings, campaign: CampaignSpec, tz: ZoneInfo, since: datetime | None,
              now: datetime) -> list[Arrival]:
    """The campaign's mail since the last digest (`other` mail is listed apart)."""
    deadline = campaign.deadline
    query = (
        select(Submission)
        .join(Submission.message)
        .where(Submission.content_status != SubmissionStatus.IGNORED, Message.arrived_at <= now,
               Submission.status != SubmissionStatus.OTHER, belongs_to(campaign, settings))
        .order_by(Message.arrived_at, Submission.id)
    )
    if since is not None:
        query = query.where(Message.arrived_at > since)
    out = []
    for s in session.scalars(query):
        label = STATE_LABELS[state_for(s.content_status, is_late(s.message.arrived_at, deadline))]
        note = ARRIVAL_NOTES.get(s.status) or ("待确认，暂作该单位的报送" if awaits_staff(s) else "")
        out.append(Arrival(local_time(s.message.arrived_at, tz), _who(s), label, note))
    return out


def _other(session: Session, settings: Settings, tz: ZoneInfo, since: datetime | None, now: datetime,
           only: CampaignSpec | None = None) -> list[dict]:
    """其他来信: mail for no open campaign and mail for a closed one, since the last digest
    (with `only`: of closed campaigns, that one's mail alone)."""
    return [
        {"at": local_time(o.arrived_at, tz), "sender": o.sender or "发件人不明", "unit": o.unit,
         "subject": o.subject or "（无主题）",
         "why": o.why}
        for o in other_mail(session, settings, since)
        if o.arrived_at <= now and (only is None or o.campaign_id in (None, only.id))
    ]


def _form_totals(board: Board, campaign: CampaignSpec) -> list[FormTotal]:
    out = []
    for number, spec in enumerate(campaign.forms, 1):
        count = board.by_form[spec.id]
        rows = [r for s in board.current.values() for r in s.rows_of(spec.id)]
        out.append(FormTotal(number, spec.short_title, count.units, count.rows, form_totals(spec, rows)))
    return out


def attention_groups(session: Session, board: Board, *, shared: bool = True) -> list[Attention]:
    """What a person must settle for one campaign's board, grouped; empty groups are
    dropped. With `shared`, also what belongs to no campaign (mailbox paused, failed
    mail, quarantine). The digest and the web console's 待处理 page both read this, so
    they never disagree."""
    tz = board.timezone
    unmatched = Attention("未识别单位（请用 intake assign 指定）", key="unmatched")
    for u in board.unmatched:
        unmatched.add(f"#{u.submission_id} {local_time(u.arrived_at, tz)} {u.sender or '发件人不明'}：{u.subject or '（无主题）'}",
                      u.submission_id)
    pending = Attention(
        "待确认的报送（发件地址不是该单位登记的邮箱或验证未通过；请用 intake confirm / intake reject 处理）", key="pending")
    for p in board.pending:
        pending.add(f"#{p.submission_id} {local_time(p.arrived_at, tz)} {p.unit}（{claim_basis(p.source)}）"
                    f"← {p.sender or '发件人不明'}" + ("，暂作该单位的报送" if p.current else "，该单位已有报送不变"),
                    p.submission_id)
    invalid = Attention("需修改的报送", key="invalid")
    warnings = {code: Attention(title, key=code) for code, title in ATTENTION_WARNINGS.items()}
    late = Attention("逾期报送（待决定受理或不受理：intake late 编号 accept|reject）", key="late")
    unverifiable = Attention("无法判断是否盖章（如灰度扫描）", key="seal_unverifiable")
    for row in board.rows:
        submission = board.current.get(row.name)
        if submission is None:
            continue
        if row.state is UnitState.INVALID:
            errors = [p for p in submission.problems if p.severity == Severity.ERROR.value]
            # Problem messages name their file and cell already.
            details = "；".join(p.message for p in errors[:MAX_DETAILS])
            more = f" 等 {len(errors)} 处" if len(errors) > MAX_DETAILS else ""
            invalid.add(f"{row.name}：{details}{more}", submission.id)
        for p in submission.problems:
            if p.code in warnings and not _settled(submission, p.code):
                warnings[p.code].add(f"{row.name}：{p.message}", submission.id)
        if row.late_undecided:
            late.add(f"{row.name}：{local_time(row.arrived_at, tz)} 到达", submission.id)
        if submission.has_pdf and submission.seal is None and submission.seal_override is None:
            unverifiable.add(f"{row.name}：PDF 中未能判断有无红色公章", submission.id)
    groups = [pending, unmatched, invalid, *warnings.values(), late, unverifiable]
    if not shared:
        return [g for g in groups if g.entries]
    paused, failed, quarantined = shared_groups(session, tz, keep_empty=True)
    return [g for g in [paused, *groups, failed, quarantined] if g.entries]


def shared_groups(session: Session, tz: ZoneInfo, *, keep_empty: bool = False) -> list[Attention]:
    """What needs a person whatever the campaign: the mailbox paused, mail that failed, quarantine."""
    failed = Attention("发送失败的邮件", key="failed")
    for o in session.scalars(select(OutboxItem).where(OutboxItem.state == OutboxState.FAILED).order_by(OutboxItem.id)):
        failed.add(f"{o.to_address}：{o.subject}（{o.last_error or '原因不明'}）", o.submission_id)
    for o in session.scalars(select(OutboxItem).where(OutboxItem.bounced_at.is_not(None)).order_by(OutboxItem.id)):
        failed.add(f"{o.to_address}：{o.subject}（已发出但被退信：{o.bounce_reason or '原因不明'}）", o.submission_id)
    quarantined = Attention("无法处理的邮件（已隔离）", key="quarantined")
    for m in session.scalars(select(Message).where(Message.state == MessageState.QUARANTINED).order_by(Message.arrived_at)):
        reason = f"（{quarantine_reason(m.error)}）"
        quarantined.add(f"{local_time(m.arrived_at, tz)} {m.from_address or '发件人不明'}：{m.subject or '（无主题）'}{reason}",
                        m.submission.id if m.submission else None)
    pause = current_pause(session)
    paused = Attention("邮箱登录已暂停（请核对密码或授权码，可用 intake check 检查）", key="paused")
    if pause:
        paused.add(pause.describe(tz))
    return [g for g in (paused, failed, quarantined) if keep_empty or g.entries]


def _settled(submission: Submission, code: str) -> bool:
    """A warning staff have already reviewed (intake review / the console) needs no one."""
    if code in ("seal_not_found", "e_seal_unverified"):
        return submission.seal_override is not None
    return code == "pdf_mismatch" and submission.mismatch_checked
