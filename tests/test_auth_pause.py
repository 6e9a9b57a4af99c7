"""A refused mailbox login is not retried forever: after three in a row `intake run` stops
for `[mailbox] auth_pause`, says why in the log and the digest, and resumes afterwards.
Real Dovecot; the runner's connection step is driven with an injected clock, no sleeps."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake import mailbox as imap
from intake.app import App
from intake.login_pause import current_pause
from intake.scheduler import Runner
from notifications.digest import build_digest
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings
from tests.support.runner import wait_until

USER = "ldjs@sdzgh.cn"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2024, 2, 20, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[Dovecot]:
    """Its own Dovecot: the test changes the account's password on the server."""
    dovecot = Dovecot(users={USER: "old-code"}).start()
    yield dovecot
    dovecot.cleanup()


def refusals(server: Dovecot) -> int:
    return server.log_text().count("auth failed")


@pytest.fixture
def logins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every login the runner attempts (the real open_mailbox, counted)."""
    attempts: list[str] = []
    real = imap.open_mailbox

    def counted(settings):  # noqa: ANN001, ANN202
        attempts.append(settings.username)
        return real(settings)

    monkeypatch.setattr(imap, "open_mailbox", counted)
    return attempts


def test_three_refused_logins_pause_then_the_runner_resumes(
    tmp_path: Path, server: Dovecot, logins: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = intake_settings(tmp_path, dovecot=server, mailbox={"password": "new-code", "auth_pause": "30m", "idle": False})
    clock = Clock()
    with App(settings) as app:
        runner = Runner(app, clock=clock, on_poll=lambda _report: runner.stop_event.set())

        waits = [runner.watch_once() for _ in range(3)]

        assert waits == [1.0, 2.0, 1800.0]  # two backoffs, then the pause
        assert len(logins) == 3
        wait_until(lambda: refusals(server) == 3, 10, "Dovecot to log three refused logins")
        assert "not trying again until 2024-02-20T09:30:00+00:00" in caplog.text
        with app.db.session() as session:
            pause = current_pause(session)
            digest = build_digest(session, settings, now=DEADLINE, since=None)
        assert pause is not None and pause.until == clock.now + dt.timedelta(minutes=30) and pause.failures == 3
        assert "授权码" in pause.reason
        assert "邮箱登录已暂停" in digest.text and "暂停收信至 02月20日 17:30" in digest.text

        clock.now += dt.timedelta(minutes=29)
        assert runner.watch_once() == 60.0  # still paused: no login attempted
        assert len(logins) == 3

        server.users = {USER: "new-code"}  # the provider's authorization code is fixed
        server.restart()
        clock.now += dt.timedelta(minutes=1)
        assert runner.watch_once() == 0.0  # logged in and polled once (on_poll stops it)

        assert len(logins) == 4 and runner.auth_failures == 0
        with app.db.session() as session:
            assert current_pause(session) is None
            assert "邮箱登录已暂停" not in build_digest(session, settings, now=DEADLINE, since=None).text


def test_connection_failures_keep_backing_off_without_a_pause(tmp_path: Path, server: Dovecot) -> None:
    settings = intake_settings(tmp_path, dovecot=server, mailbox={"password": "old-code"})
    server.stop()
    try:
        with App(settings) as app:
            runner = Runner(app, clock=Clock())
            waits = [runner.watch_once() for _ in range(5)]
            with app.db.session() as session:
                assert current_pause(session) is None
    finally:
        server.start()
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize(("value", "seconds"), [("30m", 1800), ("2h", 7200), (600, 600)])
def test_auth_pause_takes_seconds_or_a_duration(tmp_path: Path, value: object, seconds: int) -> None:
    assert intake_settings(tmp_path, mailbox={"auth_pause": value}).mailbox.auth_pause.total_seconds() == seconds
