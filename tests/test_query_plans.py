"""The queries run for every mail use an index: their cost does not grow with the ledger.

Checked with SQLite's EXPLAIN QUERY PLAN on the statements themselves, as the pipeline
compiles them: no full scan ("SCAN <table>" without an index) of submissions or outbox.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from intake import tracking
from notifications import replies
from storage.db import Database
from tests.support.submissions import add_submission, before_deadline, make_db


def plans(session: Session, run) -> list[str]:  # noqa: ANN001 - a callable using the session
    """The query plan of every SELECT `run` issues."""
    seen: list[str] = []
    connection = session.connection()

    def explain(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202, ARG001
        if statement.lstrip().upper().startswith("SELECT"):
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            seen.extend(row[-1] for row in rows)
        return statement, parameters

    event.listen(connection, "before_cursor_execute", explain, retval=True)
    try:
        run()
    finally:
        event.remove(connection, "before_cursor_execute", explain)
    return seen


def full_scans(lines: list[str], tables: tuple[str, ...]) -> list[str]:
    return [line for line in lines if any(line.startswith(f"SCAN {t}") for t in tables) and "USING" not in line]


def linking_plans(tmp_path: Path, *, first: bool) -> list[str]:
    """The query plans of settling a unit's sixth submission, the newest, into its chain."""
    db: Database = make_db(tmp_path)
    with db.session() as s:
        for hours in range(5):
            tracking.settle_current(s, add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=20 - hours)))
        new = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=1))
        s.flush()
        return plans(s, lambda: tracking.settle_current(s, new, first=first))


def test_linking_a_new_submission_into_its_units_chain_scans_no_table(tmp_path: Path) -> None:
    lines = linking_plans(tmp_path, first=False)
    assert lines, "the settle ran no query"
    assert full_scans(lines, ("submissions", "outbox")) == []


def test_a_new_submissions_neighbours_are_found_by_seeking_the_chain_index_not_reading_the_units_history(
        tmp_path: Path) -> None:
    lines = linking_plans(tmp_path, first=True)
    chain = [line for line in lines if "ix_submissions_chain" in line]
    # before and after: a range on the arrival, so each is one step from where the index seeks
    assert any("arrived_at<" in line for line in chain) and any("arrived_at>" in line for line in chain)
    assert not any("TEMP B-TREE" in line for line in lines)


def test_the_reply_caps_count_recent_rows_by_index(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with db.session() as s:
        add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=1))
        s.flush()
        now = dt.datetime.now(dt.UTC)
        daily = plans(s, lambda: replies._replies_within_day(s, "jnzgh@163.com", now, failed=False))  # noqa: SLF001
        hourly = plans(s, lambda: replies._short_replies_within_hour(s, now))  # noqa: SLF001
    assert full_scans(daily + hourly, ("outbox",)) == []
    # The daily cap reads one address's rows, not the whole day's (10,000 in a busy bench run),
    # and from the index alone: no row read, no join to the mail's authentication results.
    assert any("COVERING INDEX ix_outbox_reply_cap" in line for line in daily), daily
    assert any("ix_outbox_kind_created" in line for line in hourly)
