"""Two campaigns in one mailbox: every output for campaign A shows A's rows and states only,
and `other` mail (for no campaign) is listed for staff, never a state change."""

from __future__ import annotations

import datetime as dt
import email
import io
from email import policy

import pytest
from openpyxl import load_workbook

from intake.board import UnitState, build_board
from intake.export import export_document
from intake.tracking import settle_current
from notifications.digest import build_digest
from notifications.reminders import queue_reminders
from notifications.workbook import PROBLEMS_SHEET, STATUS_SHEET, build_workbook
from storage.db import Database
from storage.models import SubmissionStatus as S
from tests.support.campaigns import WUYI
from tests.support.submissions import DEADLINE, add_submission, before_deadline, candidate_row, make_db, make_settings

SETTINGS = make_settings(campaigns=[{"file": "2024-五一劳动奖章推荐"}], reminders={"enabled": True, "before": ["3d"]})
DEFAULT, MEDAL = SETTINGS.campaigns
NOW = before_deadline(hours=1)
OTHER_ROUTING = "未识别到任何征集的报表或关键词"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """济南: a 2024 submission (2 + 1 rows) and an unrelated letter (`other`); 青岛: only
    the medal recommendation (2 candidates); 教育: only a 2024 submission (1 row)."""
    db = make_db(tmp_path_factory.mktemp("campaigns"))
    with db.session() as s:
        for unit, hours, extra in [
            ("济南市总工会", 30, {"form1": 2, "form2": 1}),
            ("青岛市总工会", 20, {"campaign": MEDAL.id, "subject": "五一劳动奖章推荐",
                                  "rows": [candidate_row(0), candidate_row(1, score="88", birth_date="1990-11-20")]}),
            ("山东省教育工会", 10, {"form1": 1}),
            ("济南市总工会", 5, {"status": S.OTHER, "subject": "关于职工疗养的请示", "routing": OTHER_ROUTING}),
        ]:
            settle_current(s, add_submission(s, unit=unit, arrived_at=before_deadline(hours=hours), **extra))
    return db


def states(board) -> dict[str, UnitState]:
    return {row.name: row.state for row in board.rows}


def test_each_campaigns_board_has_its_own_states(db: Database) -> None:
    with db.session() as s:
        default, medal = build_board(s, SETTINGS, DEFAULT), build_board(s, SETTINGS, MEDAL)
    assert (states(default)["济南市总工会"], states(default)["青岛市总工会"]) == (UnitState.ACCEPTED, UnitState.MISSING)
    assert (states(medal)["济南市总工会"], states(medal)["青岛市总工会"]) == (UnitState.MISSING, UnitState.ACCEPTED)
    assert {f: c.rows for f, c in default.by_form.items()} == {"form1": 3, "form2": 1}
    assert {f: c.rows for f, c in medal.by_form.items()} == {"candidates": 2}


def test_other_mail_is_listed_on_the_board_and_changes_no_state(db: Database) -> None:
    with db.session() as s:
        board = build_board(s, SETTINGS, DEFAULT)
        jinan = next(row for row in board.rows if row.name == "济南市总工会")
    [other] = board.other
    assert (other.unit, other.subject, other.routing, other.campaign) == ("济南市总工会", "关于职工疗养的请示",
                                                                          OTHER_ROUTING, None)
    assert jinan.submission_id != other.submission_id and jinan.arrived_at == before_deadline(hours=30)


def test_a_campaigns_export_holds_its_submissions_only_and_lists_other_mail_apart(db: Database) -> None:
    with db.session() as s:
        default, medal = export_document(s, SETTINGS, DEFAULT), export_document(s, SETTINGS, MEDAL)
    assert {x["campaign"] for x in default["submissions"]} == {"default"}
    assert [x["unit"] for x in medal["submissions"]] == ["青岛市总工会"]
    assert medal["campaign"] == {"id": WUYI.id, "name": WUYI.name, "deadline": WUYI.deadline.isoformat(),
                                 "closes_at": None}
    [other] = medal["other"]
    assert (other["subject"], other["routing"]) == ("关于职工疗养的请示", OTHER_ROUTING)
    assert "other" not in {x["status"] for x in default["submissions"] + medal["submissions"]}


