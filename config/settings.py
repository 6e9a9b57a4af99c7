"""The one TOML file that configures intake, validated at start.

Everything that changes from one year's call to the next (campaign name, deadline,
form wording, the unit registry) lives here, not in code.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import socket
import ssl
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from config.campaigns import CampaignFileError, Campaigns, CampaignSpec, campaign_from_entry

DEFAULT_CONFIG_NAME = "intake.toml"
# Secrets may come from the environment so they never sit in a file or a log line.
SECRET_ENV = {
    ("mailbox", "password"): "INTAKE_MAILBOX_PASSWORD",
    ("smtp", "password"): "INTAKE_SMTP_PASSWORD",
    ("database", "url"): "INTAKE_DATABASE_URL",
}


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$", re.IGNORECASE)
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_offset(text: str) -> dt.timedelta:
    """'3d' → 3 days, '4h' → 4 hours, '30m' → 30 minutes: reminder offsets and pauses."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"时间长度「{text}」格式不对，应写作 3d、4h 或 30m")
    return dt.timedelta(**{_DURATION_UNITS[found[2].lower()]: int(found[1])})


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


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost": traffic that never leaves this machine."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refuse_plaintext(security: Security, info: ValidationInfo, *, in_use: bool) -> Security:
    """security = "none" sends the password in the clear: loopback only, unless the file says so."""
    host = info.data.get("host", "")
    if security is Security.NONE and in_use and not is_loopback(host) and not info.data.get("allow_plaintext"):
        raise ValueError(
            f'security = "none" 会以明文传送密码和邮件，只能用于本机（127.0.0.0/8、::1、localhost），'
            f'而 host = "{host}" 不是本机；请改用 "ssl" 或 "starttls"，确需明文时在同一节设置 allow_plaintext = true'
        )
    return security


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The one TLS policy for IMAP and SMTP: verify the certificate and the host name,
    against the system's CAs or, with `ca_file`, a private CA."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _usable_ca_file(ca_file: Path | None) -> Path | None:
    if ca_file is not None:
        if not ca_file.is_file():
            raise ValueError(f"找不到文件 {ca_file}")
        try:
            tls_context(ca_file)
        except ssl.SSLError as err:
            raise ValueError(f"{ca_file} 不是可用的 PEM 格式 CA 证书（{err.reason or err}）") from None
    return ca_file


def certificate_refused(section: str, host: str, port: int, err: ssl.SSLCertVerificationError) -> str:
    """The one line a staff member sees when a server's certificate does not verify."""
    return (
        f"{'邮箱' if section == 'mailbox' else '发信'}服务器 {host}:{port} 的证书未通过验证（{err.verify_message or err}）；"
        f"如使用自签名证书或内部 CA，请在 [{section}] ca_file 指定其 CA 证书"
    )


PROVIDER_HINT = "163/126/QQ 邮箱需使用“授权码”而不是网页登录密码，并在网页版设置中开启 IMAP/SMTP 服务。"
PORT_HINTS = {"mailbox": "IMAP 端口 993 配 ssl，143 配 starttls", "smtp": "SMTP 端口 465 配 ssl，587 配 starttls"}
_WHAT = {"mailbox": "邮箱", "smtp": "发信"}


def brief(text: object, limit: int = 160) -> str:
    """A server's or library's own words, cut short for the end of a Chinese line."""
    if isinstance(text, list | tuple):
        text = " ".join(t.decode(errors="replace") if isinstance(t, bytes) else str(t) for t in text)
    elif isinstance(text, bytes):
        text = text.decode(errors="replace")
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def login_refused(section: str, username: str, host: str, port: int, server_text: object) -> str:
    """The one line for a refused login, naming the provider trap (授权码) first."""
    account = "邮箱" if section == "mailbox" else "发信账号"
    return (f"登录{account} {username}（服务器 {host}:{port}）失败：用户名或密码错误。{PROVIDER_HINT}"
            f"（服务器答复：{brief(server_text)}）")


