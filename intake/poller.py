"""One pass over the mailbox: fetch what is new, record it, process it, move it if asked.

The cursor (last UID per folder and UIDVALIDITY) means a re-poll of a processed mailbox
asks the server for nothing but a UID SEARCH. The cursor may lag behind what is recorded
(it is saved per batch): a refetched message is found at its location and skipped.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from imap_tools import BaseMailBox
from sqlalchemy import select

from intake import mailbox as imap
from intake import stages
from intake.app import App
from intake.faults import checkpoint
from intake.pipeline import Archived, Location, Outcome, archive_message, process_messages, record_archived_together, record_message
from intake.readahead import read_ahead
from storage.locks import exclusive
from storage.models import MailboxCursor, Message, MessageState

T = TypeVar("T")

log = logging.getLogger(__name__)

# Raw mail fetched in one FETCH: larger mail is fetched one message at a time.
FETCH_BYTES = 10 * 1024 * 1024
# Mails recorded ahead of the store (their ids wait; their bytes are in the archive).
READ_AHEAD = 16


@dataclass
class PollReport:
    seen: int = 0  # messages fetched or found in the Maildir
    new: int = 0  # newly recorded
    outcomes: list[Outcome] = field(default_factory=list)
    moved: int = 0
    seconds: float = 0.0
    uidvalidity_changed: bool = False

    def count(self, state: MessageState) -> int:
        return sum(1 for o in self.outcomes if o.state is state)

    def summary(self) -> str:
        return (
            f"检查 {self.seen} 封，新邮件 {self.new} 封，处理 {self.count(MessageState.PROCESSED)} 封，"
            f"重复 {self.count(MessageState.DUPLICATE)} 封，隔离 {self.count(MessageState.QUARANTINED)} 封，"
            f"用时 {self.seconds:.2f} 秒"
        )


def one_poll_at_a_time(function: Callable[..., T]) -> Callable[..., T]:
    """Polls (and reprocessing) never overlap, across processes and, on PostgreSQL,
    machines: `intake poll` run by hand waits for the runner's pass to finish."""

    @functools.wraps(function)
    def serialised(app: App, *args: object, **kwargs: object) -> T:
        with exclusive(app.db, "poll", wait=True):
            return function(app, *args, **kwargs)

    return serialised


def _cursor(session, account: str, folder: str) -> MailboxCursor | None:  # noqa: ANN001
    return session.scalars(
        select(MailboxCursor).where(MailboxCursor.account == account, MailboxCursor.folder == folder)
    ).first()


def _save_cursor(app: App, folder: str, uidvalidity: int, last_uid: int) -> None:
    with app.db.session() as session:
        cursor = _cursor(session, app.account, folder)
        if cursor is None:
            session.add(MailboxCursor(account=app.account, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid))
        else:
            cursor.uidvalidity, cursor.last_uid = uidvalidity, max(last_uid, cursor.last_uid if cursor.uidvalidity == uidvalidity else 0)


@one_poll_at_a_time
def poll_imap(app: App, mailbox: BaseMailBox) -> PollReport:
    """One incremental pass over the configured folder, then the extra (spam) folders
    read-only, on an open connection; the configured folder is left selected (for IDLE)."""
    started = time.monotonic()
    report = PollReport()
    settings = app.settings.mailbox
    state = _poll_folder(app, mailbox, settings.folder, report)
    extra = imap.extra_folders(mailbox, settings)
    for folder in extra:
        _poll_folder(app, mailbox, folder, report, readonly=True)
    if extra:
        imap.select(mailbox, settings.folder)
    report.outcomes += resume_pending(app)
    if settings.processed_folder:
        report.moved = _move_processed(app, mailbox, state.uidvalidity)
    report.seconds = time.monotonic() - started
    return report


def _poll_folder(app: App, mailbox: BaseMailBox, folder: str, report: PollReport, *,
                 readonly: bool = False) -> imap.FolderState:
    """Fetch, record and process what is new in one folder, its cursor saved per batch.
    `readonly` (EXAMINE): the server changes nothing there, not even \\Recent."""
    state = imap.select(mailbox, folder, readonly=readonly)
    with app.db.session() as session:
        cursor = _cursor(session, app.account, folder)
        last_uid = cursor.last_uid if cursor and cursor.uidvalidity == state.uidvalidity else 0
        before = cursor.uidvalidity if cursor else None
    changed = before is not None and before != state.uidvalidity
    if changed:
        report.uidvalidity_changed = True
        log.warning("UIDVALIDITY of %s changed (%s -> %s): rescanning; known mail is matched by content",
                    folder, before, state.uidvalidity)
    uids = imap.uids_after(mailbox, last_uid)
    if uids:
        app.start_parsers()  # their start-up overlaps the first fetches
    recorded = _recorded(app, mailbox, folder, uids, state.uidvalidity, report)
    try:
        report.outcomes += process_messages(app, recorded)
    finally:
        recorded.close()  # stops the fetching thread, if the store stopped first
    if changed and not uids:
        _save_cursor(app, folder, state.uidvalidity, 0)
    return state


