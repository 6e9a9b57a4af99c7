"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import Database
from storage.models import Base


def test_the_migrations_build_exactly_the_schema_the_models_describe(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        db.dispose()


def test_migrating_twice_is_a_no_op(database_url: str) -> None:
    Database(database_url).dispose()
    Database(database_url).dispose()


PREVIOUS_HEAD = "a1b2c3d4e5f7"  # before campaigns as data (b2c4d6e8f0a1)


def _upgrade(engine, revision: str) -> None:  # noqa: ANN001 - an Engine
    from alembic import command

    from storage.migrate import alembic_config

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_the_2024_rows_move_to_form_rows_with_their_values_and_the_default_campaign(database_url: str) -> None:
    import json

    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        _upgrade(engine, PREVIOUS_HEAD)
        with engine.begin() as c:
            c.execute(text("INSERT INTO messages (id, account, folder, sha256, size, arrived_at, state, moved, archived_at) "
                           "VALUES (1, 'a', 'INBOX', 'x', 10, '2024-02-20 02:00:00', 'processed', false, '2024-02-20 02:00:00')"))
            c.execute(text("INSERT INTO submissions (id, message_pk, unit, status, content_status, late, reply, has_pdf, "
                           "has_editable, needs_review, ocr_pending, created_at) VALUES (7, 1, '济南市总工会', 'accepted', "
                           "'accepted', false, 'receipt', true, true, false, false, '2024-02-20 02:00:00')"))
            c.execute(text("INSERT INTO form1_rows (submission_id, ordinal, competition, project, enterprises, "
                           "private_enterprises, workers, private_workers, investment, cell, as_written) VALUES "
                           "(7, 1, '轨道交通劳动竞赛', '6号线', 12, 8, NULL, 2100, 45.6000, 'Sheet1!A5', :aw)"),
                      {"aw": json.dumps({"workers": "约3500"}, ensure_ascii=False)})
            c.execute(text("INSERT INTO form2_rows (submission_id, ordinal, seq, competition, prelim, final, cell) VALUES "
                           "(7, 1, '1', '焊工技能竞赛', 300, 30, 'Sheet2!A5'), (7, 2, '2', '数控车工大赛', 200, 20, 'Sheet2!A6')"))
        _upgrade(engine, "head")
        with engine.connect() as c:
            submission = c.execute(text("SELECT campaign, routed_by FROM submissions WHERE id = 7")).one()
            rows = c.execute(text("SELECT form, ordinal, cell, \"values\", as_written FROM form_rows "
                                  "WHERE submission_id = 7 ORDER BY form, ordinal")).all()
            tables = set(c.dialect.get_table_names(c))
    finally:
        engine.dispose()

    def plain(value):  # noqa: ANN001, ANN202 - JSON as text (SQLite) or already decoded (PostgreSQL)
        return json.loads(value) if isinstance(value, str) else value

    assert tuple(submission) == ("default", "only")
    assert [(r.form, r.ordinal, r.cell) for r in rows] == [("form1", 1, "Sheet1!A5"), ("form2", 1, "Sheet2!A5"),
                                                          ("form2", 2, "Sheet2!A6")]
    assert plain(rows[0].values) == {"competition": "轨道交通劳动竞赛", "project": "6号线", "enterprises": 12,
                                     "private_enterprises": 8, "workers": None, "private_workers": 2100,
                                     "investment": "45.6"}
    assert plain(rows[0].as_written) == {"workers": "约3500"}
    assert plain(rows[2].values) == {"seq": "2", "competition": "数控车工大赛", "organizer": None, "undertaker": None,
                                     "event": None, "prelim": 200, "final": 20, "final_time_place": None}
    assert plain(rows[1].as_written) is None
    assert not tables & {"form1_rows", "form2_rows"}


def test_submissions_get_their_mails_arrival_and_queued_replies_their_mails_authentication_verdict(
        database_url: str) -> None:
    import json

    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    forged = {"verified": False, "dmarc": "fail", "dkim": "none"}
    try:
        _upgrade(engine, "c5e7a9b1d3f2")  # before d7f9b1c3e5a2 and e1a3c5b7d9f4
        with engine.begin() as c:
            for pk, auth in ((1, None), (2, forged)):
                c.execute(text("INSERT INTO messages (id, account, folder, sha256, size, arrived_at, state, moved, "
                               "archived_at, auth_results) VALUES (:id, 'a', 'INBOX', :sha, 10, :at, 'processed', "
                               "false, :at, :auth)"),
                          {"id": pk, "sha": f"x{pk}", "at": f"2024-02-20 0{pk}:00:00",
                           "auth": json.dumps(auth) if auth else None})
                c.execute(text("INSERT INTO submissions (id, message_pk, unit, status, content_status, late, reply, "
                               "has_pdf, has_editable, needs_review, ocr_pending, created_at) VALUES (:id, :id, "
                               "'济南市总工会', 'accepted', 'accepted', false, 'receipt', true, true, false, false, "
                               "'2024-02-20 02:00:00')"), {"id": pk})
                c.execute(text("INSERT INTO outbox (dedupe_key, kind, submission_id, to_address, subject, message_id, "
                               "raw, state, priority, attempts, next_attempt_at, created_at) VALUES (:key, 'reply', :id, "
                               "'jinan@example.cn', 's', :mid, :raw, 'sent', 0, 1, '2024-02-20 02:00:00', "
                               "'2024-02-20 02:00:00')"), {"key": f"reply:{pk}", "id": pk, "mid": f"<{pk}@x>", "raw": b"x"})
        _upgrade(engine, "head")
        with engine.connect() as c:
            arrivals = c.execute(text("SELECT s.id FROM submissions s JOIN messages m ON m.id = s.message_pk "
                                      "WHERE s.arrived_at = m.arrived_at ORDER BY s.id")).scalars().all()
            verdicts = dict(c.execute(text("SELECT submission_id, auth_failed FROM outbox")).all())
    finally:
        engine.dispose()
    assert arrivals == [1, 2]
    assert verdicts == {1: False, 2: True}