def connection_failed(section: str, host: str, port: int, security: Security, err: BaseException) -> str:
    """The one line for a server that could not be reached, with what usually causes it."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return certificate_refused(section, host, port, err)
    if isinstance(err, ssl.SSLError) and ("WRONG_VERSION_NUMBER" in str(err) or "record layer" in str(err)):
        reason = f'端口与加密方式不匹配（port = {port}，security = "{security}"）：{PORT_HINTS[section]}'
    elif isinstance(err, ConnectionRefusedError):
        reason = "连接被拒绝：该端口没有服务在监听，请检查 host 和 port"
    elif isinstance(err, socket.gaierror):
        reason = "找不到该主机名，请检查 host 的拼写和本机的 DNS"
    elif isinstance(err, TimeoutError):
        reason = f"连接超时：请检查网络和防火墙，以及端口与加密方式是否匹配（{PORT_HINTS[section]}）"
    else:
        reason = "连接失败"
    return f"无法连接{_WHAT[section]}服务器 {host}:{port}：{reason}（{brief(err)}）"


def _ascii_password(value: SecretStr) -> SecretStr:
    # imaplib and smtplib send LOGIN/AUTH as ASCII: anything else would crash mid-login.
    if not value.get_secret_value().isascii():
        raise ValueError("密码含有中文或其他非 ASCII 字符，邮件服务器无法接受；163/126/QQ 邮箱请填写“授权码”（字母和数字）")
    return value


class MailboxSettings(_Section):
    # "imap" watches a real server; "maildir" reads a local Maildir (the demo), where a
    # file's mtime is the arrival time, as Dovecot itself treats it.
    source: Literal["imap", "maildir"] = "imap"
    host: str = "localhost"
    port: int = 993
    # Declared before `security`: its validator reads source, host and this.
    allow_plaintext: bool = False
    security: Security = Security.SSL
    ca_file: Path | None = None  # PEM bundle of a private CA; default: the system's CAs
    username: str = ""
    password: SecretStr = SecretStr("")
    # The mailbox's stable name in the ledger (default: the username, lowercased). Change
    # host, port or security freely; change this only for a different mailbox.
    account: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    sent_folder: str | None = None
    # Read-only besides `folder` (never moved or flagged there): None = the server's \Junk
    # special-use folder when it has one; [] = none.
    extra_folders: list[str] | None = None
    maildir: Path = Path("var/maildir")
    poll_seconds: Annotated[int, Field(ge=5)] = 60
    idle: bool = True
    idle_seconds: Annotated[int, Field(ge=10, le=29 * 60)] = 25 * 60
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    # After 3 failed logins in a row `intake run` stops trying this long (seconds, or "30m",
    # "2h"): a provider locks an account that keeps retrying a wrong password.
    auth_pause: dt.timedelta = dt.timedelta(minutes=30)

    @field_validator("security")
    @classmethod
    def _plaintext_only_on_loopback(cls, value: Security, info: ValidationInfo) -> Security:
        return _refuse_plaintext(value, info, in_use=info.data.get("source") == "imap")

    @field_validator("auth_pause", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        # "30m" here; an ISO 8601 "PT30M" (what a dump writes) and plain seconds go to pydantic.
        return parse_offset(value) if isinstance(value, str) and not value.strip().upper().startswith("P") else value

    @field_validator("auth_pause")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("暂停时长必须大于 0")
        return value

    _ca_file = field_validator("ca_file")(_usable_ca_file)
    _password = field_validator("password")(_ascii_password)


class SmtpSettings(_Section):
    mode: Literal["send", "file", "off"] = "file"
    host: str = "localhost"
    port: int = 465
    # Declared before `security`: its validator reads mode, host and this.
    allow_plaintext: bool = False
    security: Security = Security.SSL
    ca_file: Path | None = None
    username: str = ""
    password: SecretStr = SecretStr("")
    from_address: str = "intake@localhost"
    from_name: str = ""
    outbox_dir: Path = Path("var/outbox")
    max_attempts: Annotated[int, Field(ge=1)] = 8
    retry_base_seconds: Annotated[float, Field(gt=0)] = 30.0
    daily_cap_per_recipient: Annotated[int, Field(ge=1)] = 5
    # Short replies (to addresses that are not a unit's): forged mail must not make us a spam cannon.
    hourly_cap_per_domain: Annotated[int, Field(ge=0)] = 20
    hourly_cap_total: Annotated[int, Field(ge=0)] = 60
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    templates_dir: Path | None = None

    @field_validator("security")
    @classmethod
    def _plaintext_only_on_loopback(cls, value: Security, info: ValidationInfo) -> Security:
        return _refuse_plaintext(value, info, in_use=info.data.get("mode") == "send")

    _ca_file = field_validator("ca_file")(_usable_ca_file)
    _password = field_validator("password")(_ascii_password)


DATABASE_SCHEMES = ("sqlite:///", "postgresql+psycopg://")


class DatabaseSettings(_Section):
    url: SecretStr = SecretStr("sqlite:///var/intake.db")

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: SecretStr) -> SecretStr:
        # Named without the URL itself: it may hold a password.
        if not value.get_secret_value().startswith(DATABASE_SCHEMES):
            raise ValueError(
                "数据库地址应以 sqlite:/// 或 postgresql+psycopg:// 开头"
                "（PostgreSQL 的 postgres:// 或 postgresql:// 请改写为 postgresql+psycopg://user:密码@主机/库名）"
            )
        return value


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
    # Per mail: past either, the mail's remaining files are recorded as too_large, unread.
    max_files_per_mail: Annotated[int, Field(ge=1)] = 50
    max_seconds_per_mail: Annotated[float, Field(gt=0)] = 180.0


class LinksSettings(_Section):
    """Large-attachment links (超大附件, intake.links): recorded always; fetched only when
    `download` is on, from `hosts` only, within the byte and time limits."""

    download: bool = False
    max_bytes: Annotated[int, Field(ge=1)] = 200 * 1024 * 1024
    seconds: Annotated[float, Field(gt=0)] = 60.0
    hosts: list[str] = ["mail.163.com", "mail.126.com", "mail.yeah.net", "dashi.163.com", "wx.mail.qq.com",
                        "mail.qq.com", "exmail.qq.com"]


class ParsingSettings(_Section):
    seal_detection: bool = True
    ocr: bool = False
    seal_dpi: Annotated[int, Field(ge=72, le=400)] = 150
    photos_as_scan: bool = True  # a JPG/PNG/HEIC photo of the stamped form counts as the scan
    workers: Annotated[int, Field(ge=0, le=16)] = 0  # parser processes; 0: one per core, at most 2


class OtherMailSettings(_Section):
    """Mail from a registered unit that belongs to no open campaign (a letter, a question,
    another office's notice): recorded as `other` for staff, never a campaign reply."""

    # A plain acknowledgement (收到，已转工作人员) to a registered unit's such mail.
    acknowledge: bool = False


class DigestSettings(_Section):
    recipients: list[str] = []
    at: str = "08:30"
    timezone: str = "Asia/Shanghai"

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        try:
            dt.time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"时间「{value}」格式不对，应写作 08:30") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"不认识的时区「{value}」，请写 IANA 时区名，例如 \"Asia/Shanghai\"") from None
        return value


