"""Outages while intake runs: the IMAP server, the SMTP server, the archive's disk and the
database each fail for a while. Every test ends with nothing lost, nothing done twice, a
log line that says what happened, and recovery without a human.

Tests that stop Dovecot start their own; the others take a fresh mailbox on the session's.
"""

from __future__ import annotations

import datetime as dt
import email
import errno
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

import intake.poller
from intake.app import App
from intake.runs import poll_once
from storage.models import Message, MessageState, OutboxItem, OutboxState
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, UNITS, intake_settings, submission_mail
from tests.support.runner import WatchThread, wait_until
from tests.support.smtp import SmtpSink

MAILBOX_DOWN = "mailbox unavailable"
STORAGE_DOWN = "cannot store mail"


def mails(count: int) -> list[tuple[bytes, dt.datetime]]:
    """`count` distinct valid submissions, one per unit, an hour apart."""
    out = []
    for i in range(count):
        unit = UNITS[i % len(UNITS)]
        at = DEADLINE - dt.timedelta(hours=10 - i)
        out.append((submission_mail((unit["name"], unit["emails"][0]), unit=unit["name"], subject=f"报送 {i}", date=at), at))
    return out


def settings_for(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink, *, smtp: dict | None = None, **mailbox_settings: object):  # noqa: ANN201
    return intake_settings(
        tmp_path, dovecot=mailbox, mailbox={"idle": True, "idle_seconds": 600, **mailbox_settings},
        smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none", **(smtp or {})},
    )


def assert_each_recorded_and_answered_once(app: App, sink: SmtpSink, sent: list[tuple[bytes, dt.datetime]]) -> None:
    with app.db.session() as session:
        rows = session.scalars(select(Message)).all()
        assert len(rows) == len(sent) and len({m.uid for m in rows}) == len(sent)
        assert {m.state for m in rows} == {MessageState.PROCESSED}
        assert all(app.archive.exists("mail", m.sha256) for m in rows)
        assert {o.state for o in session.scalars(select(OutboxItem))} == {OutboxState.SENT}
    replied_to = [email.message_from_bytes(m.data)["In-Reply-To"] for m in sink.messages]
    assert sorted(replied_to) == sorted(email.message_from_bytes(raw)["Message-ID"] for raw, _ in sent)


