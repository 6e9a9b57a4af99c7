"""`intake check`: every value of the file, then each server for real (Dovecot, aiosmtpd with
AUTH and STARTTLS, SQLite and PostgreSQL, the storage folder), passing and failing.
One line per item: ✓ / ! / ✗, a Chinese hint, exit 1 on any ✗, nothing sent or created."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from intake.app import App
from intake.cli import main
from tests.support.dovecot import Dovecot, SpecialUseDovecot, free_port
from tests.support.smtp import SmtpSink

from config.settings import settings_from_dict

PASSWORD = "secret"  # the session Dovecot's one password
SMTP_USER, SMTP_PASSWORD = "ldjs@sdzgh.cn", "smtp-code"
EXAMPLE = Path(__file__).parents[1] / "config" / "intake.example.toml"
UNITS = [
    {"name": "济南市总工会", "kind": "city", "emails": ["zgh@jinan.gov.cn"]},
    {"name": "青岛市总工会", "kind": "city", "emails": ["zgh@qingdao.gov.cn"]},
]


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Dovecot:
    return dovecot.add_user(f"check-{request.node.name[:30]}@sdzgh.cn")


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink(users={SMTP_USER: SMTP_PASSWORD}, tls="starttls").start()
    yield sink
    sink.stop()


def working(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink, database_url: str | None = None) -> dict:
    """A config that works against the test's servers, with nothing left from the example."""
    return {
        "mailbox": {"source": "imap", "host": mailbox.host, "port": mailbox.port, "security": "none",
                    "username": mailbox.username, "password": PASSWORD, "sent_folder": "Sent", "timeout_seconds": 10},
        "smtp": {"mode": "send", "host": sink.host, "port": sink.port, "security": "starttls", "ca_file": str(sink.ca_file),
                 "username": SMTP_USER, "password": SMTP_PASSWORD, "from_address": SMTP_USER, "timeout_seconds": 10},
        "database": {"url": database_url or f"sqlite:///{tmp_path / 'intake.db'}"},
        "storage": {"path": str(tmp_path / "files")},
        "campaign": {"name": "2025年度测试竞赛", "deadline": dt.datetime.now(dt.UTC) + dt.timedelta(days=10)},
        "digest": {"recipients": ["staff@sdzgh.cn"]},
        "units": UNITS,
    }


def with_(raw: dict, section: str, **values: object) -> dict:
    return {**raw, section: {**raw[section], **values}}