class RemindersSettings(_Section):
    enabled: bool = False
    # Offsets before the deadline, e.g. ["3d", "4h"].
    before: list[str] = ["3d", "1d"]

    @field_validator("before")
    @classmethod
    def _offsets(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_offset(text)
        return value


class AuthenticitySettings(_Section):
    # Only Authentication-Results added by these hosts (our own receiving server, e.g.
    # "mx.163.com") are believed: any other copy of the header may come from the sender.
    trusted_authserv_ids: list[str] = []
    # Check DKIM signatures ourselves (needs DNS); off when the receiving server does it.
    verify_dkim: bool = False
    # Flag mail whose From could not be authenticated (a warning for staff, never a rejection).
    require: bool = True


class LoggingSettings(_Section):
    # Besides stderr (journald under systemd): a file, rotated by size.
    file: Path | None = None
    max_bytes: Annotated[int, Field(ge=10_000)] = 10 * 1024 * 1024
    backups: Annotated[int, Field(ge=1, le=100)] = 5
    json_lines: bool = False  # one JSON object per line, for log shippers


class WebSettings(_Section):
    """The staff console (`intake web`, or inside `intake run` when enabled)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    # The path prefix a reverse proxy serves the console under, e.g. "/intake".
    base_path: str = ""
    # Signing key of the session cookie; default: a 0600 file made once in the data folder.
    secret_key_file: Path | None = None
    session_idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    # Only these peers' X-Forwarded-Proto/For are believed (the reverse proxy).
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]

    @field_validator("base_path")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (not value.startswith("/") or any(c in value for c in "?#\\ ")):
            raise ValueError(f"路径前缀「{value}」应以 / 开头，例如 \"/intake\"")
        return value


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
    links: LinksSettings = LinksSettings()
    # Every campaign (config.campaigns): `[campaign]` (one, today's form) and/or
    # `[[campaigns]]` (each inline or `file = …`), read into CampaignSpecs at load.
    campaigns: tuple[CampaignSpec, ...] = Field(min_length=1)
    other_mail: OtherMailSettings = OtherMailSettings()
    digest: DigestSettings = DigestSettings()
    reminders: RemindersSettings = RemindersSettings()
    authenticity: AuthenticitySettings = AuthenticitySettings()
    logging: LoggingSettings = LoggingSettings()
    web: WebSettings = WebSettings()
    units: list[UnitSettings] = []
    # Relative paths in the file are taken from the file's folder.
    base_dir: Path = Path(".")

    @model_validator(mode="before")
    @classmethod
    def _read_campaigns(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "campaign" not in raw and not isinstance(raw.get("campaigns"), list):
            return raw
        raw = dict(raw)
        base_dir = Path(raw.get("base_dir", "."))
        specs = []
        if isinstance(raw.get("campaign"), dict):
            specs.append(campaign_from_entry(raw.pop("campaign"), base_dir, legacy=True))
        for i, entry in enumerate(raw.get("campaigns") or []):
            specs.append(entry if isinstance(entry, CampaignSpec) else
                         campaign_from_entry(entry, base_dir, where=f"campaigns.{i}"))
        Campaigns(tuple(specs))  # refuses two campaigns under one id
        raw["campaigns"] = tuple(specs)
        return raw

    @property
    def campaign_set(self) -> Campaigns:
        """The campaigns with their FormSet, built once per `campaigns` tuple (a
        model_copy with other campaigns, e.g. a deadline set by staff, gets its own)."""
        cached = self.__dict__.get("_campaign_set")
        if cached is None or cached.all is not self.campaigns:
            cached = self.__dict__["_campaign_set"] = Campaigns(self.campaigns)
        return cached

    @property
    def campaign(self) -> CampaignSpec:
        """The default campaign: the only one, else the first in the file. Code that acts
        on one submission uses that submission's campaign instead."""
        return self.campaigns[0]

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
    for section in ("mailbox", "smtp"):
        # The connection code sees only its own section, not base_dir: resolve at load.
        if isinstance(raw.get(section), dict) and isinstance(raw[section].get("ca_file"), str | Path):
            raw[section]["ca_file"] = base_dir / raw[section]["ca_file"]
    raw["base_dir"] = base_dir
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        if isinstance((first.get("ctx") or {}).get("error"), CampaignFileError):
            raise ConfigError(str(first["ctx"]["error"])) from None  # already names file and key
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"配置项 {key} 有误: {explain(first)}" if key else f"配置有误: {explain(first)}") from None


