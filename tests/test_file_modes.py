"""What intake writes to disk is private to its own account (files 0600, new folders 0700)
even when the process inherits a permissive umask, and names built from configuration
stay inside their folder."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from sqlalchemy import text

from intake.archive import Archive
from intake.cli import main
from storage.db import Database
from storage.files import safe_file_name
from storage.locks import exclusive
from tests.support.intake_env import DEADLINE, intake_settings, settings_as_toml, submission_mail

HOSTILE_NAME = "../../逃逸/../x\x00y\x1b[31m\u202e\\z"


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The umask a careless service unit or shell leaves behind: everything world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_below(root: Path) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {"files": set(), "folders": {mode(root)}}
    for path in root.rglob("*"):
        found["folders" if path.is_dir() else "files"].add(mode(path))
    return found


def site(tmp_path: Path, campaign_name: str = "2024年度测试竞赛") -> Path:
    """A config with every path relative and not yet created, and a Maildir holding two mails."""
    site_dir = tmp_path / "site"
    maildir = site_dir / "maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n, hours in enumerate((30, 20)):
        mail = maildir / "new" / f"{n}.test"
        mail.write_bytes(submission_mail(date=DEADLINE - dt.timedelta(hours=hours)))
        stamp = (DEADLINE - dt.timedelta(hours=hours)).timestamp()
        os.utime(mail, (stamp, stamp))
    raw = settings_as_toml(intake_settings(tmp_path))
    raw["campaigns"][0]["name"] = campaign_name
    raw["mailbox"] = {"source": "maildir", "maildir": "maildir"}
    raw["database"]["url"] = "sqlite:///data/intake.db"
    raw["storage"]["path"] = "var/files"
    raw["smtp"]["outbox_dir"] = "var/outbox"
    config = site_dir / "intake.toml"
    config.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return config


def intake(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_poll_leaves_database_locks_archive_and_replies_private(tmp_path: Path) -> None:
    config = site(tmp_path)

    intake(config, "poll")

    root = config.parent
    data = root / "data"
    locks = sorted(data.glob("intake.db.*lock"))
    assert {p.name.split(".")[-2].split("-")[0] for p in locks} >= {"migrate", "poll"}
    assert {mode(p) for p in [data / "intake.db", *locks]} == {0o600}
    assert mode(data) == 0o700
    assert modes_below(root / "var") == {"files": {0o600}, "folders": {0o700}}
    assert len(list((root / "var" / "files").rglob("*"))) > 4 and any((root / "var" / "outbox").iterdir())


def test_sqlite_wal_and_shm_files_follow_the_private_database_file(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new' / 'intake.db'}")
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE t (x)"))
        with db.engine.connect() as conn:  # an open connection keeps -wal and -shm on disk
            conn.execute(text("SELECT * FROM t")).all()
            files = sorted((tmp_path / "new").iterdir())
            assert {p.name for p in files} >= {"intake.db", "intake.db-wal", "intake.db-shm"}
            assert {mode(p) for p in files} == {0o600}
    finally:
        db.dispose()
    assert mode(tmp_path / "new") == 0o700


def test_without_the_cli_locks_and_archive_are_private_too(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'intake.db'}")
    try:
        with exclusive(db, "some job") as acquired:
            assert acquired
        Archive(tmp_path / "archive").store("mail", b"From: a@example.cn\r\n\r\nhello\r\n")
    finally:
        db.dispose()
    assert {mode(p) for p in tmp_path.glob("intake.db*")} == {0o600}
    assert modes_below(tmp_path / "archive") == {"files": {0o600}, "folders": {0o700}}


@pytest.mark.parametrize("fmt", ["json", "xlsx"])
def test_export_out_writes_a_private_file_in_private_new_folders(tmp_path: Path, fmt: str) -> None:
    config = site(tmp_path)
    intake(config, "poll")
    out = tmp_path / "reports" / "2024" / f"export.{fmt}"

    intake(config, "export", "--format", fmt, "--out", str(out))

    assert out.stat().st_size > 0
    assert mode(out) == 0o600
    assert mode(tmp_path / "reports") == mode(tmp_path / "reports" / "2024") == 0o700


def test_digest_out_is_private_and_a_hostile_campaign_name_stays_inside_the_folder(tmp_path: Path) -> None:
    config = site(tmp_path, campaign_name=HOSTILE_NAME)
    intake(config, "poll")
    out = tmp_path / "reports" / "digest"
    before = {p for p in tmp_path.rglob("*") if p.is_file()}

    intake(config, "digest", "--out", str(out))

    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert {p.parent for p in written} == {out}
    assert len(written) == 3 and sum(p.suffix == ".xlsx" for p in written) == 1
    assert {mode(p) for p in written} == {0o600}
    assert mode(out) == mode(out.parent) == 0o700


@pytest.mark.parametrize("name", [HOSTILE_NAME, "..", "../..", "/etc/passwd", "a\x00b", "\n\r\t", "", "名" * 300 + ".xlsx"])
def test_a_file_name_from_configuration_is_one_harmless_component(tmp_path: Path, name: str) -> None:
    safe = safe_file_name(name, fallback="汇总表.xlsx")

    assert (tmp_path / safe).parent == tmp_path and (tmp_path / safe).resolve().parent == tmp_path
    assert not safe.startswith(".") and not set(safe) & {"/", "\\", "\x00", "\x1b", "\n", "\r", "\t", "\u202e"}
    assert 0 < len(safe.encode("utf-8")) <= 200
    (tmp_path / safe).write_bytes(b"x")  # the filesystem takes it as one name


def test_a_long_configured_name_keeps_its_extension() -> None:
    assert safe_file_name("名" * 300 + ".xlsx").endswith("名.xlsx")


# --- intake check and a password in a readable config file ------------------------------


def config_with_password(tmp_path: Path, file_mode: int, password: str = "s3cret") -> Path:
    raw = settings_as_toml(intake_settings(tmp_path))
    raw["mailbox"]["password"] = password
    config = tmp_path / "intake.toml"
    config.write_text(tomli_w.dumps(raw), encoding="utf-8")
    config.chmod(file_mode)
    return config


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604])
def test_check_warns_when_a_password_sits_in_a_file_others_can_read(tmp_path: Path, file_mode: int) -> None:
    output = checked(config_with_password(tmp_path, file_mode))

    warning = next(line for line in output.splitlines() if line.startswith("! 文件权限"))
    assert "mailbox.password" in warning and "chmod 600" in warning


@pytest.mark.parametrize(("file_mode", "password"), [(0o600, "s3cret"), (0o644, "")])
def test_check_is_quiet_for_a_private_file_or_one_without_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_mode: int, password: str
) -> None:
    monkeypatch.setenv("INTAKE_MAILBOX_PASSWORD", "from-the-environment")
    output = checked(config_with_password(tmp_path, file_mode, password))
    assert "文件权限" not in output and "配置文件" in output


def checked(config: Path) -> str:
    """`check` of the file alone (its example.cn units fail it, which is not the point here)."""
    return CliRunner().invoke(main, ["--config", str(config), "check", "--no-connect"], catch_exceptions=False).output
