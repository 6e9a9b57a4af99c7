"""The spam folder (issue 12): 163 and QQ file some real submissions under \\Junk.

A Dovecot with a real \\Junk special-use folder; intake reads it read-only besides INBOX.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.export import export_document
from intake.runs import poll_once
from storage.models import Message, MessageState, OutboxItem
from tests.support.dovecot import Dovecot, SpecialUseDovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail

ARRIVED = DEADLINE - dt.timedelta(hours=3)


@pytest.fixture
def server() -> Iterator[Dovecot]:
    dovecot = SpecialUseDovecot().start()
    yield dovecot
    dovecot.cleanup()


def make_app(tmp_path: Path, server: Dovecot, **mailbox: object) -> App:
    return App(intake_settings(tmp_path, dovecot=server, mailbox=mailbox))


def exported(app: App) -> list[dict]:
    with app.db.session() as session:
        return export_document(session, app.settings)["submissions"]


def replies(app: App) -> int:
    with app.db.session() as session:
        return len(session.scalars(select(OutboxItem)).all())


def test_a_registered_units_submission_in_junk_is_processed_and_marked_for_staff(tmp_path: Path, server: Dovecot) -> None:
    server.append(submission_mail(), ARRIVED, folder="Junk")

    with make_app(tmp_path, server, processed_folder="已处理") as app:
        poll_once(app)
        (submission,) = exported(app)

    assert submission["status"] == "accepted" and submission["reply"] == "receipt"
    (spam,) = [p for p in submission["problems"] if p["code"] == "found_in_spam"]
    assert spam["severity"] == "warning" and "垃圾邮件文件夹" in spam["message"]
    assert submission["needs_review"] is True
    # Read-only there: not moved to processed_folder, no flag set (not even \Seen).
    assert len(server.uids("Junk")) == 1
    assert all(b"\\Seen" not in flags for flags in server.flags("Junk").values())


def test_a_strangers_mail_in_junk_is_recorded_and_never_answered(tmp_path: Path, server: Dovecot) -> None:
    server.append(submission_mail(sender=("某公司", "sales@spam.example")), ARRIVED, folder="Junk")

    with make_app(tmp_path, server) as app:
        poll_once(app)
        (submission,) = exported(app)
        sent = replies(app)

    assert (submission["status"], submission["reply"], submission["reply_suppressed"]) == ("ignored", "none", "spam_folder")
    assert sent == 0


def test_the_same_mail_in_inbox_and_junk_is_one_submission(tmp_path: Path, server: Dovecot) -> None:
    raw = submission_mail()
    server.append(raw, ARRIVED)
    server.append(raw, ARRIVED, folder="Junk")

    with make_app(tmp_path, server) as app:
        poll_once(app)
        with app.db.session() as session:
            states = sorted((m.folder, m.state.value) for m in session.scalars(select(Message)))
        assert len(exported(app)) == 1 and replies(app) == 1

    assert states == [("INBOX", MessageState.PROCESSED.value), ("Junk", MessageState.DUPLICATE.value)]


def test_junk_is_read_once_per_mail_by_its_own_cursor(tmp_path: Path, server: Dovecot) -> None:
    server.append(submission_mail(), ARRIVED, folder="Junk")

    with make_app(tmp_path, server) as app:
        first = poll_once(app)
        second = poll_once(app)

    assert (first.seen, second.seen) == (1, 0)


def test_extra_folders_empty_turns_the_spam_folder_off(tmp_path: Path, server: Dovecot) -> None:
    server.append(submission_mail(), ARRIVED, folder="Junk")

    with make_app(tmp_path, server, extra_folders=[]) as app:
        report = poll_once(app)
        assert exported(app) == []

    assert report.seen == 0
