"""Sending the outbox: each row at most once, retried with backoff, never lost.

A row is marked `sending` (committed) before SMTP sees it. If the process dies after
SMTP accepted the mail but before the row was marked `sent`, the next run finds the row
still `sending` and looks for its Message-ID in the mailbox's Sent folder: found means
sent, so it is not sent again. Every sent mail is APPENDed to that folder, because
163.com does not keep what is sent over SMTP.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import smtplib
import ssl
from contextlib import ExitStack
from dataclasses import dataclass, field

from imap_tools import AND, H, MailMessageFlags
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from config.settings import Security, Settings, SmtpSettings, certificate_refused, tls_context
from intake.archive import fsync_folder, write_atomically
from intake.faults import checkpoint
from storage.db import Database
from storage.locks import exclusive
from storage.models import OutboxItem, OutboxState

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 3600.0
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")
DUE_STATES = (OutboxState.PENDING, OutboxState.SENDING)
FILE_BATCH = 100  # rows written to files between two commits (file mode)


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0  # attempts that failed this run (the row is retried or, at the limit, failed)
    deferred: int = 0  # due rows left for a later run without a send attempt
    recovered: int = 0  # `sending` rows found in the Sent folder: marked sent, not resent
    skipped: int = 0  # mode "off"


# "554 DT:SPM" (NetEase), "550 ... spam" and the like: the provider's spam filter holds the
# mail. Retrying at once only deepens its suspicion; an hour later usually passes.
SPAM_HOLD = "SPAM_HOLD"
SPAM_HOLD_DELAY = dt.timedelta(hours=1)
_SPAM_REPLY = re.compile(rb"DT:SPM|\bspam\b|junk mail|content rejected", re.IGNORECASE)


def held_as_spam(err: BaseException) -> bool:
    """Whether an SMTP refusal is a spam filter's (5xx with DT:SPM or "spam" in its text)."""
    code = getattr(err, "smtp_code", None)
    text = getattr(err, "smtp_error", b"") or b""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(err.recipients.values()), (None, b""))
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    return code is not None and 500 <= int(code) < 600 and bool(_SPAM_REPLY.search(text))


def retry_delay(attempts: int, base_seconds: float, rng: random.Random | None = None) -> dt.timedelta:
    """Exponential backoff, capped, with "equal jitter" so throttled retries do not arrive as a burst."""
    ceiling = min(MAX_RETRY_SECONDS, base_seconds * 2 ** max(attempts - 1, 0))
    return dt.timedelta(seconds=ceiling / 2 + (rng or random).uniform(0, ceiling / 2))


def eml_name(item: OutboxItem) -> str:
    """`000042-receipt-unit@example.org.eml`: sortable by id, safe on any filesystem."""
    slug = _SLUG_UNSAFE.sub("-", f"{item.reply_kind or item.kind}-{item.to_address}").strip("-.")[:80]
    return f"{item.id:06d}-{slug or 'mail'}.eml"


class _Smtp:
    """One lazily opened SMTP connection for a run."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        try:
            return self._open()
        except ssl.SSLCertVerificationError as err:
            raise smtplib.SMTPException(certificate_refused("smtp", self.settings.host, self.settings.port, err)) from err

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        context = tls_context(s.ca_file)
        # An explicit HELO name: socket.getfqdn() can stall for seconds on a DNS lookup.
        helo = s.from_address.rpartition("@")[2] or "localhost"
        if s.security is Security.SSL:
            client = smtplib.SMTP_SSL(s.host, s.port, local_hostname=helo, timeout=s.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout_seconds)
            if s.security is Security.STARTTLS:
                client.starttls(context=context)
        if s.username:
            client.login(s.username, s.password.get_secret_value())
        return client

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.sock is not None

    def send(self, item: OutboxItem) -> None:
        if not self.connected:
            self.close()
            self.client = self._connect()
        recipients = [a.strip() for a in item.to_address.split(",") if a.strip()]
        # The envelope sender is our address, not RFC 3834's null sender: 163.com
        # refuses MAIL FROM that differs from the logged-in account.
        refused = self.client.sendmail(self.settings.from_address, recipients, item.raw)
        if refused:
            log.warning("outbox %s: some recipients refused: %s", item.id, sorted(refused))

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


class _SentFolder:
    """The mailbox's Sent folder over IMAP, opened on first use and at most once per run."""

    def __init__(self, settings: Settings, stack: ExitStack) -> None:
        self.folder = settings.mailbox.sent_folder
        self._settings = settings.mailbox
        self._stack = stack
        self._mailbox = None
        self._failed: str | None = None

    def _open(self):  # noqa: ANN202 - an imap_tools mailbox
        if self._mailbox is None and self._failed is None:
            from intake.mailbox import open_mailbox  # the IMAP side owns login and ID

            try:
                self._mailbox = self._stack.enter_context(open_mailbox(self._settings))
            except Exception as err:  # noqa: BLE001 - reported per row, never fatal
                self._failed = f"{type(err).__name__}: {err}"
        if self._mailbox is None:
            raise ConnectionError(self._failed)
        return self._mailbox

    def contains(self, message_id: str) -> bool:
        mailbox = self._open()
        if not mailbox.folder.exists(self.folder):
            return False
        mailbox.folder.set(self.folder, readonly=True)
        return bool(mailbox.uids(AND(header=H("Message-ID", message_id))))

    def append(self, raw: bytes, when: dt.datetime) -> None:
        mailbox = self._open()
        if not mailbox.folder.exists(self.folder):
            mailbox.folder.create(self.folder)
        mailbox.append(raw, self.folder, dt=when, flag_set=[MailMessageFlags.SEEN])


