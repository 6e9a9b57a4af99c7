"""The five decoding and loop defects found in real mail, each as a raw mail shaped like
the real one; replies and submissions through a real Dovecot and SMTP sink."""

from __future__ import annotations

import base64
import email
import email.policy
import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.mailread import MailView
from intake.mime import decode_header_value
from intake.pipeline import Location, ingest
from intake.runs import poll_once
from storage.models import Message, MessageState, OutboxItem, Submission, SubmissionStatus
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail
from tests.support.smtp import SmtpSink

ARRIVED = DEADLINE - dt.timedelta(hours=2)


def gb_word(text: str) -> str:
    return "=?gb2312?B?" + base64.b64encode(text.encode("gbk")).decode() + "?="


# (a) raw 8-bit text next to or inside an encoded word

def test_raw_gbk_before_an_encoded_word_is_text_not_escapes() -> None:
    raw_header = ("回复：".encode("gbk") + b" " + gb_word("竞赛项目申报").encode()).decode("utf-8", "surrogateescape")
    assert decode_header_value(raw_header) == "回复： 竞赛项目申报"


def test_a_gbk_name_inside_a_q_word_keeps_its_characters() -> None:
    raw = (b"From: a@example.cn\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/octet-stream\r\n"
           b'Content-Disposition: attachment; filename="=?gb2312?Q?' + "汇总表".encode("gbk") + b'.xlsx?="\r\n\r\nPK\r\n--B--\r\n')
    assert [a.name for a in MailView.from_bytes(raw).attachments] == ["汇总表.xlsx"]


def test_adjacent_words_splitting_one_character_are_joined() -> None:
    data = "竞赛".encode()
    words = [f"=?utf-8?B?{base64.b64encode(part).decode()}?=" for part in (data[:2], data[2:])]
    assert decode_header_value(" ".join(words)) == "竞赛"


# (b) raw UTF-8 cut inside its last character; raw Latin-1

def _named(raw_name: bytes) -> str:
    raw = (b"From: a@example.cn\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\""
           + raw_name + b"\"\r\n\r\nPK\r\n--B--\r\n")
    (attachment,) = MailView.from_bytes(raw).attachments
    return attachment.name


def test_a_utf8_name_cut_inside_its_last_character_is_utf8() -> None:
    assert _named("Картинка".encode()[:-1]) == "Картинк"


def test_a_latin1_name_is_not_read_as_gbk() -> None:
    assert _named("Frösche.xlsx".encode("latin-1")) == "Frösche.xlsx"


def test_a_gbk_name_with_a_character_outside_gb2312_stays_gbk() -> None:
    assert _named("朱镕基工会报送表.xlsx".encode("gbk")) == "朱镕基工会报送表.xlsx"


# Through Dovecot: replies and submissions

@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"decoding-{uuid.uuid4().hex[:12]}@example.org")


def run(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, *raws: bytes) -> App:
    for raw in raws:
        mailbox.append(raw, ARRIVED)
    settings = intake_settings(tmp_path, dovecot=mailbox, smtp={
        "mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
        "from_address": "intake@example.org"})
    app = App(settings)
    with app:
        poll_once(app)
    return app


def test_a_reply_to_a_mixed_subject_quotes_it_decoded(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    raw = submission_mail(date=ARRIVED)
    head, body = raw.split(b"\r\n\r\n", 1)
    subject = b"Subject: " + "回复：".encode("gbk") + b" " + gb_word("济南市总工会竞赛项目申报").encode()
    head = b"\r\n".join(subject if line.startswith(b"Subject:") else line for line in head.split(b"\r\n"))
    app = run(tmp_path, mailbox, smtp_sink, head + b"\r\n\r\n" + body)
    with app.db.session() as session:
        assert session.scalars(select(Message)).one().subject == "回复： 济南市总工会竞赛项目申报"
    (reply,) = smtp_sink.wait_for(1)
    subject = email.message_from_bytes(reply.data, policy=email.policy.default)["Subject"]
    assert subject == "【已收到】回复： 济南市总工会竞赛项目申报" and "\\u" not in subject


LIST_MAIL = {
    "ezmlm": {"Mailing-List": "contact unions-help@lists.example.cn; run by ezmlm",
              "Delivered-To": "mailing list unions@lists.example.cn"},
    "listserv": {"Sender": "owner-unions-l@listserv.example.cn"},
    "majordomo": {"Return-Path": "<owner-unions@lists.example.cn>"},
}


@pytest.mark.parametrize("shape", sorted(LIST_MAIL))
def test_list_mail_without_list_headers_gets_no_reply(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink,
                                                      shape: str) -> None:
    app = run(tmp_path, mailbox, smtp_sink, submission_mail(date=ARRIVED, extra_headers=LIST_MAIL[shape]))
    with app.db.session() as session:
        assert session.scalars(select(Submission)).one().reply_suppressed == "list_header"
        assert session.scalars(select(OutboxItem)).all() == []
    assert smtp_sink.attempts == 0


def test_lost_boundary_from_a_stranger_without_attachments_is_not_answered(
        tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    raw = (b"From: sales@spam.example\r\nTo: intake@example.org\r\nSubject: hello\r\nMessage-ID: <lost-1@spam.example>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"never-used\"\r\n\r\n"
           b"Just text, no parts at all.\r\n")
    app = run(tmp_path, mailbox, smtp_sink, raw)
    with app.db.session() as session:
        submission = session.scalars(select(Submission)).one()
        assert (submission.status, submission.reply_suppressed) == (SubmissionStatus.IGNORED, "unknown_sender_no_attachments")
    assert smtp_sink.attempts == 0


def test_one_mail_delivered_twice_by_two_routes_is_one_submission_and_one_reply(
        tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    raw = submission_mail(date=ARRIVED)
    first = b"Received: from mx1.example.cn by mail.example.org; Sat, 24 Feb 2024 10:00:00 +0800\r\n" + raw
    second = b"Received: from mx2.relay.example.net by mail.example.org; Sat, 24 Feb 2024 10:00:03 +0800\r\n" + raw
    app = run(tmp_path, mailbox, smtp_sink, first, second)
    with app.db.session() as session:
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        assert [m.state for m in messages] == [MessageState.PROCESSED, MessageState.DUPLICATE]
        assert messages[1].duplicate_of_id == messages[0].id
        assert session.scalars(select(Submission)).one().status is SubmissionStatus.ACCEPTED
        assert len(session.scalars(select(OutboxItem)).all()) == 1
    assert len(smtp_sink.wait_for(1)) == 1


def test_a_quarantined_mails_traceback_is_logged_once_and_trimmed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def ping(depth: int) -> None:
        pong(depth + 1)

    def pong(depth: int) -> None:  # alternating frames: Python cannot fold them
        ping(depth + 1)

    with App(intake_settings(tmp_path)) as app:
        app.read_mail = lambda *args, **kwargs: ping(0)
        with caplog.at_level(logging.ERROR, logger="intake.pipeline"):
            ingest(app, submission_mail(date=ARRIVED), ARRIVED, Location("test", "INBOX", 1, 1))
        with app.db.session() as session:
            error = session.scalars(select(Message)).one().error
    records = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(records) == 1
    logged = caplog.handler.format(records[0])
    assert logged.count("Traceback (most recent call last)") == 1
    assert len(logged.splitlines()) < 60 and error.startswith("RecursionError")
