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
from notifications.outbox import Outbox
from storage.models import Message, MessageState


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
def reprocess_messages(app: App, message_ids: list[int] | None = None) -> list[Outcome]:
    """Parse again from the archive; the mailbox is not touched and no reply is sent twice
    (a reply's dedupe key is its message)."""
    with app.db.session() as session:
        query = select(Message.id).where(Message.state != MessageState.DUPLICATE).order_by(Message.arrived_at, Message.id)
        if message_ids:
            query = query.where(Message.id.in_(message_ids))
        ids = session.scalars(query).all()
    return process_messages(app, list(ids), force=True)


def write_digest(digest: Digest, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "digest.txt").write_text(digest.text, encoding="utf-8")
    (directory / "digest.html").write_text(digest.html, encoding="utf-8")
    (directory / digest.filename).write_bytes(digest.workbook)
