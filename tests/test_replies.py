"""The reply decision and the replies themselves, as a submitter's mail client receives them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from intake.mailread import MailView
from notifications.compose import build_message, enqueue
from notifications.outbox import Outbox
from notifications.replies import MAX_REPLY_BYTES, queue_reply, reply_form, reply_kind
from parsers.model import Problem, ProblemCode
from storage.db import Database
from storage.models import OutboxItem, OutboxKind, ReplyForm, ReplyKind, StoredFile, Submission, SubmissionStatus, Trust
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


def original_of(submission: Submission, references: str = EARLIER_ID) -> MailView:
    """The submitted mail as the pipeline parsed it, one earlier mail in its thread."""
    raw = (
        f"From: 李明 <{submission.message.from_address}>\r\n"
        "Subject: 报送\r\n"  # the reply takes the decoded subject stored with the message
        f"Message-ID: {submission.message.message_id}\r\n"
        f"References: {references}\r\n"  # as sent, however long: the reply must cut it
        "Content-Type: text/plain; charset=utf-8\r\n\r\n附件为我单位汇总表，请查收。\r\n"
    )
    return MailView.from_bytes(raw.encode())


def queue(db: Database, submission: Submission, settings: Settings, **kwargs: object) -> OutboxItem | None:
    with db.session() as session:
        session.add(submission)
        session.flush()
        new_id = queue_reply(session, submission, original=original_of(submission), settings=settings, **kwargs)
        return None if new_id is None else session.get(OutboxItem, new_id)


def sink_settings(sink: SmtpSink, **smtp: object) -> Settings:
    return reply_settings(smtp={"host": sink.host, "port": sink.port, "security": "none", "mode": "send", **smtp})


CASES = {
    ReplyKind.RECEIPT: (lambda: make_submission(), "【已收到】", "重点工程类 3 项、预计参赛企业 26 家、预计参赛非公企业 10 家、预计参赛职工 5900 人、预计参赛非公企业职工 2350 人、年度投资总额 12.5 亿元"),
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


# --- the reply form: a full reply only to a unit's registered address -------------------

FAILED_AUTH = {"verified": False, "spf": "fail", "dkim": None, "dmarc": "fail"}
PASSED_AUTH = {"verified": True, "spf": "pass", "dkim": "pass", "dmarc": "pass"}
MARKER = "EVIL-TEXT-7f3a"


@pytest.mark.parametrize(
    ("trust", "auth", "expected"),
    [
        (Trust.VERIFIED, PASSED_AUTH, ReplyForm.FULL),
        (Trust.REGISTERED, None, ReplyForm.FULL),
        (Trust.REGISTERED, {"verified": None}, ReplyForm.FULL),
        (Trust.REGISTERED, FAILED_AUTH, ReplyForm.SHORT),  # a forged From, however it was classed
        (Trust.CLAIMED, None, ReplyForm.SHORT),
        (Trust.CLAIMED, FAILED_AUTH, ReplyForm.SHORT),
        (Trust.UNKNOWN, None, ReplyForm.SHORT),
        (None, None, ReplyForm.SHORT),  # not decided is not trusted
    ],
)
def test_the_reply_form_follows_the_one_rule(trust: Trust | None, auth: dict | None, expected: ReplyForm) -> None:
    submission = make_submission(trust=trust)
    submission.message.auth_results = auth
    assert reply_form(submission) is expected


def stranger_submission(**kwargs: object) -> Submission:
    """A mail whose every sender-written field carries MARKER, from an address that is no unit's."""
    file_name = f"{MARKER}-汇总表.xlsx"
    submission = make_submission(
        status=S.INVALID,
        from_address=kwargs.pop("from_address", "someone@stranger.example"),
        subject=f"{MARKER} 请查收 http://phish.example/{MARKER}",
        problems=[Problem(ProblemCode.NON_NUMERIC, f"《{file_name}》表一!C5：预计参赛企业数“{MARKER} 中奖请联系”不是数字", file_name, "表一!C5")],
        trust=kwargs.pop("trust", Trust.UNKNOWN),
        **kwargs,
    )
    submission.unit = None
    submission.message.from_name = f"{MARKER} 客服中心"
    for stored in submission.files:
        stored.name = f"{MARKER}-{stored.name}"
    return submission


