"""Attacks on who sent a mail, end to end: a real Dovecot in, the pipeline, a real SMTP sink out.

Each mail is written by hand the way an attacker would write it, appended to the real
mailbox and picked up by one poll.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.mime import MAX_ENCODED_WORDS, parse_headers
from intake.runs import poll_once
from intake.samples import mime_message
from storage.models import Message, MessageState, OutboxItem
from tests.support.dovecot import Dovecot
from tests.support.hostile import form1_xlsx
from tests.support.intake_env import DEADLINE, intake_settings, stamped_pdf, submission_mail
from tests.support.smtp import SmtpSink

JINAN = "jinan@example.cn"  # 济南市总工会's registered address in tests.support.intake_env.UNITS
ARRIVED = DEADLINE - dt.timedelta(hours=2)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"sender-{uuid.uuid4().hex[:12]}@example.org")


def poll(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, **sections: dict) -> tuple[list[Message], list[str]]:
    """One poll with 济南市总工会 registered as jinan@example.cn; the messages and whom the outbox addresses."""
    settings = intake_settings(
        tmp_path, dovecot=mailbox,
        smtp={"mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
              "from_address": "szscbhb@example.org"},
        **sections,
    )
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            rows = list(session.scalars(select(Message).order_by(Message.uid)))
            for row in rows:
                _ = row.submission and row.submission.problems
            outbox = list(session.scalars(select(OutboxItem.to_address)))
    return rows, outbox


def replaced(raw: bytes, name: bytes, line: bytes) -> bytes:
    """raw with its top-level header `name` (one line) replaced by line."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [line if old.startswith(name + b": ") else old for old in head.split(b"\r\n")]
    return b"\r\n".join(lines) + sep + body


def from_jinan(from_line: bytes) -> bytes:
    """A complete submission in 济南市总工会's name whose From line is replaced by from_line."""
    raw = mime_message(sender=("济南市总工会", JINAN), subject="济南市总工会竞赛项目申报", body="请查收。",
                       attachments=[("汇总表.xlsx", form1_xlsx()), ("盖章.pdf", stamped_pdf())],
                       date=ARRIVED, authenticated=False)
    return replaced(raw, b"From", from_line)


def test_an_encoded_word_spelling_a_units_address_neither_matches_nor_reaches_that_unit(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    mailbox.append(from_jinan(b"From: =?utf-8?q?jinan=40example=2Ecn?= <attacker@evil.example>"), ARRIVED)

    (message,), outbox = poll(tmp_path, mailbox, smtp_sink)

    assert message.from_address == "attacker@evil.example"
    assert outbox == ["attacker@evil.example"]
    assert message.submission.unit_source != "sender"
    assert [received.rcpt_tos for received in smtp_sink.messages] == [["attacker@evil.example"]]


def test_two_from_addresses_leave_the_mail_unanswered_and_unmatched_by_sender(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    mailbox.append(from_jinan(b"From: " + JINAN.encode() + b", attacker@evil.example"), ARRIVED)

    (message,), outbox = poll(tmp_path, mailbox, smtp_sink)

    assert message.from_address is None
    assert outbox == []
    assert message.submission.unit_source != "sender"
    assert smtp_sink.messages == []


def test_a_trusted_dmarc_pass_without_header_from_does_not_verify_the_sender(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    raw = submission_mail(extra_headers={"Authentication-Results": "mx.example.org; dmarc=pass (p=none)"})
    mailbox.append(raw, ARRIVED)

    (message,), _ = poll(tmp_path, mailbox, smtp_sink, authenticity={"trusted_authserv_ids": ["mx.example.org"]})

    assert message.auth_results["dmarc"] == "pass"
    assert message.auth_results["verified"] is False


def test_a_three_megabyte_subject_of_encoded_words_is_read_with_bounded_work(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    word = b"=?utf-8?b?" + base64.b64encode("长".encode()) + b"?="
    subject = b" ".join([word] * (3 * 1024 * 1024 // (len(word) + 1)))  # one line, as the attack sent it
    bomb = replaced(submission_mail(), b"Subject", b"Subject: " + subject)
    mailbox.append(bomb, ARRIVED)
    mailbox.append(submission_mail(subject="济南市总工会竞赛项目申报"), ARRIVED)

    (bombed, normal), _ = poll(tmp_path, mailbox, smtp_sink)

    assert parse_headers(bomb).subject == "长" * MAX_ENCODED_WORDS
    assert (bombed.state, normal.state) == (MessageState.PROCESSED, MessageState.PROCESSED)
    assert bombed.subject == "长" * 2000
    assert normal.subject == "济南市总工会竞赛项目申报"