def drop_clients(server: Dovecot) -> None:
    """Cut every open IMAP connection of this server, as a crash or a network cut does.
    Stopping Dovecot's master leaves its imap processes serving their clients, so they are
    ended too: found by this instance's process title, signalled by pid."""
    title = f"dovecot-intake-test-{server.port}/imap\0".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == title:
                os.kill(int(entry.name), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass  # it ended by itself meanwhile


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A server of the test's own, free to be stopped."""
    server = Dovecot().start()
    yield server
    server.cleanup()


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Dovecot:
    return dovecot.add_user(f"outage-{request.node.name[:40]}@example.org")


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


# --- IMAP ---------------------------------------------------------------------------


def test_dovecot_stopped_in_the_middle_of_a_poll_is_caught_up_by_the_next_poll(
    tmp_path: Path, own_dovecot: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = mails(4)
    own_dovecot.append_many(sent)
    stopped = threading.Event()
    fetched = 0

    def stop_server_after_second_fetch(point: str) -> None:
        nonlocal fetched
        if point == "fetch" and not stopped.is_set():
            fetched += 1
            if fetched == 2:
                own_dovecot.stop()
                drop_clients(own_dovecot)
                stopped.set()

    monkeypatch.setattr(intake.poller, "checkpoint", stop_server_after_second_fetch)
    settings = settings_for(tmp_path, own_dovecot, smtp_sink, batch_size=2)
    with App(settings) as app:
        with WatchThread(app) as watch:
            wait_until(stopped.is_set, 60, "the server to be stopped mid-poll")
            wait_until(lambda: MAILBOX_DOWN in caplog.text, 30, "the outage to be logged")
            own_dovecot.start()
            smtp_sink.wait_for(len(sent), timeout=60)
            watch.wait_for_polls(1)
        poll_once(app)  # one more pass finds nothing new and sends nothing more
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)


def test_dovecot_restarted_during_idle_is_reconnected_and_new_mail_is_answered(
    tmp_path: Path, own_dovecot: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    sent = mails(1)
    settings = settings_for(tmp_path, own_dovecot, smtp_sink)
    with App(settings) as app:
        with WatchThread(app) as watch:
            watch.wait_for_polls(1)  # now in IDLE
            own_dovecot.stop()
            drop_clients(own_dovecot)
            own_dovecot.start()
            own_dovecot.append_many(sent)
            smtp_sink.wait_for(1, timeout=30)
        assert MAILBOX_DOWN in caplog.text
        assert caplog.text.count("connected to") >= 2
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)


# --- SMTP ---------------------------------------------------------------------------


def test_replies_refused_with_421_stay_pending_then_are_each_delivered_once(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    sent = mails(3)
    mailbox.append_many(sent)
    settings = settings_for(tmp_path, mailbox, smtp_sink, smtp={"retry_base_seconds": 0.01})
    smtp_sink.refuse("421 4.7.0 Too many connections, try again later")
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            rows = session.scalars(select(OutboxItem)).all()
            assert len(rows) == 3 and {o.state for o in rows} == {OutboxState.PENDING}
            tried = [o for o in rows if o.attempts]
            assert len(tried) == 1 and "421" in tried[0].last_error, "a refused server is not hammered"
        assert smtp_sink.messages == [] and "attempt 1 failed" in caplog.text
        smtp_sink.accept()
        poll_once(app)
        poll_once(app)
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)
        with app.db.session() as session:
            assert all(o.last_error is None for o in session.scalars(select(OutboxItem)))


# --- the archive's disk -------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs for the archive. Mounting needs root (CI runs as root): no skip."""
    root = tmp_path / "files"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test: {mounted.stderr.strip()}", pytrace=False)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk to the last byte (unbuffered writes end with a short one), then give
    back `leave` bytes."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


def test_a_full_archive_disk_records_nothing_without_its_bytes_and_the_poll_after_freeing_records_all(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sent = mails(2)
    mailbox.append_many(sent)
    filler = fill(small_disk)
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        with WatchThread(app) as watch:
            wait_until(lambda: STORAGE_DOWN in caplog.text, 30, "the full disk to be logged")
            with app.db.session() as session:
                assert all(app.archive.exists("mail", m.sha256) for m in session.scalars(select(Message)))
            assert watch.alive and watch.error is None
            filler.unlink()
            smtp_sink.wait_for(len(sent), timeout=60)
        assert "No space left on device" in caplog.text
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)


def test_a_disk_that_fills_between_a_mail_and_its_attachments_leaves_it_for_the_next_poll_not_quarantined(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sent = mails(1)
    mailbox.append_many(sent)
    # Room for the raw mail and its folders, not for the PDF that is stored after it.
    filler = fill(small_disk, leave=len(sent[0][0]) + 4 * 4096)
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        with WatchThread(app):
            wait_until(lambda: STORAGE_DOWN in caplog.text, 30, "the full disk to be logged")
            with app.db.session() as session:
                assert [m.state for m in session.scalars(select(Message))] == [MessageState.ARCHIVED]
            filler.unlink()
            smtp_sink.wait_for(1, timeout=60)
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)


# --- the database -------------------------------------------------------------------

HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
"""


class LockHolder:
    """Another process that holds `BEGIN EXCLUSIVE` on the SQLite file until released."""

    def __init__(self, db_path: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, db_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
            assert self.process.wait(timeout=10) == 0


def archived_files(root: Path) -> int:
    return sum(1 for p in (root / "mail").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")) if (root / "mail").exists() else 0


def test_a_database_locked_for_a_while_makes_the_poll_wait_and_then_complete(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    sent = mails(3)
    mailbox.append_many(sent)
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        holder = LockHolder(settings.database_url.removeprefix("sqlite:///"))
        try:
            with WatchThread(app) as watch:
                # The first mail is archived; recording it waits for the lock (busy timeout).
                wait_until(lambda: archived_files(tmp_path / "files") >= 1, 30, "the first mail to be archived")
                assert watch.polls == 0
                holder.release()
                smtp_sink.wait_for(len(sent), timeout=60)
                watch.wait_for_polls(1)
        finally:
            holder.release()
        assert STORAGE_DOWN not in caplog.text
        assert "新邮件 3 封" in caplog.text
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)


def test_a_database_locked_past_the_busy_timeout_fails_the_poll_clearly_and_the_next_completes(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    sent = mails(2)
    mailbox.append_many(sent)
    settings = settings_for(tmp_path, mailbox, smtp_sink)
    with App(settings) as app:
        # Give up after 0.2 s instead of 30 s, so the lock outlasts the wait in a short test.
        event.listen(app.db.engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout=200"))
        app.db.engine.dispose()
        holder = LockHolder(settings.database_url.removeprefix("sqlite:///"))
        try:
            with WatchThread(app) as watch:
                wait_until(lambda: STORAGE_DOWN in caplog.text, 30, "the locked database to be logged")
                assert watch.alive and watch.error is None
                holder.release()
                smtp_sink.wait_for(len(sent), timeout=60)
        finally:
            holder.release()
        assert "database is locked" in caplog.text
        assert_each_recorded_and_answered_once(app, smtp_sink, sent)
