"""The mailbox path end to end against a real Dovecot on loopback."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from intake.app import App
from intake.runs import poll_once
from intake.samples import forwarded, gbk_zip, mime_message
from storage.models import Message, MessageState, OutboxItem, Submission, SubmissionStatus
from tests.support.dovecot import Dovecot
from tests.support.imap_proxy import ImapProxy
from tests.support.intake_env import DEADLINE, form2_workbook, intake_settings, stamped_pdf, submission_mail


@pytest.fixture
def mailserver() -> Iterator[Dovecot]:
    server = Dovecot().start()
    yield server
    server.cleanup()


@pytest.fixture
def app(tmp_path: Path, mailserver: Dovecot) -> Iterator[App]:
    with App(intake_settings(tmp_path, dovecot=mailserver)) as application:
        yield application


def messages(app: App) -> list[Message]:
    with app.db.session() as session:
        return list(session.scalars(select(Message).order_by(Message.uid)))


def submissions(app: App) -> list[Submission]:
    with app.db.session() as session:
        rows = session.scalars(select(Submission).order_by(Submission.id)).all()
        for row in rows:
            _ = row.message, row.files, row.problems
        return list(rows)


T = TypeVar("T")


def with_bodies(server: Dovecot, action: Callable[[], T]) -> tuple[T, int]:
    """`action`'s (a poll's) result and the body_count of the IMAP session it logged out."""
    before = len(server.session_body_counts())
    result = action()
    return result, server.wait_for_logouts(before + 1)[-1]


def test_first_poll_records_every_message_with_its_arrival_time(app: App, mailserver: Dovecot) -> None:
    arrivals = [DEADLINE - dt.timedelta(hours=h) for h in (30, 20, 10)]
    for when in arrivals:
        mailserver.append(submission_mail(date=when), when)

    report = poll_once(app)

    rows = messages(app)
    assert report.new == 3
    assert [m.arrived_at for m in rows] == arrivals
    assert all(m.state is MessageState.PROCESSED for m in rows)
    assert all(app.archive.exists("mail", m.sha256) for m in rows)
    assert {m.from_address for m in rows} == {"jinan@example.cn"}
    assert rows[0].subject == "济南市总工会竞赛项目申报"


def test_second_poll_fetches_no_message_bodies(app: App, mailserver: Dovecot) -> None:
    for hours in (3, 2, 1):
        mailserver.append(submission_mail(), DEADLINE - dt.timedelta(hours=hours))
    assert with_bodies(mailserver, lambda: poll_once(app))[1] == 3

    report, bodies = with_bodies(mailserver, lambda: poll_once(app))

    assert report.seen == 0 and report.new == 0
    assert bodies == 0


def test_a_poll_with_nothing_new_starts_no_parser_process(app: App, mailserver: Dovecot) -> None:
    report = poll_once(app)

    assert report.seen == 0
    assert app.worker_pids() == []  # a parser process costs a second of imports: only for mail


def test_parser_processes_started_ahead_are_the_ones_that_read_the_mail(app: App, mailserver: Dovecot) -> None:
    app.start_parsers()
    started = app.worker_pids()
    app.start_parsers()  # already running: nothing more is started
    assert len(started) == app.parse_slots and app.worker_pids() == started
    mailserver.append(submission_mail(), DEADLINE - dt.timedelta(hours=5))

    poll_once(app)

    assert messages(app)[0].state is MessageState.PROCESSED
    assert sorted(app.worker_pids()) == sorted(started)


def test_a_message_that_arrives_after_a_poll_is_fetched_alone(app: App, mailserver: Dovecot) -> None:
    mailserver.append(submission_mail(), DEADLINE - dt.timedelta(hours=5))
    poll_once(app)
    mailserver.append(submission_mail(subject="第二封"), DEADLINE - dt.timedelta(hours=1))

    report, bodies = with_bodies(mailserver, lambda: poll_once(app))

    assert report.seen == 1 and report.new == 1
    assert bodies == 1
    assert [m.subject for m in messages(app)][-1] == "第二封"


def test_fetching_never_marks_mail_as_read(app: App, mailserver: Dovecot) -> None:
    mailserver.append(submission_mail(), DEADLINE - dt.timedelta(hours=5))
    poll_once(app)
    assert all(b"\\Seen" not in flags for flags in mailserver.flags().values())


def test_a_uidvalidity_change_rescans_without_importing_anything_twice(app: App, mailserver: Dovecot) -> None:
    for hours in (3, 2):
        mailserver.append(submission_mail(subject=f"第{hours}封"), DEADLINE - dt.timedelta(hours=hours))
    poll_once(app)
    mailserver.set_uidvalidity(4242)
    mailserver.append(submission_mail(subject="新邮件"), DEADLINE - dt.timedelta(hours=1))

    report = poll_once(app)

    rows = messages(app)
    assert report.uidvalidity_changed
    assert len(rows) == 3 and report.new == 1
    assert {m.uidvalidity for m in rows} == {4242}
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxItem)) == 3
    assert poll_once(app).seen == 0


def test_the_same_mail_twice_is_recorded_as_a_duplicate_and_answered_once(app: App, mailserver: Dovecot) -> None:
    raw = submission_mail()
    mailserver.append(raw, DEADLINE - dt.timedelta(hours=2))
    mailserver.append(raw, DEADLINE - dt.timedelta(hours=1))

    poll_once(app)

    rows = messages(app)
    assert [m.state for m in rows] == [MessageState.PROCESSED, MessageState.DUPLICATE]
    assert rows[1].duplicate_of_id == rows[0].id
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxItem)) == 1


def test_a_reused_message_id_with_other_content_is_a_new_submission(app: App, mailserver: Dovecot) -> None:
    first = submission_mail(subject="第一次", extra_headers=None)
    second = first.replace("第一次".encode("gb18030"), "第二次".encode("gb18030"))
    second = re.sub(rb"Subject: [^\r\n]+", b"Subject: second", second)
    mailserver.append(first, DEADLINE - dt.timedelta(hours=2))
    mailserver.append(second, DEADLINE - dt.timedelta(hours=1))

    poll_once(app)

    rows = messages(app)
    assert rows[0].message_id == rows[1].message_id
    assert [m.state for m in rows] == [MessageState.PROCESSED, MessageState.PROCESSED]


@pytest.mark.parametrize("style", ["rfc2047", "rfc2231", "gbk8bit"])
def test_chinese_filenames_are_decoded_as_each_client_sends_them(app: App, mailserver: Dovecot, style: str) -> None:
    names = ("附件1-竞赛项目汇总表（重点工程类）镕.xlsx", "济南市总工会盖章件.pdf")
    if style == "gbk8bit":  # 镕 is outside GBK's reach in the raw form clients use; keep it GB2312-safe
        names = ("附件1-竞赛项目汇总表（重点工程类）.xlsx", "济南市总工会盖章件.pdf")
    mailserver.append(submission_mail(style=style, names=names), DEADLINE - dt.timedelta(hours=1))

    poll_once(app)

    (submission,) = submissions(app)
    assert [f.name for f in submission.files] == list(names)
    assert [f.kind for f in submission.files] == ["xlsx", "pdf"]


def test_attachments_inside_a_forwarded_message_are_read(app: App, mailserver: Dovecot) -> None:
    inner = submission_mail(sender=("省直机关工会", "szjg@example.cn"), unit="山东省直机关工会")
    outer = forwarded(inner, sender=("省直机关工会", "szjg@example.cn"), subject="转发：竞赛项目",
                      date=DEADLINE - dt.timedelta(hours=1))
    mailserver.append(outer, DEADLINE - dt.timedelta(hours=1))

    poll_once(app)

    (submission,) = submissions(app)
    assert sorted(f.kind for f in submission.files) == ["pdf", "xlsx"]
    assert submission.unit == "山东省直机关工会"


def test_a_zip_with_gbk_member_names_is_unpacked(app: App, mailserver: Dovecot) -> None:
    archive = gbk_zip({"青岛/附件2技术技能类.xlsx": form2_workbook("青岛市总工会"), "青岛/盖章扫描件.pdf": stamped_pdf()})
    raw = mime_message(sender=("青岛市总工会", "qingdao@example.cn"), subject="青岛报送", body="请查收",
                       attachments=[("青岛市报送材料.zip", archive)], date=DEADLINE - dt.timedelta(hours=1))
    mailserver.append(raw, DEADLINE - dt.timedelta(hours=1))

    poll_once(app)

    (submission,) = submissions(app)
    assert [(f.name, f.kind) for f in submission.files] == [
        ("青岛市报送材料.zip", "zip"), ("附件2技术技能类.xlsx", "xlsx"), ("盖章扫描件.pdf", "pdf")]
    assert [f.parent for f in submission.files] == [None, "青岛市报送材料.zip", "青岛市报送材料.zip"]
    assert submission.has_pdf and submission.has_editable


def test_arrival_at_16_59_59_is_on_time_and_at_17_00_01_is_late(app: App, mailserver: Dovecot) -> None:
    on_time, late = DEADLINE - dt.timedelta(seconds=1), DEADLINE + dt.timedelta(seconds=1)
    # The Date header claims the opposite each time: it is recorded, never decisive.
    mailserver.append(submission_mail(subject="按时", date=late), on_time)
    mailserver.append(submission_mail(subject="逾期", date=on_time), late)

    poll_once(app)

    by_subject = {s.message.subject: s for s in submissions(app)}
    assert by_subject["按时"].late is False
    assert by_subject["逾期"].late is True
    assert by_subject["逾期"].reply.value == "late"


def test_id_is_sent_after_login_and_before_select(tmp_path: Path, mailserver: Dovecot) -> None:
    proxy = ImapProxy((mailserver.host, mailserver.port)).start()
    try:
        settings = intake_settings(tmp_path, dovecot=mailserver, mailbox={"port": proxy.port})
        with App(settings) as app:
            poll_once(app)
        commands = proxy.commands()
    finally:
        proxy.stop()
    assert commands.index("LOGIN") < commands.index("ID") < commands.index("SELECT")
    assert "ID sent: name=intake" in mailserver.log_text()


def test_a_message_without_attachments_is_recorded_so_it_is_never_fetched_again(app: App, mailserver: Dovecot) -> None:
    raw = mime_message(sender=("济南市总工会", "jinan@example.cn"), subject="请问竞赛项目截止时间？", body="请问截止时间是哪天？",
                       attachments=[], date=DEADLINE - dt.timedelta(days=3))
    mailserver.append(raw, DEADLINE - dt.timedelta(days=3))

    poll_once(app)
    second = poll_once(app)

    (submission,) = submissions(app)
    assert submission.status is SubmissionStatus.INCOMPLETE
    assert [p.code for p in submission.problems] == ["no_attachments"]
    assert second.seen == 0


def test_processed_mail_is_moved_only_after_it_is_committed(tmp_path: Path, mailserver: Dovecot) -> None:
    mailserver.append(submission_mail(), DEADLINE - dt.timedelta(hours=1))
    settings = intake_settings(tmp_path, dovecot=mailserver, mailbox={"processed_folder": "已处理"})
    with App(settings) as app:
        report = poll_once(app)
        assert report.moved == 1
        assert all(m.moved for m in messages(app))
    assert mailserver.uids("INBOX") == []
    assert len(mailserver.uids("已处理")) == 1


def test_a_message_that_cannot_be_processed_is_quarantined_and_the_next_one_is_not_blocked(
    app: App, mailserver: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intake.pipeline as pipeline

    real = pipeline.no_reply_reason

    def explode_on_poison(mail, **options: object):  # noqa: ANN001, ANN202 - fault injected at the edge
        if mail.get("X-Test") == "POISON":
            raise RuntimeError("simulated bug")
        return real(mail, **options)

    monkeypatch.setattr(pipeline, "no_reply_reason", explode_on_poison)
    mailserver.append(submission_mail(extra_headers={"X-Test": "POISON"}), DEADLINE - dt.timedelta(hours=2))
    mailserver.append(submission_mail(), DEADLINE - dt.timedelta(hours=1))

    poll_once(app)

    first, second = messages(app)
    assert first.state is MessageState.QUARANTINED and "simulated bug" in first.error
    assert second.state is MessageState.PROCESSED
