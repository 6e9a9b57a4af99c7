"""Where every registered unit stands, from its current submission; the terminal table.

The state labels, kind labels and local-time format live here and are shared by the
digest and the consolidated workbook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from config.campaigns import LEGACY_FORMS, LEGACY_ID, CampaignSpec
from config.settings import Settings, UnitKind, UnitSettings
from intake.decide import is_late
from intake.tracking import current_submissions, pending_confirmations, unmatched_submissions
from intake.trust import awaits_staff
from storage.models import (LateDecision, Message, MessageState, OutboxItem, OutboxKind, ReplyKind, Submission,
                            SubmissionStatus)


class UnitState(StrEnum):
    MISSING = "missing"
    ACCEPTED = "accepted"
    ACCEPTED_LATE = "accepted_late"
    INCOMPLETE = "incomplete"
    INVALID = "invalid"
    AWAITING = "awaiting"  # the record is a claim staff have not confirmed (待确认)
    DOWNLOAD = "awaiting_download"  # a missing file came as a large-attachment link (待下载)


STATE_LABELS = {
    UnitState.ACCEPTED: "已受理",
    UnitState.ACCEPTED_LATE: "逾期受理",
    UnitState.INCOMPLETE: "材料不全",
    UnitState.INVALID: "需修改",
    UnitState.AWAITING: "待确认",
    UnitState.DOWNLOAD: "待下载",
    UnitState.MISSING: "未报送",
}
KIND_LABELS = {UnitKind.CITY: "城市", UnitKind.INDUSTRY: "产业", UnitKind.ORGAN: "机关", UnitKind.ENTERPRISE: "企业"}
STATE_COLOURS = {
    UnitState.ACCEPTED: "green",
    UnitState.ACCEPTED_LATE: "cyan",
    UnitState.INCOMPLETE: "yellow",
    UnitState.INVALID: "red",
    UnitState.AWAITING: "magenta",
    UnitState.DOWNLOAD: "blue",
    UnitState.MISSING: "bright_black",
}
# The same states in the same colours wherever people see them (digest, web console).
STATE_HEX = {
    UnitState.ACCEPTED: "#2e7d32",
    UnitState.ACCEPTED_LATE: "#00838f",
    UnitState.INCOMPLETE: "#ef6c00",
    UnitState.INVALID: "#c62828",
    UnitState.AWAITING: "#8e24aa",
    UnitState.DOWNLOAD: "#1565c0",
    UnitState.MISSING: "#757575",
}
TIME_FORMAT = "%Y-%m-%d %H:%M"
# What a submission that is not its unit's record says for itself.
ARRIVAL_NOTES = {
    SubmissionStatus.SUPERSEDED: "已被更新的报送替代",
    SubmissionStatus.UNMATCHED: "待指定单位",
    SubmissionStatus.HELD: "待确认，未替代该单位已有的报送",
    SubmissionStatus.REJECTED: "已驳回",
    SubmissionStatus.OTHER: "其他来信（不属于任何征集）",
}



def local_time(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime(TIME_FORMAT) if moment else ""


def state_for(verdict: SubmissionStatus, late: bool) -> UnitState:
    """The unit state a verdict (accepted / incomplete / invalid) gives when it is current."""
    if verdict is SubmissionStatus.ACCEPTED:
        return UnitState.ACCEPTED_LATE if late else UnitState.ACCEPTED
    if verdict is SubmissionStatus.INCOMPLETE:
        return UnitState.INCOMPLETE
    if verdict is SubmissionStatus.AWAITING_DOWNLOAD:
        return UnitState.DOWNLOAD
    return UnitState.INVALID


def submission_label(submission: Submission, deadline: datetime) -> str:
    """A submission's status in staff's words (never the stored enum value)."""
    if submission.late_decision is LateDecision.REJECTED:
        return "逾期不予受理"
    if submission.status in ARRIVAL_NOTES:
        return ARRIVAL_NOTES[submission.status]
    if submission.status is SubmissionStatus.IGNORED:
        return "不计入"
    return STATE_LABELS[state_for(submission.status, is_late(submission.message.arrived_at, deadline))]


def state_of(submission: Submission | None, deadline: datetime) -> UnitState:
    """The unit's state; lateness against today's deadline, so an extension shows at once."""
    if submission is None:
        return UnitState.MISSING
    if awaits_staff(submission):
        return UnitState.AWAITING
    return state_for(submission.status, is_late(submission.message.arrived_at, deadline))


@dataclass
class BoardRow:
    name: str
    kind: UnitKind
    state: UnitState
    submission_id: int | None = None
    arrived_at: datetime | None = None
    late: bool = False
    problems: int = 0
    form_rows: dict[str, int] = field(default_factory=dict)  # form id → rows in the current submission
    trust: str | None = None  # intake.trust level of the current submission
    awaiting: bool = False  # the current submission is a claim staff have not confirmed (待确认)
    late_undecided: bool = False  # late, and the office has not said 受理 or 不受理 yet
    last_reminded: datetime | None = None  # the last reminder (a slot's or a 催报) to the unit


@dataclass
class QuarantinedRow:
    """A mail whose processing failed: kept, listed for staff, never answered."""

    message_pk: int
    sender: str | None
    subject: str | None
    arrived_at: datetime
    reason: str  # the error's first line, short


@dataclass
class PendingRow:
    """A claimed submission waiting for staff to confirm or reject it."""

    submission_id: int
    unit: str
    sender: str | None
    source: str | None  # where the unit came from: sheet / subject / body / sender (failed checks)
    arrived_at: datetime
    current: bool  # standing in as the unit's record (the unit has nothing trusted)


@dataclass
class UnmatchedRow:
    submission_id: int
    sender: str | None
    subject: str | None
    sheet_unit: str | None
    arrived_at: datetime


@dataclass
class OtherRow:
    """A mail staff read themselves: for no open campaign (`other`), or for a closed one."""

    submission_id: int
    sender: str | None
    unit: str | None  # the registered unit, if the sender is one
    subject: str | None
    arrived_at: datetime
    routing: str | None  # why it was not taken as a submission, in Chinese
    campaign: str | None = None  # the closed campaign's name; None for `other` mail
    campaign_id: str | None = None  # …and its id (names may repeat, ids do not)

    @property
    def why(self) -> str:
        """Why staff see it, for the console and the digest."""
        return f"所属征集「{self.campaign}」已截止" if self.campaign else (self.routing or "不属于进行中的征集")


@dataclass
class FormCount:
    title: str = ""  # the form's short title
    units: int = 0  # units whose current submission has rows of this form
    rows: int = 0


@dataclass
class Board:
    rows: list[BoardRow]
    counts: dict[UnitState, int]
    by_kind: dict[UnitKind, dict[UnitState, int]]
    by_form: dict[str, FormCount]  # by form id, in the campaign's order
    unmatched: list[UnmatchedRow]
    timezone: ZoneInfo
    pending: list[PendingRow] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    campaign: str = ""  # the campaign's name
    campaign_id: str = ""
    deadline: datetime | None = None
    # Mail staff read themselves (other mail, mail for closed campaigns): never a state.
    other: list[OtherRow] = field(default_factory=list)
    # The current submissions behind the rows, for the digest and workbook (not exported).
    current: dict[str, Submission] = field(default_factory=dict, repr=False)

    def rows_in(self, *states: UnitState) -> list[BoardRow]:
        return [row for row in self.rows if row.state in states]


def quarantine_reason(error: str | None) -> str:
    """The first line of a stored traceback ("ValueError: ..."), cut to one readable line."""
    first = (error or "原因不明").strip().splitlines()[0] if (error or "").strip() else "原因不明"
    return first[:200]


def reminder_key(unit: str, slot: str, campaign_id: str) -> str:
    """A reminder's outbox key: "reminder:<unit>:<slot>", with "@<campaign>" after the
    slot except for the legacy `default` campaign (keys sent before campaigns keep counting)."""
    suffix = "" if campaign_id == LEGACY_ID else f"@{campaign_id}"
    return f"reminder:{unit}:{slot}{suffix}"


def _reminder_campaign(key: str) -> str:
    rest = key.split(":", 2)[2]
    return rest.rpartition("@")[2] if "@" in rest else LEGACY_ID


def last_reminded(session: Session, campaign_id: str = LEGACY_ID) -> dict[str, datetime]:
    """When each unit was last sent a reminder about the campaign (a slot's or a 催报)."""
    latest: dict[str, datetime] = {}
    rows = session.execute(
        select(OutboxItem.dedupe_key, OutboxItem.created_at).where(OutboxItem.kind == OutboxKind.REMINDER)
    )
    for key, created in rows:
        if key.count(":") < 2 or _reminder_campaign(key) != campaign_id:
            continue
        unit = key.split(":")[1]
        if unit and (unit not in latest or created > latest[unit]):
            latest[unit] = created
    return latest


def campaign_of(settings: Settings, submission: Submission) -> CampaignSpec:
    """The campaign a submission belongs to; `other` mail (none) falls back to the default."""
    return settings.campaign_set.get(submission.campaign) or settings.campaign


def belongs_to(campaign: CampaignSpec, settings: Settings) -> ColumnElement[bool]:
    """A campaign's submissions as SQL; mail routed nowhere that is not `other` (a
    stranger's, ignored mail) stays with the default campaign, where it always was."""
    mine = Submission.campaign == campaign.id
    if campaign.id != settings.campaign.id:
        return mine
    return or_(mine, and_(Submission.campaign.is_(None), Submission.status != SubmissionStatus.OTHER))


def campaign_units(settings: Settings, campaign: CampaignSpec) -> list[UnitSettings]:
    """The registered units a campaign asks to submit (all of them unless it names some)."""
    if campaign.units is None:
        return list(settings.units)
    asked = set(campaign.units)
    return [unit for unit in settings.units if unit.name in asked]


def other_mail(session: Session, settings: Settings, since: datetime | None = None) -> list[OtherRow]:
    """Mail for no open campaign and mail for a closed one, oldest first (since `since`)."""
    query = (
        select(Submission)
        .join(Submission.message)
        .where((Submission.status == SubmissionStatus.OTHER) | (Submission.reply == ReplyKind.CLOSED))
        .order_by(Message.arrived_at, Submission.id)
    )
    if since is not None:
        query = query.where(Message.arrived_at >= since)
    rows = []
    for s in session.scalars(query):
        spec = settings.campaign_set.get(s.campaign) if s.status is not SubmissionStatus.OTHER else None
        rows.append(OtherRow(s.id, s.message.from_address, s.unit, s.message.subject, s.message.arrived_at,
                             s.routing, spec.name if spec else None, spec.id if spec else None))
    return rows


def build_board(session: Session, settings: Settings, campaign: CampaignSpec | None = None) -> Board:
    """One campaign's board (default: settings.campaign): its units, its submissions only."""
    campaign = campaign or settings.campaign
    deadline = campaign.deadline
    current = current_submissions(session, campaign.id)
    reminded = last_reminded(session, campaign.id)
    units = campaign_units(settings, campaign)
    rows: list[BoardRow] = []
    counts = dict.fromkeys(UnitState, 0)
    by_kind = {kind: dict.fromkeys(UnitState, 0) for kind in UnitKind}
    by_form = {form.id: FormCount(form.short_title) for form in campaign.forms}
    for unit in units:
        submission = current.get(unit.name)
        row = BoardRow(unit.name, unit.kind, state_of(submission, deadline), form_rows=dict.fromkeys(by_form, 0))
        row.last_reminded = reminded.get(unit.name)
        if submission is not None:
            row.submission_id = submission.id
            row.arrived_at = submission.message.arrived_at
            row.late = is_late(submission.message.arrived_at, deadline)
            row.problems = len(submission.problems)
            row.form_rows = {form.id: len(submission.rows_of(form.id)) for form in campaign.forms}
            row.trust = submission.trust.value
            row.awaiting = awaits_staff(submission)
            row.late_undecided = row.late and submission.late_decision is None
            for form_id, count in row.form_rows.items():
                by_form[form_id].units += count > 0
                by_form[form_id].rows += count
        rows.append(row)
        counts[row.state] += 1
        by_kind[unit.kind][row.state] += 1
    # Unmatched mail routed to no campaign is listed on every board: staff name its unit.
    unmatched = [
        UnmatchedRow(s.id, s.message.from_address, s.message.subject, s.sheet_unit, s.message.arrived_at)
        for s in unmatched_submissions(session)
        if s.campaign in (campaign.id, None)
    ]
    registered = {unit.name for unit in units}
    standing = {s.id for s in current.values()}
    pending = [
        PendingRow(s.id, s.unit, s.message.from_address, s.unit_source, s.message.arrived_at, s.id in standing)
        for s in pending_confirmations(session)
        if s.unit is not None and s.campaign == campaign.id
    ]
    quarantined = [
        QuarantinedRow(m.id, m.from_address, m.subject, m.arrived_at, quarantine_reason(m.error))
        for m in session.scalars(
            select(Message).where(Message.state == MessageState.QUARANTINED).order_by(Message.arrived_at, Message.id)
        )
    ]
    return Board(
        quarantined=quarantined,
        rows=rows,
        counts=counts,
        by_kind=by_kind,
        by_form=by_form,
        unmatched=unmatched,
        pending=pending,
        timezone=ZoneInfo(settings.digest.timezone),
        campaign=campaign.name,
        campaign_id=campaign.id,
        deadline=deadline,
        other=other_mail(session, settings),
        current={name: s for name, s in current.items() if name in registered},
    )


def board_as_dict(board: Board) -> dict:
    """Plain JSON-ready data: `intake status --json` and the export's "units" list."""

    def iso(moment: datetime | None) -> str | None:
        return moment.astimezone(board.timezone).isoformat() if moment else None

    return {
        "campaign": board.campaign,
        "campaign_id": board.campaign_id,
        "units": [
            {
                "name": row.name,
                "kind": row.kind.value,
                "state": row.state.value,
                "submission_id": row.submission_id,
                "arrived_at": iso(row.arrived_at),
                "late": row.late,
                "problems": row.problems,
                # `<form id>_rows` per form: form1_rows / form2_rows for the 2024 notice.
                **{f"{form_id}_rows": n for form_id, n in row.form_rows.items()},
                "forms": dict(row.form_rows),
                "trust": row.trust,
                "awaiting_confirmation": row.awaiting,
                "late_undecided": row.late_undecided,
                "last_reminded": iso(row.last_reminded),
            }
            for row in board.rows
        ],
        "counts": {state.value: n for state, n in board.counts.items()},
        "by_kind": {kind.value: {s.value: n for s, n in states.items()} for kind, states in board.by_kind.items()},
        "by_form": {key: {"title": c.title, "units": c.units, "rows": c.rows}
                    for form_id, c in board.by_form.items()
                    for key in (form_id, *([LEGACY_FORMS[form_id]] if form_id in LEGACY_FORMS else []))},
        "unmatched": [
            {
                "submission_id": u.submission_id,
                "sender": u.sender,
                "subject": u.subject,
                "sheet_unit": u.sheet_unit,
                "arrived_at": iso(u.arrived_at),
            }
            for u in board.unmatched
        ],
        "quarantined": [
            {"message_pk": q.message_pk, "status": "quarantined", "sender": q.sender, "subject": q.subject,
             "arrived_at": iso(q.arrived_at), "reason": q.reason}
            for q in board.quarantined
        ],
        "other": [
            {"submission_id": o.submission_id, "sender": o.sender, "unit": o.unit, "subject": o.subject,
             "arrived_at": iso(o.arrived_at), "routing": o.routing, "closed_campaign": o.campaign}
            for o in board.other
        ],
        "pending_confirmation": [
            {
                "submission_id": p.submission_id,
                "unit": p.unit,
                "sender": p.sender,
                "unit_source": p.source,
                "arrived_at": iso(p.arrived_at),
                "current": p.current,
            }
            for p in board.pending
        ],
    }


def render_board(board: Board, console: Console, *, other: bool = True) -> None:
    """The board as a Chinese table; rich drops the colour where the terminal has none.
    `other=False` leaves out 其他来信, which is the same on every board (several printed)."""
    table = Table(title=f"{board.campaign} 报送情况" if board.campaign else "报送情况", header_style="bold")
    for label, justify in (("单位", "left"), ("类别", "left"), ("状态", "left"), ("到达时间", "left"), ("问题数", "right")):
        table.add_column(label, justify=justify)
    for row in board.rows:
        colour = STATE_COLOURS[row.state]
        table.add_row(
            escape(row.name),
            KIND_LABELS[row.kind],
            f"[{colour}]{STATE_LABELS[row.state]}[/]",
            local_time(row.arrived_at, board.timezone),
            str(row.problems) if row.submission_id else "",
        )
    console.print(table)
    console.print(
        "合计："
        + "，".join(f"[{STATE_COLOURS[s]}]{STATE_LABELS[s]} {board.counts[s]}[/]" for s in STATE_LABELS)
        + f"（共 {len(board.rows)} 个单位）"
    )
    for kind, states in board.by_kind.items():
        total = sum(states.values())
        if total:
            done = states[UnitState.ACCEPTED] + states[UnitState.ACCEPTED_LATE]
            console.print(f"  {KIND_LABELS[kind]}：已受理 {done}/{total}，未报送 {states[UnitState.MISSING]}")
    for count in board.by_form.values():
        console.print(f"  {escape(count.title)}：{count.units} 个单位报送 {count.rows} 行")
    _listing(console, board, board.pending,
             f"[bold magenta]待确认的报送 {len(board.pending)} 份[/]（发件地址不是该单位登记的邮箱或验证未通过；"
             "请用 intake confirm / intake reject 处理）：",
             lambda p: f"{p.unit} ← {p.sender or '发件人不明'}")
    _listing(console, board, board.unmatched,
             f"[bold red]未识别单位的邮件 {len(board.unmatched)} 封[/]（请用 intake assign 指定单位）：",
             lambda u: f"{u.sender or ''} {u.subject or ''}")
    _listing(console, board, board.other if other else [],
             f"[bold]其他来信 {len(board.other)} 封[/]（不属于进行中的征集，或所属征集已截止；请人工查看）：",
             lambda o: f"{o.unit or o.sender or ''} {o.subject or ''} {o.routing or o.campaign or ''}")


def _listing(console: Console, board: Board, rows: list, header: str, line: Callable[[Any], str]) -> None:
    """A heading and one line per mail (number, arrival, then `line`), escaped: it is mail text."""
    if not rows:
        return
    console.print(header)
    for row in rows:
        console.print(f"  #{row.submission_id} {local_time(row.arrived_at, board.timezone)} " + escape(line(row)))
