"""Storage works the same on SQLite and on a real PostgreSQL server, locks included."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.locks import claim_message, exclusive
from storage.migrate import alembic_config
from storage.models import (
    Base,
    FormRowRecord,
    MailboxCursor,
    Message,
    OutboxItem,
    OutboxKind,
    ProblemRecord,
    StoredFile,
    Submission,
    SubmissionStatus,
)

ROOT = Path(__file__).resolve().parent.parent
CHILD_SECONDS = 60
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def new_message(**overrides: object) -> Message:
    values: dict[str, object] = {
        "account": "intake@example.org",
        "folder": "INBOX",
        "uidvalidity": 1,
        "uid": 1,
        "sha256": "ab" * 32,
        "size": 1234,
        "from_address": "zgh@jinan.gov.cn",
        "arrived_at": dt.datetime(2024, 2, 20, 9, 30, 15, tzinfo=SHANGHAI),
    }
    values.update(overrides)
    return Message(**values)


def new_outbox(dedupe_key: str, message_id: str) -> OutboxItem:
    return OutboxItem(
        dedupe_key=dedupe_key,
        kind=OutboxKind.REPLY,
        to_address="zgh@jinan.gov.cn",
        subject="回执",
        message_id=message_id,
        raw=b"Subject: x\r\n\r\nbody\r\n",
    )


def test_schema_migrates_from_empty_to_head(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    Database(db.url).dispose()  # a second start finds the schema at head and changes nothing


def test_a_submission_with_files_problems_and_rows_round_trips(db: Database) -> None:
    arrived = dt.datetime(2024, 2, 20, 9, 30, 15, 123456, tzinfo=SHANGHAI)
    with db.session() as session:
        message = new_message(arrived_at=arrived, auth_results={"verified": True, "dkim": "pass"})
        submission = Submission(
            message=message,
            unit="济南市总工会",
            status=SubmissionStatus.ACCEPTED,
            content_status=SubmissionStatus.ACCEPTED,
            assigned_at=arrived,
        )
        submission.files.append(StoredFile(name="汇总表.xlsx", kind="xlsx", sha256="cd" * 32, size=9))
        submission.problems.append(
            ProblemRecord(code="non_numeric", severity="error", message="D7 不是数字", cell="Sheet1!D7")
        )
        # Values in their plain form (parsers.forms.plain): a decimal as exact text, a count as an int.
        submission.rows.append(FormRowRecord(form="form1", ordinal=1,
                                             values={"project": "黄河大桥", "investment": "12.3456", "workers": 300}))
        submission.rows.append(FormRowRecord(form="form2", ordinal=1,
                                             values={"seq": "1", "event": "焊工", "prelim": 120, "final": 30}))
        session.add(submission)
    with db.session() as session:
        stored = session.scalars(select(Submission)).one()
        assert stored.message.arrived_at == arrived
        assert stored.message.arrived_at.tzinfo is not None
        assert stored.assigned_at == arrived and stored.assigned_at.tzinfo is not None
        assert stored.message.auth_results == {"verified": True, "dkim": "pass"}
        assert stored.unit == "济南市总工会"
        assert [f.name for f in stored.files] == ["汇总表.xlsx"]
        assert [(p.code, p.cell) for p in stored.problems] == [("non_numeric", "Sheet1!D7")]
        form1, form2 = stored.rows_of("form1")[0].values, stored.rows_of("form2")[0].values
        assert (form1["investment"], form1["workers"]) == ("12.3456", 300)
        assert Decimal(form1["investment"]) == Decimal("12.3456")
        assert (form2["event"], form2["final"]) == ("焊工", 30)


def test_imap_uids_beyond_the_signed_32_bit_range_round_trip(db: Database) -> None:
    # UID and UIDVALIDITY are unsigned 32-bit in IMAP; PostgreSQL's INTEGER stops at 2**31-1.
    top = 2**32 - 1
    with db.session() as session:
        session.add(new_message(uidvalidity=top, uid=top))
        session.add(MailboxCursor(account="intake@example.org", folder="INBOX", uidvalidity=top, last_uid=top))
    with db.session() as session:
        assert session.execute(select(Message.uidvalidity, Message.uid)).one() == (top, top)
        assert session.execute(select(MailboxCursor.uidvalidity, MailboxCursor.last_uid)).one() == (top, top)


def test_over_long_values_from_senders_are_stored_whole(db: Database) -> None:
    # SQLite ignores VARCHAR lengths and PostgreSQL enforces them, so what a sender writes
    # (header fields, spreadsheet cells) must not sit in a bounded column.
    message_id = "<" + "x" * 1200 + "@jinan.gov.cn>"
    address = "a" * 400 + "@jinan.gov.cn"
    seq = "序号" * 100
    with db.session() as session:
        message = new_message(message_id=message_id, from_address=address)
        submission = Submission(
            message=message, status=SubmissionStatus.ACCEPTED, content_status=SubmissionStatus.ACCEPTED
        )
        submission.rows.append(FormRowRecord(form="form2", ordinal=1, values={"seq": seq}))
        session.add(submission)
    with db.session() as session:
        stored = session.scalars(select(Submission)).one()
        assert (stored.message.message_id, stored.message.from_address) == (message_id, address)
        assert stored.rows_of("form2")[0].values["seq"] == seq


def test_a_nul_character_from_a_sender_is_stored_as_a_replacement_character(db: Database) -> None:
    # PostgreSQL text cannot hold NUL; both engines store the same visible stand-in.
    with db.session() as session:
        session.add(new_message(subject="汇总\x00表", from_name="\x00"))
    with db.session() as session:
        stored = session.scalars(select(Message)).one()
        assert (stored.subject, stored.from_name) == ("汇总\ufffd表", "\ufffd")


def test_outbox_dedupe_key_is_unique(db: Database) -> None:
    with db.session() as session:
        session.add(new_outbox("reply:1", "<a@intake>"))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(new_outbox("reply:1", "<b@intake>"))
    with db.session() as session:
        assert session.scalars(select(OutboxItem.message_id)).all() == ["<a@intake>"]


# A holder process: tries the lock once, prints whether it got it, keeps it until its
# stdin closes. A separate interpreter, so its death is a real process death.
HOLDER = """
import sys
from storage.db import Database
from storage.locks import exclusive
with exclusive(Database(sys.argv[1], migrate=False), sys.argv[2]) as acquired:
    print(int(acquired), flush=True)
    sys.stdin.read()