class Outbox:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._secrets = [
            s.get_secret_value() for s in (settings.smtp.password, settings.mailbox.password) if s.get_secret_value()
        ]

    def _describe(self, err: BaseException) -> str:
        """An error for last_error and the log: short, and never carrying a password."""
        text = f"{type(err).__name__}: {err}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:500]

    def send_pending(self, now: dt.datetime | None = None) -> SendReport:
        """Send every due row once. One sender at a time across processes (the "outbox"
        lock): whoever holds it knows a `sending` row is an orphan of a process that died,
        so it is recovered now."""
        now = now or dt.datetime.now(dt.UTC)
        report = SendReport()
        with exclusive(self.db, "outbox") as mine:
            if not mine:
                return report  # another process is sending right now; it will send these too
            with self.db.session() as session:
                due = list(
                    session.scalars(
                        select(OutboxItem.id)
                        .where(
                            or_(
                                and_(OutboxItem.state == OutboxState.PENDING, OutboxItem.next_attempt_at <= now),
                                OutboxItem.state == OutboxState.SENDING,
                            )
                        )
                        # Replies to units and staff mail first: never behind strangers.
                        .order_by(OutboxItem.priority, OutboxItem.next_attempt_at, OutboxItem.id)
                    )
                )
            if not due:
                return report
            mode = self.settings.smtp.mode
            if mode == "off":
                self._set(due, state=OutboxState.SKIPPED)
                report.skipped = len(due)
            elif mode == "file":
                self._write_files(due, now, report)
            else:
                self._send(due, now, report)
        return report

    # --- state changes, each its own committed transaction ----------------------------

    def _set(self, ids: list[int], **values: object) -> None:
        with self.db.session() as session:
            session.execute(update(OutboxItem).where(OutboxItem.id.in_(ids)).values(**values))

    def _load(self, item_id: int) -> OutboxItem | None:
        with self.db.session() as session:
            return session.get(OutboxItem, item_id)

    def _claim(self, item: OutboxItem, now: dt.datetime) -> bool:
        """Mark the row `sending` and count the attempt, unless someone else changed it first."""
        with self.db.session() as session:
            result = session.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item.id, OutboxItem.state == item.state, OutboxItem.attempts == item.attempts)
                .values(state=OutboxState.SENDING, attempts=item.attempts + 1)
            )
        item.attempts += 1
        return result.rowcount == 1

    def _retry_later(self, item: OutboxItem, now: dt.datetime, error: str) -> bool:
        """Back to pending with a later attempt, or failed at the limit. True when failed."""
        gave_up = item.attempts >= self.settings.smtp.max_attempts
        self._set(
            [item.id],
            state=OutboxState.FAILED if gave_up else OutboxState.PENDING,
            next_attempt_at=now + retry_delay(item.attempts, self.settings.smtp.retry_base_seconds),
            last_error=error,
        )
        return gave_up

    # --- modes ------------------------------------------------------------------------

    def _write_files(self, due: list[int], now: dt.datetime, report: SendReport) -> None:
        """Each row's .eml written (named by row id, so a rerun after a crash rewrites the
        same file, never a second one), then the rows written so far marked sent together:
        one folder fsync and one commit per FILE_BATCH rows instead of one each."""
        folder = self.settings.resolve(self.settings.smtp.outbox_dir)
        for start in range(0, len(due), FILE_BATCH):
            with self.db.session() as session:
                items = list(session.scalars(select(OutboxItem).where(OutboxItem.id.in_(due[start:start + FILE_BATCH]))
                                             .order_by(OutboxItem.priority, OutboxItem.next_attempt_at, OutboxItem.id)))
            written: list[OutboxItem] = []
            for item in items:
                try:
                    write_atomically(folder / eml_name(item), item.raw, sync_folder=False)
                except OSError as err:
                    item.attempts += 1
                    self._set([item.id], attempts=item.attempts)
                    self._retry_later(item, now, self._describe(err))
                    report.failed += 1
                    continue
                written.append(item)
            if not written:
                continue
            fsync_folder(folder)
            self._set([item.id for item in written], state=OutboxState.SENT, sent_at=now, last_error=None)
            for item in written:
                log.info("wrote %s #%s (%s) for %s", item.kind.value, item.id, item.reply_kind or "-", item.to_address)
            report.sent += len(written)

    def _send(self, due: list[int], now: dt.datetime, report: SendReport) -> None:
        smtp = _Smtp(self.settings.smtp)
        with ExitStack() as stack:
            stack.callback(smtp.close)
            mailbox = self.settings.mailbox
            # The Maildir demo has no server to keep copies on.
            sent_folder = _SentFolder(self.settings, stack) if mailbox.sent_folder and mailbox.source == "imap" else None
            for position, item_id in enumerate(due):
                item = self._load(item_id)
                if item is None or item.state not in DUE_STATES:
                    continue
                if item.state is OutboxState.SENDING:
                    verdict = self._recover(item, sent_folder, now)
                    if verdict == "sent":
                        report.recovered += 1
                        continue
                    if verdict == "unknown":
                        report.deferred += 1
                        continue
                if not self._claim(item, now):
                    continue
                try:
                    smtp.send(item)
                except (smtplib.SMTPException, OSError) as err:
                    error = self._describe(err)
                    if held_as_spam(err):
                        # Not this mail's fault and not worth its attempts: wait, keep the row,
                        # and let the rest wait too (the provider is judging the account).
                        log.warning("outbox %s held by the provider's spam filter: %s", item.id, error)
                        self._set([item.id], state=OutboxState.PENDING, attempts=item.attempts - 1,
                                  next_attempt_at=now + SPAM_HOLD_DELAY, last_error=f"{SPAM_HOLD}: {error}")
                        report.deferred += len(due) - position
                        return
                    log.warning("outbox %s: attempt %s failed: %s", item.id, item.attempts, error)
                    self._retry_later(item, now, error)
                    report.failed += 1
                    if not smtp.connected:
                        # Server down or throttling us: the rest wait for the next run
                        # rather than burn their attempts now.
                        report.deferred += len(due) - position - 1
                        return
                    continue
                note = self._keep_copy(sent_folder, item, now)
                checkpoint("send")  # the window the Sent-folder check guards
                self._set([item.id], state=OutboxState.SENT, sent_at=now, last_error=note)
                log.info("sent %s #%s (%s) to %s", item.kind.value, item.id, item.reply_kind or "-", item.to_address)
                report.sent += 1

    def _recover(self, item: OutboxItem, sent_folder: _SentFolder | None, now: dt.datetime) -> str:
        """A row left `sending` by a crash: "sent" (found in Sent), "resend", or "unknown"."""
        if sent_folder is None:
            log.warning("outbox %s was interrupted while sending and no sent_folder is set: resending", item.id)
            return "resend"
        try:
            found = sent_folder.contains(item.message_id)
        except Exception as err:  # noqa: BLE001 - cannot tell: wait, never guess
            self._set([item.id], next_attempt_at=now + retry_delay(item.attempts, self.settings.smtp.retry_base_seconds),
                      last_error=f"无法检查已发送文件夹：{self._describe(err)}")
            return "unknown"
        if found:
            self._set([item.id], state=OutboxState.SENT, sent_at=now, last_error=None)
            return "sent"
        return "resend"

    def _keep_copy(self, sent_folder: _SentFolder | None, item: OutboxItem, now: dt.datetime) -> str | None:
        """APPEND the sent mail to Sent; a failure is noted on the row, never resent."""
        if sent_folder is None:
            return None
        try:
            sent_folder.append(item.raw, now)
        except Exception as err:  # noqa: BLE001 - the mail is out; only the copy is missing
            log.warning("outbox %s: sent, but could not be copied to Sent: %s", item.id, self._describe(err))
            return f"已发送，但未能存入已发送文件夹：{self._describe(err)}"
        return None


