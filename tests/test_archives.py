"""7z, RAR and winmail.dat (TNEF) attachments, and archives refused whole (issues 12, 13.5).

End-to-end cases go through a real Dovecot, the poller, the parser worker and the export:
the archive is listed as a file (kind zip/7z/rar) whatever became of its members; members
are archived and parsed like zip members, under the same per-mail limits.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import LimitsSettings
from intake.app import App
from intake.export import export_document
from intake.runs import poll_once
from intake.samples import mime_message, sample_rows
from tests.support.campaigns import FORM1
from intake.unpack import MailBudget, unpack_archive
from tests.support import archives as a
from tests.support import hostile as h
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, stamped_pdf

SENDER = ("济南市总工会", "jinan@example.cn")
ARRIVED = DEADLINE - dt.timedelta(hours=2)
FORM = "附件1-竞赛项目汇总表（重点工程类）.xlsx"
SCAN = "济南市总工会盖章件.pdf"


@pytest.fixture
def app(tmp_path: Path, dovecot: Dovecot) -> Iterator[App]:
    # A fresh mailbox per test on the session's Dovecot.
    server = dovecot.add_user(f"u{tmp_path.name[-12:]}@example.org".lower())
    with App(intake_settings(tmp_path, dovecot=server)) as application:
        application.test_server = server  # type: ignore[attr-defined]
        yield application


def deliver(app: App, *attachments: tuple[str, bytes]) -> dict:
    """One mail from a registered unit through Dovecot and a poll; its exported submission
    and the text of its reply."""
    raw = mime_message(sender=SENDER, subject="济南市总工会竞赛项目申报", body="请查收。", attachments=list(attachments),
                       date=ARRIVED)
    app.test_server.append(raw, ARRIVED)  # type: ignore[attr-defined]
    poll_once(app)
    with app.db.session() as session:
        (submission,) = export_document(session, app.settings)["submissions"]
    (eml,) = (app.settings.resolve(app.settings.smtp.outbox_dir)).glob("*.eml")
    reply = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    submission["reply_text"] = reply.get_body(("plain",)).get_content()
    return submission


def files(submission: dict) -> list[tuple[str, str, str | None]]:
    return [(f["name"], f["kind"], f["parent"]) for f in submission["files"]]


def codes(submission: dict) -> set[str]:
    return {p["code"] for p in submission["problems"]}


def form() -> bytes:
    return h.form1_xlsx()


# --- members read like zip members ----------------------------------------------------------

READABLE: dict[str, tuple[str, str, Callable[[dict[str, bytes]], bytes]]] = {
    "rar5": ("材料.rar", "rar", a.rar5),
    "rar4_gbk_names": ("材料.rar", "rar", a.rar4),
    "7z": ("材料.7z", "7z", a.seven_zip),
}


@pytest.mark.parametrize("shape", READABLE)
def test_7z_and_rar_members_are_read_like_zip_members(app: App, shape: str) -> None:
    name, kind, build = READABLE[shape]
    submission = deliver(app, (name, build({FORM: form(), SCAN: stamped_pdf()})))

    assert submission["status"] == "accepted", submission["problems"]
    assert files(submission) == [(name, kind, None), (FORM, "xlsx", name), (SCAN, "pdf", name)]
    assert len(submission["form1_rows"]) == len(sample_rows(FORM1))
    assert f"{FORM}（压缩包 {name} 内）" in submission["reply_text"]
    assert f"  - {name}" not in submission["reply_text"]  # read archives show as their files


def test_winmail_dat_attachments_are_read_like_attachments(app: App) -> None:
    winmail = a.tnef([(FORM, form()), (SCAN, stamped_pdf())])  # GBK titles, as a Chinese Outlook writes

    submission = deliver(app, ("winmail.dat", winmail))

    assert submission["status"] == "accepted", submission["problems"]
    assert files(submission) == [(FORM, "xlsx", None), (SCAN, "pdf", None)]
    assert len(submission["form1_rows"]) == len(sample_rows(FORM1))


def test_winmail_dat_long_names_are_used_and_an_archive_inside_is_unpacked(app: App) -> None:
    winmail = a.tnef([("材料.7z", a.seven_zip({FORM: form(), SCAN: stamped_pdf()}))], codepage=1252, long_names=True)

    submission = deliver(app, ("winmail.dat", winmail))

    assert submission["status"] == "accepted", submission["problems"]
    assert files(submission) == [("材料.7z", "7z", None), (FORM, "xlsx", "材料.7z"), (SCAN, "pdf", "材料.7z")]


# --- refused whole: still listed, with why --------------------------------------------------

ENCRYPTED: dict[str, tuple[str, str, Callable[[], bytes]]] = {
    "zip": ("材料.zip", "zip", h.encrypted_zip_member),
    "7z": ("材料.7z", "7z", lambda: a.seven_zip({FORM: form()}, password="123456")),
    "7z_names_encrypted": ("材料.7z", "7z", lambda: a.seven_zip({FORM: form()}, password="123456", encrypt_names=True)),
    "rar5": ("材料.rar", "rar", lambda: a.fixture("rar5-psw.rar")),
    "rar5_names_encrypted": ("材料.rar", "rar", lambda: a.fixture("rar5-hpsw.rar")),
    "rar4": ("材料.rar", "rar", lambda: a.fixture("rar3-comment-psw.rar")),
}


@pytest.mark.parametrize("shape", ENCRYPTED)
def test_a_password_protected_archive_is_encrypted_file_and_stays_listed(app: App, shape: str) -> None:
    name, kind, build = ENCRYPTED[shape]

    submission = deliver(app, (name, build()))

    assert submission["status"] == "incomplete"
    assert files(submission) == [(name, kind, None)]
    encrypted = [p for p in submission["problems"] if p["code"] == "encrypted_file"]
    assert encrypted and all(name in p["message"] and "取消密码后重新发送" in p["message"] for p in encrypted)
    assert f"{name}（未能解压：设有密码）" in submission["reply_text"]
    assert "缺少加盖公章的扫描版 PDF" in submission["reply_text"]
    assert "没有找到任何附件" not in submission["reply_text"]


REFUSED: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "bomb": (h.zip_bomb, "unsafe_file", "疑似压缩炸弹或含非法路径"),
    "traversal": (lambda: h.zip_of({"../../etc/cron.d/汇总表.xlsx": form()}), "unsafe_file", "疑似压缩炸弹或含非法路径"),
    "encrypted": (h.encrypted_zip_member, "encrypted_file", "设有密码"),
    "damaged": (lambda: h.truncated(h.zip_of({FORM: form()})), "unreadable_file", "文件已损坏"),
}


@pytest.mark.parametrize("reason", REFUSED)
def test_a_zip_refused_whole_is_listed_with_its_problem(app: App, reason: str) -> None:
    build, code, words = REFUSED[reason]

    submission = deliver(app, ("材料.zip", build()))

    assert files(submission) == [("材料.zip", "zip", None)]
    assert any(p["code"] == code and p["file"].startswith("材料.zip") for p in submission["problems"])
    assert f"材料.zip（未能解压：{words}）" in submission["reply_text"]


def test_a_rar_member_with_a_traversal_path_is_refused(app: App) -> None:
    archive = a.rar5({"../../etc/汇总表.xlsx": form(), SCAN: stamped_pdf()})

    submission = deliver(app, ("材料.rar", archive))

    assert files(submission) == [("材料.rar", "rar", None), (SCAN, "pdf", "材料.rar")]
    assert "unsafe_file" in codes(submission)


# --- the same limits as zip, per mail -------------------------------------------------------


def test_real_solid_rar_archives_are_read_through_unar() -> None:
    for fixture in ("rar5-solid.rar", "rar3-solid.rar"):
        stored: list[bytes] = []
        result = unpack_archive(a.fixture(fixture), fixture, "rar", LimitsSettings(),
                                store=lambda data: stored.append(data) or str(len(stored)))
        assert [m.name for m in result.members] == ["stest1.txt", "stest2.txt"], result.problems
        assert [len(data) for data in stored[1:]] == [2048, 2048]  # stored[0]: the archive itself


def test_a_7z_bomb_is_refused_by_its_ratio() -> None:
    result = unpack_archive(a.seven_zip({"汇总表.xlsx": bytes(20 * 1024 * 1024)}), "a.7z", "7z", LimitsSettings())
    assert [p.code.value for p in result.problems] == ["unsafe_file"] and result.members == []


def test_a_7z_member_past_the_unpacked_bytes_is_not_read() -> None:
    limits = LimitsSettings(max_unpacked_bytes=1000, max_zip_ratio=10**9)
    result = unpack_archive(a.seven_zip({"big.xlsx": bytes(5000)}), "a.7z", "7z", limits)
    assert [p.code.value for p in result.problems] == ["unsafe_file"] and result.members == []


def test_zip_7z_and_rar_share_one_member_allowance() -> None:
    limits = LimitsSettings(max_zip_members=4)
    budget = MailBudget(limits)
    three = {f"{i}.pdf": b"%PDF" for i in range(3)}
    first = unpack_archive(a.seven_zip(three), "a.7z", "7z", limits, budget=budget)
    second = unpack_archive(a.rar5(three), "b.rar", "rar", limits, budget=budget)
    assert len(first.members) == 3 and len(second.members) == 1
    assert [p.code.value for p in second.problems] == ["unsafe_file"]


def test_rar4_gbk_member_names_are_decoded() -> None:
    result = unpack_archive(a.rar4({"青岛/附件2技术技能类.xlsx": b"x"}), "a.rar", "rar", LimitsSettings())
    assert [m.name for m in result.members] == ["附件2技术技能类.xlsx"]


def test_archives_nest_across_formats_up_to_the_depth_limit() -> None:
    inner = a.rar5({FORM: b"x"})
    result = unpack_archive(h.zip_of({"内.rar": inner}), "外.zip", "zip", LimitsSettings(max_zip_depth=2))
    assert [(m.name, m.parent) for m in result.members] == [(FORM, "外.zip/内.rar")]
    assert [(x.name, x.kind, x.parent) for x in result.archives] == [("外.zip", "zip", None), ("内.rar", "rar", "外.zip")]
    deeper = unpack_archive(a.seven_zip({"中.zip": h.zip_of({"内.rar": inner})}), "外.7z", "7z", LimitsSettings(max_zip_depth=2))
    assert deeper.members == [] and [p.code.value for p in deeper.problems] == ["unsafe_file"]
