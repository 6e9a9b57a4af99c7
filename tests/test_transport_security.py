"""Every connection to a mail server checks its certificate, and passwords never travel in
the clear to another machine, against a real Dovecot and SMTP server speaking TLS."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from config.settings import ConfigError, Settings, load_settings, settings_from_dict
from intake.app import App
from intake.cli import main
from intake.mailbox import MailboxError, open_mailbox
from intake.runs import poll_once
from notifications.outbox import Outbox
from storage.db import Database
from storage.models import OutboxState
from tests.support.dovecot import Dovecot, self_signed_certificate
from tests.support.intake_env import intake_settings, settings_as_toml, submission_mail
from tests.support.smtp import SmtpSink, _Handler
from tests.test_outbox import new_sent_folder, queue_mails, rows

REFUSED = "的证书未通过验证"


@pytest.fixture(scope="module")
def imaps() -> Iterator[Dovecot]:
    server = Dovecot(tls="imaps").start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def starttls() -> Iterator[Dovecot]:
    server = Dovecot(tls="starttls").start()
    yield server
    server.cleanup()


def over_tls(tmp_path: Path, server: Dovecot, security: str, **mailbox: object) -> Settings:
    return intake_settings(tmp_path, dovecot=server, mailbox={"security": security, **mailbox})


@pytest.mark.parametrize(("server_name", "security"), [("imaps", "ssl"), ("starttls", "starttls")])
def test_a_certificate_the_system_does_not_trust_is_refused_in_one_chinese_line(
    request: pytest.FixtureRequest, tmp_path: Path, server_name: str, security: str
) -> None:
    server: Dovecot = request.getfixturevalue(server_name)
    settings = over_tls(tmp_path, server, security)
    log_before = len(server.log_text())

    with pytest.raises(MailboxError) as refused, open_mailbox(settings.mailbox):
        pass

    message = str(refused.value)
    assert f"邮箱服务器 127.0.0.1:{server.port} {REFUSED}" in message
    assert "[mailbox] ca_file" in message and "\n" not in message
    assert "Login: user=" not in server.log_text()[log_before:]  # the password was never sent


@pytest.mark.parametrize(("server_name", "security"), [("imaps", "ssl"), ("starttls", "starttls")])
def test_a_ca_file_beside_the_config_lets_a_real_poll_run_over_tls(
    request: pytest.FixtureRequest, tmp_path: Path, server_name: str, security: str
) -> None:
    server: Dovecot = request.getfixturevalue(server_name).add_user(f"{server_name}-{tmp_path.name}@example.org")
    shutil.copy(server.ca_file, tmp_path / "private-ca.pem")
    raw = settings_as_toml(over_tls(tmp_path, server, security))
    raw["mailbox"]["ca_file"] = "private-ca.pem"  # relative: taken from the config file's folder
    config = tmp_path / "intake.toml"
    config.write_text(tomli_w.dumps(raw), encoding="utf-8")
    server.append(submission_mail())

    settings = load_settings(config)
    with App(settings) as app:
        report = poll_once(app)

    assert settings.mailbox.ca_file == tmp_path / "private-ca.pem"
    assert report.new == 1
    assert f"user=<{server.username}>, method=PLAIN" in server.log_text()
    login = next(line for line in server.log_text().splitlines() if f"user=<{server.username}>" in line)
    assert ", TLS," in login


def test_a_ca_file_of_another_ca_does_not_make_the_server_trusted(tmp_path: Path, imaps: Dovecot) -> None:
    other_ca = self_signed_certificate(tmp_path / "other")[0]  # did not sign the server's certificate
    settings = over_tls(tmp_path, imaps, "ssl", ca_file=str(other_ca))

    with pytest.raises(MailboxError, match=REFUSED), open_mailbox(settings.mailbox):
        pass


def test_the_sent_folder_connection_checks_the_certificate_too(tmp_path: Path, imaps: Dovecot, smtp_sink: SmtpSink) -> None:
    db = Database(f"sqlite:///{tmp_path / 'o.db'}")
    name = new_sent_folder()
    queue_mails(db, 1)
    mailbox = {"host": imaps.host, "port": imaps.port, "security": "ssl", "username": imaps.username,
               "password": imaps.password, "sent_folder": name, "timeout_seconds": 10}
    smtp = {"mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none"}
    untrusted = settings_from_dict(_reply_config(mailbox, smtp))
    trusted = settings_from_dict(_reply_config({**mailbox, "ca_file": str(imaps.ca_file)}, smtp))

    Outbox(db, untrusted).send_pending()
    [row] = rows(db)
    assert REFUSED in (row.last_error or "")  # sent, but no copy: the server was not trusted
    queue_mails(db, 1)
    Outbox(db, trusted).send_pending()

    assert len(imaps.fetch_raw(name)) == 1
    db.dispose()


def _reply_config(mailbox: dict, smtp: dict) -> dict:
    return {"campaign": {"name": "测试", "deadline": "2024-02-25T17:00:00+08:00"},
            "smtp": {"from_address": "ldjs@example.org", **smtp}, "mailbox": mailbox}


class TlsSmtpSink(SmtpSink):
    """The SMTP sink behind implicit TLS (port 465 style) with a self-signed certificate."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.ca_file, key = self_signed_certificate(directory)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.ca_file, key)

    def start(self) -> TlsSmtpSink:
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, decode_data=False,
                                      ssl_context=self.context)
        self._controller.start()
        return self


