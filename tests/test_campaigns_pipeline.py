"""Several campaigns in one mailbox (issue 15), end to end on a real Dovecot and SMTP sink:
each mail routed to the campaign whose form it carries (else whose words it uses), `other`
mail recorded for staff without a campaign reply, a closed campaign's mail answered 已截止
and held for staff, and no unit's record in one campaign touched by mail for another."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import Settings, settings_from_dict
from intake import actions
from intake.app import App
from intake.export import export_document
from intake.runs import poll_once
from intake.samples import form_workbook, mime_message, word_table
from intake.tracking import current_submissions, other_mail
from notifications.replies import OTHER_SUBJECT
from storage.models import Message, ReplyKind, Submission, SubmissionStatus, utcnow
from tests.support.dovecot import Dovecot
from tests.support.intake_env import CST, intake_settings, settings_as_toml, stamped_pdf
from tests.support.smtp import SmtpSink

LDJS_DEADLINE = dt.datetime(2024, 2, 25, 17, 0, tzinfo=CST)  # overrides the file's (the same here)
WUYI_DEADLINE = dt.datetime(2024, 3, 20, 17, 0, tzinfo=CST)  # later than the file's 3-15
ARRIVED = dt.datetime(2024, 2, 20, 10, 0, tzinfo=CST)  # both open, both on time
# A third campaign, closed long before: its own form, so only its mail carries it.
KAOPING = {
    "id": "jnkp-2023", "name": "2023年职工技能考评结果报送", "keywords": ["技能考评结果"],
    "deadline": dt.datetime(2023, 11, 30, 17, 0, tzinfo=CST), "closes_at": dt.datetime(2023, 12, 15, tzinfo=CST),
    "contact": "省总工会职工技术协会，0531-11111111",
    "forms": [{"id": "results", "title": "职工技能考评结果汇总表", "short_title": "技能考评", "totals": [],
               "columns": [{"field": "worker", "label": "参评职工", "required": True, "samples": ["赵六", "钱七"]},
                           {"field": "trade", "label": "考评工种", "samples": ["电工"]},
                           {"field": "grade", "label": "考评等级", "samples": ["高级工"]}]}],
}
UNITS = {"jinan": ("济南市总工会", "jinan@example.cn"), "qingdao": ("青岛市总工会", "qingdao@example.cn"),
         "zibo": ("淄博市总工会", "zibo@example.cn"), "szjg": ("山东省直机关工会", "szjg@example.cn"),
         "sdny": ("山东能源集团工会", "sdny@example.cn")}


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"campaigns-{uuid.uuid4().hex[:12]}@example.org")


def settings_for(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink, **sections: dict) -> Settings:
    """The test environment's settings with `[[campaigns]]` (shipped files by name, with
    deadline overrides, and one inline) in place of its `[campaign]` section."""
    raw = settings_as_toml(intake_settings(
        tmp_path, dovecot=mailbox, smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none",
                                         "from_address": "szscbhb@example.org"}, **sections))
    raw["campaigns"] = [{"file": "2024-劳动竞赛", "deadline": LDJS_DEADLINE},
                        {"file": "2024-五一劳动奖章推荐", "deadline": WUYI_DEADLINE}, KAOPING]
    return settings_from_dict(raw, base_dir=tmp_path)


def mail(unit: str, subject: str, files: list[tuple[str, bytes]], body: str = "请查收。") -> bytes:
    name, address = UNITS[unit]
    return mime_message(sender=(name, address), subject=subject, body=f"{body}\n{name}", attachments=files,
                        date=ARRIVED)


def form(settings: Settings, campaign: str, form_id: str, unit: str) -> bytes:
    spec = settings.campaign_set.get(campaign).form(form_id)
    return form_workbook(spec, spec.title, UNITS[unit][0])


def letter() -> bytes:
    """A Word document that is no form: a table of meeting times."""
    from docx import Document  # python-docx, as the parsers read Word

    document = Document()
    document.add_paragraph("关于召开2024年工会工作会议的函")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "时间", (0, 1): "地点", (1, 0): "3月1日", (1, 1): "济南"}.items():
        table.cell(row, col).text = text
    import io

    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def mixed_mailbox(settings: Settings) -> dict[str, bytes]:
    pdf = ("盖章扫描件.pdf", stamped_pdf())
    return {
        "ldjs_jinan": mail("jinan", "济南市总工会劳动竞赛项目报送", [
            ("附件1.xlsx", form(settings, "ldjs-2024", "form1", "jinan")),
            ("附件2.xlsx", form(settings, "ldjs-2024", "form2", "jinan")), pdf]),
        "ldjs_qingdao": mail("qingdao", "青岛市总工会报送", [
            ("附件1.xlsx", form(settings, "ldjs-2024", "form1", "qingdao")), pdf]),
        "wuyi_jinan": mail("jinan", "济南市总工会推荐材料", [
            ("推荐汇总.xlsx", form(settings, "wuyi-2024", "candidates", "jinan")), pdf]),
        # The subject names the 2024 notice; the file is the second notice's form: the form decides.
        "wuyi_qingdao": mail("qingdao", "青岛市总工会劳动竞赛项目报送", [
            ("汇总表.xlsx", form(settings, "wuyi-2024", "candidates", "qingdao")), pdf]),
        "letter_zibo": mail("zibo", "关于召开工作会议的函", [("会议通知.docx", letter())]),
        "question_szjg": mail("szjg", "请问联系人电话", [], body="您好，请问贵办联系人电话是多少？"),
        "closed_sdny": mail("sdny", "山东能源集团工会报送", [
            ("考评.xlsx", form(settings, "jnkp-2023", "results", "sdny")), pdf]),
    }


def parsed(received) -> email.message.EmailMessage:  # noqa: ANN001
    return email.message_from_bytes(received.data, policy=email.policy.default)


def text_of(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def by_mail(session, mails: dict[str, bytes]) -> dict[str, Submission]:  # noqa: ANN001
    ids = {email.message_from_bytes(raw)["Message-ID"]: key for key, raw in mails.items()}
    rows = session.scalars(select(Submission).join(Submission.message)).all()
    return {ids[s.message.message_id]: s for s in rows}


def test_a_mixed_mailbox_routes_each_mail_and_keeps_each_campaigns_records_apart(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    mails = mixed_mailbox(settings)
    mailbox.append_many([(raw, ARRIVED) for raw in mails.values()])

    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            got = by_mail(session, mails)
            routed = {key: (s.campaign, s.routed_by, s.status) for key, s in got.items()}
            assert routed == {
                "ldjs_jinan": ("ldjs-2024", "form", SubmissionStatus.ACCEPTED),
                "ldjs_qingdao": ("ldjs-2024", "form", SubmissionStatus.ACCEPTED),
                "wuyi_jinan": ("wuyi-2024", "form", SubmissionStatus.ACCEPTED),
                "wuyi_qingdao": ("wuyi-2024", "form", SubmissionStatus.ACCEPTED),
                "letter_zibo": (None, "none", SubmissionStatus.OTHER),
                "question_szjg": (None, "none", SubmissionStatus.OTHER),
                "closed_sdny": ("jnkp-2023", "form", SubmissionStatus.HELD),
            }
            # The unit's record in one campaign is untouched by its mail for another.
            assert {u: s.id for u, s in current_submissions(session, "ldjs-2024").items()} == {
                "济南市总工会": got["ldjs_jinan"].id, "青岛市总工会": got["ldjs_qingdao"].id}
            assert {u: s.id for u, s in current_submissions(session, "wuyi-2024").items()} == {
                "济南市总工会": got["wuyi_jinan"].id, "青岛市总工会": got["wuyi_qingdao"].id}
            assert current_submissions(session, "jnkp-2023") == {}
            # Other mail: listed for staff, no state anywhere, no campaign reply.
            assert [s.id for s in other_mail(session)] == [got["letter_zibo"].id, got["question_szjg"].id]
            assert {got[k].unit for k in ("letter_zibo", "question_szjg")} == {"淄博市总工会", "山东省直机关工会"}
            assert all(got[k].reply is ReplyKind.NONE for k in ("letter_zibo", "question_szjg"))
            # The closed campaign's mail: the 已截止 reply, held for staff.
            closed = got["closed_sdny"]
            assert (closed.reply, closed.needs_review, closed.late) == (ReplyKind.CLOSED, True, True)
            # Rows are stored under the routed campaign's form ids.
            assert {r.form for r in got["ldjs_jinan"].rows} == {"form1", "form2"}
            assert {r.form for r in got["wuyi_qingdao"].rows} == {"candidates"}
            assert got["wuyi_qingdao"].rows_of("candidates")[0].values["birth_date"] == "1985-06-01"
            exports = {c: export_document(session, app.settings, app.settings.campaign_set.get(c))
                       for c in ("ldjs-2024", "wuyi-2024")}

    replies = [parsed(r) for r in smtp_sink.wait_for(5)]
    subjects = sorted(r["Subject"] for r in replies)
    assert subjects == sorted([
        "【已收到】济南市总工会劳动竞赛项目报送", "【已收到】青岛市总工会报送", "【已收到】济南市总工会推荐材料",
        "【已收到】青岛市总工会劳动竞赛项目报送", "【已截止】山东能源集团工会报送"])
    assert {r["To"].addresses[0].addr_spec for r in replies} == {
        "jinan@example.cn", "qingdao@example.cn", "sdny@example.cn"}  # nothing to 淄博 or 省直机关
    closed_text = text_of(next(r for r in replies if r["Subject"].startswith("【已截止】")))
    assert "2023年职工技能考评结果报送" in closed_text and "已转工作人员" in closed_text
    assert "2023年11月30日 17:00:00" in closed_text and "0531-11111111" in closed_text
    wuyi_receipt = text_of(next(r for r in replies if r["Subject"] == "【已收到】青岛市总工会劳动竞赛项目报送"))
    assert "五一劳动奖章推荐" in wuyi_receipt and "推荐人选" in wuyi_receipt

    # Each campaign's export holds its own mail and rows only.
    ldjs, wuyi = exports["ldjs-2024"], exports["wuyi-2024"]
    assert ldjs["campaign"]["id"] == "ldjs-2024" and wuyi["campaign"]["id"] == "wuyi-2024"
    assert sorted(s["unit"] for s in ldjs["submissions"]) == ["济南市总工会", "青岛市总工会"]
    assert all(s["campaign"] == "ldjs-2024" and s["form1_rows"] for s in ldjs["submissions"])
    assert sorted(s["unit"] for s in wuyi["submissions"]) == ["济南市总工会", "青岛市总工会"]
    assert all(set(s["forms"]) == {"candidates"} and len(s["forms"]["candidates"]) == 2 for s in wuyi["submissions"])


def test_other_mail_gets_the_plain_acknowledgement_when_configured_and_staff_can_route_it(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(tmp_path, mailbox, smtp_sink, other_mail={"acknowledge": True})
    scan_only = mail("zibo", "附件请阅", [("扫描件.pdf", stamped_pdf())])  # no form, no keyword, two campaigns open
    question = mail("szjg", "请问联系人电话", [])
    stranger = mime_message(sender=("某公司", "sales@example.net"), subject="合作", body="您好",
                            attachments=[("介绍.docx", letter())], date=ARRIVED)
    mailbox.append_many([(raw, ARRIVED) for raw in (scan_only, question, stranger)])

    with App(settings) as app:
        poll_once(app)
        replies = [parsed(r) for r in smtp_sink.wait_for(2)]
        assert {r["Subject"] for r in replies} == {OTHER_SUBJECT}
        assert sorted(r["To"].addresses[0].addr_spec for r in replies) == ["szjg@example.cn", "zibo@example.cn"]
        assert all("附件请阅" not in text_of(r) and "联系人" not in text_of(r) for r in replies)  # quotes nothing

        with app.db.session() as session:
            scan = session.scalar(select(Submission).join(Submission.message)
                                  .where(Message.from_address == "zibo@example.cn"))
            assert scan.status is SubmissionStatus.OTHER and scan.campaign is None
        routed = actions.route_submission(app, scan.id, "ldjs-2024", actor="娄文华", now=utcnow())
        assert (routed.campaign, routed.routed_by, routed.status) == ("ldjs-2024", "staff", SubmissionStatus.INCOMPLETE)
        with app.db.session() as session:
            assert current_submissions(session, "ldjs-2024")["淄博市总工会"].id == scan.id
            stranger_row = session.scalar(select(Submission).join(Submission.message)
                                          .where(Message.from_address == "sales@example.net"))
            assert (stranger_row.status, stranger_row.reply) == (SubmissionStatus.OTHER, ReplyKind.NONE)
        # A reprocess keeps staff's choice; the acknowledgement already sent is the mail's one reply.
        from intake.runs import reprocess_messages

        reprocess_messages(app)
        with app.db.session() as session:
            again = session.get(Submission, scan.id)
            assert (again.campaign, again.routed_by) == ("ldjs-2024", "staff")
    assert len(smtp_sink.messages) == 2


def test_the_single_campaign_config_still_answers_an_unreadable_workbook(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    settings = intake_settings(tmp_path, dovecot=mailbox, smtp={
        "mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
        "from_address": "szscbhb@example.org"})
    assert [c.id for c in settings.campaigns] == ["default"]
    raw = mail("jinan", "请查收", [("新建表格.xlsx", b"PK\x03\x04 not really a workbook"), ("扫描.pdf", stamped_pdf())])
    mailbox.append(raw, ARRIVED)

    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            (submission,) = session.scalars(select(Submission)).all()
            assert (submission.campaign, submission.routed_by) == ("default", "only")
            assert submission.status is SubmissionStatus.INVALID
    (reply,) = smtp_sink.wait_for(1)
    assert parsed(reply)["Subject"] == "【需修改】请查收"
