"""`intake run`: new mail is answered promptly (IDLE or polling), SIGTERM stops it cleanly,
one runner per database, and the daily digest goes out once however often it restarts.

Real Dovecot (one server, a fresh mailbox per test) and a real SMTP sink; every wait is
on a condition with a deadline.
"""

from __future__ import annotations

import datetime as dt
import email
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.app import App
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail
from tests.support.runner import IntakeProcess, WatchThread, write_config
from tests.support.smtp import SmtpSink

STAFF = "staff@example.org"
ANOTHER_RUN = "另一个 intake run 进程正在使用同一数据库"


def settings_for(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink, **mailbox_settings: object):  # noqa: ANN201
    return intake_settings(
        tmp_path, dovecot=mailbox, mailbox=mailbox_settings,
        smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none"},
    )


def in_reply_to(sink: SmtpSink) -> list[str]:
    return [email.message_from_bytes(m.data)["In-Reply-To"] for m in sink.messages]


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Dovecot:
    return dovecot.add_user(f"runner-{request.node.name[:40]}@example.org")


def test_with_idle_a_new_message_is_answered_without_waiting_for_a_poll_interval(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(tmp_path, mailbox, smtp_sink, idle=True, poll_seconds=300, idle_seconds=600)
    raw = submission_mail()
    with App(settings) as app, WatchThread(app) as watch:
        watch.wait_for_polls(1)  # connected, polled the empty mailbox, now in IDLE
        started = time.monotonic()
        mailbox.append(raw, DEADLINE - dt.timedelta(hours=2))
        smtp_sink.wait_for(1, timeout=30)
        waited = time.monotonic() - started
    assert waited < 30 < settings.mailbox.poll_seconds
    assert watch.polls == 2, "one poll at start and one woken by IDLE, none by the clock"
    assert in_reply_to(smtp_sink) == [email.message_from_bytes(raw)["Message-ID"]]


def test_without_idle_a_new_message_is_picked_up_by_polling(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = settings_for(tmp_path, mailbox, smtp_sink, idle=False, poll_seconds=5)
    with App(settings) as app, WatchThread(app) as watch:
        watch.wait_for_polls(1)
        mailbox.append(submission_mail(), DEADLINE - dt.timedelta(hours=2))
        smtp_sink.wait_for(1, timeout=20)
    assert watch.polls >= 2
    assert "poll every 5s" in caplog.text


def test_intake_run_stops_cleanly_on_sigterm_while_in_idle(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    settings = settings_for(tmp_path, mailbox, smtp_sink, idle=True, idle_seconds=600)
    mailbox.append(submission_mail(), DEADLINE - dt.timedelta(hours=2))
    run = IntakeProcess(write_config(settings, tmp_path / "intake.toml"), "run")
    try:
        # Its reply is sent right after the first poll; the next step is IDLE.
        smtp_sink.wait_for(1, timeout=30)
        run.wait_for_log("(IDLE)")
        started = time.monotonic()
        code = run.terminate(timeout=10)
    finally:
        run.kill()
    assert code == 0, run.log
    assert time.monotonic() - started < 5
    assert "stopped" in run.log


def test_a_second_intake_run_on_the_same_database_exits_at_once(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    config = write_config(settings_for(tmp_path, mailbox, smtp_sink), tmp_path / "intake.toml")
    first = IntakeProcess(config, "run")
    try:
        first.wait_for_log("connected to")
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "intake.cli", "--config", str(config), "run"],
            capture_output=True, text=True, timeout=30,
        )
        elapsed = time.monotonic() - started
        assert first.process.poll() is None, "the first runner keeps running"
        assert first.terminate(timeout=10) == 0
    finally:
        first.kill()
    assert second.returncode != 0
    assert ANOTHER_RUN in second.stderr
    assert elapsed < 10


def digest_settings(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink):  # noqa: ANN201
    # A slot at local midnight has always passed when the process starts.
    return intake_settings(
        tmp_path, dovecot=mailbox, mailbox={"idle": True, "idle_seconds": 600},
        smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none"},
        digest={"recipients": [STAFF], "at": "00:00"},
    )


def digests(sink: SmtpSink) -> list[str]:
    return [str(email.message_from_bytes(m.data)["Subject"]) for m in sink.messages if STAFF in m.rcpt_tos]


def test_a_run_started_after_the_digest_slot_sends_it_once_and_a_restart_sends_nothing_more(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    config = write_config(digest_settings(tmp_path, mailbox, smtp_sink), tmp_path / "intake.toml")
    for _ in range(2):
        run = IntakeProcess(config, "run")
        try:
            run.wait_for_log("connected to")  # the start-up digest check runs before this
            assert run.terminate(timeout=10) == 0, run.log
        finally:
            run.kill()
    assert len(smtp_sink.messages) == 1
    assert len(digests(smtp_sink)) == 1


@pytest.fixture
def cli() -> Iterator[object]:
    from click.testing import CliRunner

    from intake.cli import main

    runner = CliRunner()
    yield lambda config, *args: runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_digest_send_twice_sends_one(tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink, cli) -> None:  # noqa: ANN001
    config = write_config(digest_settings(tmp_path, mailbox, smtp_sink), tmp_path / "intake.toml")
    first, second = cli(config, "digest", "--send"), cli(config, "digest", "--send")
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "今日汇总已发送" in first.output and "此前已发送" in second.output
    assert len(digests(smtp_sink)) == len(smtp_sink.messages) == 1