def test_smtp_checks_the_certificate_against_the_same_kind_of_ca_file(tmp_path: Path) -> None:
    sink = TlsSmtpSink(tmp_path / "smtp-tls").start()
    db = Database(f"sqlite:///{tmp_path / 's.db'}")
    smtp = {"mode": "send", "host": sink.host, "port": sink.port, "security": "ssl"}
    try:
        queue_mails(db, 1)
        Outbox(db, settings_from_dict(_reply_config({}, smtp))).send_pending()
        [row] = rows(db)
        assert row.state is OutboxState.PENDING and sink.messages == []
        assert f"发信服务器 127.0.0.1:{sink.port} {REFUSED}" in row.last_error and "[smtp] ca_file" in row.last_error

        later = row.next_attempt_at
        report = Outbox(db, settings_from_dict(_reply_config({}, {**smtp, "ca_file": str(sink.ca_file)}))).send_pending(
            now=later)
        assert report.sent == 1 and len(sink.messages) == 1
    finally:
        sink.stop()
        db.dispose()


# --- security = "none" only on loopback -----------------------------------------------


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
@pytest.mark.parametrize("host", ["imap.163.com", "10.0.0.5", "::ffff:10.0.0.5", "localhost.example.org"])
def test_plaintext_to_another_machine_is_refused_naming_the_key(section: str, host: str) -> None:
    with pytest.raises(ConfigError, match=rf"^配置项 {section}\.security 有误: .*allow_plaintext = true") as refused:
        settings_from_dict(_reply_config({"source": "imap"}, {"mode": "send"}) | _plain(section, host))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST."])
def test_plaintext_on_loopback_is_allowed(section: str, host: str) -> None:
    settings = settings_from_dict(_reply_config({"source": "imap"}, {"mode": "send"}) | _plain(section, host))
    assert getattr(settings, section).security == "none"


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_plaintext_to_another_machine_is_allowed_when_the_config_says_so(section: str) -> None:
    raw = _reply_config({}, {}) | _plain(section, "imap.163.com", allow_plaintext=True)
    assert getattr(settings_from_dict(raw), section).allow_plaintext is True


def test_intake_check_refuses_a_plaintext_mailbox_on_another_machine(tmp_path: Path) -> None:
    config = tmp_path / "intake.toml"
    config.write_text(tomli_w.dumps(_reply_config({}, {}) | _plain("mailbox", "imap.163.com")), encoding="utf-8")

    result = CliRunner().invoke(main, ["--config", str(config), "check"])

    assert result.exit_code == 1
    assert "mailbox.security" in result.output and result.output.count("\n") == 1


def _plain(section: str, host: str, **extra: object) -> dict:
    base = {"source": "imap"} if section == "mailbox" else {"mode": "send"}
    return {section: {**base, "host": host, "port": 143, "security": "none", **extra}}


@pytest.mark.parametrize("section", ["mailbox", "smtp"])
def test_a_ca_file_that_is_no_certificate_is_refused_at_load(tmp_path: Path, section: str) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^配置项 {section}\.ca_file 有误: .*PEM"):
        settings_from_dict(_reply_config({}, {}) | {section: {"ca_file": "ca.pem"}}, base_dir=tmp_path)


def test_a_missing_ca_file_is_named_with_its_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^配置项 mailbox\.ca_file 有误") as refused:
        settings_from_dict(_reply_config({"ca_file": "missing.pem"}, {}), base_dir=tmp_path)
    assert str(tmp_path / "missing.pem") in str(refused.value)
