"""A mail is the same mail whatever the config spells: no second fetch, no second reply."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from intake.app import App
from intake.cli import main
from intake.runs import poll_once
from storage.models import Message, MessageState, OutboxItem
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"identity-{uuid.uuid4().hex[:12]}@example.org")


def counts(app: App) -> tuple[int, int]:
    with app.db.session() as session:
        return (session.scalar(select(func.count(Message.id))), session.scalar(select(func.count(OutboxItem.id))))


def test_respelling_the_host_fetches_nothing_again_and_sends_nothing(tmp_path: Path, mailbox: Dovecot) -> None:
    mailbox.append(submission_mail(date=DEADLINE - dt.timedelta(days=1)), DEADLINE - dt.timedelta(days=1))
    with App(intake_settings(tmp_path, dovecot=mailbox)) as app:
        poll_once(app)
        first = counts(app)
    assert first == (1, 1)
    respelt = intake_settings(tmp_path, dovecot=mailbox, mailbox={"host": "localhost"})
    with App(respelt) as app:
        report = poll_once(app)
        assert (report.new, counts(app)) == (0, first)


def test_the_same_bytes_in_another_folder_are_a_duplicate_and_get_no_reply(tmp_path: Path, mailbox: Dovecot) -> None:
    raw = submission_mail(date=DEADLINE - dt.timedelta(days=1))
    mailbox.append(raw, DEADLINE - dt.timedelta(days=1))
    mailbox.append(raw, DEADLINE - dt.timedelta(days=1), folder="Junk")
    with App(intake_settings(tmp_path, dovecot=mailbox)) as app:
        poll_once(app)
    with App(intake_settings(tmp_path, dovecot=mailbox, mailbox={"folder": "Junk"})) as app:
        report = poll_once(app)
        assert [o.state for o in report.outcomes] == [MessageState.DUPLICATE]
        assert counts(app)[1] == 1


def test_moving_the_whole_demo_folder_keeps_its_mail_known(tmp_path: Path) -> None:
    original = tmp_path / "demo"
    assert CliRunner().invoke(main, ["demo", "--dir", str(original)]).exit_code == 0
    moved = tmp_path / "elsewhere" / "demo"
    shutil.copytree(original, moved)
    replies = sorted(p.name for p in (moved / "outbox").glob("*.eml"))
    result = CliRunner().invoke(main, ["--config", str(moved / "intake.toml"), "poll"])
    assert result.exit_code == 0, result.output
    assert "新邮件 0 封" in result.output
    assert sorted(p.name for p in (moved / "outbox").glob("*.eml")) == replies