def check(tmp_path: Path, raw: dict | str, *args: str) -> tuple[int, list[str]]:
    config = tmp_path / "intake.toml"
    config.write_text(raw if isinstance(raw, str) else tomli_w.dumps(raw), encoding="utf-8")
    config.chmod(0o600)
    result = CliRunner().invoke(main, ["--config", str(config), "check", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.splitlines()


def line(lines: list[str], what: str) -> str:
    return next(entry for entry in lines if entry[2:].startswith(what + "："))


def migrated(raw: dict, tmp_path: Path) -> None:
    App(settings_from_dict(raw, base_dir=tmp_path)).close()  # builds the schema, as the first run would


def test_a_working_config_passes_every_item_and_sends_or_creates_nothing(
    tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink, database_url: str
) -> None:
    raw = working(tmp_path, mailbox, smtp_server, database_url)
    migrated(raw, tmp_path)

    code, lines = check(tmp_path, raw)  # credentials in the file: --connect by default

    items = lines[:-1]
    assert code == 0 and lines[-1].startswith("配置有效")
    assert [entry for entry in items if not entry.startswith("✓")] == []
    for what in ("邮箱连接", "邮箱登录", "IMAP ID", "收件文件夹", "已发送文件夹", "特殊文件夹", "发信连接", "STARTTLS",
                 "发信登录", "数据库连接", "数据库结构", "存档目录", "磁盘空间"):
        assert line(items, what)
    assert "尚不存在，首次使用时自动创建" in line(items, "已发送文件夹")
    assert "Sent" not in [f.split('"')[-2] for f in _folders(mailbox)]  # said, not done
    assert smtp_server.messages == [] and smtp_server.attempts == 0  # no MAIL FROM at all


def _folders(mailbox: Dovecot) -> list[str]:
    client = mailbox.client()
    try:
        return [item.decode() for item in client.list()[1]]
    finally:
        client.logout()


def test_the_untouched_example_fails_on_placeholders_and_empty_passwords(tmp_path: Path) -> None:
    code, lines = check(tmp_path, EXAMPLE.read_text(encoding="utf-8"))

    assert code == 1
    assert "jinan@example.cn" in line(lines, "示例地址") and line(lines, "示例地址").startswith("✗")
    assert line(lines, "邮箱密码").startswith("✗") and "授权码" in line(lines, "邮箱密码")
    assert line(lines, "发信密码").startswith("✗")
    assert line(lines, "截止时间").startswith("!") and "已过" in line(lines, "截止时间")  # a warning only
    assert not any(entry[2:].startswith("邮箱连接") for entry in lines)  # nothing to log in with: no connect


def test_one_address_under_two_units_fails(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    raw = working(tmp_path, mailbox, smtp_server)
    raw["units"] = [*UNITS, {"name": "淄博市总工会", "kind": "city", "emails": ["ZGH@jinan.gov.cn"]}]

    code, lines = check(tmp_path, raw, "--no-connect")

    assert code == 1
    assert "zgh@jinan.gov.cn" in line(lines, "单位邮箱") and "济南市总工会、淄博市总工会" in line(lines, "单位邮箱")


def test_a_wrong_mailbox_password_names_the_authorization_code(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    raw = with_(working(tmp_path, mailbox, smtp_server), "mailbox", password="web-password")

    code, lines = check(tmp_path, raw)

    assert code == 1
    refused = line(lines, "邮箱登录")
    assert refused.startswith("✗")
    assert f"登录邮箱 {mailbox.username}（服务器 127.0.0.1:{mailbox.port}）失败：用户名或密码错误" in refused
    assert "授权码" in refused and "AUTHENTICATIONFAILED" in refused  # the server's own words, briefly


def test_a_wrong_smtp_password_fails_at_auth_and_sends_nothing(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    raw = with_(working(tmp_path, mailbox, smtp_server), "smtp", password="web-password")

    code, lines = check(tmp_path, raw)

    assert code == 1
    assert line(lines, "STARTTLS").startswith("✓")
    assert line(lines, "发信登录").startswith("✗") and "授权码" in line(lines, "发信登录")
    assert smtp_server.attempts == 0


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_ssl_on_a_plaintext_port_says_port_and_security_do_not_match(
    tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink, section: str
) -> None:
    raw = with_(working(tmp_path, mailbox, smtp_server), section, security="ssl")

    code, lines = check(tmp_path, raw)

    refused = line(lines, "邮箱连接" if section == "mailbox" else "发信连接")
    assert code == 1 and refused.startswith("✗")
    assert "端口与加密方式不匹配" in refused and "WRONG_VERSION_NUMBER" in refused
    assert ("993 配 ssl" if section == "mailbox" else "465 配 ssl") in refused


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_a_closed_port_is_named_as_refused(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink, section: str) -> None:
    raw = with_(working(tmp_path, mailbox, smtp_server), section, port=free_port())

    code, lines = check(tmp_path, raw)

    assert code == 1
    assert "连接被拒绝" in line(lines, "邮箱连接" if section == "mailbox" else "发信连接")


def test_a_postgres_url_without_the_driver_is_one_chinese_line(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    raw = with_(working(tmp_path, mailbox, smtp_server), "database", url="postgres://intake:pw@127.0.0.1/intake")

    code, lines = check(tmp_path, raw)

    assert code == 1 and len(lines) == 1
    assert "database.url" in lines[0] and "postgresql+psycopg://" in lines[0] and "pw@" not in lines[0]


def test_a_missing_postgres_database_fails_the_database_item(
    tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink, postgres_server  # noqa: ANN001
) -> None:
    url = postgres_server.url("no_such_database")
    code, lines = check(tmp_path, working(tmp_path, mailbox, smtp_server, url))

    assert code == 1
    assert line(lines, "数据库").startswith("✗") and "数据库或用户不存在" in line(lines, "数据库")


def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :rev"), {"rev": revision})
    engine.dispose()


def test_a_schema_behind_head_is_reported_and_not_migrated(
    tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink, database_url: str
) -> None:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    raw = working(tmp_path, mailbox, smtp_server, database_url)
    migrated(raw, tmp_path)
    script = ScriptDirectory.from_config(alembic_config())
    older = script.get_revision(script.get_current_head()).down_revision
    _set_revision(database_url, older)

    code, lines = check(tmp_path, raw)

    assert line(lines, "数据库结构").startswith("!") and f"当前 {older}" in line(lines, "数据库结构")
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == older  # untouched
    engine.dispose()

    _set_revision(database_url, "f00dfeedbeef")  # written by a newer intake
    code, lines = check(tmp_path, raw)
    assert code == 1 and line(lines, "数据库结构").startswith("✗") and "请升级 intake" in line(lines, "数据库结构")


def test_a_fresh_sqlite_database_is_not_created_by_check(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    raw = working(tmp_path, mailbox, smtp_server)

    code, lines = check(tmp_path, raw)

    assert code == 0 and line(lines, "数据库").startswith("!") and "首次运行时创建" in line(lines, "数据库")
    assert not (tmp_path / "intake.db").exists()


def test_an_unwritable_storage_path_fails(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    raw = with_(working(tmp_path, mailbox, smtp_server), "storage", path=str(blocker / "files"))

    code, lines = check(tmp_path, raw)

    assert code == 1 and line(lines, "存档目录").startswith("✗") and "不是文件夹" in line(lines, "存档目录")


def test_little_free_space_is_a_warning() -> None:
    from intake.checks import Mark, storage_checks

    settings = settings_from_dict({"campaign": {"name": "x", "deadline": "2030-01-01T00:00:00+08:00"}},
                                  base_dir=Path("/tmp"))
    items = storage_checks(settings, min_free=1 << 62)
    assert [i.mark for i in items if i.what == "磁盘空间"] == [Mark.WARN]


@pytest.fixture(scope="module")
def special_use_dovecot() -> Iterator[Dovecot]:
    server = SpecialUseDovecot(users={"ldjs@sdzgh.cn": PASSWORD}).start()
    yield server
    server.cleanup()


def test_special_use_folders_are_listed_and_junk_is_pointed_out(
    tmp_path: Path, special_use_dovecot: Dovecot, smtp_server: SmtpSink
) -> None:
    raw = with_(working(tmp_path, special_use_dovecot, smtp_server), "mailbox", sent_folder="已发送")

    code, lines = check(tmp_path, raw)

    assert "垃圾邮件=Junk" in line(lines, "特殊文件夹") and "已发送=Sent" in line(lines, "特殊文件夹")
    assert line(lines, "垃圾邮件").startswith("!") and "Junk" in line(lines, "垃圾邮件")
    mismatch = [entry for entry in lines if entry.startswith("! 已发送文件夹：")]
    assert len(mismatch) == 1 and 'sent_folder = "已发送"' in mismatch[0]
    assert code == 0  # warnings do not fail the check


# --- campaign files --------------------------------------------------------------------

SHIPPED_WUYI = Path(__file__).parents[1] / "config" / "campaigns" / "2024-五一劳动奖章推荐.toml"
BROKEN_CAMPAIGNS = {
    "unknown_type": (('type = "date"', 'type = "datum"'), "只能是 'text', 'int', 'decimal' 或 'date'"),
    "rule_on_missing_column": (("score <= full_score", "score <= fullscore"), "用到了不存在的栏 fullscore"),
    "duplicate_label": (('aliases = ["出生日期"]', 'aliases = ["出生日期", "姓名"]'), "表头文字“姓名”对应了不止一栏"),
    "text_totals_column": (("totals = []", 'totals = ["name"]'), "合计栏 name 不是数字栏"),
}


def broken_campaign(tmp_path: Path, case: str) -> Path:
    (old, new), _ = BROKEN_CAMPAIGNS[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(SHIPPED_WUYI.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BROKEN_CAMPAIGNS))
def test_a_broken_campaign_file_is_one_chinese_line_naming_the_file(tmp_path: Path, case: str) -> None:
    path = broken_campaign(tmp_path, case)
    raw = {"campaigns": [{"file": path.name}], "units": UNITS}

    code, lines = check(tmp_path, raw, "--no-connect")

    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("✗ 配置文件：") and str(path) in lines[0] and BROKEN_CAMPAIGNS[case][1] in lines[0]


@pytest.mark.parametrize("case", sorted(BROKEN_CAMPAIGNS))
def test_check_campaign_file_validates_one_file_alone(tmp_path: Path, case: str) -> None:
    result = CliRunner().invoke(main, ["check", "--campaign-file", str(broken_campaign(tmp_path, case))])

    assert result.exit_code == 1
    assert result.output.splitlines() == [next(l for l in result.output.splitlines() if l.startswith("✗ 征集文件："))]
    assert BROKEN_CAMPAIGNS[case][1] in result.output


def test_check_campaign_file_reports_a_good_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--campaign-file", str(SHIPPED_WUYI)])

    assert result.exit_code == 0
    assert "✓ 征集文件：wuyi-2024：2024年山东省五一劳动奖章推荐，截止 2024-03-15 17:00" in result.output
    assert "candidates（推荐人选，7 栏）" in result.output


def test_check_campaign_file_takes_a_path_relative_to_where_it_is_run(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "wuyi.toml").write_bytes(SHIPPED_WUYI.read_bytes())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check", "--campaign-file", "campaigns/wuyi.toml"])

    assert result.exit_code == 0, result.output
    assert "✓ 征集文件：wuyi-2024" in result.output


def test_each_campaign_is_reported_and_a_shared_keyword_of_two_open_ones_fails(tmp_path: Path) -> None:
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).isoformat()
    raw = {"campaigns": [{"file": "2024-劳动竞赛", "deadline": future, "keywords": ["报送材料", "劳动竞赛"]},
                         {"file": "2024-五一劳动奖章推荐", "deadline": future, "keywords": ["报送材料"]}],
           "units": UNITS}

    code, lines = check(tmp_path, raw, "--no-connect")

    campaigns = [entry for entry in lines if entry.startswith("✓ 征集：")]
    assert [entry.split("：")[1] for entry in campaigns] == ["ldjs-2024", "wuyi-2024"]
    assert "form1（重点工程类，7 栏）" in campaigns[0] and "candidates（推荐人选" in campaigns[1]
    assert code == 1
    assert line(lines, "征集关键词").startswith("✗") and "“报送材料”" in line(lines, "征集关键词")
    assert "ldjs-2024 和 wuyi-2024" in line(lines, "征集关键词")


def test_a_keyword_shared_with_a_closed_campaign_passes(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    raw = {"campaigns": [{"file": "2024-劳动竞赛", "id": "ldjs-2023", "keywords": ["报送材料"],
                          "deadline": (now - dt.timedelta(days=30)).isoformat(),
                          "closes_at": (now - dt.timedelta(days=20)).isoformat()},
                         {"file": "2024-五一劳动奖章推荐", "deadline": (now + dt.timedelta(days=5)).isoformat(),
                          "keywords": ["报送材料"]}],
           "units": UNITS}

    code, lines = check(tmp_path, raw, "--no-connect")

    assert not any(entry[2:].startswith("征集关键词") for entry in lines)
    assert "停止受理" in next(entry for entry in lines if entry[2:].startswith("截止时间：ldjs-2023"))