"""


def _start_holders(url: str, count: int) -> tuple[list[subprocess.Popen[str]], list[bool]]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, "poll"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(count)
    ]
    # Each child answers only once it has tried; they all hold until released.
    return children, [child.stdout.readline().strip() == "1" for child in children]


def _release(children: list[subprocess.Popen[str]]) -> list[int]:
    for child in children:
        child.stdin.close()
    return [child.wait(CHILD_SECONDS) for child in children]


def _acquire_waiting(db: Database) -> tuple[bool, float]:
    started = time.monotonic()
    with exclusive(db, "poll", wait=True) as acquired:
        return acquired, time.monotonic() - started


def test_exactly_one_of_two_processes_gets_the_poll_lock_and_the_other_after_it_exits(
    db: Database,
) -> None:
    children, results = _start_holders(db.url, 2)
    try:
        assert sorted(results) == [False, True]
        with exclusive(db, "poll") as acquired:
            assert acquired is False  # held by the winning child
    finally:
        exit_codes = _release(children)
    assert exit_codes == [0, 0]
    with exclusive(db, "poll") as acquired:
        assert acquired is True  # the winner unlocked on its way out


def test_the_poll_lock_is_released_when_its_holder_is_killed(db: Database) -> None:
    children, results = _start_holders(db.url, 1)
    (child,) = children
    try:
        assert results == [True]
        with exclusive(db, "poll") as acquired:
            assert acquired is False
        child.kill()
        assert child.wait(CHILD_SECONDS) == -signal.SIGKILL
        # The server notices the dead client's closed socket on its own schedule, so wait
        # for the lock rather than guessing when; a stale lock would hang here and time out.
        acquired, waited = _acquire_waiting(db)
        assert acquired is True and waited < 10
    finally:
        _release(children)


def test_locks_with_different_names_do_not_exclude_each_other(db: Database) -> None:
    with exclusive(db, "poll") as poll, exclusive(db, "digest") as digest:
        assert (poll, digest) == (True, True)


def test_a_released_lock_can_be_taken_again(db: Database) -> None:
    with exclusive(db, "poll") as first:
        assert first is True
    with exclusive(db, "poll") as second:
        assert second is True


@pytest.fixture
def postgres_db(postgres_server) -> Iterator[Database]:  # noqa: ANN001 - fixture
    name, url = postgres_server.create_database("claim")
    database = Database(url)
    yield database
    database.dispose()
    postgres_server.drop_database(name)


def _add_message(db: Database) -> int:
    with db.session() as session:
        message = new_message()
        session.add(message)
        session.flush()
        return message.id


def test_claim_message_lets_one_of_two_concurrent_postgresql_sessions_win(postgres_db: Database) -> None:
    pk = _add_message(postgres_db)
    with postgres_db.session() as first, postgres_db.session() as second:
        assert claim_message(first, pk) is True
        assert claim_message(second, pk) is False  # skipped, not waited for
    with postgres_db.session() as later:
        assert claim_message(later, pk) is True  # the claim ended with its transaction


def test_claim_message_on_sqlite_grants_an_existing_row_and_refuses_a_missing_one(tmp_path) -> None:  # noqa: ANN001
    database = Database(f"sqlite:///{tmp_path / 'intake.db'}")
    pk = _add_message(database)
    with database.session() as session:
        assert claim_message(session, pk) is True
        assert claim_message(session, pk + 1) is False
    database.dispose()