@dataclass(frozen=True)
class _BatchDone:
    last_uid: int


def _recorded(app: App, mailbox: BaseMailBox, folder: str, uids: list[int], uidvalidity: int,
              report: PollReport) -> Iterator[int]:
    """The ids of the mails fetched, as they are recorded, the cursor saved per batch.
    Fetching and archiving run in a thread of their own, a few mails ahead (READ_AHEAD):
    their waits (the server, fsyncs) overlap the store's work and the parser processes
    never wait for a whole batch. The ledger rows and the cursor are written here, by the
    reader, so the database has one writer."""
    with read_ahead(_fetched(app, mailbox, uids, report), limit=READ_AHEAD, name="fetch", grouped=True) as groups:
        for group in groups:
            # What has piled up is recorded in one transaction (one fsync, not one a mail),
            # a batch's cursor saved after its mails' rows are committed.
            ids: list[int] = []
            for batch_done, run in itertools.groupby(group, key=lambda item: isinstance(item, _BatchDone)):
                if batch_done:
                    # Recorded is enough: what a crash leaves archived is processed by resume_pending.
                    for done in run:
                        _save_cursor(app, folder, uidvalidity, done.last_uid)
                    continue
                mails = [(archived, arrived_at, Location(app.account, folder, uidvalidity, uid))
                         for uid, arrived_at, archived in run]
                for message, created in record_archived_together(app, mails):
                    report.new += created
                    checkpoint("record")
                    ids.append(message.id)
            yield from ids


def _fetched(app: App, mailbox: BaseMailBox, uids: list[int], report: PollReport
             ) -> Iterator[tuple[int, dt.datetime, Archived] | _BatchDone]:
    """Each mail fetched and archived (uid, arrival, Archived), then a _BatchDone per batch.
    A batch is fetched in groups of at most FETCH_BYTES (a larger mail alone): a batch of
    large mails is never in memory together."""
    for start in range(0, len(uids), app.settings.mailbox.batch_size):
        batch = uids[start : start + app.settings.mailbox.batch_size]
        for group in fetch_groups(batch, imap.sizes(mailbox, batch)):
            for fetched in stages.timed_iter("fetch", imap.fetch(mailbox, group)):
                checkpoint("fetch")
                report.seen += 1
                archived = archive_message(app, fetched.raw)
                yield fetched.uid, fetched.arrived_at, archived
        yield _BatchDone(max(batch))


def fetch_groups(uids: list[int], sizes: dict[int, int], budget: int | None = None) -> list[list[int]]:
    """Consecutive UIDs whose sizes add up to at most `budget` (FETCH_BYTES); a mail over
    it goes alone. A UID of unknown size (gone since the SEARCH) costs nothing: the FETCH
    skips it."""
    budget = FETCH_BYTES if budget is None else budget
    groups: list[list[int]] = []
    total = budget + 1
    for uid in uids:
        size = sizes.get(uid, 0)
        if total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(uid)
        total += size
    return groups


def resume_pending(app: App) -> list[Outcome]:
    """Messages archived by a run that died before processing them."""
    with app.db.session() as session:
        pending = session.scalars(
            select(Message.id).where(Message.account == app.account, Message.state == MessageState.ARCHIVED)
        ).all()
    return process_messages(app, list(pending))


def _move_processed(app: App, mailbox: BaseMailBox, uidvalidity: int) -> int:
    """Move only what is committed; a crash before the move leaves it for the next pass."""
    settings = app.settings.mailbox
    with app.db.session() as session:
        rows = session.scalars(
            select(Message).where(
                Message.account == app.account,
                Message.folder == settings.folder,
                Message.uidvalidity == uidvalidity,
                Message.moved.is_(False),
                Message.state.in_([MessageState.PROCESSED, MessageState.DUPLICATE]),
            )
        ).all()
        pending = [(m.id, m.uid) for m in rows]
    for pk, uid in pending:
        imap.move(mailbox, uid, settings.processed_folder)
        checkpoint("move")
        with app.db.session() as session:
            session.get(Message, pk).moved = True
    return len(pending)


@one_poll_at_a_time
def poll_maildir(app: App) -> PollReport:
    """The demo's mailbox: a local Maildir, read-only; a file's mtime is its arrival time."""
    started = time.monotonic()
    report = PollReport()
    root = app.settings.resolve(app.settings.mailbox.maildir)
    with app.db.session() as session:
        known = set(session.scalars(select(Message.source_key).where(Message.account == app.account)).all())
    recorded = []
    for path in sorted(_maildir_files(root), key=lambda p: (p.stat().st_mtime, p.name)):
        key = path.name.split(":", 1)[0]
        report.seen += 1
        if key in known:
            continue
        arrived_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        location = Location(app.account, "maildir", source_key=key)
        message, created = record_message(app, path.read_bytes(), arrived_at, location)
        report.new += created
        recorded.append(message.id)
    report.outcomes += process_messages(app, recorded)
    report.outcomes += resume_pending(app)
    report.seconds = time.monotonic() - started
    return report


def _maildir_files(root: Path) -> list[Path]:
    return [p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir() if p.is_file()]
