"""Where every registered unit stands, from its current submission; the terminal table.

The state labels, kind labels and local-time format live here and are shared by the
digest and the consolidated workbook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings, UnitKind
from intake.decide import is_late
from intake.tracking import current_submissions, pending_confirmations, unmatched_submissions
from intake.trust import awaits_staff
from storage.models import LateDecision, Message, MessageState, OutboxItem, OutboxKind, Submission, SubmissionStatus


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
    form1_rows: int = 0
    form2_rows: int = 0
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
class FormCount:
    units: int = 0  # units whose current submission has rows of this form
    rows: int = 0


@dataclass
class Board:
    rows: list[BoardRow]
    counts: dict[UnitState, int]
    by_kind: dict[UnitKind, dict[UnitState, int]]
    by_form: dict[int, FormCount]
    unmatched: list[UnmatchedRow]
    timezone: ZoneInfo
    pending: list[PendingRow] = field(default_factory=list)
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    campaign: str = ""
    # The current submissions behind the rows, for the digest and workbook (not exported).
    current: dict[str, Submission] = field(default_factory=dict, repr=False)

    def rows_in(self, *states: UnitState) -> list[BoardRow]:
        return [row for row in self.rows if row.state in states]


def quarantine_reason(error: str | None) -> str:
    """The first line of a stored traceback ("ValueError: ..."), cut to one readable line."""
    first = (error or "原因不明").strip().splitlines()[0] if (error or "").strip() else "原因不明"
    return first[:200]


def last_reminded(session: Session) -> dict[str, datetime]:
    """When each unit was last sent a reminder (a slot's or a 催报): "reminder:<unit>:..."."""
    latest: dict[str, datetime] = {}
    rows = session.execute(
        select(OutboxItem.dedupe_key, OutboxItem.created_at).where(OutboxItem.kind == OutboxKind.REMINDER)
    )
    for key, created in rows:
        unit = key.split(":")[1] if key.count(":") >= 2 else None
        if unit and (unit not in latest or created > latest[unit]):
            latest[unit] = created
    return latest


def build_board(session: Session, settings: Settings) -> Board:
    current = current_submissions(session)
    reminded = last_reminded(session)
    rows: list[BoardRow] = []
    counts = dict.fromkeys(UnitState, 0)
    by_kind = {kind: dict.fromkeys(UnitState, 0) for kind in UnitKind}
    by_form = {1: FormCount(), 2: FormCount()}
    for unit in settings.units:
        submission = current.get(unit.name)
        row = BoardRow(unit.name, unit.kind, state_of(submission, settings.campaign.deadline))
        row.last_reminded = reminded.get(unit.name)
        if submission is not None:
            row.submission_id = submission.id
            row.arrived_at = submission.message.arrived_at
            row.late = is_late(submission.message.arrived_at, settings.campaign.deadline)
            row.problems = len(submission.problems)
            row.form1_rows = len(submission.form1_rows)
            row.form2_rows = len(submission.form2_rows)
            row.trust = submission.trust.value
            row.awaiting = awaits_staff(submission)
            row.late_undecided = row.late and submission.late_decision is None
            for number, count in ((1, row.form1_rows), (2, row.form2_rows)):
                by_form[number].units += count > 0
                by_form[number].rows += count
        rows.append(row)
        counts[row.state] += 1
        by_kind[unit.kind][row.state] += 1
    unmatched = [
        UnmatchedRow(s.id, s.message.from_address, s.message.subject, s.sheet_unit, s.message.arrived_at)
        for s in unmatched_submissions(session)
    ]
    registered = {unit.name for unit in settings.units}
    standing = {s.id for s in current.values()}
    pending = [
        PendingRow(s.id, s.unit, s.message.from_address, s.unit_source, s.message.arrived_at, s.id in standing)
        for s in pending_confirmations(session)
        if s.unit is not None
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
        campaign=settings.campaign.name,
        current={name: s for name, s in current.items() if name in registered},
    )


def board_as_dict(board: Board) -> dict:
    """Plain JSON-ready data: `intake status --json` and the export's "units" list."""

    def iso(moment: datetime | None) -> str | None:
        return moment.astimezone(board.timezone).isoformat() if moment else None

    return {
        "campaign": board.campaign,
        "units": [
            {
                "name": row.name,
                "kind": row.kind.value,
                "state": row.state.value,
                "submission_id": row.submission_id,
                "arrived_at": iso(row.arrived_at),
                "late": row.late,
                "problems": row.problems,
                "form1_rows": row.form1_rows,
                "form2_rows": row.form2_rows,
                "trust": row.trust,
                "awaiting_confirmation": row.awaiting,
                "late_undecided": row.late_undecided,
                "last_reminded": iso(row.last_reminded),
            }
            for row in board.rows
        ],
        "counts": {state.value: n for state, n in board.counts.items()},
        "by_kind": {kind.value: {s.value: n for s, n in states.items()} for kind, states in board.by_kind.items()},
        "by_form": {str(number): {"units": c.units, "rows": c.rows} for number, c in board.by_form.items()},
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


def render_board(board: Board, console: Console) -> None:
    """The board as a Chinese table; rich drops the colour where the terminal has none."""
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
    for number, count in board.by_form.items():
        console.print(f"  表{number}：{count.units} 个单位报送 {count.rows} 个项目")
    if board.pending:
        console.print(f"[bold magenta]待确认的报送 {len(board.pending)} 份[/]（发件地址不是该单位登记的邮箱或验证未通过；"
                      "请用 intake confirm / intake reject 处理）：")
        for p in board.pending:
            console.print(
                f"  #{p.submission_id} {local_time(p.arrived_at, board.timezone)} "
                + escape(f"{p.unit} ← {p.sender or '发件人不明'}")
            )
    if board.unmatched:
        console.print(f"[bold red]未识别单位的邮件 {len(board.unmatched)} 封[/]（请用 intake assign 指定单位）：")
        for u in board.unmatched:
            console.print(
                f"  #{u.submission_id} {local_time(u.arrived_at, board.timezone)} "
                + escape(f"{u.sender or ''} {u.subject or ''}")
            )
