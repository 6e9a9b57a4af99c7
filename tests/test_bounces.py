"""Delivery status notifications: ignored (reason `bounce`) whatever the returned mail
carries, and a bounce of one of our replies marks that reply for staff."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.board import build_board
from intake.runs import poll_once, unsent_lines
from notifications.digest import attention_groups
from notifications.outbox import outbox_health
from storage.models import OutboxItem, Submission, SubmissionStatus, utcnow
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail
from tests.support.smtp import SmtpSink

ARRIVED = DEADLINE - dt.timedelta(hours=2)
RETURNED = submission_mail(date=ARRIVED)  # a mail carrying the form xlsx and the PDF
STATUS = (b"Reporting-MTA: dns; mx.example.cn\r\n\r\nFinal-Recipient: rfc822; jinan@example.cn\r\n"
          b"Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <jinan@example.cn>: User unknown\r\n")


def report(sender: bytes, returned_type: bytes, returned: bytes, *, report_type: bool = True) -> bytes:
    top = b"multipart/report; report-type=delivery-status" if report_type else b"multipart/mixed"
    status = [b"--R\r\nContent-Type: message/delivery-status\r\n\r\n" + STATUS + b"\r\n"] if report_type else []
    return b"".join([
        b"From: " + sender + b"\r\nTo: intake@example.org\r\nSubject: Undelivered Mail Returned to Sender\r\n",
        b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@mx.example.cn>\r\nMIME-Version: 1.0\r\n",
        b"Content-Type: " + top + b"; boundary=R\r\n\r\n",
        b"--R\r\nContent-Type: text/plain\r\n\r\nThis is the mail system. Your message could not be delivered.\r\n",
        *status,
        b"--R\r\nContent-Type: " + returned_type + b"\r\n\r\n" + returned + b"\r\n--R--\r\n",
    ])


def qmail(returned: bytes) -> bytes:
    body = (b"Hi. This is the qmail-send program at mx.example.cn.\r\nI'm afraid I wasn't able to deliver your message.\r\n\r\n"
            b"--- Below this line is a copy of the message.\r\n\r\n" + returned)
    return (b"From: MAILER-DAEMON@mx.example.cn\r\nTo: intake@example.org\r\nSubject: failure notice\r\n"
            b"Message-ID: <q1@mx.example.cn>\r\n\r\n" + body)


SHAPES = {
    "postfix": report(b"MAILER-DAEMON@mx.example.cn (Mail Delivery System)", b"message/rfc822", RETURNED),
    "exchange": report(b"postmaster@example.cn", b"message/rfc822", RETURNED),
    "exim_no_report_type": report(b"Mail Delivery System <Mailer-Daemon@mx.example.cn>", b"message/rfc822", RETURNED,
                                  report_type=False),
    "headers_only": report(b"MAILER-DAEMON@mx.example.cn", b"text/rfc822-headers", RETURNED.split(b"\r\n\r\n")[0]),
    "qmail": qmail(RETURNED),
}


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"bounces-{uuid.uuid4().hex[:12]}@example.org")


def settings_for(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink):  # noqa: ANN201
    return intake_settings(tmp_path, dovecot=mailbox, smtp={
        "mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
        "from_address": "intake@example.org"})


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_bounce_carrying_a_spreadsheet_is_ignored_as_a_bounce(tmp_path: Path, mailbox: Dovecot,
                                                                 smtp_sink: SmtpSink, shape: str) -> None:
    mailbox.append(SHAPES[shape], ARRIVED)
    with App(settings_for(tmp_path, mailbox, smtp_sink)) as app:
        poll_once(app)
        with app.db.session() as session:
            submission = session.scalars(select(Submission)).one()
            assert (submission.status, submission.reply_suppressed) == (SubmissionStatus.IGNORED, "bounce")
            assert submission.files == [] and submission.problems == []
    assert smtp_sink.attempts == 0


def test_a_bounce_of_our_reply_marks_that_reply_for_staff(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    mailbox.append(submission_mail(date=ARRIVED), ARRIVED)
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            reply = session.scalars(select(OutboxItem)).one()
            reply_id, headers = reply.message_id, reply.raw.split(b"\r\n\r\n")[0]
        assert reply_id.encode() in headers
        mailbox.append(report(b"MAILER-DAEMON@mx.example.cn", b"text/rfc822-headers", headers), ARRIVED)
        poll_once(app)
        with app.db.session() as session:
            reply = session.scalars(select(OutboxItem).where(OutboxItem.message_id == reply_id)).one()
            assert reply.state.value == "sent" and reply.bounced_at is not None
            assert reply.bounce_reason == "smtp; 550 5.1.1 <jinan@example.cn>: User unknown"
            (failed,) = [g for g in attention_groups(session, build_board(session, settings)) if g.key == "failed"]
            assert any("被退信" in item and "User unknown" in item for item in failed.items)
            health = outbox_health(session, settings, utcnow())
            assert [u.to for u in health.bounced_items] == [reply.to_address]
            assert any("被退信" in line for line in unsent_lines(health))