def test_the_export_gives_generic_forms_and_keeps_the_2024_names(db: Database) -> None:
    with db.session() as s:
        default, medal = export_document(s, SETTINGS, DEFAULT), export_document(s, SETTINGS, MEDAL)
    jinan = default["submissions"][0]
    assert jinan["forms"]["form1"] == jinan["form1_rows"] and len(jinan["form1_rows"]) == 2
    assert jinan["form1_rows"][0]["investment"] == 12.5 and jinan["form1_rows"][0]["enterprises"] == 10
    [qingdao] = medal["submissions"]
    assert "form1_rows" not in qingdao and (qingdao["routed_by"], qingdao["campaign"]) == ("form", WUYI.id)
    first, second = qingdao["forms"]["candidates"]
    assert (first["birth_date"], first["score"], second["score"]) == ("1985-06-01", 92.5, 88)
    assert [u["candidates_rows"] for u in medal["units"][:2]] == [0, 2]


def test_the_medal_workbook_has_its_one_form_with_date_cells_and_no_total_row(db: Database) -> None:
    with db.session() as s:
        book = load_workbook(io.BytesIO(build_workbook(s, SETTINGS, MEDAL, now=NOW)))
    assert book.sheetnames == ["表1 推荐人选", STATUS_SHEET, PROBLEMS_SHEET]
    ws = book["表1 推荐人选"]
    assert ws["A1"].value == "五一劳动奖章推荐人选汇总表"
    assert [c.value for c in ws[2] if c.value][0] == "推荐单位：" and [c.value for c in ws[2] if c.value][1].startswith("填报日期：")
    units = [c.value for c in ws["A"]][3:]
    assert units == ["青岛市总工会", "青岛市总工会"]  # no 合计 row after them
    birth = ws.cell(4, 5)
    assert birth.is_date and birth.value.date() == dt.date(1985, 6, 1)
    assert float(ws.cell(5, 6).value) == 88


def test_the_2024_workbook_never_shows_the_medal_rows(db: Database) -> None:
    with db.session() as s:
        book = load_workbook(io.BytesIO(build_workbook(s, SETTINGS, DEFAULT, now=NOW)))
    units = {c.value for name in book.sheetnames[:2] for c in book[name]["A"][3:]}
    assert units == {"济南市总工会", "山东省教育工会", "合计"}
    status = {row[1].value: row[3].value for row in book[STATUS_SHEET].iter_rows(min_row=2)}
    assert status["青岛市总工会"] == "未报送"


def test_the_digest_has_a_section_per_open_campaign_and_other_mail(db: Database) -> None:
    with db.session() as s:
        digest = build_digest(s, SETTINGS, now=NOW, since=None)
    default_part, medal_part = digest.text.split(f"== {DEFAULT.name} ==")[1].split(f"== {MEDAL.name} ==")
    medal_part, other_part = medal_part.split("其他来信")
    assert "青岛市总工会" not in default_part.split("一、")[1].split("二、")[0]
    assert "青岛市总工会（城市）：未报送" in default_part and "青岛市总工会（城市）：已受理" in medal_part
    assert "表1（推荐人选）：1 个单位，2 项" in medal_part
    assert "关于职工疗养的请示" in other_part and "济南市总工会（someone@example.cn）" in other_part
    assert "关于职工疗养的请示" not in default_part + medal_part
    assert [name for name, _ in digest.attachments] == [f"{DEFAULT.name}汇总表-20240225.xlsx",
                                                       f"{MEDAL.name}汇总表-20240225.xlsx"]


def test_a_unit_missing_from_one_campaign_is_reminded_about_that_one_only(db: Database) -> None:
    with db.session() as s:
        items = queue_reminders(s, SETTINGS, now=DEADLINE - dt.timedelta(days=2))
        qingdao = [email.message_from_bytes(i.raw, policy=policy.default) for i in items if "qdzgh" in i.to_address]
        jinan = [email.message_from_bytes(i.raw, policy=policy.default) for i in items if "jnzgh" in i.to_address]
    [mail] = qingdao  # missing from 2024 only: the medal campaign's slot has not come yet
    assert DEFAULT.name in mail["Subject"] and MEDAL.name not in mail["Subject"]
    assert "重点工程类" in mail.get_body(preferencelist=("plain",)).get_content()
    assert jinan == []
