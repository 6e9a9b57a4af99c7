"""Replies through the whole path: Dovecot in, the pipeline, SMTP out to a real sink."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.runs import poll_once
from intake.samples import form_workbook, mime_message
from tests.support.campaigns import FORM1
from storage.models import Message, OutboxItem, OutboxState, Submission, SubmissionStatus
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, stamped_pdf, submission_mail
from tests.support.smtp import SmtpSink

JINAN = ("济南市总工会", "jinan@example.cn")


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"replies-{uuid.uuid4().hex[:12]}@example.org")


def settings_for(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink):  # noqa: ANN201
    return intake_settings(
        tmp_path, dovecot=mailbox, mailbox={"sent_folder": "已发送"},
        smtp={"mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
              "from_address": "szscbhb@example.org", "from_name": "省总工会劳动竞赛"},
    )


def parsed(received) -> email.message.EmailMessage:  # noqa: ANN001
    return email.message_from_bytes(received.data, policy=email.policy.default)


def text_of(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_each_reply_kind_arrives_threaded_under_the_mail_in_chinese(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    before = DEADLINE - dt.timedelta(hours=3)
    bad = form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会",
                        [("港口建设劳动竞赛", "港口扩建工程", 5, 9, "约300", 100, Decimal("3.2"))])
    mails = {
        "receipt": submission_mail(subject="按时报送", date=before),
        "late": submission_mail(subject="逾期报送", date=DEADLINE + dt.timedelta(minutes=5)),
        "incomplete": mime_message(sender=JINAN, subject="只有表格", body="请查收", date=before,
                                   attachments=[("附件1.xlsx", form_workbook(FORM1, "表", "济南市总工会"))]),
        "invalid": mime_message(sender=JINAN, subject="有错的表", body="请查收", date=before,
                                attachments=[("附件1.xlsx", bad), ("盖章.pdf", stamped_pdf())]),
    }
    arrivals = {"late": DEADLINE + dt.timedelta(minutes=5)}
    for kind, raw in mails.items():
        mailbox.append(raw, arrivals.get(kind, before))
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        poll_once(app)

    replies = {parsed(r)["In-Reply-To"]: parsed(r) for r in smtp_sink.wait_for(4)}
    originals = {kind: email.message_from_bytes(raw)["Message-ID"] for kind, raw in mails.items()}
    assert set(replies) == set(originals.values())
    prefixes = {"receipt": "【已收到】", "late": "【逾期】", "incomplete": "【材料不全】", "invalid": "【需修改】"}
    for kind, message_id in originals.items():
        reply = replies[message_id]
        assert reply["Subject"].startswith(prefixes[kind])
        assert reply["Auto-Submitted"] == "auto-replied"
        assert message_id in reply["References"]
        assert reply["Message-ID"] and reply["Message-ID"] != message_id
        assert reply.get_content_type() == "multipart/alternative"
        assert reply.get_body(preferencelist=("html",)) is not None
    assert "17:00:00" in text_of(replies[originals["late"]])
    assert "PDF" in text_of(replies[originals["incomplete"]])
    invalid_text = text_of(replies[originals["invalid"]])
    assert "附件1!E4" in invalid_text and "约300" in invalid_text and "附件1!D4" in invalid_text
    assert len(mailbox.fetch_raw("已发送")) == 4  # 163.com keeps no copy of SMTP mail: we do


NO_REPLY_CASES = {
    "auto_submitted": {"Auto-Submitted": "auto-replied"},
    "precedence_bulk": {"Precedence": "bulk"},
    "list_header": {"List-Id": "<news.example.cn>"},
    "x_autoreply": {"X-Autoreply": "yes"},
    "auto_response_suppress": {"X-Auto-Response-Suppress": "All"},
    "empty_return_path": {"Return-Path": "<>"},
    "x_loop": {"X-Loop": "szscbhb@example.org"},
}


@pytest.mark.parametrize("case", sorted(NO_REPLY_CASES))
def test_automatic_mail_gets_no_reply(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, case: str) -> None:
    raw = mime_message(sender=JINAN, subject="自动回复：收到", body="我不在办公室", attachments=[],
                       date=DEADLINE - dt.timedelta(hours=1), extra_headers=NO_REPLY_CASES[case])
    mailbox.append(raw, DEADLINE - dt.timedelta(hours=1))
    with App(settings_for(tmp_path, mailbox, smtp_sink)) as app:
        poll_once(app)
        with app.db.session() as session:
            (submission,) = session.scalars(select(Submission)).all()
            assert submission.status is SubmissionStatus.IGNORED
            assert session.scalars(select(OutboxItem)).all() == []
    assert smtp_sink.messages == [] and smtp_sink.attempts == 0


def test_a_bounce_gets_no_reply(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    bounce = (
        b"From: MAILER-DAEMON@example.cn\r\nTo: szscbhb@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <bounce-1@example.cn>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n"
        b"--R\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--R\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n\r\n--R--\r\n"
    )
    mailbox.append(bounce, DEADLINE - dt.timedelta(hours=1))
    with App(settings_for(tmp_path, mailbox, smtp_sink)) as app:
        poll_once(app)
    assert smtp_sink.attempts == 0


def test_mail_from_our_own_address_gets_no_reply(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    raw = submission_mail(sender=("省总工会劳动竞赛", "szscbhb@example.org"))
    mailbox.append(raw, DEADLINE - dt.timedelta(hours=1))
    with App(settings_for(tmp_path, mailbox, smtp_sink)) as app:
        poll_once(app)
    assert smtp_sink.attempts == 0


def test_an_unknown_sender_without_attachments_gets_no_reply(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    raw = mime_message(sender=("推销", "sales@spam.example"), subject="优惠", body="广告", attachments=[],
                       date=DEADLINE - dt.timedelta(hours=1))
    mailbox.append(raw, DEADLINE - dt.timedelta(hours=1))
    with App(settings_for(tmp_path, mailbox, smtp_sink)) as app:
        poll_once(app)
        with app.db.session() as session:
            assert session.scalars(select(Message)).one().state.value == "processed"
    assert smtp_sink.attempts == 0


def test_a_poll_run_twice_sends_nothing_twice(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    for hours in (3, 2):
        mailbox.append(submission_mail(subject=f"报送{hours}"), DEADLINE - dt.timedelta(hours=hours))
    with App(settings_for(tmp_path, mailbox, smtp_sink)) as app:
        poll_once(app)
        poll_once(app)
        from intake.runs import reprocess_messages

        reprocess_messages(app)
        poll_once(app)
    assert len(smtp_sink.messages) == 2


def test_smtp_down_then_up_delivers_each_reply_exactly_once(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    for hours in (3, 2, 1):
        mailbox.append(submission_mail(subject=f"报送{hours}"), DEADLINE - dt.timedelta(hours=hours))
    smtp_sink.stop()
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            rows = session.scalars(select(OutboxItem)).all()
            assert [r.state for r in rows] == [OutboxState.PENDING] * 3
            assert all(r.last_error for r in rows[:1])
        smtp_sink.start()
        from notifications.outbox import Outbox

        # The retry is due later; ask as if that time had come.
        Outbox(app.db, settings).send_pending(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
        Outbox(app.db, settings).send_pending(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=4))
    assert sorted(parsed(m)["In-Reply-To"] for m in smtp_sink.messages) == sorted(
        email.message_from_bytes(raw)["Message-ID"] for raw in mailbox.fetch_raw("INBOX")
    )