def decoded_text(raw: bytes) -> str:
    """Every header and body part as a reader's mail client would show them."""
    reply = email.message_from_bytes(raw, policy=email.policy.default)
    headers = "\n".join(f"{k}: {v}" for k, v in reply.items())
    bodies = "\n".join(part.get_content() for part in reply.walk() if part.get_content_maintype() == "text")
    return headers + "\n" + bodies


def test_a_short_reply_quotes_nothing_the_sender_wrote(db: Database) -> None:
    submission = stranger_submission()
    item = queue(db, submission, reply_settings())
    assert item is not None and submission.reply_form is ReplyForm.SHORT and item.priority == 1
    assert item.reply_kind == "invalid"  # the kind stands as decided; only the form is short
    reply = email.message_from_bytes(item.raw, policy=email.policy.default)
    assert MARKER.encode() not in item.raw and MARKER not in decoded_text(item.raw)
    assert reply["Subject"] == "【自动回复】2024年度全省劳动和技能竞赛项目申报"
    assert reply["To"] == "someone@stranger.example"
    assert reply["In-Reply-To"] == submission.message.message_id  # threading survives
    text = reply.get_body(("plain",)).get_content()
    assert "系统不回复具体内容" in text and "省总工会经济技术部 张老师" in text


def test_a_registered_unit_whose_mail_failed_authentication_gets_the_short_form(db: Database) -> None:
    submission = stranger_submission(from_address="zgh@ningbo.example.cn", trust=Trust.REGISTERED)
    submission.message.auth_results = FAILED_AUTH
    item = queue(db, submission, reply_settings())
    assert item is not None and submission.reply_form is ReplyForm.SHORT
    assert MARKER.encode() not in item.raw


def test_a_full_reply_goes_first_and_a_reply_not_queued_has_no_form(db: Database) -> None:
    full = make_submission()
    item = queue(db, full, reply_settings())
    assert full.reply_form is ReplyForm.FULL and item.priority == 0
    ignored = make_submission(status=S.IGNORED)
    assert queue(db, ignored, reply_settings()) is None and ignored.reply_form is None
    capped = make_submission()
    assert queue(db, capped, reply_settings(smtp={"daily_cap_per_recipient": 1})) is None
    assert capped.reply_suppressed == "daily_cap" and capped.reply_form is None


def test_references_keep_only_the_last_ten_short_ids(db: Database) -> None:
    submission = make_submission()
    thread = [f"<{n:04d}.{'x' * 60}@ningbo.example.cn>" for n in range(200)]
    original = original_of(submission, references=" ".join([f"<{'y' * 5000}@huge.example>", *thread]))
    with db.session() as session:
        session.add(submission)
        session.flush()
        item = session.get(OutboxItem, queue_reply(session, submission, original=original, settings=reply_settings()))
    reply = email.message_from_bytes(item.raw, policy=email.policy.default)
    references = reply["References"].split()
    assert references == [*thread[-9:], submission.message.message_id]
    assert len(reply["References"]) <= 1000 and len(item.raw) < 8 * 1024


# --- every reply is bounded -------------------------------------------------------------


def amplifier_submission() -> Submission:
    """The 107 KB mail that produced a 67 MB reply: thousands of bad cells with long text."""
    long_value = "长" * 2000
    problems = [
        Problem(ProblemCode.NON_NUMERIC, f"《{XLSX}》表一!C{row}：预计参赛企业数“{long_value}”不是数字，请填写数字。", XLSX, f"表一!C{row}")
        for row in range(5, 5005)
    ]
    submission = make_submission(status=S.INCOMPLETE, pdf=False, problems=problems, subject="汇" * 5000)
    submission.files += [StoredFile(name=f"{'附' * 300}{n}.xlsx", kind="xlsx", sha256="c" * 64, size=1) for n in range(499)]
    return submission


def test_the_amplifier_gets_a_reply_of_a_few_kilobytes_listing_twenty_problems(db: Database) -> None:
    submission = amplifier_submission()
    item = queue(db, submission, reply_settings())
    assert item is not None and submission.reply_form is ReplyForm.FULL
    assert len(item.raw) < 64 * 1024
    reply = email.message_from_bytes(item.raw, policy=email.policy.default)
    text = reply.get_body(("plain",)).get_content()
    assert len(re.findall(r"^  \d+\. ", text, re.MULTILINE)) == 20
    assert "另有 4980 个问题未列出" in text and "等 500 个文件（另有 450 个未列出）" in text
    assert f"预计参赛企业数“{'长' * 40}…”不是数字" in text and "长" * 41 not in text
    assert reply["Subject"] == "【材料不全】" + "汇" * 200 + "…"


