"""The reply decision and the replies themselves, as a submitter's mail client receives them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from notifications.compose import build_message, enqueue
from notifications.outbox import Outbox
from notifications.replies import queue_reply, reply_kind
from parsers.model import Problem, ProblemCode
from storage.db import Database
from storage.models import OutboxItem, OutboxKind, ReplyKind, Submission, SubmissionStatus
from tests.conftest import make_submission, reply_settings
from tests.support.smtp import SmtpSink

S = SubmissionStatus
XLSX = "宁波市总工会竞赛项目汇总表.xlsx"
EARLIER_ID = "<first.attempt@ningbo.example.cn>"


@pytest.mark.parametrize(
    ("status", "late", "expected"),
    [
        (S.ACCEPTED, False, ReplyKind.RECEIPT),
        (S.INCOMPLETE, False, ReplyKind.INCOMPLETE),
        (S.INVALID, False, ReplyKind.INVALID),
        (S.ACCEPTED, True, ReplyKind.LATE),
        (S.INCOMPLETE, True, ReplyKind.LATE),
        (S.INVALID, True, ReplyKind.LATE),
        (S.IGNORED, False, ReplyKind.NONE),
        (S.IGNORED, True, ReplyKind.NONE),
    ],
)
def test_the_reply_kind_follows_the_one_rule(status: SubmissionStatus, late: bool, expected: ReplyKind) -> None:
    assert reply_kind(status, late) is expected


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database("sqlite:///" + str(tmp_path / "t.db"))
    yield database
    database.dispose()


def original_of(submission: Submission) -> email.message.Message:
    """The submitted mail as the pipeline parsed it (compat32), one earlier mail in its thread."""
    msg = EmailMessage()
    msg["From"] = f"李明 <{submission.message.from_address}>"
    msg["Subject"] = "报送"  # the reply takes the decoded subject stored with the message
    msg["Message-ID"] = submission.message.message_id
    msg["References"] = EARLIER_ID
    msg.set_content("附件为我单位汇总表，请查收。")
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.compat32)


def queue(db: Database, submission: Submission, settings: Settings, **kwargs: object) -> OutboxItem | None:
    with db.session() as session:
        session.add(submission)
        session.flush()
        return queue_reply(session, submission, original=original_of(submission), settings=settings, **kwargs)


def sink_settings(sink: SmtpSink, **smtp: object) -> Settings:
    return reply_settings(smtp={"host": sink.host, "port": sink.port, "security": "none", "mode": "send", **smtp})


CASES = {
    ReplyKind.RECEIPT: (lambda: make_submission(), "【已收到】", "重点工程类 3 项、合计投资 12.5 亿元"),
    ReplyKind.LATE: (lambda: make_submission(late=True), "【逾期】", "办公室将另行研究是否受理"),
    ReplyKind.INCOMPLETE: (
        lambda: make_submission(status=S.INCOMPLETE, pdf=False), "【材料不全】", "缺少加盖公章的扫描版 PDF 文件"
    ),
    ReplyKind.INVALID: (
        lambda: make_submission(
            status=S.INVALID,
            problems=[Problem(ProblemCode.NON_NUMERIC, f"《{XLSX}》表二!F7：预计初赛人数应为数字", XLSX, "表二!F7")],
        ),
        "【需修改】",
        f"《{XLSX}》表二!F7：预计初赛人数应为数字",
    ),
}


@pytest.mark.parametrize("kind", list(CASES), ids=[k.value for k in CASES])
def test_each_reply_kind_arrives_threaded_marked_automatic_and_readable_in_chinese(
    kind: ReplyKind, db: Database, smtp_sink: SmtpSink
) -> None:
    make, prefix, phrase = CASES[kind]
    submission = make()
    settings = sink_settings(smtp_sink)
    item = queue(db, submission, settings)
    assert item is not None and item.reply_kind == kind.value

    assert Outbox(db, settings).send_pending().sent == 1
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["zgh@ningbo.example.cn"] and received.mail_from == "ldjs@example.org"
    reply = email.message_from_bytes(received.data, policy=email.policy.default)

    assert reply["Subject"] == prefix + "宁波市总工会报送劳动竞赛项目汇总表"
    assert b"\r\nSubject: =?utf-8?" in received.data  # RFC 2047, readable by any client
    assert reply["In-Reply-To"] == submission.message.message_id
    assert reply["References"].split() == [EARLIER_ID, submission.message.message_id]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Loop"] == "ldjs@example.org"
    assert reply["Message-ID"].endswith("@example.org>") and reply["Message-ID"] == item.message_id
    assert reply["Date"] is not None
    assert reply["To"].addresses[0].addr_spec == "zgh@ningbo.example.cn"
    assert reply.get_content_type() == "multipart/alternative"
    text = reply.get_body(("plain",))
    html = reply.get_body(("html",))
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert phrase in text.get_content() and phrase in html.get_content()


def test_it_queues_at_most_one_reply_per_submitted_mail(db: Database) -> None:
    settings = reply_settings()
    submission = make_submission()
    assert queue(db, submission, settings) is not None
    with db.session() as session:
        again = session.get(Submission, submission.id)
        assert queue_reply(session, again, original=original_of(again), settings=settings) is None
        assert session.scalar(select(func.count(OutboxItem.id))) == 1


def test_it_queues_nothing_for_a_submission_that_gets_no_reply(db: Database) -> None:
    assert queue(db, make_submission(status=S.IGNORED), reply_settings()) is None


def test_the_daily_cap_stops_the_sixth_reply_to_one_address_within_24_hours(db: Database) -> None:
    settings = reply_settings(smtp={"daily_cap_per_recipient": 5})
    now = dt.datetime.now(dt.UTC)
    items = [queue(db, make_submission(), settings, now=now) for _ in range(5)]
    assert all(items)

    capped = make_submission()
    assert queue(db, capped, settings, now=now) is None
    assert capped.reply_suppressed == "daily_cap"
    # Another unit is not affected, and a day later the first may hear from us again.
    assert queue(db, make_submission(from_address="zgh@wenzhou.example.cn"), settings, now=now) is not None
    assert queue(db, make_submission(), settings, now=now + dt.timedelta(hours=24, minutes=1)) is not None


def test_the_replaced_sentence_reaches_the_submitter(db: Database, smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    older = make_submission(arrived_at=dt.datetime(2024, 2, 20, 7, 2, tzinfo=dt.UTC))
    queue(db, make_submission(), settings, replaces=older)
    Outbox(db, settings).send_pending()
    reply = email.message_from_bytes(smtp_sink.messages[0].data, policy=email.policy.default)
    assert "本次报送将替代您于 2024年2月20日 15:02:00 提交的材料" in reply.get_body(("plain",)).get_content()


def test_a_subject_with_cr_lf_cannot_inject_a_header(db: Database, smtp_sink: SmtpSink) -> None:
    settings = sink_settings(smtp_sink)
    queue(db, make_submission(subject="汇总表\r\nBcc: victim@example.com\r\nX-Evil: 1"), settings)
    Outbox(db, settings).send_pending()
    [received] = smtp_sink.messages
    reply = email.message_from_bytes(received.data, policy=email.policy.default)
    assert received.rcpt_tos == ["zgh@ningbo.example.cn"]
    assert reply["Bcc"] is None and reply["X-Evil"] is None
    assert reply["Subject"] == "【已收到】汇总表 Bcc: victim@example.com X-Evil: 1"


def test_attachments_keep_chinese_filenames_and_cannot_inject_headers() -> None:
    msg = build_message(
        from_address="ldjs@example.org", from_name="省总工会劳动竞赛申报", to="staff@example.org", subject="每日汇总",
        text="见附件", html="<p>见附件</p>",
        attachments=[("竞赛项目汇总（2月23日）.xlsx", "application/vnd.ms-excel", b"data"), ("a\r\nX-Evil: 1.pdf", "application/pdf", b"%PDF")],
    )
    raw = msg.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    names = [part.get_filename() for part in parsed.iter_attachments()]
    assert names == ["竞赛项目汇总（2月23日）.xlsx", "a X-Evil: 1.pdf"]
    assert re.search(rb"filename\*(0\*)?=utf-8''%E7%AB%9E", raw)  # RFC 2231, continued when long
    assert b"\nX-Evil" not in raw


def test_the_outbox_key_is_unique_on_every_engine(database_url: str) -> None:
    db = Database(database_url)
    try:
        message = build_message(from_address="ldjs@example.org", from_name="", to="a@b.cn", subject="x", text="x", html="x")
        with db.session() as session:
            first = enqueue(session, kind=OutboxKind.DIGEST, dedupe_key="digest:2024-02-20", message=message)
            second = enqueue(session, kind=OutboxKind.DIGEST, dedupe_key="digest:2024-02-20", message=message)
            assert first is not None and first.to_address == "a@b.cn" and second is None
            assert session.scalar(select(func.count(OutboxItem.id))) == 1
    finally:
        db.dispose()