# pydantic's error types, in the words of the one line a staff member reads.
_EXPLAINED = {
    "missing": "缺少此项，必须填写",
    "extra_forbidden": "不认识此项（拼写错误，或放错了节？）",
    "int_type": "应为整数", "int_parsing": "应为整数", "int_from_float": "应为整数",
    "float_type": "应为数字", "float_parsing": "应为数字",
    "bool_type": "应为 true 或 false", "bool_parsing": "应为 true 或 false",
    "string_type": "应为加引号的文字",
    "list_type": '应为列表，例如 ["a", "b"]',
    "dict_type": "应为一节（表），例如 [mailbox]", "model_type": "应为一节（表），例如 [mailbox]",
    "model_attributes_type": "应为一节（表），例如 [mailbox]",
    "datetime_type": "应为带时区的日期时间，例如 2024-02-25T17:00:00+08:00",
    "datetime_parsing": "应为带时区的日期时间，例如 2024-02-25T17:00:00+08:00",
    "datetime_from_date_parsing": "应为带时区的日期时间，例如 2024-02-25T17:00:00+08:00",
    "time_delta_type": "应为秒数或 30m、2h 这样的时长", "time_delta_parsing": "应为秒数或 30m、2h 这样的时长",
    "path_type": "应为加引号的路径",
}
_BOUNDS = {"greater_than_equal": ("ge", "不能小于"), "greater_than": ("gt", "必须大于"),
           "less_than_equal": ("le", "不能大于"), "less_than": ("lt", "必须小于")}


def explain(error: Any) -> str:
    """One pydantic error (an `ErrorDetails`) in Chinese; our own validators already speak it."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("literal_error", "enum"):
        return f"只能是 {str(ctx.get('expected', '')).replace(' or ', ' 或 ')}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"{words} {ctx.get(name)}"
    return _EXPLAINED.get(kind, f"取值无效（{error['msg']}）")
