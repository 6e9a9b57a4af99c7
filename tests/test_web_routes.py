"""The staff console's pages and acts, in process (Starlette's TestClient) over a real
SQLite database filled by the demo's mail; every act is checked in the rows it changed
and in its audit row."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select

from intake import actions
from intake.board import board_as_dict, build_board
from storage.models import (
    AuditEntry,
    Confirmation,
    LateDecision,
    OutboxItem,
    OutboxKind,
    OutboxState,
    Submission,
    SubmissionStatus,
    User,
    utcnow,
)
from tests.support.web import PASSWORD, STRANGER, Site, build_demo, open_site

LATE_UNIT = "烟台市总工会"  # the demo's mail that came at the deadline
CLAIM_UNIT = "潍坊市总工会"  # from an address the registry does not know (待确认)
NO_SEAL_UNIT = "泰安市总工会"  # its scan shows no seal
INVALID_UNIT = "枣庄市总工会"  # cells with problems


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("web") / "demo")


@pytest.fixture
def site(demo: Path, tmp_path: Path) -> Iterator[Site]:
    s = open_site(demo, tmp_path)
    yield s
    s.client.close()
    s.app.close()


@pytest.fixture
def admin(site: Site) -> Site:
    assert site.login().status_code == 303
    return site


def audit_rows(site: Site, action: str) -> list[AuditEntry]:
    with site.app.db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def submission(site: Site, submission_id: int) -> Submission:
    with site.app.db.session() as session:
        found = session.get(Submission, submission_id)
        found.message  # noqa: B018 - loaded while the session is open
        return found


def current_id(site: Site, unit: str) -> int:
    with site.app.db.session() as session:
        return next(r.submission_id for r in build_board(session, site.settings).rows if r.name == unit)


def unmatched_id(site: Site) -> int:
    with site.app.db.session() as session:
        return session.scalar(select(Submission.id).where(Submission.status == SubmissionStatus.UNMATCHED))


def row_state(page: str, unit: str) -> str:
    return re.search(rf'<tr data-unit="{re.escape(unit)}" data-state="(\w+)"', page).group(1)


# --- login ------------------------------------------------------------------------------


def test_login_lands_on_the_overview_and_logout_ends_the_session(site: Site) -> None:
    response = site.login()
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "报送管理" in site.client.get("/").text
    token = site.csrf()
    response = site.client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login", response.text
    assert site.client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert [e.note for e in audit_rows(site, "login")] == ["成功"]


def test_login_returns_to_the_page_asked_for(site: Site) -> None:
    response = site.client.get("/queue", follow_redirects=False)
    assert response.headers["location"] == "/login?next=%2Fqueue"
    assert site.login(next="/queue").headers["location"] == "/queue"


def test_a_wrong_password_is_refused_and_audited(site: Site) -> None:
    response = site.login(password="not the password")
    assert response.status_code == 401 and "用户名或密码不正确" in response.text
    assert site.client.get("/", follow_redirects=False).status_code == 303
    assert audit_rows(site, "login")[-1].note.startswith("失败：密码错误")


def test_five_failures_lock_the_account_for_fifteen_minutes(site: Site) -> None:
    for _ in range(5):
        site.login(password="wrong password")
    refused = site.login()  # the right password, while locked
    assert refused.status_code == 401 and "已锁定" in refused.text
    with site.app.db.session() as session:
        user = session.scalar(select(User).where(User.name == "admin"))
        left = user.locked_until - utcnow()
        assert dt.timedelta(minutes=14) < left <= dt.timedelta(minutes=15)
        user.locked_until = utcnow() - dt.timedelta(seconds=1)  # the fifteen minutes are over
    assert site.login().status_code == 303


def test_an_idle_session_expires(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    idle = site.settings.web.session_idle_minutes
    real = TimestampSigner.get_timestamp
    # The cookie is signed as if the last click was one minute longer ago than the idle limit.
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - (idle + 1) * 60)
    site.login()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert site.client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_recent_session_stays_and_slides(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    idle = site.settings.web.session_idle_minutes
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - (idle - 1) * 60)
    site.login()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert site.client.get("/", follow_redirects=False).status_code == 200


def test_a_disabled_user_is_out_at_the_next_click(admin: Site) -> None:
    with admin.app.db.session() as session:
        session.scalar(select(User).where(User.name == "admin")).disabled = True
    assert admin.client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_with_no_user_the_site_only_says_how_to_create_one(demo: Path, tmp_path: Path) -> None:
    bare = open_site(demo, tmp_path, users=False)
    page = bare.client.get("/login")
    assert "intake user add 名字 --role admin" in page.text and 'id="login-form"' not in page.text
    assert bare.client.get("/", follow_redirects=False).headers["location"] == "/login"
    bare.app.close()


PAGES = ["/", "/units/济南市总工会", "/submissions/2", "/submissions/2/files/4", "/submissions/2/files/5/pages/1.png",
         "/queue", "/remind", "/remind?unit=东营市总工会", "/deadline", "/export", "/export/workbook.xlsx",
         "/export/export.json", "/audit", "/users"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_without_login_redirects_to_login(site: Site, path: str) -> None:
    response = site.client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert "set-cookie" not in response.headers or "intake_session=\"\"" in response.headers["set-cookie"]


@pytest.mark.parametrize("path", ["/submissions/5/confirm", "/submissions/5/reject", "/submissions/10/late",
                                  "/submissions/9/review", "/submissions/2/reprocess", "/submissions/5/assign",
                                  "/submissions/2/route", "/remind", "/deadline", "/users"])
def test_no_act_without_login(site: Site, path: str) -> None:
    response = site.client.post(path, data={"decision": "accept", "unit": "东营市总工会"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with site.app.db.session() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action != "user_add")).all() == []


# --- CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_a_post_without_the_sessions_csrf_token_is_refused(admin: Site, token: str | None) -> None:
    data = {} if token is None else {"csrf": token}
    response = admin.client.post(f"/submissions/{current_id(admin, CLAIM_UNIT)}/confirm", data=data, follow_redirects=False)
    assert response.status_code == 403 and "安全令牌" in response.text
    assert submission(admin, current_id(admin, CLAIM_UNIT)).confirmation is Confirmation.PENDING
    assert audit_rows(admin, "confirm") == []


def test_another_sessions_token_is_refused(demo: Path, tmp_path: Path, admin: Site) -> None:
    admin.login("clerk")
    clerks = admin.csrf()
    admin.login("admin")
    assert admin.post(f"/submissions/{current_id(admin, CLAIM_UNIT)}/confirm", csrf=clerks).status_code == 403


# --- acts --------------------------------------------------------------------------------


def test_assign_names_the_unit_of_an_unmatched_submission(admin: Site) -> None:
    sid = unmatched_id(admin)
    assert f'href="/submissions/{sid}"' in admin.client.get("/queue").text
    assert row_state(admin.client.get("/").text, "东营市总工会") == "missing"
    response = admin.post(f"/submissions/{sid}/assign", {"unit": "东营市总工会"})
    assert response.status_code == 303 and response.headers["location"] == f"/submissions/{sid}?done=assign"
    assert submission(admin, sid).unit == "东营市总工会"
    [entry] = audit_rows(admin, "assign")
    assert (entry.actor, entry.target) == ("admin", f"submission:{sid}")
    assert (entry.before["unit"], entry.after["unit"]) == (None, "东营市总工会")
    assert row_state(admin.client.get("/").text, "东营市总工会") != "missing"


def test_assign_to_an_unknown_unit_is_refused_with_its_reason(admin: Site) -> None:
    response = admin.post(f"/submissions/{unmatched_id(admin)}/assign", {"unit": "不存在的单位"})
    assert response.status_code == 400 and "不是登记的报送单位" in html.unescape(response.text)
    assert audit_rows(admin, "assign") == []


def test_confirm_a_claimed_submission(admin: Site) -> None:
    assert 'id="confirm-form"' in admin.client.get(f"/submissions/{current_id(admin, CLAIM_UNIT)}").text
    assert admin.post(f"/submissions/{current_id(admin, CLAIM_UNIT)}/confirm").status_code == 303
    assert submission(admin, current_id(admin, CLAIM_UNIT)).confirmation is Confirmation.CONFIRMED
    [entry] = audit_rows(admin, "confirm")
    assert (entry.before["confirmation"], entry.after["confirmation"]) == ("pending", "confirmed")


def test_reject_a_claimed_submission(admin: Site) -> None:
    sid = current_id(admin, CLAIM_UNIT)
    assert admin.post(f"/submissions/{sid}/reject").status_code == 303
    assert submission(admin, sid).status is SubmissionStatus.REJECTED
    [entry] = audit_rows(admin, "reject")
    assert entry.after["status"] == "rejected"
    assert row_state(admin.client.get("/").text, "潍坊市总工会") == "missing"


def test_late_accept_queues_the_follow_up_in_the_mails_thread(admin: Site) -> None:
    sid = current_id(admin, LATE_UNIT)
    page = admin.client.get(f"/submissions/{sid}").text
    assert 'id="late-form"' in page and "待决定" in page
    response = admin.post(f"/submissions/{sid}/late", {"decision": "accept", "note": "经研究同意受理"})
    assert response.status_code == 303
    late = submission(admin, sid)
    assert late.late_decision is LateDecision.ACCEPTED and late.late_decided_by == "admin"
    with admin.app.db.session() as session:
        [mail] = session.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.FOLLOW_UP)).all()
        sent = email.message_from_bytes(mail.raw, policy=email.policy.default)
    assert sent["In-Reply-To"] == late.message.message_id and mail.state is OutboxState.SENT
    assert late.message.message_id in sent["References"]
    assert "经研究同意受理" in sent.get_body(("plain",)).get_content()
    [entry] = audit_rows(admin, "late_accepted")
    assert (entry.before["late_decision"], entry.after["late_decision"], entry.note) == (None, "accepted", "经研究同意受理")
    assert row_state(admin.client.get("/").text, LATE_UNIT) == "accepted_late"
    assert "经研究同意受理" in admin.client.get(f"/units/{LATE_UNIT}").text  # the reply's full text


def test_late_reject_takes_the_mail_off_the_units_record(admin: Site) -> None:
    sid = current_id(admin, LATE_UNIT)
    assert admin.post(f"/submissions/{sid}/late", {"decision": "reject"}).status_code == 303
    assert submission(admin, sid).late_decision is LateDecision.REJECTED
    [entry] = audit_rows(admin, "late_rejected")
    assert entry.after["late_decision"] == "rejected"
    assert row_state(admin.client.get("/").text, LATE_UNIT) == "missing"


def test_review_overrides_the_seal_and_clears_it_from_the_queue(admin: Site) -> None:
    sid = current_id(admin, NO_SEAL_UNIT)
    assert f'href="/submissions/{sid}"' in _group(admin.client.get("/queue").text, "seal_not_found")
    response = admin.post(f"/submissions/{sid}/review", {"seal": "yes", "note": "电子签章，已核实"})
    assert response.status_code == 303
    reviewed = submission(admin, current_id(admin, NO_SEAL_UNIT))
    assert (reviewed.seal_override, reviewed.seal, reviewed.review_note) == (True, True, "电子签章，已核实")
    [entry] = audit_rows(admin, "review")
    assert (entry.before["seal_override"], entry.after["seal_override"], entry.note) == (None, True, "电子签章，已核实")
    assert 'id="queue-seal_not_found"' not in admin.client.get("/queue").text


def test_review_marks_a_mismatch_checked(admin: Site) -> None:
    sid = current_id(admin, "青岛市总工会")
    assert admin.post(f"/submissions/{sid}/review", {"mismatch_checked": "1", "note": "已电话核对"}).status_code == 303
    assert submission(admin, sid).mismatch_checked is True
    assert audit_rows(admin, "review")[0].after["mismatch_checked"] is True


def _group(page: str, key: str) -> str:
    found = re.search(rf'<section class="group" id="queue-{key}">(.*?)</section>', page, re.S)
    return found.group(1) if found else ""


def test_reprocess_parses_the_mail_again_and_audits_it(admin: Site) -> None:
    before = submission(admin, current_id(admin, "青岛市总工会"))
    assert admin.post(f"/submissions/{before.id}/reprocess").status_code == 303
    [entry] = audit_rows(admin, "reprocess")
    again = submission(admin, int(entry.target.split(":")[1]))
    assert again.message_pk == before.message_pk and entry.before["unit"] == entry.after["unit"] == "青岛市总工会"
    with admin.app.db.session() as session:  # no second reply
        assert len(session.scalars(select(OutboxItem).where(OutboxItem.dedupe_key == f"reply:{before.message_pk}")).all()) == 1


def test_remind_previews_the_exact_mail_then_sends_it(admin: Site) -> None:
    unit = "东营市总工会"
    overview = admin.client.get("/").text
    assert f'name="unit" value="{unit}"' in overview  # the overview's checkbox
    preview = admin.client.get("/remind", params={"unit": unit}).text
    with admin.app.db.session() as session:
        [draft] = actions.reminder_drafts(session, admin.settings, [unit], now=utcnow())
    assert html.escape(draft.text) in preview and html.escape(draft.subject) in preview
    assert audit_rows(admin, "remind") == []  # a preview sends nothing
    response = admin.post("/remind", {"unit": unit})
    assert response.status_code == 200 and "已加入发送队列" in response.text
    with admin.app.db.session() as session:
        [mail] = session.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.REMINDER)).all()
    assert mail.dedupe_key.startswith(f"reminder:{unit}:") and mail.to_address == ", ".join(draft.to)
    assert mail.state is OutboxState.SENT  # sent after the act's commit ([smtp] mode "file" in the demo)
    [entry] = audit_rows(admin, "remind")
    assert entry.target == f"unit:{unit}"
    reminded = re.search(rf'<tr data-unit="{unit}".*?<td class="reminded">([^<]*)</td>', admin.client.get("/").text, re.S)
    assert reminded.group(1).strip() != ""


def test_deadline_change_moves_a_units_state_on_the_overview(admin: Site) -> None:
    assert row_state(admin.client.get("/").text, LATE_UNIT) == "accepted_late"
    response = admin.post("/deadline", {"deadline": "2024-03-01T17:00", "note": "延期"})
    assert response.status_code == 303
    assert row_state(admin.client.get("/").text, LATE_UNIT) == "accepted"
    [entry] = audit_rows(admin, "deadline")
    assert entry.after["deadline"] == "2024-03-01T17:00:00+08:00" and entry.note == "延期"
    assert "2024-03-01 17:00" in admin.client.get("/deadline").text


def test_overview_shows_the_same_states_as_status_json(admin: Site) -> None:
    page = admin.client.get("/").text
    with admin.app.db.session() as session:
        expected = {u["name"]: u["state"] for u in board_as_dict(build_board(session, admin.settings))["units"]}
    assert {name: row_state(page, name) for name in expected} == expected
    assert "距截止" in page or "已截止" in page


def test_overview_filters_by_kind_and_state(admin: Site) -> None:
    page = admin.client.get("/", params={"kind": "city", "state": "missing"}).text
    states = re.findall(r'<tr data-unit="[^"]+" data-state="(\w+)"', page)
    assert states and set(states) == {"missing"}
    assert "山东省交通运输工会" not in page  # an industry union


def test_unit_page_lists_submissions_newest_first_with_the_current_marked(admin: Site) -> None:
    with admin.app.db.session() as session:
        rows = session.execute(select(Submission.id, Submission.campaign).where(Submission.unit == "济南市总工会")).all()
    ids, in_2024 = [i for i, _ in rows], [i for i, c in rows if c == "default"]
    current = current_id(admin, "济南市总工会")
    assert len(in_2024) == 2 and current == max(in_2024)  # the correction sent later stands
    assert len(ids) == 3  # the unit's letter for no campaign is listed too
    page = admin.client.get("/units/济南市总工会").text
    assert re.findall(r'data-submission="(\d+)"', page) == [str(i) for i in sorted(ids, reverse=True)]
    assert re.search(rf'<tr class="current" data-submission="{current}">', page)
    assert "<pre>" in page  # each reply's full text


def test_submission_page_shows_files_pages_rows_and_problems(admin: Site) -> None:
    sid = current_id(admin, INVALID_UNIT)
    with admin.app.db.session() as session:
        pdf = next(f.id for f in session.get(Submission, sid).files if f.kind == "pdf")
        other = current_id(admin, "青岛市总工会")
    page = admin.client.get(f"/submissions/{sid}").text
    assert f'href="/submissions/{sid}/files/{pdf}"' in page and f'src="/submissions/{sid}/files/{pdf}/pages/1.png"' in page
    assert 'class="bad"' in page  # the cells with problems
    assert "预计参赛职工数" in page and "约300" in page
    image = admin.client.get(f"/submissions/{sid}/files/{pdf}/pages/1.png")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    assert admin.client.get(f"/submissions/{sid}/files/{pdf}/pages/2.png").status_code == 400  # one page only
    assert admin.client.get(f"/submissions/{other}/files/{pdf}").status_code == 400  # another submission's file


def test_queue_groups_what_needs_a_person(admin: Site) -> None:
    page = admin.client.get("/queue").text
    assert f'href="/submissions/{current_id(admin, CLAIM_UNIT)}"' in _group(page, "pending")
    assert STRANGER in _group(page, "unmatched")
    assert f'href="/submissions/{current_id(admin, LATE_UNIT)}"' in _group(page, "late")


def test_export_downloads_the_workbook_and_json(admin: Site) -> None:
    xlsx = admin.client.get("/export/workbook.xlsx")
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    assert xlsx.headers["content-disposition"].startswith("attachment;")
    data = admin.client.get("/export/export.json").json()
    assert {"campaign", "submissions", "units"} <= set(data)


def test_audit_page_shows_who_what_and_the_change(admin: Site) -> None:
    sid = current_id(admin, CLAIM_UNIT)
    admin.post(f"/submissions/{sid}/confirm")
    page = admin.client.get("/audit").text
    assert "确认报送" in page and f"submission:{sid}" in page
    assert "pending → confirmed" in page


# --- users -------------------------------------------------------------------------------


def test_a_staff_user_cannot_see_or_manage_users(site: Site) -> None:
    site.login("clerk")
    assert 'id="nav-users"' not in site.client.get("/").text
    assert site.client.get("/users").status_code == 403
    response = site.post("/users", {"action": "add", "name": "mallory", "password": PASSWORD, "role": "admin"})
    assert response.status_code == 403
    with site.app.db.session() as session:
        assert session.scalar(select(User).where(User.name == "mallory")) is None


def test_an_admin_adds_and_disables_users(admin: Site) -> None:
    assert admin.post("/users", {"action": "add", "name": "王芳", "password": "short", "role": "staff"}).status_code == 400
    assert admin.post("/users", {"action": "add", "name": "王芳", "password": PASSWORD, "role": "staff"}).status_code == 303
    assert admin.post("/users", {"action": "disable", "name": "王芳"}).status_code == 303
    with admin.app.db.session() as session:
        assert session.scalar(select(User).where(User.name == "王芳")).disabled is True
    assert [e.target for e in audit_rows(admin, "user_add")][-1] == "user:王芳"
    assert audit_rows(admin, "user_disable")[0].actor == "admin"
    assert admin.login("王芳").status_code == 401


def test_user_commands_read_the_password_from_stdin_refuse_short_ones_and_disable(demo: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from intake.cli import main

    folder = tmp_path / "cli"
    shutil.copytree(demo, folder)
    config = ["--config", str(folder / "intake.toml")]
    runner = CliRunner()
    short = runner.invoke(main, [*config, "user", "add", "王芳"], input="short\n")
    assert short.exit_code == 1 and "至少 8 个字符" in short.output
    assert runner.invoke(main, [*config, "user", "add", "王芳", "--role", "admin"], input=PASSWORD + "\n").exit_code == 0
    assert "王芳\t管理员\t正常" in runner.invoke(main, [*config, "user", "list"]).output
    site = open_site(folder, tmp_path / "web", users=False)
    assert site.login("王芳").status_code == 303
    assert runner.invoke(main, [*config, "user", "disable", "王芳"]).exit_code == 0
    site.client.close()
    site.app.close()
    site = open_site(folder, tmp_path / "web2", users=False)
    assert site.login("王芳").status_code == 401
    assert [e.action for e in audit_rows(site, "user_add") + audit_rows(site, "user_disable")] == ["user_add", "user_disable"]
    site.app.close()


def test_a_large_attachment_link_is_shown_with_its_expiry_and_url(admin: Site) -> None:
    from datetime import UTC, datetime

    from storage.models import StoredFile

    sid = current_id(admin, "青岛市总工会")
    with admin.app.db.session() as session:
        session.add(StoredFile(
            submission_id=sid, name="盖章件.pdf", kind="link", sha256="", size=61_000_000,
            url="https://mail.163.com/large-attachment-download/index.html?p=X&file=Y",
            expires_at=datetime(2024, 3, 20, 2, 35, tzinfo=UTC)))
    page = admin.client.get(f"/submissions/{sid}").text
    assert "超大附件链接" in page and "2024-03-20 10:35 到期" in page
    assert 'href="https://mail.163.com/large-attachment-download/index.html?p=X&amp;file=Y" rel="noopener noreferrer"' in page


def test_the_authentication_line_tells_failed_from_not_checked() -> None:
    from intake.web.routes.submission import auth_summary

    assert auth_summary({"verified": True, "dmarc": "pass"}) == "通过（DMARC pass）"
    assert auth_summary({"verified": False, "dkim": "fail"}) == "未通过（DKIM fail）"
    assert auth_summary({"verified": None}).startswith("未检查")


# --- two campaigns in one console --------------------------------------------------------------------


@pytest.fixture
def medal_site(demo: Path, tmp_path: Path) -> Iterator[Site]:
    """The demo has the shipped 五一劳动奖章推荐 open beside the 2024 notice: 青岛 and 淄博
    recommend candidates (淄博's score is out of bounds), 济南 writes a letter for no campaign."""
    s = open_site(demo, tmp_path)
    assert s.login().status_code == 303
    yield s
    s.client.close()
    s.app.close()


def board_states(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-unit="([^"]+)" data-state="([^"]+)">', page))


def test_the_board_switches_campaigns_and_shows_each_ones_states_only(medal_site: Site) -> None:
    medal = medal_site.settings.campaigns[-1]
    default = medal_site.client.get("/").text
    chosen = medal_site.client.get(f"/?campaign={medal.id}").text
    assert f'href="/?campaign={medal.id}" data-campaign="{medal.id}"' in default
    assert f'data-campaign="{medal.id}" class="current"' in chosen
    assert board_states(default)["青岛市总工会"] == "accepted" and board_states(default)["济南市总工会"] == "accepted"
    assert board_states(chosen)["青岛市总工会"] == "accepted" and board_states(chosen)["济南市总工会"] == "missing"
    assert board_states(chosen)["枣庄市总工会"] == "missing"  # its 2024 record is not the medal's
    assert f'action="/remind">\n<input type="hidden" name="campaign" value="{medal.id}">' in chosen


def test_other_mail_is_listed_on_the_board_and_in_the_queue_never_as_a_state(medal_site: Site) -> None:
    for page in (medal_site.client.get("/").text, medal_site.client.get("/queue").text):
        section = page.split("其他来信（1）")[1]
        assert "关于职工疗养安排的请示" in section and "济南市总工会" in section


def test_each_campaigns_downloads_hold_its_rows_only(medal_site: Site) -> None:
    from openpyxl import load_workbook

    medal = medal_site.settings.campaigns[-1]
    export = medal_site.client.get(f"/export/export.json?campaign={medal.id}").json()
    assert {s["unit"] for s in export["submissions"]} == {"青岛市总工会", "淄博市总工会"}
    assert all(set(s["forms"]) == {"candidates"} for s in export["submissions"])
    book = load_workbook(io.BytesIO(medal_site.client.get(f"/export/workbook.xlsx?campaign={medal.id}").content))
    assert book.sheetnames[0] == "表1 推荐人选"
    assert {c.value for c in book["表1 推荐人选"]["A"][3:]} == {"青岛市总工会", "淄博市总工会（需修改）"}
    assert medal_site.client.get("/?campaign=nonexistent").status_code == 400


def other_letter_id(site: Site) -> int:
    with site.app.db.session() as session:
        return session.scalar(select(Submission.id).where(Submission.status == SubmissionStatus.OTHER))


def test_route_puts_a_letter_for_no_campaign_in_the_chosen_one_and_audits_it(medal_site: Site) -> None:
    medal, sid = medal_site.settings.campaigns[-1], other_letter_id(medal_site)
    page = medal_site.client.get(f"/submissions/{sid}").text
    assert f'<option value="{medal.id}" >' in page and 'id="route-form"' in page
    response = medal_site.post(f"/submissions/{sid}/route", {"target": medal.id})
    assert response.status_code == 303 and response.headers["location"] == f"/submissions/{sid}?done=route"
    routed = submission(medal_site, sid)
    assert (routed.campaign, routed.routed_by, routed.unit) == (medal.id, "staff", "济南市总工会")
    [entry] = audit_rows(medal_site, "route")
    assert (entry.actor, entry.target, entry.note) == ("admin", f"submission:{sid}", medal.name)
    assert (entry.before["campaign"], entry.after["campaign"]) == (None, medal.id)
    assert board_states(medal_site.client.get(f"/?campaign={medal.id}").text)["济南市总工会"] != "missing"
    assert "已完成：归入征集" in medal_site.client.get(f"/submissions/{sid}?done=route").text


def test_route_to_an_unknown_campaign_is_refused_and_changes_nothing(medal_site: Site) -> None:
    sid = other_letter_id(medal_site)
    response = medal_site.post(f"/submissions/{sid}/route", {"target": "nonexistent"})
    assert response.status_code == 400 and "没有编号为「nonexistent」的征集" in html.unescape(response.text)
    assert submission(medal_site, sid).status is SubmissionStatus.OTHER and audit_rows(medal_site, "route") == []


def test_a_submission_page_shows_its_own_campaign_in_the_switcher(medal_site: Site) -> None:
    medal = medal_site.settings.campaigns[-1]
    with medal_site.app.db.session() as session:
        qingdao = session.scalars(select(Submission).where(Submission.campaign == medal.id,
                                                           Submission.unit == "青岛市总工会")).first()
    page = medal_site.client.get(f"/submissions/{qingdao.id}").text
    assert f'data-campaign="{medal.id}" class="current"' in page
    assert 'data-campaign="default" class="current"' not in page
