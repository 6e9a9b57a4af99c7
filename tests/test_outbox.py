"""The outbox sender against a real SMTP sink and a real Dovecot: once, retried, never lost."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select, update

from config.settings import Settings
from notifications.compose import build_message, enqueue
from notifications.outbox import MAX_RETRY_SECONDS, Outbox, eml_name, explain_send_error, retry_delay
from storage.db import Database
from storage.models import OutboxItem, OutboxKind, OutboxState
from tests.conftest import reply_settings
from tests.support.dovecot import Dovecot, free_port
from tests.support.smtp import SmtpSink

LATER = dt.timedelta(hours=2)  # beyond any backoff: every row is due again


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database("sqlite:///" + str(tmp_path / "t.db"))
    yield database
    database.dispose()


def settings_for(sink: SmtpSink | None = None, dovecot: Dovecot | None = None, sent_folder: str | None = None,
                 **smtp: object) -> Settings:
    smtp_section = {"security": "none", "mode": "send", "port": sink.port if sink else free_port(), "host": "127.0.0.1", **smtp}
    mailbox = {}
    if dovecot:
        mailbox = {"host": dovecot.host, "port": dovecot.port, "security": "none", "username": dovecot.username,
                   "password": dovecot.password, "sent_folder": sent_folder, "timeout_seconds": 10}
    return reply_settings(smtp=smtp_section, mailbox=mailbox)


def queue_mails(db: Database, count: int, to: str = "zgh@ningbo.example.cn", priority: int = 0) -> list[OutboxItem]:
    items = []
    with db.session() as session:
        for n in range(count):
            msg = build_message(from_address="ldjs@example.org", from_name="省总工会劳动竞赛申报", to=to,
                                subject=f"【已收到】汇总表 {n}", text=f"第 {n} 封", html=f"<p>第 {n} 封</p>",
                                auto_submitted="auto-replied")
            items.append(enqueue(session, kind=OutboxKind.REPLY, dedupe_key=f"reply:{uuid.uuid4()}", message=msg,
                                 reply_kind="receipt", priority=priority))
    return items


def rows(db: Database) -> list[OutboxItem]:
    with db.session() as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def message_ids(sink: SmtpSink) -> list[str]:
    return [email.message_from_bytes(m.data, policy=email.policy.default)["Message-ID"] for m in sink.messages]


def interrupted_while_sending(db: Database) -> OutboxItem:
    """A row as a process killed after marking it `sending` (and maybe after SMTP) leaves it."""
    [item] = queue_mails(db, 1)
    with db.session() as session:
        session.execute(update(OutboxItem).values(state=OutboxState.SENDING, attempts=1))
    return item


def new_sent_folder() -> str:
    """A Sent folder named as 163.com names it, unique per test."""
    return f"已发送-{uuid.uuid4().hex[:8]}"


def test_running_send_pending_twice_sends_each_row_once(db: Database, smtp_sink: SmtpSink) -> None:
    items = queue_mails(db, 3)
    outbox = Outbox(db, settings_for(smtp_sink))
    assert outbox.send_pending().sent == 3
    assert outbox.send_pending(now=dt.datetime.now(dt.UTC) + LATER).sent == 0
    assert sorted(message_ids(smtp_sink)) == sorted(i.message_id for i in items)
    assert all(r.state is OutboxState.SENT and r.sent_at and r.attempts == 1 for r in rows(db))


@pytest.mark.parametrize("outage", ["stopped", "421"])
def test_an_smtp_outage_delays_replies_and_then_delivers_each_exactly_once(
    outage: str, db: Database, smtp_sink: SmtpSink
) -> None:
    items = queue_mails(db, 3)
    outbox = Outbox(db, settings_for(smtp_sink))
    if outage == "stopped":
        smtp_sink.stop()
    else:
        smtp_sink.refuse("421 4.7.0 RP:TRC too many connections")

    report = outbox.send_pending()
    assert (report.sent, report.failed, report.deferred) == (0, 1, 2)  # the rest wait rather than burn attempts
    first = rows(db)[0]
    assert first.state is OutboxState.PENDING and first.last_error and first.attempts == 1
    assert first.next_attempt_at > dt.datetime.now(dt.UTC)
    assert outbox.send_pending().sent == 0  # not due yet: backoff is respected

    smtp_sink.start() if outage == "stopped" else smtp_sink.accept()
    now = dt.datetime.now(dt.UTC) + LATER
    assert outbox.send_pending(now=now).sent == 3
    assert outbox.send_pending(now=now + LATER).sent == 0
    assert sorted(message_ids(smtp_sink)) == sorted(i.message_id for i in items)
    assert all(r.state is OutboxState.SENT for r in rows(db))


def test_it_backs_off_and_marks_the_row_failed_after_max_attempts(db: Database) -> None:
    queue_mails(db, 1)
    outbox = Outbox(db, settings_for(None, max_attempts=3, retry_base_seconds=10))
    now = dt.datetime.now(dt.UTC)
    waits = []
    for _ in range(3):
        assert outbox.send_pending(now=now).failed == 1
        [row] = rows(db)
        waits.append(row.next_attempt_at - now)
        now = row.next_attempt_at
    assert row.state is OutboxState.FAILED and row.attempts == 3 and "ConnectionRefusedError" in row.last_error
    assert dt.timedelta(seconds=5) <= waits[0] <= dt.timedelta(seconds=10) < waits[1] <= dt.timedelta(seconds=20)
    assert outbox.send_pending(now=now + LATER).failed == 0  # failed rows are for staff, not retried


def test_retry_delays_double_with_jitter_and_stop_growing_at_the_cap() -> None:
    for attempts in range(1, 15):
        ceiling = min(MAX_RETRY_SECONDS, 30 * 2 ** (attempts - 1))
        delays = {retry_delay(attempts, 30).total_seconds() for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1


def test_a_row_left_sending_whose_mail_is_in_sent_is_not_sent_again(
    db: Database, smtp_sink: SmtpSink, dovecot: Dovecot
) -> None:
    name = new_sent_folder()
    item = interrupted_while_sending(db)
    # ... after SMTP accepted the mail and its copy reached Sent.
    dovecot.append(item.raw, folder=name)

    report = Outbox(db, settings_for(smtp_sink, dovecot, name)).send_pending()
    assert (report.recovered, report.sent) == (1, 0)
    assert smtp_sink.attempts == 0
    [row] = rows(db)
    assert row.state is OutboxState.SENT and row.attempts == 1
    assert len(dovecot.fetch_raw(name)) == 1


def test_a_row_left_sending_whose_mail_is_not_in_sent_is_sent_once_and_copied_to_sent(
    db: Database, smtp_sink: SmtpSink, dovecot: Dovecot
) -> None:
    name = new_sent_folder()
    item = interrupted_while_sending(db)
    dovecot.append(b"From: x@y\r\nMessage-ID: <unrelated@example.org>\r\n\r\nx", folder=name)

    outbox = Outbox(db, settings_for(smtp_sink, dovecot, name))
    assert outbox.send_pending().sent == 1
    assert outbox.send_pending(now=dt.datetime.now(dt.UTC) + LATER).sent == 0
    assert message_ids(smtp_sink) == [item.message_id]
    copies = [raw for raw in dovecot.fetch_raw(name) if item.message_id.encode() in raw]
    assert copies == [item.raw]
    flags = dovecot.flags(name)
    assert b"\\Seen" in flags[max(flags)]  # the copy, appended after the unrelated mail


def test_a_row_left_sending_waits_when_the_sent_folder_cannot_be_checked(db: Database, smtp_sink: SmtpSink) -> None:
    interrupted_while_sending(db)
    unreachable = Dovecot(users={"intake@example.org": "secret"})  # never started: nothing listens
    report = Outbox(db, settings_for(smtp_sink, unreachable, "Sent")).send_pending()
    assert (report.sent, report.deferred) == (0, 1) and smtp_sink.attempts == 0
    [row] = rows(db)
    assert row.state is OutboxState.SENDING and "已发送文件夹" in row.last_error


def test_every_sent_mail_is_copied_to_the_sent_folder_as_read(db: Database, smtp_sink: SmtpSink, dovecot: Dovecot) -> None:
    name = new_sent_folder()
    items = queue_mails(db, 2)
    assert Outbox(db, settings_for(smtp_sink, dovecot, name)).send_pending().sent == 2
    assert sorted(dovecot.fetch_raw(name)) == sorted(i.raw for i in items)
    assert all(b"\\Seen" in flags for flags in dovecot.flags(name).values())


def test_file_mode_writes_each_mail_once_as_a_parseable_eml(db: Database, tmp_path: Path) -> None:
    items = queue_mails(db, 2)
    outbox = Outbox(db, settings_for(None, mode="file", outbox_dir=str(tmp_path / "outbox")))
    assert outbox.send_pending().sent == 2
    assert outbox.send_pending(now=dt.datetime.now(dt.UTC) + LATER).sent == 0
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"{i.id:06d}-receipt-zgh@ningbo.example.cn.eml" for i in items]
    parsed = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert [p["Subject"] for p in parsed] == ["【已收到】汇总表 0", "【已收到】汇总表 1"]
    assert parsed[0].get_body(("plain",)).get_content().strip() == "第 0 封"
    assert all(r.state is OutboxState.SENT for r in rows(db))


def test_file_mode_marks_written_rows_sent_in_batches_and_retries_a_file_it_could_not_write(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("notifications.outbox.FILE_BATCH", 2)
    items = queue_mails(db, 5)
    folder = tmp_path / "outbox"
    blocked = items[2]
    # A directory where the row's file must go: the rename onto it fails, as a full or
    # read-only disk would make the write fail.
    (folder / eml_name(blocked)).mkdir(parents=True)
    report = Outbox(db, settings_for(None, mode="file", outbox_dir=str(folder))).send_pending()
    assert (report.sent, report.failed) == (4, 1)
    states = {r.id: r.state for r in rows(db)}
    assert states.pop(blocked.id) is OutboxState.PENDING
    assert set(states.values()) == {OutboxState.SENT}
    assert sorted(f.name for f in folder.glob("*.eml") if f.is_file()) == sorted(
        eml_name(i) for i in items if i.id != blocked.id)
    assert not list(folder.glob(".tmp-*"))


def test_off_mode_sends_nothing_and_marks_rows_skipped(db: Database, smtp_sink: SmtpSink) -> None:
    queue_mails(db, 2)
    report = Outbox(db, settings_for(smtp_sink, mode="off")).send_pending()
    assert report.skipped == 2 and smtp_sink.attempts == 0
    assert all(r.state is OutboxState.SKIPPED for r in rows(db))


def test_a_failed_login_never_puts_the_password_in_the_log_or_the_row(
    db: Database, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    queue_mails(db, 1)
    password = "Sup3r-Secret-Pa55"
    caplog.set_level(logging.DEBUG)
    report = Outbox(db, settings_for(smtp_sink, username="ldjs@example.org", password=password)).send_pending()
    assert report.failed == 1
    [row] = rows(db)
    assert row.last_error and password not in row.last_error and password not in caplog.text


def test_a_send_in_flight_in_another_runner_is_not_taken_for_an_interrupted_one(db: Database, smtp_sink: SmtpSink) -> None:
    queue_mails(db, 1)
    settings = settings_for(smtp_sink, timeout_seconds=10)
    smtp_sink.hold()
    with ThreadPoolExecutor(max_workers=1) as pool:
        scheduler_run = pool.submit(Outbox(db, settings).send_pending)
        smtp_sink.wait_until_held()  # the row is `sending` and its mail is in DATA
        assert Outbox(db, settings).send_pending().sent == 0  # e.g. `intake send` from a terminal
        smtp_sink.release()
        assert scheduler_run.result(timeout=10).sent == 1
    assert smtp_sink.attempts == 1 and len(smtp_sink.messages) == 1


def test_replies_to_units_are_sent_before_earlier_replies_to_strangers(db: Database, smtp_sink: SmtpSink) -> None:
    strangers = queue_mails(db, 5, to="someone@stranger.example", priority=1)
    units = queue_mails(db, 2, priority=0)
    assert Outbox(db, settings_for(smtp_sink)).send_pending().sent == 7
    expected = [i.message_id for i in units] + [i.message_id for i in strangers]
    assert message_ids(smtp_sink) == expected


def test_a_mail_held_by_the_providers_spam_filter_keeps_its_row_and_waits_an_hour(db: Database, smtp_sink: SmtpSink) -> None:
    queue_mails(db, 2)
    smtp_sink.refuse_data()  # 163: "554 DT:SPM ..." after the whole DATA
    now = dt.datetime.now(dt.UTC)
    Outbox(db, settings_for(smtp_sink)).send_pending(now)
    first, second = rows(db)
    assert (first.state, first.attempts) == (OutboxState.PENDING, 0)  # no attempt burnt
    assert first.last_error.startswith("SPAM_HOLD") and first.next_attempt_at >= now + dt.timedelta(minutes=59)
    assert (second.state, second.attempts) == (OutboxState.PENDING, 0)  # the rest wait too
    assert "反垃圾" in explain_send_error(settings_for(smtp_sink), first.last_error)
    smtp_sink.accept()
    Outbox(db, settings_for(smtp_sink)).send_pending(now + dt.timedelta(hours=2))
    assert [r.state for r in rows(db)] == [OutboxState.SENT, OutboxState.SENT]
    assert len(smtp_sink.messages) == 2
