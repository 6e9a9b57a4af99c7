"""Loop and backscatter protection: which received mails must never be answered."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

import pytest

from intake.mailread import MailView
from notifications.loops import no_reply_reason

OURS = ("ldjs@example.org",)
UNIT = "zgh@ningbo.example.cn"


def received(*, sender: str = UNIT, subject: str = "宁波市总工会报送劳动竞赛项目汇总表", headers: dict | None = None,
             content_type: str | None = None) -> MailView:
    """A mail as the pipeline sees it: serialised, then parsed back."""
    msg = EmailMessage()
    msg["From"] = f"宁波市总工会 <{sender}>"
    msg["To"] = OURS[0]
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content("附件为我单位汇总表，请查收。")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="汇总表.pdf")
    if content_type:
        msg.replace_header("Content-Type", content_type)
    return MailView.from_bytes(msg.as_bytes())


def bounce() -> MailView:
    raw = (
        b"From: MAILER-DAEMON@mx.example.cn\r\nTo: ldjs@example.org\r\nSubject: failure\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe message could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.cn\r\n\r\n"
        b"Final-Recipient: rfc822; x@example.cn\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    return MailView.from_bytes(raw)


def reason(msg: MailView, *, sender: str | None = UNIT, known: bool = True, attachments: bool = True) -> str | None:
    return no_reply_reason(msg, sender=sender, our_addresses=OURS, known_sender=known, has_attachments=attachments)


NO_REPLY_CASES = [
    ("auto_submitted", received(headers={"Auto-Submitted": "auto-replied"})),
    ("auto_submitted", received(headers={"Auto-Submitted": "auto-generated; owner-email=x@y"})),
    ("precedence_bulk", received(headers={"Precedence": "bulk"})),
    ("precedence_junk", received(headers={"Precedence": "Junk"})),
    ("precedence_list", received(headers={"Precedence": "list"})),
    ("list_header", received(headers={"List-Id": "<unions.lists.example.cn>"})),
    ("list_header", received(headers={"List-Unsubscribe": "<mailto:leave@lists.example.cn>"})),
    ("autoresponder_header", received(headers={"X-Auto-Response-Suppress": "OOF, AutoReply"})),
    ("autoresponder_header", received(headers={"X-Autoreply": "yes"})),
    ("autoresponder_header", received(headers={"X-Autorespond": "yes"})),
    ("autoresponder_header", received(headers={"X-Autoreply-From": UNIT})),
    ("x_loop", received(headers={"X-Loop": "ldjs@example.org"})),
    ("empty_return_path", received(headers={"Return-Path": "<>"})),
    ("noreply_sender", received(sender="mailer-daemon@mx.example.cn")),
    ("noreply_sender", received(sender="postmaster@example.cn")),
    ("noreply_sender", received(sender="noreply@service.example.cn")),
    ("noreply_sender", received(sender="no-reply+abc@service.example.cn")),
    ("noreply_sender", received(sender="do-not-reply@service.example.cn")),
    ("bounce", bounce()),
    ("bounce", received(content_type="message/delivery-status")),
    ("auto_reply_subject", received(subject="自动回复：宁波市总工会报送劳动竞赛项目汇总表")),
    ("auto_reply_subject", received(subject="Auto-Reply: 汇总表")),
    ("auto_reply_subject", received(subject="Out of Office: 汇总表")),
    ("auto_reply_subject", received(subject="系统退信")),
    ("auto_reply_subject", received(subject="Undelivered Mail Returned to Sender")),
    ("auto_reply_subject", received(subject="Delivery Status Notification (Failure)")),
    ("own_address", received(sender="ldjs@example.org")),
    ("own_address", received(sender="LDJS@Example.org")),
]


@pytest.mark.parametrize(("expected", "msg"), NO_REPLY_CASES, ids=[f"{e}-{i}" for i, (e, _) in enumerate(NO_REPLY_CASES)])
def test_it_refuses_to_answer_machines_and_loops(expected: str, msg: MailView) -> None:
    sender = email.utils.parseaddr(msg.get("From"))[1]
    assert reason(msg, sender=sender) == expected


def test_it_answers_an_ordinary_submission() -> None:
    assert reason(received()) is None


def test_it_answers_mail_that_says_auto_submitted_no() -> None:
    assert reason(received(headers={"Auto-Submitted": "no"})) is None


def test_it_does_not_answer_an_unknown_sender_without_attachments() -> None:
    assert reason(received(), known=False, attachments=False) == "unknown_sender_no_attachments"


def test_it_answers_an_unknown_sender_who_sent_attachments() -> None:
    assert reason(received(), known=False, attachments=True) is None


def test_it_answers_a_known_sender_without_attachments() -> None:
    # So a unit that forgot its files hears that nothing was attached.
    assert reason(received(), known=True, attachments=False) is None


def test_it_does_not_answer_when_there_is_no_sender_address() -> None:
    assert reason(received(), sender=None) == "no_sender"


def test_it_does_not_mistake_ordinary_chinese_subjects_for_auto_replies() -> None:
    for subject in ("外出务工人员技能竞赛项目报送", "Re: 【需修改】汇总表（已更正）", "关于线程（thread: 3）报送"):
        assert reason(received(subject=subject)) is None, subject


def test_it_reads_an_rfc2047_encoded_auto_reply_subject() -> None:
    raw = (
        b"From: a@ningbo.example.cn\r\nTo: ldjs@example.org\r\n"
        b"Subject: =?gb2312?B?19S2r7vYuLQ=?=\r\n\r\nbody\r\n"  # 自动回复 in GB2312
    )
    assert reason(MailView.from_bytes(raw), sender="a@ningbo.example.cn") == "auto_reply_subject"


def test_it_never_crashes_on_garbled_headers() -> None:
    raw = b"From: \xff\xfe<<>>\r\nAuto-Submitted: \xc3\r\nSubject: =?utf-8?B?####?=\r\nList-Id\r\n\r\nx"
    assert reason(MailView.from_bytes(raw), sender="x@y.cn") == "auto_submitted"
