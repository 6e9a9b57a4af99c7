"""Building a campaign's ledger through the ORM for the tracking, board, digest and workbook tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Settings, settings_from_dict
from parsers.model import severity_of, ProblemCode
from storage.db import Database
from storage.models import (
    Confirmation,
    FormRowRecord,
    Message,
    ProblemRecord,
    Submission,
    SubmissionStatus,
    Trust,
)

DEADLINE = datetime(2024, 2, 25, 9, 0, tzinfo=UTC)  # 17:00 Beijing time
UNITS = [
    {"name": "济南市总工会", "kind": "city", "emails": ["jnzgh@163.com", "@jnzgh.gov.cn"], "aliases": ["济南市总"]},
    {"name": "青岛市总工会", "kind": "city", "emails": ["qdzgh@qd.gov.cn"]},
    {"name": "山东省教育工会", "kind": "industry", "emails": ["edu@sdjy.cn"], "aliases": ["省教育工会"]},
    {"name": "中共山东省委机关工会", "kind": "organ", "emails": ["jggh@sd.gov.cn"]},
    {"name": "山东能源集团工会", "kind": "enterprise", "emails": ["ghb@sdenergy.com"], "aliases": ["山能集团工会"]},
]


def make_settings(**sections: Any) -> Settings:
    raw: dict[str, Any] = {
        "campaign": {"name": "2024年劳动竞赛项目申报", "deadline": DEADLINE.isoformat()},
        "smtp": {"from_address": "intake@sdzgh.cn", "from_name": "省总工会劳动竞赛报送"},
        "digest": {"recipients": ["staff1@sdzgh.cn", "staff2@sdzgh.cn"]},
        "units": UNITS,
    }
    raw.update(sections)
    return settings_from_dict(raw)


def make_db(tmp_path: Path) -> Database:
    return Database("sqlite:///" + str(tmp_path / "t.db"))


def before_deadline(**delta: float) -> datetime:
    return DEADLINE - timedelta(**delta)


def form1_row(i: int, *, enterprises: int = 10, workers: int = 500, investment: str = "12.5") -> FormRowRecord:
    return FormRowRecord(form="form1", ordinal=i, cell=f"Sheet1!A{4 + i}", values={
        "competition": f"重点工程劳动竞赛{i}", "project": f"工程项目{i}", "enterprises": enterprises,
        "private_enterprises": enterprises // 2, "workers": workers, "private_workers": workers // 2,
        "investment": investment})


def form2_row(i: int, *, prelim: int = 200, final: int = 30) -> FormRowRecord:
    return FormRowRecord(form="form2", ordinal=i, cell=f"Sheet1!A{4 + i}", values={
        "seq": str(i + 1), "competition": f"职业技能竞赛{i}", "organizer": "市总工会", "undertaker": "市技师学院",
        "event": "焊工", "prelim": prelim, "final": final, "final_time_place": "2024年10月 济南"})


def candidate_row(i: int, *, score: str = "92.5", birth_date: str = "1985-06-01") -> FormRowRecord:
    """A row of the second notice's one form (WUYI `candidates`)."""
    return FormRowRecord(form="candidates", ordinal=i, cell=f"Sheet1!A{4 + i}", values={
        "seq": str(i + 1), "name": f"推荐人{i}", "organisation": "济南二机床集团 数控车工",
        "birth_date": birth_date, "score": score, "full_score": "100", "deeds": "带领班组完成关键部件攻关"})


def generic_row(form: str, i: int, values: dict[str, Any], as_written: dict[str, str] | None = None) -> FormRowRecord:
    return FormRowRecord(form=form, ordinal=i, cell=f"Sheet1!A{4 + i}", values=values, as_written=as_written)


def add_submission(
    session: Session,
    *,
    unit: str | None,
    arrived_at: datetime,
    status: SubmissionStatus = SubmissionStatus.ACCEPTED,
    late: bool | None = None,
    sender: str = "someone@example.cn",
    subject: str = "报送劳动竞赛项目汇总表",
    sheet_unit: str | None = None,
    problems: Iterable[tuple[ProblemCode, str, str | None, str | None]] = (),
    form1: int = 0,
    form2: int = 0,
    rows: Iterable[FormRowRecord] = (),
    campaign: str | None = "default",
    routed_by: str | None = "form",
    routing: str | None = None,
    trust: Trust | None = None,
) -> Submission:
    """One processed mail and its submission, as the pipeline would have stored it.

    trust defaults to what a registered sender earns (or unknown without a unit); a
    claimed one waits for staff, as the pipeline leaves it. `form1`/`form2` add that many
    rows of the 2024 forms; `rows` adds any others (candidate_row, generic_row). An
    `other` mail has no campaign."""
    if status is SubmissionStatus.OTHER:
        campaign, routed_by = None, routed_by if routed_by != "form" else "none"
    trust = trust or (Trust.REGISTERED if unit else Trust.UNKNOWN)
    digest = hashlib.sha256(f"{unit}{arrived_at.isoformat()}{sender}{subject}".encode()).hexdigest()
    message = Message(
        account="intake",
        folder="INBOX",
        sha256=digest,
        size=1000,
        from_address=sender,
        subject=subject,
        arrived_at=arrived_at,
    )
    visible = SubmissionStatus.UNMATCHED if unit is None and status is not SubmissionStatus.IGNORED else status
    submission = Submission(
        message=message,
        unit=unit,
        campaign=campaign,
        routed_by=routed_by,
        routing=routing,
        unit_source=("sender" if trust is not Trust.CLAIMED else "sheet") if unit else None,
        trust=trust,
        confirmation=Confirmation.PENDING if trust is Trust.CLAIMED else None,
        sheet_unit=sheet_unit,
        status=visible,
        content_status=status,
        late=arrived_at >= DEADLINE if late is None else late,
        problems=[
            ProblemRecord(code=code, severity=severity_of(code).value, message=text, file=file, cell=cell)
            for code, text, file, cell in problems
        ],
        rows=[*(form1_row(i) for i in range(form1)), *(form2_row(i) for i in range(form2)), *rows],
    )
    session.add(submission)
    session.flush()
    return submission
