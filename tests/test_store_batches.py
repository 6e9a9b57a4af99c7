"""Parsed mails stored together: one transaction, one commit, the same result as one by one.

intake.pipeline stores the mails that are parsed by the time the store is free in one
transaction (`_finish_batch`). These tests drive that function with real parsed mails
(parser processes, SQLite): a batch commits once; a mail that fails takes the batch back
and only that mail is quarantined, every other one stored and answered exactly once and
logged once; a storage fault commits nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from intake import pipeline
from intake.app import App
from intake.pipeline import Location, record_message
from storage.models import Message, MessageState, OutboxItem
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail

SENDERS = [("济南市总工会", "jinan@example.cn"), ("青岛市总工会", "qingdao@example.cn"),
           ("淄博市总工会", "zibo@example.cn")]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    with App(intake_settings(tmp_path)) as instance:
        yield instance


def parsed_batch(app: App) -> list[pipeline._Parsed]:
    """Three submissions from three units, recorded and parsed, not stored."""
    batch = []
    for i, (name, address) in enumerate(SENDERS):
        raw = submission_mail((name, address), unit=name, subject=f"{name}报送",
                              date=DEADLINE - dt.timedelta(hours=3 - i))
        message, _ = record_message(app, raw, DEADLINE - dt.timedelta(hours=3 - i), Location("test", "INBOX", 1, i + 1))
        batch.append(pipeline._parse(app, message.id, False))
    assert all(p.error is None and p.done is None for p in batch)
    return batch


def commits(app: App) -> list[int]:
    counted: list[int] = []
    event.listen(app.db.engine, "commit", lambda _conn: counted.append(1))
    return counted


def states(app: App) -> dict[str, MessageState]:
    with app.db.session() as session:
        return {m.from_address: m.state for m in session.scalars(select(Message))}


def replies_to(app: App) -> list[str]:
    with app.db.session() as session:
        return sorted(session.scalars(select(OutboxItem.to_address)))


def test_a_batch_of_parsed_mails_is_stored_in_one_commit_and_each_is_answered_once(app: App) -> None:
    batch = parsed_batch(app)
    counted = commits(app)
    outcomes = pipeline._finish_batch(app, batch)
    assert len(counted) == 1
    assert [o.state for o in outcomes] == [MessageState.PROCESSED] * 3
    assert [o.message_pk for o in outcomes] == [p.message_pk for p in batch]
    assert replies_to(app) == sorted(address for _, address in SENDERS)


def test_a_mail_failing_in_a_batch_is_quarantined_alone_and_the_others_logged_and_answered_once(
        app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    batch = parsed_batch(app)
    real = pipeline.no_reply_reason

    def fails_for_qingdao(mail, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if mail.from_address == "qingdao@example.cn":
            raise RuntimeError("a bug met by one mail")
        return real(mail, **kwargs)

    monkeypatch.setattr(pipeline, "no_reply_reason", fails_for_qingdao)
    with caplog.at_level(logging.INFO, logger="intake.pipeline"):
        outcomes = pipeline._finish_batch(app, batch)
    assert [o.state for o in outcomes] == [MessageState.PROCESSED, MessageState.QUARANTINED, MessageState.PROCESSED]
    assert states(app)["qingdao@example.cn"] is MessageState.QUARANTINED
    assert replies_to(app) == ["jinan@example.cn", "zibo@example.cn"]
    stored_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mail #")]
    assert sorted(line.split(" uid=")[0] for line in stored_lines) == [f"mail #{batch[0].message_pk}",
                                                                       f"mail #{batch[2].message_pk}"]


def test_a_storage_fault_in_a_batch_commits_none_of_it(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = parsed_batch(app)
    real = pipeline.settle_current
    calls: list[int] = []

    def disk_fails_on_the_third(session, submission, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))
        return real(session, submission, **kwargs)

    monkeypatch.setattr(pipeline, "settle_current", disk_fails_on_the_third)
    with pytest.raises(OperationalError):
        pipeline._finish_batch(app, batch)
    assert set(states(app).values()) == {MessageState.ARCHIVED}  # left for the next poll
    assert replies_to(app) == []