def test_a_full_reply_too_large_for_the_cap_falls_back_to_one_without_lists(db: Database, tmp_path: Path) -> None:
    (tmp_path / "incomplete.txt.j2").write_text(
        "{% for p in errors %}{{ p.message }}{{ '。' * 20000 }}\n{% endfor %}共 {{ errors_hidden }} 个问题未列出\n",
        encoding="utf-8",
    )
    submission = amplifier_submission()
    item = queue(db, submission, reply_settings(smtp={"templates_dir": str(tmp_path)}))
    assert item is not None and len(item.raw) <= MAX_REPLY_BYTES
    assert "共 5000 个问题未列出" in email.message_from_bytes(item.raw, policy=email.policy.default).get_body(("plain",)).get_content()


def test_a_reply_too_large_even_without_lists_is_not_sent(db: Database, tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text("{{ '。' * 300000 }}\n", encoding="utf-8")
    submission = make_submission()
    assert queue(db, submission, reply_settings(smtp={"templates_dir": str(tmp_path)})) is None
    assert submission.reply_suppressed == "too_large" and submission.reply_form is None


# --- caps: forged mail cannot use up a unit's quota; strangers are capped per hour -------


def forged(from_address: str = "zgh@ningbo.example.cn") -> Submission:
    """Mail with a unit's address in From whose authentication failed."""
    submission = make_submission(from_address=from_address, trust=Trust.CLAIMED)
    submission.message.auth_results = FAILED_AUTH
    return submission


def test_replies_about_forged_mail_do_not_use_up_the_units_daily_cap(database_url: str) -> None:
    db = Database(database_url)
    try:
        settings = reply_settings(smtp={"daily_cap_per_recipient": 5})
        assert all(queue(db, forged(), settings) for _ in range(5))
        sixth = forged()
        assert queue(db, sixth, settings) is None and sixth.reply_suppressed == "daily_cap"  # forgeries have their own five

        genuine = make_submission()
        assert queue(db, genuine, settings) is not None and genuine.reply_form is ReplyForm.FULL
    finally:
        db.dispose()


def test_short_replies_are_capped_per_domain_per_hour_and_full_ones_are_not(db: Database) -> None:
    settings = reply_settings(smtp={"hourly_cap_per_domain": 3, "hourly_cap_total": 100})
    now = dt.datetime.now(dt.UTC)
    assert all(queue(db, stranger_submission(from_address=f"s{n}@Evil.example"), settings, now=now) for n in range(3))
    fourth = stranger_submission(from_address="s3@evil.example")
    assert queue(db, fourth, settings, now=now) is None and fourth.reply_suppressed == "domain_cap"
    # A unit at the same domain still hears back, and so does a stranger elsewhere.
    assert queue(db, make_submission(from_address="unit@evil.example"), settings, now=now) is not None
    assert queue(db, stranger_submission(from_address="s@other.example"), settings, now=now) is not None
    # An hour later the domain may be answered again.
    later = now + dt.timedelta(hours=1, minutes=1)
    assert queue(db, stranger_submission(from_address="s4@evil.example"), settings, now=later) is not None


def test_short_replies_are_capped_in_total_per_hour_and_full_ones_are_not(db: Database) -> None:
    settings = reply_settings(smtp={"hourly_cap_per_domain": 100, "hourly_cap_total": 4})
    now = dt.datetime.now(dt.UTC)
    assert all(queue(db, stranger_submission(from_address=f"s@d{n}.example"), settings, now=now) for n in range(4))
    fifth = stranger_submission(from_address="s@d4.example")
    assert queue(db, fifth, settings, now=now) is None and fifth.reply_suppressed == "global_cap"
    assert all(queue(db, make_submission(from_address=f"unit@d{n}.example"), settings, now=now) for n in range(10))
    with db.session() as session:
        assert session.scalar(select(func.count(OutboxItem.id)).where(OutboxItem.priority == 1)) == 4
