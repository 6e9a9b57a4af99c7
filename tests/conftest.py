"""Shared pytest fixtures. Each feature adds its own below; keep additions independent."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.settings import Settings, settings_from_dict
from parsers.model import Problem
from storage.models import Submission, SubmissionStatus, Trust
from tests.support.dovecot import Dovecot
from tests.support.postgres import PostgresServer
from tests.support.smtp import SmtpSink


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session; a missing install fails, never skips."""
    try:
        server = PostgresServer().start()
    except RuntimeError as err:
        pytest.fail(f"cannot start PostgreSQL for the tests: {err}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each engine intake supports: a temp SQLite file, or a fresh
    database on the session's PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'intake.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name, url = server.create_database()
    yield url
    server.drop_database(name)


# --- replies and the outbox: real Dovecot and a real SMTP sink, and a realistic submission


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One real Dovecot for the session; tests keep apart by using their own folders."""
    server = Dovecot().start()
    yield server
    server.cleanup()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


REPLY_DEADLINE = dt.datetime(2024, 2, 25, 17, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def reply_settings(**sections: dict) -> Settings:
    """Settings for reply and outbox tests: a campaign, a from address, then any overrides."""
    raw: dict = {
        "campaign": {
            "name": "2024年度全省劳动和技能竞赛项目申报",
            "deadline": REPLY_DEADLINE.isoformat(),
            "contact": "省总工会经济技术部 张老师 0571-85000000",
        },
        "smtp": {"from_address": "ldjs@example.org", "from_name": "省总工会劳动竞赛申报"},
    }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return settings_from_dict(raw)


def make_submission(
    *,
    status: SubmissionStatus = SubmissionStatus.ACCEPTED,
    late: bool = False,
    arrived_at: dt.datetime = dt.datetime(2024, 2, 23, 10, 15, 30, tzinfo=ZoneInfo("Asia/Shanghai")),
    from_address: str = "zgh@ningbo.example.cn",
    subject: str = "宁波市总工会报送劳动竞赛项目汇总表",
    message_id: str | None = None,
    pdf: bool = True,
    editable: bool = True,
    problems: Sequence[Problem] = (),
    trust: Trust = Trust.REGISTERED,
) -> Submission:
    """A transient Message + Submission as the pipeline would store it (add it to a session to persist)."""
    from notifications.replies import reply_kind
    from storage.models import FormRowRecord, Message, ProblemRecord, StoredFile

    message = Message(
        account="intake@example.org", folder="INBOX", sha256=uuid.uuid4().hex * 2, size=123_456,
        message_id=message_id or f"<{uuid.uuid4().hex}@ningbo.example.cn>",
        from_name="宁波市总工会 李明", from_address=from_address, subject=subject, arrived_at=arrived_at,
    )
    files = []
    if pdf:
        files.append(StoredFile(name="宁波市总工会竞赛项目汇总表（盖章）.pdf", kind="pdf", sha256="a" * 64, size=812_000, pdf_pages=2, seal=True))
    if editable:
        files.append(StoredFile(name="宁波市总工会竞赛项目汇总表.xlsx", kind="xlsx", sha256="b" * 64, size=24_000))
    form1 = [
        FormRowRecord(form="form1", ordinal=i, cell=f"表一!A{5 + i}", values={
            "competition": c, "project": p, "enterprises": e, "private_enterprises": pe, "workers": w,
            "private_workers": pw, "investment": inv})
        for i, (c, p, e, pe, w, pw, inv) in enumerate(
            [
                ("甬舟铁路建设劳动竞赛", "甬舟铁路金塘海底隧道工程", 12, 5, 3200, 1400, "5.8"),
                ("宁波西枢纽建设劳动竞赛", "宁波西站综合交通枢纽", 8, 3, 1800, 600, "4.2"),
                ("象山湾疏港高速劳动竞赛", "象山湾疏港高速公路昆亭至塘头段", 6, 2, 900, 350, "2.5"),
            ]
        )
    ] if editable else []
    form2 = [
        FormRowRecord(form="form2", ordinal=i, cell=f"表二!A{5 + i}", values={
            "seq": str(i + 1), "competition": c, "organizer": "宁波市总工会", "undertaker": u, "event": ev,
            "prelim": pre, "final": fin, "final_time_place": tp})
        for i, (c, u, ev, pre, fin, tp) in enumerate(
            [
                ("宁波市第十届职业技能大赛", "宁波市职业技能培训中心", "数控车工", 800, 60, "2024年10月 宁波技师学院"),
                ("宁波市职工创新创意大赛", "宁波市科技工作者协会", "创新成果展示", 400, 30, "2024年11月 宁波会展中心"),
            ]
        )
    ] if editable else []
    records = [
        ProblemRecord(code=p.code.value, severity=p.severity.value, message=p.message, file=p.file, cell=p.cell)
        for p in problems
    ]
    return Submission(
        message=message, unit="宁波市总工会", campaign="default", routed_by="form",
        unit_source="sender", trust=trust, status=status, content_status=status, late=late,
        reply=reply_kind(status, late), has_pdf=pdf, has_editable=editable, seal=True if pdf else None,
        files=files, problems=records, rows=[*form1, *form2],
    )
