from __future__ import annotations

import email
import io
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from openpyxl import load_workbook

from intake.tracking import settle_current
from notifications.compose import SMTP_WIRE
from notifications.digest import LAST_DIGEST_KEY, XLSX_MIME, build_digest, queue_digest, time_left
from parsers.model import ProblemCode as P
from storage.db import Database
from storage.models import KeyValue, Message, MessageState, OutboxItem, OutboxKind, OutboxState
from storage.models import SubmissionStatus as S
from tests.support.submissions import DEADLINE, add_submission, before_deadline, make_db, make_settings

SETTINGS = make_settings()
NOW = before_deadline(days=2, hours=3, minutes=10)  # 2024-02-23 13:50 in Beijing
SINCE = before_deadline(days=3)


def warning(code: P, text: str) -> tuple[P, str, str, None]:
    return (code, text, "汇总表.pdf", None)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """济南 accepted (old mail before SINCE), 青岛 invalid, 教育 with every warning, one unmatched."""
    db = make_db(tmp_path_factory.mktemp("digest"))
    with db.session() as s:
        for unit, status, when, extra in [
            ("济南市总工会", S.ACCEPTED, before_deadline(days=4), {"form1": 2, "form2": 1}),
            ("青岛市总工会", S.INVALID, before_deadline(days=2, hours=5), {"form1": 1, "problems": [
                (P.NON_NUMERIC, "青岛.xlsx 第5行「预计参赛企业数」应填数字", "青岛.xlsx", "Sheet1!C5")]}),
            ("山东省教育工会", S.ACCEPTED, before_deadline(days=2, hours=6), {"form2": 3, "problems": [
                warning(P.SEAL_NOT_FOUND, "汇总表.pdf 未见公章"),
                warning(P.PDF_MISMATCH, "汇总表.pdf 与 Excel 合计不一致"),
                warning(P.UNIT_MISMATCH, "发件邮箱登记的单位是「山东省教育工会」，但表格汇总单位为「青岛市总工会」"),
                warning(P.SENDER_UNVERIFIED, "发件人未通过 DKIM 验证")]}),
            (None, S.ACCEPTED, before_deadline(days=2, hours=4), {"sender": "<b>x</b>@qq.com", "subject": "项目表"}),
        ]:
            settle_current(s, add_submission(s, unit=unit, status=status, arrived_at=when, **extra))
        s.add(OutboxItem(dedupe_key="reply:1", kind=OutboxKind.REPLY, to_address="gone@qd.gov.cn", subject="【需修改】",
                         message_id="<1@x>", raw=b"", state=OutboxState.FAILED, last_error="550 no such user"))
        s.add(Message(account="intake", folder="INBOX", sha256="0" * 64, size=1, from_address="broken@x.cn",
                      subject="坏邮件", arrived_at=before_deadline(days=2), state=MessageState.QUARANTINED))
    return db


@pytest.fixture(scope="module")
def digest(db: Database):
    with db.session() as s:
        return build_digest(s, SETTINGS, now=NOW, since=SINCE)


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=2, hours=3, minutes=10), "距截止还有 2 天 3 小时"),
        (timedelta(hours=5, minutes=20), "距截止还有 5 小时 20 分钟"),
        (timedelta(seconds=30), "距截止还有 1 分钟"),
        (timedelta(0), "已截止"),
        (timedelta(days=-1), "已截止"),
    ],
)
def test_time_left_reads_in_days_and_hours_and_says_when_it_is_over(left: timedelta, expected: str) -> None:
    assert time_left(DEADLINE, DEADLINE - left) == expected


def test_the_subject_gives_the_date_progress_and_pending_work(digest) -> None:
    assert digest.subject == "【每日汇总】2024年劳动竞赛项目申报 2月23日：已受理 2/5，未报送 2，待处理 8 项"


def test_it_lists_only_what_arrived_since_the_last_digest(digest) -> None:
    arrivals = digest.text.split("一、")[1].split("二、")[0]
    assert "收到 3 份报送" in arrivals
    assert "济南市总工会" not in arrivals
    assert "青岛市总工会  需修改" in arrivals
    assert "未识别单位（<b>x</b>@qq.com）  已受理（待指定单位）" in arrivals


@pytest.mark.parametrize(
    ("heading", "item"),
    [
        ("未识别单位", "<b>x</b>@qq.com：项目表"),
        ("需修改的报送", "青岛市总工会：青岛.xlsx 第5行「预计参赛企业数」应填数字"),
        ("未见公章", "山东省教育工会：汇总表.pdf 未见公章"),
        ("PDF 与 Excel 不一致", "山东省教育工会：汇总表.pdf 与 Excel 合计不一致"),
        ("单位不一致", "但表格汇总单位为「青岛市总工会」"),
        ("发件人未验证", "山东省教育工会：发件人未通过 DKIM 验证"),
        ("发送失败的邮件", "gone@qd.gov.cn：【需修改】（550 no such user）"),
        ("无法处理的邮件", "broken@x.cn：坏邮件"),
    ],
)
def test_it_lists_what_needs_a_human(digest, heading: str, item: str) -> None:
    section = digest.text.split("二、需要人工处理")[1].split("三、")[0]
    group = section.split(f"\n【{heading}")[1].split("\n【")[0]
    assert item in group


def test_it_names_missing_units_with_the_time_left(digest) -> None:
    assert "三、未报送单位（2 个，距截止还有 2 天 3 小时）\n  中共山东省委机关工会、山东能源集团工会" in digest.text