# --- outbox health: what `poll`, `status` and `digest --send` tell people -------------

_CJK = re.compile(r"[\u4e00-\u9fff]")
_SEND_ERRORS = {
    "SMTPNotSupportedError": '发信服务器不接受登录（AUTH）：多半需要加密连接，请用 security = "ssl"（465）或 "starttls"（587）',
    "SMTPRecipientsRefused": "收件地址被发信服务器拒绝，请核对地址",
    "SMTPSenderRefused": "发件地址被拒绝：163/126/QQ 要求 from_address 与登录账号相同",
    "SMTPDataError": "发信服务器拒收了这封邮件",
    "SMTPServerDisconnected": "发信服务器中途断开了连接",
    "SMTPConnectError": "发信服务器拒绝了连接",
    "ConnectionRefusedError": "无法连接发信服务器：连接被拒绝，该端口没有服务在监听，请检查 [smtp] host 和 port",
    "gaierror": "找不到发信服务器的主机名，请检查 [smtp] host",
    "TimeoutError": "连接发信服务器超时：请检查网络、防火墙，以及端口与加密方式是否匹配（465 配 ssl，587 配 starttls）",
    "timeout": "连接发信服务器超时：请检查网络、防火墙，以及端口与加密方式是否匹配（465 配 ssl，587 配 starttls）",
}


