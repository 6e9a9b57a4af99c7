"""The one TOML file that configures intake, validated at start.

Everything that changes from one year's call to the next (campaign name, deadline,
form wording, the unit registry) lives here, not in code.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DEFAULT_CONFIG_NAME = "intake.toml"
# Secrets may come from the environment so they never sit in a file or a log line.
SECRET_ENV = {
    ("mailbox", "password"): "INTAKE_MAILBOX_PASSWORD",
    ("smtp", "password"): "INTAKE_SMTP_PASSWORD",
    ("database", "url"): "INTAKE_DATABASE_URL",
}


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


class Security(StrEnum):
    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


class UnitKind(StrEnum):
    CITY = "city"
    INDUSTRY = "industry"
    ORGAN = "organ"
    ENTERPRISE = "enterprise"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MailboxSettings(_Section):
    # "imap" watches a real server; "maildir" reads a local Maildir (the demo), where a
    # file's mtime is the arrival time, as Dovecot itself treats it.
    source: Literal["imap", "maildir"] = "imap"
    host: str = "localhost"
    port: int = 993
    security: Security = Security.SSL
    username: str = ""
    password: SecretStr = SecretStr("")
    folder: str = "INBOX"
    processed_folder: str | None = None
    sent_folder: str | None = None
    maildir: Path = Path("var/maildir")
    poll_seconds: Annotated[int, Field(ge=5)] = 60
    idle: bool = True
    idle_seconds: Annotated[int, Field(ge=10, le=29 * 60)] = 25 * 60
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0


class SmtpSettings(_Section):
    host: str = "localhost"
    port: int = 465
    security: Security = Security.SSL
    username: str = ""
    password: SecretStr = SecretStr("")
    from_address: str = "intake@localhost"
    from_name: str = ""
    mode: Literal["send", "file", "off"] = "file"
    outbox_dir: Path = Path("var/outbox")
    max_attempts: Annotated[int, Field(ge=1)] = 8
    retry_base_seconds: Annotated[float, Field(gt=0)] = 30.0
    daily_cap_per_recipient: Annotated[int, Field(ge=1)] = 5
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    templates_dir: Path | None = None


class DatabaseSettings(_Section):
    url: SecretStr = SecretStr("sqlite:///var/intake.db")


class StorageSettings(_Section):
    path: Path = Path("var/files")


class LimitsSettings(_Section):
    max_message_bytes: int = 60 * 1024 * 1024
    max_file_bytes: int = 30 * 1024 * 1024
    max_unpacked_bytes: int = 100 * 1024 * 1024
    max_zip_members: int = 200
    max_zip_ratio: int = 100
    max_zip_depth: int = 2
    max_pdf_pages: int = 50
    max_rows: int = 5000
    seconds_per_file: float = 60.0


class ParsingSettings(_Section):
    seal_detection: bool = True
    ocr: bool = False
    seal_dpi: Annotated[int, Field(ge=72, le=400)] = 150
    workers: Annotated[int, Field(ge=0, le=16)] = 0  # parser processes; 0: one per core, at most 2


class CampaignSettings(_Section):
    name: str
    deadline: dt.datetime
    form1_title: str = "竞赛项目汇总表（重点工程类）"
    form2_title: str = "竞赛项目汇总表（技术技能类、创新创意类、工作推进类）"
    contact: str = ""

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("需要带时区的时间，例如 2024-02-25T17:00:00+08:00")
        return value


class DigestSettings(_Section):
    recipients: list[str] = []
    at: str = "08:30"
    timezone: str = "Asia/Shanghai"

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        dt.time.fromisoformat(value)
        return value


class RemindersSettings(_Section):
    enabled: bool = False
    # Offsets before the deadline, e.g. ["3d", "4h"].
    before: list[str] = ["3d", "1d"]


class AuthenticitySettings(_Section):
    # Only Authentication-Results added by these hosts (our own receiving server, e.g.
    # "mx.163.com") are believed: any other copy of the header may come from the sender.
    trusted_authserv_ids: list[str] = []
    # Check DKIM signatures ourselves (needs DNS); off when the receiving server does it.
    verify_dkim: bool = False
    # Flag mail whose From could not be authenticated (a warning for staff, never a rejection).
    require: bool = True


class UnitSettings(_Section):
    name: str
    kind: UnitKind
    emails: list[str] = []
    aliases: list[str] = []


class Settings(_Section):
    mailbox: MailboxSettings = MailboxSettings()
    smtp: SmtpSettings = SmtpSettings()
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    parsing: ParsingSettings = ParsingSettings()
    campaign: CampaignSettings
    digest: DigestSettings = DigestSettings()
    reminders: RemindersSettings = RemindersSettings()
    authenticity: AuthenticitySettings = AuthenticitySettings()
    units: list[UnitSettings] = []
    # Relative paths in the file are taken from the file's folder.
    base_dir: Path = Path(".")

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        url = self.database.url.get_secret_value()
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(Path(url[len(prefix):])))
        return url


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """--config PATH, else $INTAKE_CONFIG, else ./intake.toml."""
    for candidate in (explicit, os.environ.get("INTAKE_CONFIG")):
        if candidate:
            return Path(candidate)
    return Path(DEFAULT_CONFIG_NAME)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    config_path = find_config(path)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"配置文件不存在: {config_path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"配置文件 {config_path} 不是有效的 TOML: {err}") from None
    return settings_from_dict(raw, base_dir=config_path.resolve().parent)


def settings_from_dict(raw: dict[str, Any], base_dir: Path = Path(".")) -> Settings:
    raw = {key: (dict(value) if isinstance(value, dict) else value) for key, value in raw.items()}
    for (section, key), env_name in SECRET_ENV.items():
        if os.environ.get(env_name):
            raw.setdefault(section, {})[key] = os.environ[env_name]
    raw["base_dir"] = base_dir
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"配置项 {key} 有误: {first['msg']}") from None