def test_after_the_deadline_missing_units_are_shown_as_closed(db: Database) -> None:
    with db.session() as s:
        late = build_digest(s, SETTINGS, now=DEADLINE + timedelta(hours=1), since=None)
    assert "未报送单位（2 个，已截止）" in late.text
    assert "截至目前共收到 4 份报送" in late.text


def test_it_shows_the_board_and_totals_of_current_submissions(digest) -> None:
    assert "山东能源集团工会（企业）：未报送" in digest.text
    assert "青岛市总工会（城市）：需修改，2024-02-23 12:00 到达，问题 1 个" in digest.text
    totals = digest.text.split("五、汇总数据")[1]
    assert "表1（重点工程类）：2 个单位，3 项；预计参赛企业 30 家，预计参赛非公企业 15 家，" in totals
    assert "预计参赛职工 1500 人，预计参赛非公企业职工 750 人，年度投资总额 37.5 亿元" in totals
    assert "表2（技术技能类、创新创意类、工作推进类）：2 个单位，4 项；预计初赛 800 人，预计决赛 120 人" in totals


def test_the_html_part_is_a_phone_sized_page_with_escaped_content(digest) -> None:
    assert 'name="viewport" content="width=device-width' in digest.html
    assert "max-width:600px" in digest.html
    assert "&lt;b&gt;x&lt;/b&gt;@qq.com" in digest.html and "<b>x</b>" not in digest.html
    assert "距截止还有 2 天 3 小时" in digest.html
    for unit in SETTINGS.units:
        assert unit.name in digest.html


def test_the_digest_carries_the_consolidated_workbook(digest) -> None:
    book = load_workbook(io.BytesIO(digest.workbook))
    assert "报送情况" in book.sheetnames
    assert digest.filename == "2024年劳动竞赛项目申报汇总表-20240223.xlsx"


def queued_mail(item: OutboxItem) -> email.message.EmailMessage:
    return email.message_from_bytes(item.raw, policy=policy.default)


def test_queue_digest_sends_one_mail_to_every_recipient_with_the_workbook(tmp_path: Path) -> None:
    with make_db(tmp_path).session() as s:
        item = queue_digest(s, SETTINGS, now=NOW)
        assert (item.kind, item.dedupe_key) == (OutboxKind.DIGEST, "digest:2024-02-23")
        mail = queued_mail(item)
    assert [a.addr_spec for a in mail["To"].addresses] == ["staff1@sdzgh.cn", "staff2@sdzgh.cn"]
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename().endswith(".xlsx")
    load_workbook(io.BytesIO(attachment.get_content()))


def test_queue_digest_runs_once_per_local_day_even_after_a_restart(tmp_path: Path) -> None:
    first_run = make_db(tmp_path)
    with first_run.session() as s:
        assert queue_digest(s, SETTINGS, now=NOW) is not None
    first_run.dispose()
    restarted = make_db(tmp_path)
    with restarted.session() as s:
        assert queue_digest(s, SETTINGS, now=NOW + timedelta(hours=2)) is None
        # 11 hours later it is already the next day in Beijing.
        tomorrow = queue_digest(s, SETTINGS, now=NOW + timedelta(hours=11))
        assert tomorrow.dedupe_key == "digest:2024-02-24"


def test_the_next_digest_covers_the_time_since_the_last_one(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with db.session() as s:
        queue_digest(s, SETTINGS, now=NOW)
        assert s.get(KeyValue, LAST_DIGEST_KEY).value == NOW.isoformat()
        settle_current(s, add_submission(s, unit="济南市总工会", arrived_at=NOW + timedelta(hours=1)))
        item = queue_digest(s, SETTINGS, now=NOW + timedelta(days=1))
        text = queued_mail(item).get_body(preferencelist=("plain",)).get_content()
    assert "自上次汇总（2024-02-23 13:50）以来收到 1 份报送" in text


def test_queue_digest_does_nothing_without_recipients(tmp_path: Path) -> None:
    with make_db(tmp_path).session() as s:
        assert queue_digest(s, make_settings(digest={"recipients": []}), now=NOW) is None


def test_a_late_arrival_is_listed_for_a_decision_after_the_deadline(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with db.session() as s:
        settle_current(s, add_submission(s, unit="青岛市总工会", arrived_at=before_deadline(hours=-3)))
        digest = build_digest(s, SETTINGS, now=before_deadline(hours=-5), since=None)
    section = digest.text.split("二、需要人工处理")[1].split("三、")[0]
    assert "逾期报送" in section and "青岛市总工会：2024-02-25 20:00 到达" in section


def test_the_digest_attachment_has_an_rfc2047_name_beside_the_rfc2231_filename() -> None:
    # QQ Mail shows RFC 2231 names as tcmime.*.bin; Foxmail and QQ read (and send) name="=?utf-8?b?...?=".
    from intake.mime import parse_mail
    from notifications.compose import build_message

    mail = build_message(from_address="a@sdzgh.cn", from_name="省总", to="b@sdzgh.cn", subject="汇总", text="t",
                         html="<p>t</p>", attachments=[("2024年劳动竞赛项目申报汇总表-20240223.xlsx", XLSX_MIME, b"PK")])
    raw = mail.as_bytes(policy=SMTP_WIRE)
    assert b'name="=?utf-8?b?' in raw and b"filename*0*=utf-8''" in raw
    [attachment] = parse_mail(raw).attachments
    assert attachment.name == "2024年劳动竞赛项目申报汇总表-20240223.xlsx"
