"""SIGKILL at many points of a poll, then a clean rerun: nothing lost, nothing twice.

Each run gets its own mailbox on one real Dovecot and its own SMTP sink. A forked child
runs a poll with INTAKE_CRASH_AT set and kills itself at that point; then a fresh
process state runs the poll to completion and the invariants are checked. One more
test kills the real `intake poll` command from outside at an arbitrary moment.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import select

from intake.app import App
from intake.runs import poll_once
from intake.samples import mime_message
from storage.models import Message, OutboxItem, OutboxState, ReplyKind, Submission
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, settings_as_toml, submission_mail
from tests.support.smtp import SmtpSink

# Where to crash, and at which pass of that point: 56 runs over the whole path.
CRASH_POINTS = (
    [("fetch", n) for n in (1, 2, 4, 7)]
    + [("archive", n) for n in (1, 2, 3, 4, 5, 6, 7, 8)]
    + [("record", n) for n in (1, 2, 3, 4, 5, 6, 7, 8)]
    + [("parse", n) for n in (1, 2, 3, 4, 5, 6, 7)]
    + [("commit", n) for n in (1, 2, 3, 4, 5, 6, 7, 8)]
    + [("send", n) for n in (1, 2, 3, 4, 5, 6, 7)]
    + [("move", n) for n in (1, 2, 3, 4, 5, 6, 7, 8)]
    + [("move", 9), ("archive", 9), ("commit", 9), ("record", 9), ("send", 8), ("parse", 8)]
)


def mailbox_content() -> list[tuple[bytes, dt.datetime]]:
    """Eight messages: valid ones, a late one, a bare question, an auto-reply, a duplicate."""
    at = lambda h: DEADLINE - dt.timedelta(hours=h)  # noqa: E731
    valid = submission_mail(date=at(9))
    return [
        (valid, at(9)),
        (submission_mail(("青岛市总工会", "qingdao@example.cn"), unit="青岛市总工会", date=at(8)), at(8)),
        (mime_message(sender=("淄博市总工会", "zibo@example.cn"), subject="请问竞赛项目", body="截止时间？", attachments=[],
                      date=at(7)), at(7)),
        (mime_message(sender=("济南市总工会", "jinan@example.cn"), subject="自动回复", body="不在", attachments=[],
                      date=at(6), extra_headers={"Auto-Submitted": "auto-replied"}), at(6)),
        (valid, at(5)),  # the same bytes again: recorded as a duplicate, never answered twice
        (submission_mail(("山东能源集团工会", "sdny@example.cn"), unit="山东能源集团工会", date=at(4)), at(4)),
        (submission_mail(("省直机关工会", "szjg@example.cn"), unit="山东省直机关工会", date=at(3)), at(3)),
        (submission_mail(subject="逾期补报", date=DEADLINE + dt.timedelta(seconds=1)), DEADLINE + dt.timedelta(seconds=1)),
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    instance = Dovecot().start()
    yield instance
    instance.cleanup()


@pytest.fixture(scope="module")
def content() -> list[tuple[bytes, dt.datetime]]:
    return mailbox_content()


def run_settings(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink):  # noqa: ANN201
    # One sender writes many mails in the outside-kill test: lift the loop-guard cap there.
    return intake_settings(
        tmp_path, dovecot=mailbox,
        mailbox={"processed_folder": "Done", "sent_folder": "Sent", "batch_size": 3},
        smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none",
              "daily_cap_per_recipient": 100},
    )


def poll_in_child(settings, crash_at: str) -> int:  # noqa: ANN001
    """Fork, poll with the crash point armed, return how the child ended (a signal or 0)."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.environ["INTAKE_CRASH_AT"] = crash_at
            with App(settings) as app:
                poll_once(app)
        except BaseException:  # noqa: BLE001 - report through the exit code only
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def check_invariants(settings, mailbox: Dovecot, sink: SmtpSink, appended: int) -> None:  # noqa: ANN001
    with App(settings) as app, app.db.session() as session:
        messages = session.scalars(select(Message)).all()
        # every mailbox message: exactly one record and one archived file
        assert len(messages) == appended
        assert len({(m.uidvalidity, m.uid) for m in messages}) == appended
        assert all(app.archive.exists("mail", m.sha256) for m in messages)
        assert all(m.state.value in ("processed", "duplicate") for m in messages)
        assert all(m.moved for m in messages)
        submissions = session.scalars(select(Submission)).all()
        wanted = {s.message.message_id for s in submissions if s.reply is not ReplyKind.NONE}
        outbox = session.scalars(select(OutboxItem)).all()
        assert {o.state for o in outbox} <= {OutboxState.SENT}
    # every submission that warrants a reply got exactly one
    replied_to = [email.message_from_bytes(m.data)["In-Reply-To"] for m in sink.messages]
    assert sorted(replied_to) == sorted(wanted)
    assert len(wanted) == 6
    assert mailbox.uids("INBOX") == [] and len(mailbox.uids("Done")) == appended
    db_path = settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.slow
@pytest.mark.parametrize(("point", "nth"), CRASH_POINTS, ids=[f"{p}-{n}" for p, n in CRASH_POINTS])
def test_a_poll_killed_at_any_point_is_completed_by_a_clean_rerun(
    tmp_path: Path, server: Dovecot, content: list, point: str, nth: int
) -> None:
    mailbox = server.add_user(f"crash-{point}-{nth}@example.org")
    mailbox.append_many(content)
    sink = SmtpSink().start()
    try:
        settings = run_settings(tmp_path, mailbox, sink)
        ended = poll_in_child(settings, f"{point}:{nth}")
        assert ended in (-signal.SIGKILL, 0)
        with App(settings) as app:
            poll_once(app)
        check_invariants(settings, mailbox, sink, len(content))
    finally:
        sink.stop()


def test_crash_points_cover_every_stage_and_at_least_fifty_runs() -> None:
    from intake.faults import POINTS

    assert {p for p, _ in CRASH_POINTS} == set(POINTS)
    assert len(CRASH_POINTS) >= 50


@pytest.mark.slow
def test_the_poll_command_killed_from_outside_then_rerun_loses_and_repeats_nothing(
    tmp_path: Path, server: Dovecot
) -> None:
    mailbox = server.add_user("crash-external@example.org")
    messages = [(submission_mail(subject=f"报送 {i}", date=DEADLINE - dt.timedelta(minutes=100 - i)),
                 DEADLINE - dt.timedelta(minutes=100 - i)) for i in range(40)]
    mailbox.append_many(messages)
    sink = SmtpSink().start()
    try:
        settings = run_settings(tmp_path, mailbox, sink)
        config = tmp_path / "intake.toml"
        config.write_text(tomli_w.dumps(settings_as_toml(settings)), encoding="utf-8")
        command = [sys.executable, "-m", "intake.cli", "--config", str(config), "poll"]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db_path = settings.database_url.removeprefix("sqlite:///")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _processed(db_path) < 8:  # wait for a condition
            if child.poll() is not None:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert 0 < _processed(db_path) < 40, "the kill should land in the middle of the poll"
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        with App(settings) as app, app.db.session() as session:
            rows = session.scalars(select(Message)).all()
            assert len(rows) == 40 and len({m.sha256 for m in rows}) == 40
            assert all(m.state.value == "processed" for m in rows)
        replied_to = [email.message_from_bytes(m.data)["In-Reply-To"] for m in sink.messages]
        assert len(replied_to) == len(set(replied_to)) == 40
    finally:
        sink.stop()


def _processed(db_path: str) -> int:
    try:
        with sqlite3.connect(db_path, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM messages WHERE state = 'processed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not created yet
