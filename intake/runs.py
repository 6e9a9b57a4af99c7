"""Whole operations the CLI and the demo run: a poll pass, a reprocess, a digest to disk."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from intake import mailbox as imap
from intake.app import App
from intake.ocr_followup import run_pending_ocr
from intake.pipeline import Outcome, process_messages
from intake.poller import PollReport, one_poll_at_a_time, poll_imap, poll_maildir
from notifications.digest import Digest
from notifications.outbox import Outbox, OutboxHealth, outbox_health
from storage.models import Message, MessageState, Submission, utcnow


def poll_once(app: App) -> PollReport:
    """One pass over the mailbox, then send what it queued."""
    if app.settings.mailbox.source == "maildir":
        report = poll_maildir(app)
    else:
        with imap.open_mailbox(app.settings.mailbox) as mailbox:
            report = poll_imap(app, mailbox)
    Outbox(app.db, app.settings).send_pending()
    if app.settings.parsing.ocr:
        run_pending_ocr(app)  # after the replies are out: OCR is slow and only informs staff
    return report


@one_poll_at_a_time
def reprocess_messages(app: App, message_ids: list[int] | None = None, *, campaign: str | None = None) -> list[Outcome]:
    """Parse again from the archive; the mailbox is not touched and no reply is sent twice
    (a reply's dedupe key is its message). `campaign`: only mail routed to it (it may
    route elsewhere this time)."""
    with app.db.session() as session:
        query = select(Message.id).where(Message.state != MessageState.DUPLICATE).order_by(Message.arrived_at, Message.id)
        if message_ids:
            query = query.where(Message.id.in_(message_ids))
        if campaign is not None:
            query = query.join(Submission, Submission.message_pk == Message.id).where(Submission.campaign == campaign)
        ids = session.scalars(query).all()
    return process_messages(app, list(ids), force=True)


def outbox_status(app: App) -> OutboxHealth:
    with app.db.session() as session:
        return outbox_health(session, app.settings, utcnow())


def unsent_lines(health: OutboxHealth) -> list[str]:
    """Mail that is not out, one Chinese line each with the reason: for `poll` and `status`."""
    lines = [f"✗ 发送失败，已不再重试（共尝试 {u.attempts} 次，发件编号 {u.id}）：{u.to}《{u.subject}》：{u.reason}"
             for u in health.failed_items]
    if health.failed_items:
        lines.append("  排除原因后可用 intake outbox retry 重新发送，或用 intake outbox dismiss 编号 放弃。")
    lines += [f"✗ 已发出但被退信：{u.to}《{u.subject}》：{u.reason}" for u in health.bounced_items]
    lines += [f"! 暂未发出，稍后自动重试（已尝试 {u.attempts} 次）：{u.to}《{u.subject}》：{u.reason}"
              for u in health.retrying_items]
    waiting = health.pending - len(health.retrying_items)
    if waiting and health.oldest_pending_age_seconds is not None:
        lines.append(f"· 另有 {waiting} 封待发送（最早的已等待 {format_age(health.oldest_pending_age_seconds)}）")
    return lines


def format_age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} 秒"
    if minutes < 60:
        return f"{minutes} 分钟"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} 小时 {minutes} 分钟" if hours < 48 else f"{hours // 24} 天"


def write_digest(digest: Digest, directory: Path) -> None:
    from intake.archive import write_atomically  # 0600 files, new folders 0700

    write_atomically(directory / "digest.txt", digest.text.encode("utf-8"))
    write_atomically(directory / "digest.html", digest.html.encode("utf-8"))
    for name, workbook in digest.attachments:  # one per campaign in the digest
        write_atomically(directory / name, workbook)
