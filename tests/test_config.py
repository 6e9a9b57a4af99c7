"""The TOML configuration: validated at start, one clear line per problem, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings, settings_from_dict

MINIMAL = '[campaign]\nname = "测试"\ndeadline = 2024-02-25T17:00:00+08:00\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intake.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_file_gives_working_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.mailbox.folder == "INBOX"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var/intake.db'}"


def test_a_missing_key_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"campaign\.deadline 有误：缺少此项"):
        load_settings(write(tmp_path, '[campaign]\nname = "x"\n'))


def test_a_wrong_value_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mailbox\.security"):
        load_settings(write(tmp_path, MINIMAL + '[mailbox]\nsecurity = "tls"\n'))


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"smtp\.pasword"):
        load_settings(write(tmp_path, MINIMAL + '[smtp]\npasword = "x"\n'))


def test_a_deadline_without_an_offset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"campaign\.deadline 有误：需要带时区"):
        load_settings(write(tmp_path, '[campaign]\nname = "x"\ndeadline = 2024-02-25T17:00:00\n'))


def test_broken_toml_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TOML"):
        load_settings(write(tmp_path, "[campaign\n"))


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings(tmp_path / "nope.toml")


def test_the_config_is_found_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_CONFIG", str(write(tmp_path, MINIMAL)))
    assert load_settings(None).campaign.name == "测试"


def test_secrets_come_from_the_environment_and_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_MAILBOX_PASSWORD", "hunter2")
    monkeypatch.setenv("INTAKE_DATABASE_URL", "postgresql+psycopg://u:pw@h/db")
    settings = settings_from_dict({"campaign": {"name": "x", "deadline": "2024-02-25T17:00:00+08:00"}})
    assert settings.mailbox.password.get_secret_value() == "hunter2"
    assert settings.database_url == "postgresql+psycopg://u:pw@h/db"
    assert "hunter2" not in repr(settings) and "pw@h" not in repr(settings)


def test_the_shipped_example_config_is_valid() -> None:
    settings = load_settings(Path(__file__).parents[1] / "config" / "intake.example.toml")
    kinds = [u.kind.value for u in settings.units]
    assert kinds.count("city") == 16
    assert {"industry", "organ", "enterprise"} <= set(kinds)


# --- every value checked at load, every error in one Chinese line ---------------------------


def test_an_unknown_time_zone_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"digest\.timezone.*Beijing.*Asia/Shanghai"):
        load_settings(write(tmp_path, MINIMAL + '[digest]\ntimezone = "Beijing"\n'))


def test_a_reminder_offset_the_reminder_parser_cannot_read_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"reminders\.before.*3天.*3d"):
        load_settings(write(tmp_path, MINIMAL + '[reminders]\nbefore = ["3天"]\n'))


def test_a_postgres_url_without_the_psycopg_driver_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"database\.url.*postgresql\+psycopg://") as refused:
        load_settings(write(tmp_path, MINIMAL + '[database]\nurl = "postgres://intake:hunter2@db/intake"\n'))
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[campaign]\nname = "x"\n', "缺少此项"),
        (MINIMAL + "[mailbox]\nport = \"九九三\"\n", "应为整数"),
        (MINIMAL + "[smtp]\npasword = \"x\"\n", "不认识此项"),
        (MINIMAL + '[mailbox]\nsecurity = "tls"\n', "只能是 'ssl', 'starttls' 或 'none'"),
        (MINIMAL + "[mailbox]\npoll_seconds = 1\n", "不能小于 5"),
        (MINIMAL + "[digest]\nrecipients = \"a@b.cn\"\n", "应为列表"),
    ],
)
def test_pydantic_errors_are_translated(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, text))
    message = str(refused.value)
    assert words in message and "\n" not in message
    assert not any(english in message for english in ("Field required", "Input should", "Extra inputs"))


def test_auth_pause_defaults_to_thirty_minutes(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, MINIMAL)).mailbox.auth_pause.total_seconds() == 1800


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_a_password_imaplib_and_smtplib_cannot_send_is_refused_at_load(tmp_path: Path, section: str) -> None:
    with pytest.raises(ConfigError, match=rf"{section}\.password.*授权码") as refused:
        load_settings(write(tmp_path, MINIMAL + f'[{section}]\npassword = "网页登录密码"\n'))
    assert "网页登录密码" not in str(refused.value)


def test_campaigns_come_from_shipped_files_by_name_with_the_tables_keys_over_them(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, (
        '[[campaigns]]\nfile = "2024-劳动竞赛"\ndeadline = 2024-03-01T17:00:00+08:00\n'
        '[[campaigns]]\nfile = "2024-五一劳动奖章推荐"\ncontact = "张三"\n'
        '[other_mail]\nacknowledge = true\n')))
    ldjs, wuyi = settings.campaigns
    assert (ldjs.id, ldjs.deadline.isoformat(), [f.id for f in ldjs.forms]) == (
        "ldjs-2024", "2024-03-01T17:00:00+08:00", ["form1", "form2"])
    assert (wuyi.id, wuyi.contact, wuyi.deadline.isoformat()) == ("wuyi-2024", "张三", "2024-03-15T17:00:00+08:00")
    assert settings.campaign is ldjs and settings.other_mail.acknowledge is True
    assert [f.key for f in settings.campaign_set.forms] == ["ldjs-2024/form1", "ldjs-2024/form2", "wuyi-2024/candidates"]


def test_the_single_campaign_section_is_the_default_campaign_with_the_2024_forms(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL + 'form1_title = "重点工程类汇总表"\n'))
    (campaign,) = settings.campaigns
    assert (campaign.id, campaign.name) == ("default", "测试")
    assert [f.title for f in campaign.forms] == ["重点工程类汇总表", "竞赛项目汇总表（技术技能类、创新创意类、工作推进类）"]
    assert settings.other_mail.acknowledge is False


def test_a_campaign_file_relative_to_the_config_is_read(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[1] / "config" / "campaigns" / "2024-五一劳动奖章推荐.toml"
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "2025.toml").write_text(
        shipped.read_text(encoding="utf-8").replace('id = "wuyi-2024"', 'id = "wuyi-2025"'), encoding="utf-8")
    settings = load_settings(write(tmp_path, '[[campaigns]]\nfile = "campaigns/2025.toml"\n'))
    assert settings.campaign.id == "wuyi-2025"


def test_two_campaigns_under_one_id_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ldjs-2024"):
        load_settings(write(tmp_path, '[[campaigns]]\nfile = "2024-劳动竞赛"\n[[campaigns]]\nfile = "2024-劳动竞赛"\n'))
