"""The pipeline on both databases, and two processes on one PostgreSQL that never
process a message twice: a second machine stands by and takes over."""

from __future__ import annotations

import datetime as dt
import email
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.app import App
from intake.runs import poll_once
from storage.models import Message, MessageState, OutboxItem, Submission
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail
from tests.support.runner import IntakeProcess, wait_until, write_config
from tests.support.smtp import SmtpSink


def settings_on(tmp_path: Path, url: str, mailbox: Dovecot, smtp_sink: SmtpSink, **mailbox_options: object):  # noqa: ANN201
    return intake_settings(
        tmp_path, dovecot=mailbox, database={"url": url}, mailbox={"poll_seconds": 5, **mailbox_options},
        smtp={"mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none", "daily_cap_per_recipient": 100},
    )


def mails(count: int, start: int = 0) -> list[tuple[bytes, dt.datetime]]:
    when = DEADLINE - dt.timedelta(hours=2)
    return [(submission_mail(subject=f"报送 {i}", date=when), when) for i in range(start, start + count)]


def replies_by_original(smtp_sink: SmtpSink) -> list[str]:
    return [email.message_from_bytes(m.data)["In-Reply-To"] for m in smtp_sink.messages]


def test_the_pipeline_stores_the_same_verdicts_on_either_database(
    tmp_path: Path, database_url: str, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    mailbox = dovecot.add_user(f"db-{tmp_path.name}@example.org")
    mailbox.append_many(mails(3))
    mailbox.append(submission_mail(subject="逾期", date=DEADLINE), DEADLINE + dt.timedelta(seconds=1))
    with App(settings_on(tmp_path, database_url, mailbox, smtp_sink)) as app:
        poll_once(app)
        poll_once(app)
        with app.db.session() as session:
            submissions = session.scalars(select(Submission).order_by(Submission.id)).all()
            assert [s.late for s in submissions] == [False, False, False, True]
            assert all(len(s.rows_of("form1")) == 2 for s in submissions)
            assert submissions[0].rows_of("form1")[0].values["investment"] == "45.6"
            assert session.scalar(select(func.count()).select_from(OutboxItem)) == 4
    assert len(smtp_sink.messages) == 4


@pytest.mark.slow
def test_two_polls_at_once_on_postgresql_process_each_message_once(
    tmp_path: Path, postgres_server, dovecot: Dovecot, smtp_sink: SmtpSink  # noqa: ANN001
) -> None:
    _, url = postgres_server.create_database()
    mailbox = dovecot.add_user(f"two-polls-{tmp_path.name}@example.org")
    mailbox.append_many(mails(20))
    config = write_config(settings_on(tmp_path, url, mailbox, smtp_sink), tmp_path / "intake.toml")
    first, second = IntakeProcess(config, "poll"), IntakeProcess(config, "poll")
    assert first.process.wait(timeout=300) == 0, first.log
    assert second.process.wait(timeout=300) == 0, second.log
    with App(settings_on(tmp_path, url, mailbox, smtp_sink)) as app, app.db.session() as session:
        rows = session.scalars(select(Message)).all()
        assert len(rows) == 20 and all(m.state is MessageState.PROCESSED for m in rows)
    assert sorted(replies_by_original(smtp_sink)) == sorted(set(replies_by_original(smtp_sink)))
    assert len(smtp_sink.messages) == 20


@pytest.mark.slow
def test_a_standby_run_takes_over_when_the_active_one_dies(
    tmp_path: Path, postgres_server, dovecot: Dovecot, smtp_sink: SmtpSink  # noqa: ANN001
) -> None:
    _, url = postgres_server.create_database()
    mailbox = dovecot.add_user(f"standby-{tmp_path.name}@example.org")
    config = write_config(settings_on(tmp_path, url, mailbox, smtp_sink), tmp_path / "intake.toml")
    active = IntakeProcess(config, "run")
    active.wait_for_log("connected to")
    standby = IntakeProcess(config, "run", "--standby")
    try:
        standby.wait_for_log("standby: waiting")
        mailbox.append_many(mails(3))
        wait_until(lambda: len(smtp_sink.messages) == 3, 60, "the active runner's replies")
        assert "connected to" not in standby.log  # it waited; it did not poll alongside
        active.kill()
        standby.wait_for_log("connected to", timeout=60)
        mailbox.append_many(mails(2, start=3))
        wait_until(lambda: len(smtp_sink.messages) == 5, 60, "the standby's replies after taking over")
        assert standby.terminate(timeout=15) == 0
    finally:
        active.kill()
        standby.kill()
    assert len(set(replies_by_original(smtp_sink))) == 5
    with App(settings_on(tmp_path, url, mailbox, smtp_sink)) as app, app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 5