def explain_send_error(settings: Settings, last_error: str | None) -> str:
    """A row's last_error ("SMTPAuthenticationError: (535, ...)") as one Chinese line."""
    from config.settings import PORT_HINTS, brief, login_refused  # the same words as the IMAP side

    if not last_error:
        return "原因不明"
    name, _, detail = last_error.partition(": ")
    if _CJK.search(detail or name):
        return detail or name  # already ours (a certificate refusal, a Sent-folder note)
    smtp = settings.smtp
    if name == SPAM_HOLD:
        return ("被发信服务商的反垃圾系统暂时拦截（如 163 的 554 DT:SPM），已暂缓，一小时后重试；"
                f"如反复出现，请登录发信邮箱网页版查看，或减少同时发送的邮件（{brief(detail)}）")
    if name == "SMTPAuthenticationError":
        return login_refused("smtp", smtp.username, smtp.host, smtp.port, detail)
    if "WRONG_VERSION_NUMBER" in last_error:
        reason = f'端口与加密方式不匹配（port = {smtp.port}，security = "{smtp.security}"）：{PORT_HINTS["smtp"]}'
    elif smtp.mode == "file" and name in ("OSError", "PermissionError", "FileNotFoundError"):
        reason = f"无法写入 {settings.resolve(smtp.outbox_dir)}（权限或磁盘空间）"
    else:
        reason = _SEND_ERRORS.get(name, "发送失败")
    return f"{reason}（{brief(last_error)}）"


@dataclass(frozen=True)
class Unsent:
    to: str
    subject: str
    reason: str
    attempts: int
    id: int | None = None  # the outbox row, for `intake outbox retry|dismiss`

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "to": self.to, "subject": self.subject, "reason": self.reason, "attempts": self.attempts}


@dataclass(frozen=True)
class OutboxHealth:
    pending: int  # waiting for a (first or next) attempt, or in flight
    failed: int  # given up after max_attempts: nothing will send these
    oldest_pending_age_seconds: float | None
    failed_items: list[Unsent]
    retrying_items: list[Unsent]  # pending rows whose last attempt failed
    bounced_items: list[Unsent] = field(default_factory=list)  # sent, then returned by a bounce

    def as_dict(self) -> dict[str, object]:
        return {
            "pending": self.pending,
            "failed": self.failed,
            "oldest_pending_age_seconds": self.oldest_pending_age_seconds,
            "failed_items": [u.as_dict() for u in self.failed_items],
            "retrying_items": [u.as_dict() for u in self.retrying_items],
            "bounced_items": [u.as_dict() for u in self.bounced_items],
        }


def outbox_health(session: Session, settings: Settings, now: dt.datetime) -> OutboxHealth:
    """Mail not (yet) out, with each one's reason in Chinese."""
    def unsent(item: OutboxItem) -> Unsent:
        return Unsent(item.to_address, item.subject, explain_send_error(settings, item.last_error), item.attempts,
                      item.id)

    waiting = list(session.scalars(select(OutboxItem).where(OutboxItem.state.in_(DUE_STATES)).order_by(OutboxItem.created_at)))
    failed = list(session.scalars(select(OutboxItem).where(OutboxItem.state == OutboxState.FAILED).order_by(OutboxItem.id)))
    bounced = list(session.scalars(select(OutboxItem).where(OutboxItem.bounced_at.is_not(None)).order_by(OutboxItem.id)))
    return OutboxHealth(
        pending=len(waiting),
        failed=len(failed),
        oldest_pending_age_seconds=round((now - waiting[0].created_at).total_seconds(), 1) if waiting else None,
        failed_items=[unsent(item) for item in failed],
        retrying_items=[unsent(item) for item in waiting if item.last_error],
        bounced_items=[Unsent(item.to_address, item.subject, item.bounce_reason or "", item.attempts) for item in bounced],
    )
