"""`intake check`: every value of the file, then (with `connect`) the servers themselves.

One item per line: ✓ fine, ! worth a look, ✗ will not work as configured. Nothing is
sent, created or migrated: IMAP is logged in to and listed, SMTP gets EHLO, STARTTLS,
AUTH and QUIT, the database is asked its revision, the storage folder gets a temporary file.
"""

from __future__ import annotations

import datetime as dt
import imaplib
import shutil
import smtplib
import tempfile
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from config.campaigns import LEGACY_ID, CampaignFileError, CampaignSpec, load_campaign_file
from config.settings import (
    PORT_HINTS,
    Security,
    Settings,
    brief,
    connection_failed,
    is_loopback,
    login_refused,
    tls_context,
)

MIN_FREE_BYTES = 1024**3  # below this the archive is one busy day from a full disk
# RFC 2606 / the shipped example: addresses nobody reads.
EXAMPLE_DOMAINS = ("example.cn", "example.org", "example.com", "example.net")
# Ports whose security is fixed by convention; a mismatch is the usual WRONG_VERSION_NUMBER.
USUAL_SECURITY = {
    "mailbox": {993: Security.SSL, 143: Security.STARTTLS},
    "smtp": {465: Security.SSL, 587: Security.STARTTLS},
}
SPECIAL_USE = {"\\Sent": "已发送", "\\Junk": "垃圾邮件", "\\Trash": "已删除", "\\Drafts": "草稿", "\\Archive": "归档"}


class Mark(StrEnum):
    OK = "✓"
    WARN = "!"
    FAIL = "✗"


@dataclass(frozen=True)
class Item:
    mark: Mark
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.mark} {self.what}：{self.detail}"


def ok(what: str, detail: str) -> Item:
    return Item(Mark.OK, what, detail)


def warn(what: str, detail: str) -> Item:
    return Item(Mark.WARN, what, detail)


def fail(what: str, detail: str) -> Item:
    return Item(Mark.FAIL, what, detail)


def has_credentials(settings: Settings) -> bool:
    """`--connect` is the default once there is something to log in with."""
    mailbox, smtp = settings.mailbox, settings.smtp
    return bool((mailbox.source == "imap" and mailbox.password.get_secret_value())
                or (smtp.mode == "send" and smtp.password.get_secret_value()))


def run_checks(settings: Settings, config_path: Path, *, connect: bool, now: dt.datetime) -> list[Item]:
    items = file_checks(settings, config_path, now)
    if connect:
        if settings.mailbox.source == "imap":
            items += imap_checks(settings)
        if settings.smtp.mode == "send":
            items += smtp_checks(settings)
        items += database_checks(settings)
        items += storage_checks(settings)
    return items


# --- the file --------------------------------------------------------------------------


def file_checks(settings: Settings, config_path: Path, now: dt.datetime) -> list[Item]:
    names = "、".join(c.name for c in settings.campaigns)
    items = [ok("配置文件", f"{config_path}：{names}，登记单位 {len(settings.units)} 个")]
    exposed = exposed_password_warning(config_path)
    if exposed:
        items.append(warn("文件权限", exposed))
    items += _campaigns(settings, now)
    items += _digest_and_reminders(settings)
    items += _units(settings)
    items += _placeholders(settings)
    items += _mailbox_values(settings)
    items += _smtp_values(settings)
    return items


def exposed_password_warning(path: Path) -> str | None:
    """A password written in the config file itself, readable by group or others."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    keys = [f"{section}.password" for section in ("mailbox", "smtp")
            if isinstance(raw.get(section), dict) and raw[section].get("password")]
    mode = path.stat().st_mode & 0o777
    if not keys or not mode & 0o077:
        return None
    return (f"配置文件 {path} 含有密码（{'、'.join(keys)}），但同组或其他用户也能读取（权限 {mode:o}）；"
            f"请执行 chmod 600 {path}，或改用环境变量 INTAKE_MAILBOX_PASSWORD / INTAKE_SMTP_PASSWORD")


def _local(settings: Settings, when: dt.datetime) -> str:
    from zoneinfo import ZoneInfo

    return f"{when.astimezone(ZoneInfo(settings.digest.timezone)):%Y-%m-%d %H:%M}"


def campaign_line(campaign: CampaignSpec, settings: Settings | None = None) -> str:
    """A campaign as its ✓ line states it: id, name, deadline, forms."""
    when = _local(settings, campaign.deadline) if settings else f"{campaign.deadline:%Y-%m-%d %H:%M}"
    forms = "、".join(f"{f.id}（{f.short_title}，{len(f.columns)} 栏）" for f in campaign.forms)
    return f"{campaign.id}：{campaign.name}，截止 {when}，表格 {forms}"


def _campaigns(settings: Settings, now: dt.datetime) -> list[Item]:
    several = len(settings.campaigns) > 1
    items = []
    for campaign in settings.campaign_set:
        items.append(ok("征集", campaign_line(campaign, settings)))
        items.append(_deadline(settings, campaign, now, named=several))
    campaigns = settings.campaign_set
    for word, first, second in campaigns.shared_keywords():
        if campaigns.get(first).is_open(now) and campaigns.get(second).is_open(now):
            items.append(fail("征集关键词", f"关键词“{word}”同时写在正在进行的征集 {first} 和 {second} 的 keywords 中，"
                                            "只凭关键词的来信将无法判断归属；请只保留在其中一个"))
    return items


def _deadline(settings: Settings, campaign: CampaignSpec, now: dt.datetime, *, named: bool) -> Item:
    from notifications.digest import time_left

    deadline, which = campaign.deadline, f"{campaign.id}：" if named else ""
    if not campaign.is_open(now):
        return ok("截止时间", f"{which}{_local(settings, deadline)}，已于 {_local(settings, campaign.closes_at)} 停止受理")
    if deadline <= now:
        where = "[campaign] deadline" if campaign.id == LEGACY_ID else "该征集的 deadline"
        return warn("截止时间", f"{which}{_local(settings, deadline)} 已过；如是新一期征集，请更新 {where}")
    return ok("截止时间", f"{which}{_local(settings, deadline)}，{time_left(deadline, now)}")


def campaign_file_checks(path: Path) -> list[Item]:
    """`intake check --campaign-file PATH`: one campaign file on its own."""
    try:
        campaign = load_campaign_file(path)
    except CampaignFileError as err:
        return [fail("征集文件", str(err))]
    return [ok("征集文件", campaign_line(campaign)),
            *(ok("表格", f"{f.id}：{f.title}，{len(f.columns)} 栏，规则 {len(f.rules)} 条") for f in campaign.forms)]


def _digest_and_reminders(settings: Settings) -> list[Item]:
    digest, reminders = settings.digest, settings.reminders
    items = [
        ok("每日汇总", f"每天 {digest.at}（{digest.timezone}）发给 {len(digest.recipients)} 人") if digest.recipients
        else warn("每日汇总", "未设置 [digest] recipients，不会发送每日汇总"),
    ]
    if reminders.enabled:
        items.append(ok("截止提醒", f"截止前 {'、'.join(reminders.before)} 提醒未受理的单位"))
    return items


def _units(settings: Settings) -> list[Item]:
    where: dict[str, list[str]] = defaultdict(list)
    names: dict[str, int] = defaultdict(int)
    for unit in settings.units:
        names[unit.name] += 1
        for address in {e.strip().lower() for e in unit.emails if e.strip()}:
            where[address].append(unit.name)
    items = [fail("单位名单", f"单位「{name}」登记了 {count} 次") for name, count in names.items() if count > 1]
    items += [fail("单位邮箱", f"{address} 同时登记在 {'、'.join(units)}，无法判断来信属于哪个单位")
              for address, units in where.items() if len(units) > 1]
    if not settings.units:
        items.append(fail("单位名单", "没有登记任何单位（[[units]]）"))
    elif not items:
        without = [u.name for u in settings.units if not u.emails]
        items.append(ok("单位名单", f"{len(settings.units)} 个单位，邮箱无重复")
                     if not without else warn("单位名单", f"{len(without)} 个单位没有登记邮箱（如 {without[0]}），只能靠表格或主题识别"))
    return items


def is_placeholder(address: str) -> bool:
    domain = address.strip().lower().rpartition("@")[2]
    return any(domain == d or domain.endswith("." + d) for d in EXAMPLE_DOMAINS)


def _placeholders(settings: Settings) -> list[Item]:
    found = [(f"[[units]] {u.name}", e) for u in settings.units for e in u.emails]
    found += [("[digest] recipients", e) for e in settings.digest.recipients]
    found += [("[smtp] from_address", settings.smtp.from_address), ("[mailbox] username", settings.mailbox.username)]
    left = [(where, address) for where, address in found if is_placeholder(address)]
    if not left:
        return [ok("示例地址", "没有遗留的示例地址")]
    first_where, first = left[0]
    return [fail("示例地址", f"仍有 {len(left)} 处示例地址（如 {first_where} 的 {first}），请换成真实地址")]


def _security_mismatch(section: str, port: int, security: Security) -> Item | None:
    usual = USUAL_SECURITY[section].get(port)
    if usual is None or usual is security:
        return None
    return warn("端口与加密", f'[{section}] port = {port} 通常配 security = "{usual}"，现为 "{security}"：{PORT_HINTS[section]}')


def _plaintext(section: str, host: str, security: Security) -> Item | None:
    if security is Security.NONE and not is_loopback(host):
        return warn("明文连接", f'[{section}] host = "{host}" 不是本机，却以明文（security = "none"）传送密码')
    return None


def _mailbox_values(settings: Settings) -> list[Item]:
    m = settings.mailbox
    if m.source == "maildir":
        return [warn("收信方式", f"读取本地 Maildir {settings.resolve(m.maildir)}（演示用），不连接邮箱服务器")]
    items = [ok("收信方式", f'IMAP {m.host}:{m.port}（security = "{m.security}"），文件夹 {m.folder}')]
    if not m.username:
        items.append(fail("邮箱账号", "[mailbox] username 为空"))
    if not m.password.get_secret_value():
        items.append(fail("邮箱密码", "[mailbox] password 为空：请填写（163/126/QQ 邮箱填“授权码”），"
                                    "或设置环境变量 INTAKE_MAILBOX_PASSWORD"))
    items += [i for i in (_security_mismatch("mailbox", m.port, m.security), _plaintext("mailbox", m.host, m.security)) if i]
    return items


def _smtp_values(settings: Settings) -> list[Item]:
    s = settings.smtp
    if s.mode == "file":
        return [warn("发信方式", f'mode = "file"：回复只写成 .eml 文件到 {settings.resolve(s.outbox_dir)}，不会发出')]
    if s.mode == "off":
        return [warn("发信方式", 'mode = "off"：不发送任何回复和汇总')]
    items = [ok("发信方式", f'SMTP {s.host}:{s.port}（security = "{s.security}"），发件人 {s.from_address}')]
    if s.username and not s.password.get_secret_value():
        items.append(fail("发信密码", "[smtp] password 为空：请填写（163/126/QQ 邮箱填“授权码”），"
                                    "或设置环境变量 INTAKE_SMTP_PASSWORD"))
    if s.username and "@" in s.username and s.username.lower() != s.from_address.lower():
        items.append(warn("发件地址", f"from_address {s.from_address} 与登录账号 {s.username} 不同：163/126/QQ 会拒发"))
    items += [i for i in (_security_mismatch("smtp", s.port, s.security), _plaintext("smtp", s.host, s.security)) if i]
    return items


# --- IMAP ------------------------------------------------------------------------------


def imap_checks(settings: Settings) -> list[Item]:
    from imap_tools.errors import MailboxLoginError

    from intake import mailbox as imap

    m = settings.mailbox
    where = f"{m.host}:{m.port}"
    try:
        mailbox = imap._mailbox_class(m)  # noqa: SLF001 - the very connection `poll` makes
    except imap.NETWORK_ERRORS as err:
        return [fail("邮箱连接", connection_failed("mailbox", m.host, m.port, m.security, err))]
    items = [ok("邮箱连接", f"{where}（security = \"{m.security}\"）")]
    try:
        try:
            mailbox.login(m.username, m.password.get_secret_value(), initial_folder=None)
        except MailboxLoginError as err:
            return [*items, fail("邮箱登录", login_refused("mailbox", m.username, m.host, m.port, err.command_result[1]))]
        items.append(ok("邮箱登录", m.username))
        items.append(_imap_id(mailbox))
        items += _imap_folders(mailbox, settings)
    except (*imap.NETWORK_ERRORS, imaplib.IMAP4.error) as err:
        items.append(fail("邮箱", f"服务器中途出错：{brief(err)}"))
    finally:
        try:
            mailbox.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone
            pass
    return items


def _imap_id(mailbox) -> Item:  # noqa: ANN001 - an imap_tools mailbox
    from intake import mailbox as imap

    imap.send_id(mailbox)
    _, answer = mailbox.client.response("ID")
    server = brief(answer[0]) if answer and answer[0] else "服务器未返回标识"
    return ok("IMAP ID", f"已发送（网易邮箱要求）；{server}")


def _imap_folders(mailbox, settings: Settings) -> list[Item]:  # noqa: ANN001
    from intake import mailbox as imap

    m = settings.mailbox
    typ, data = mailbox.client.select(imap._quote(m.folder), readonly=True)  # noqa: SLF001 - EXAMINE: changes nothing
    items = [ok("收件文件夹", f"{m.folder}：{int(data[0])} 封邮件") if typ == "OK"
             else fail("收件文件夹", f"无法打开 {m.folder}：{brief(data)}")]
    listed = mailbox.folder.list()
    names = {f.name for f in listed}
    for key, label in (("processed_folder", "已处理文件夹"), ("sent_folder", "已发送文件夹")):
        folder = getattr(m, key)
        if folder:
            items.append(ok(label, f"{folder} 已存在" if folder in names else f"{folder} 尚不存在，首次使用时自动创建"))
    special = {flag: f.name for f in listed for flag in f.flags if flag in SPECIAL_USE}
    if not special:
        items.append(ok("特殊文件夹", "服务器未标注特殊用途文件夹（RFC 6154）"))
        return items
    items.append(ok("特殊文件夹", "，".join(f"{SPECIAL_USE[flag]}={name}" for flag, name in sorted(special.items()))))
    sent, junk = special.get("\\Sent"), special.get("\\Junk")
    if sent and m.sent_folder and m.sent_folder != sent:
        items.append(warn("已发送文件夹", f'服务器的已发送文件夹是 {sent}，而 sent_folder = "{m.sent_folder}"；回复副本会存到后者'))
    if junk and m.folder != junk:
        items.append(warn("垃圾邮件", f"服务器会把部分来信放入 {junk}，intake 不收取该文件夹；"
                                      "请定期查看，或在网页版设置中把各单位地址加入白名单"))
    return items


# --- SMTP ------------------------------------------------------------------------------


def smtp_checks(settings: Settings) -> list[Item]:
    s = settings.smtp
    where = f"{s.host}:{s.port}"
    helo = s.from_address.rpartition("@")[2] or "localhost"
    try:
        if s.security is Security.SSL:
            client = smtplib.SMTP_SSL(s.host, s.port, local_hostname=helo, timeout=s.timeout_seconds,
                                      context=tls_context(s.ca_file))
        else:
            client = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout_seconds)
    except (OSError, smtplib.SMTPException) as err:
        return [fail("发信连接", connection_failed("smtp", s.host, s.port, s.security, err))]
    items: list[Item] = []
    try:
        code, banner = client.ehlo()
        items.append(ok("发信连接", f"{where}（security = \"{s.security}\"），EHLO {code}") if code == 250
                     else fail("发信连接", f"{where} 不接受 EHLO：{brief(banner)}"))
        if s.security is Security.STARTTLS:
            items.append(_starttls(client, settings))
            if items[-1].mark is Mark.FAIL:
                return items
        items.append(_smtp_auth(client, settings))
    except (OSError, smtplib.SMTPException) as err:
        items.append(fail("发信", connection_failed("smtp", s.host, s.port, s.security, err)))
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    return items


def _starttls(client: smtplib.SMTP, settings: Settings) -> Item:
    s = settings.smtp
    if not client.has_extn("starttls"):
        return fail("STARTTLS", f"{s.host}:{s.port} 不支持 STARTTLS：{PORT_HINTS['smtp']}")
    client.starttls(context=tls_context(s.ca_file))
    client.ehlo()
    return ok("STARTTLS", "已加密")


def _smtp_auth(client: smtplib.SMTP, settings: Settings) -> Item:
    s = settings.smtp
    if not s.username:
        return ok("发信登录", "未设置 username：不登录（适用于本机或内网中继）")
    if not client.has_extn("auth"):
        return fail("发信登录", f'服务器未提供 AUTH：多半需要加密连接（{PORT_HINTS["smtp"]}）')
    try:
        client.login(s.username, s.password.get_secret_value())
    except smtplib.SMTPAuthenticationError as err:
        return fail("发信登录", login_refused("smtp", s.username, s.host, s.port, err.smtp_error))
    return ok("发信登录", f"{s.username}（未发送任何邮件）")


# --- database and storage ----------------------------------------------------------------


def database_checks(settings: Settings) -> list[Item]:
    """Connect and compare the revision with this program's head, without migrating."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from storage.migrate import alembic_config

    url = make_url(settings.database_url)
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        folder = _nearest_existing(Path(url.database).parent)
        return [warn("数据库", f"{url.database} 尚不存在，首次运行时创建（{folder} {'可写' if _writable(folder) else '不可写！'}）")]
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as err:
        return [fail("数据库", f"无法连接 {where}：{_database_reason(err)}（{brief(getattr(err, 'orig', err))}）")]
    finally:
        engine.dispose()
    items = [ok("数据库连接", where)]
    if current == head:
        items.append(ok("数据库结构", f"已是最新（{head}）"))
    elif current is None:
        items.append(warn("数据库结构", "空数据库：首次运行时建表"))
    elif current in _known_revisions():
        items.append(warn("数据库结构", f"需要升级（当前 {current}，最新 {head}）：下次运行任何命令时自动升级，"
                                        "升级前可先 intake backup"))
    else:
        items.append(fail("数据库结构", f"版本 {current} 不是本程序认识的版本（最新 {head}）：数据库由更新版本的 intake 建立，"
                                        "请升级 intake"))
    return items


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _database_reason(err: Exception) -> str:
    text = str(getattr(err, "orig", err)).lower()
    if "password authentication failed" in text:
        return "用户名或密码错误"
    if "does not exist" in text:
        return "数据库或用户不存在"
    if "connection refused" in text:
        return "连接被拒绝：该端口没有 PostgreSQL 在监听，请检查主机和端口"
    if "unable to open database file" in text:
        return "无法打开数据库文件（文件夹不存在或无权限）"
    return "连接失败"


def storage_checks(settings: Settings, min_free: int = MIN_FREE_BYTES) -> list[Item]:
    path = settings.resolve(settings.storage.path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return [fail("存档目录", f"{path} 无法创建：{existing} 不是文件夹")]
    if not _writable(existing):
        return [fail("存档目录", f"{existing} 不可写：请检查权限，或修改 [storage] path")]
    items = [ok("存档目录", f"{path} 可写" if existing == path else f"{path} 尚不存在，首次运行时创建（{existing} 可写）")]
    free = shutil.disk_usage(existing).free
    gigabytes = f"{free / 1024**3:.1f} GB"
    items.append(ok("磁盘空间", f"可用 {gigabytes}") if free >= min_free
                 else warn("磁盘空间", f"仅剩 {gigabytes}：附件和邮件原文都要存档，请清理或换到更大的磁盘"))
    return items


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _writable(folder: Path) -> bool:
    """Really write: permission bits say nothing to root, nor about read-only mounts."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".intake-check-"):
            return True
    except OSError:
        return False

