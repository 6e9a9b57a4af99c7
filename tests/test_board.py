from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from config.settings import UnitKind
from intake.board import Board, UnitState, board_as_dict, build_board, render_board
from intake.tracking import settle_current
from parsers.model import ProblemCode
from storage.models import SubmissionStatus as S
from storage.models import Trust
from tests.support.submissions import add_submission, before_deadline, make_db, make_settings

SETTINGS = make_settings()
SEAL = (ProblemCode.SEAL_NOT_FOUND, "扫描件未见公章", "汇总表.pdf", None)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Board:
    """One of each state: 济南 accepted, 青岛 late, 教育 incomplete, 机关 invalid, 能源 missing."""
    db = make_db(tmp_path_factory.mktemp("board"))
    with db.session() as s:
        for unit, status, hours, extra in [
            ("济南市总工会", S.INVALID, 48, {}),
            ("济南市总工会", S.ACCEPTED, 24, {"form1": 3, "form2": 2, "problems": [SEAL]}),
            ("青岛市总工会", S.ACCEPTED, -2, {"form2": 4}),
            ("山东省教育工会", S.INCOMPLETE, 5, {"form1": 1}),
            ("中共山东省委机关工会", S.INVALID, 3, {"problems": [SEAL, SEAL]}),
            (None, S.ACCEPTED, 1, {"sender": "who@qq.com", "subject": "汇总表"}),
        ]:
            settle_current(s, add_submission(s, unit=unit, status=status, arrived_at=before_deadline(hours=hours), **extra))
        return build_board(s, SETTINGS)


def state(board: Board, name: str) -> UnitState:
    return next(row.state for row in board.rows if row.name == name)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("济南市总工会", UnitState.ACCEPTED),
        ("青岛市总工会", UnitState.ACCEPTED_LATE),
        ("山东省教育工会", UnitState.INCOMPLETE),
        ("中共山东省委机关工会", UnitState.INVALID),
        ("山东能源集团工会", UnitState.MISSING),
    ],
)
def test_each_unit_takes_the_state_of_its_current_submission(board: Board, unit: str, expected: UnitState) -> None:
    assert state(board, unit) is expected


def test_the_board_lists_every_registered_unit_once_in_config_order(board: Board) -> None:
    assert [row.name for row in board.rows] == [u.name for u in SETTINGS.units]


def test_a_row_carries_its_current_submissions_facts(board: Board) -> None:
    jinan = board.rows[0]
    assert (jinan.problems, jinan.form_rows, jinan.late) == (1, {"form1": 3, "form2": 2}, False)
    assert jinan.arrived_at == before_deadline(hours=24)


def test_it_counts_units_by_state_by_kind_and_by_form(board: Board) -> None:
    assert board.counts == {state: 0 if state in (UnitState.AWAITING, UnitState.DOWNLOAD) else 1 for state in UnitState}
    assert board.by_kind[UnitKind.CITY][UnitState.ACCEPTED] == 1
    assert board.by_kind[UnitKind.CITY][UnitState.ACCEPTED_LATE] == 1
    assert board.by_kind[UnitKind.ENTERPRISE][UnitState.MISSING] == 1
    assert (board.by_form["form1"].units, board.by_form["form1"].rows) == (2, 4)
    assert (board.by_form["form2"].units, board.by_form["form2"].rows) == (2, 6)


def test_it_lists_unmatched_submissions_for_staff(board: Board) -> None:
    [orphan] = board.unmatched
    assert (orphan.sender, orphan.subject) == ("who@qq.com", "汇总表")


def test_the_dict_form_is_json_with_name_kind_and_state(board: Board) -> None:
    data = json.loads(json.dumps(board_as_dict(board)))
    assert data["units"][1] | {"arrived_at": None} == {
        "name": "青岛市总工会",
        "kind": "city",
        "state": "accepted_late",
        "submission_id": data["units"][1]["submission_id"],
        "arrived_at": None,
        "late": True,
        "problems": 0,
        "form1_rows": 0,
        "form2_rows": 4,
        "forms": {"form1": 0, "form2": 4},
        "trust": "registered",
        "awaiting_confirmation": False,
        "late_undecided": True,
        "last_reminded": None,
    }
    assert data["units"][1]["arrived_at"].startswith("2024-02-25T19:00:00+08:00")
    assert data["counts"]["missing"] == 1
    assert data["by_form"]["form2"] == {"title": "技术技能类、创新创意类、工作推进类", "units": 2, "rows": 6}
    assert data["by_form"]["2"] == data["by_form"]["form2"]  # the key `status --json` gave before campaigns
    assert data["unmatched"][0]["sender"] == "who@qq.com"


def test_the_terminal_table_has_chinese_labels_and_local_times(board: Board) -> None:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_board(board, console)
    out = console.file.getvalue()
    for label in ("单位", "类别", "状态", "到达时间", "问题数", "城市", "企业", "已受理", "逾期受理", "材料不全", "需修改", "未报送"):
        assert label in out
    assert "2024-02-24 17:00" in out  # 济南's current submission, in Beijing time
    assert "\x1b[" not in out


def test_the_terminal_table_is_coloured_where_the_terminal_supports_it(board: Board) -> None:
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system="standard")
    render_board(board, console)
    assert "\x1b[32m已受理" in console.file.getvalue()


def test_an_empty_ledger_shows_every_unit_missing(tmp_path: Path) -> None:
    with make_db(tmp_path).session() as s:
        board = build_board(s, SETTINGS)
    assert board.counts[UnitState.MISSING] == len(SETTINGS.units)
    assert board.unmatched == []


def test_a_claim_standing_in_for_a_unit_is_marked_awaiting_staff(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with db.session() as s:
        claim = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=5), trust=Trust.CLAIMED)
        settle_current(s, claim)
        board = build_board(s, make_settings())
        jinan = next(r for r in board.rows if r.name == "济南市总工会")
        assert (jinan.trust, jinan.awaiting, jinan.state) == ("claimed", True, UnitState.AWAITING)
        [pending] = board.pending
        assert (pending.submission_id, pending.unit, pending.current) == (claim.id, "济南市总工会", True)
        assert board_as_dict(board)["pending_confirmation"][0]["submission_id"] == claim.id


def test_an_extended_deadline_changes_a_late_units_state_without_a_reprocess(tmp_path: Path) -> None:
    from datetime import timedelta

    from intake.export import export_document
    from notifications.digest import build_digest
    from tests.support.submissions import DEADLINE

    db = make_db(tmp_path)
    with db.session() as s:
        late = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=-3))
        settle_current(s, late)
        assert build_board(s, SETTINGS).rows[0].state is UnitState.ACCEPTED_LATE
        extended = make_settings(campaign={"name": SETTINGS.campaign.name, "deadline": (DEADLINE + timedelta(days=2)).isoformat()})
        board = build_board(s, extended)
        assert (board.rows[0].state, board.rows[0].late) == (UnitState.ACCEPTED, False)
        assert export_document(s, extended)["submissions"][0]["late"] is False
        digest = build_digest(s, extended, now=DEADLINE, since=None)
        assert "逾期报送" not in digest.text
        assert late.late is True  # the verdict the reply was sent on stays as it was


def test_quarantined_mail_is_listed_with_its_reason_in_status_and_the_export(tmp_path: Path) -> None:
    from intake.export import export_document
    from storage.models import Message, MessageState

    db = make_db(tmp_path)
    with db.session() as s:
        s.add(Message(account="intake", folder="INBOX", sha256="0" * 64, size=1, from_address="broken@x.cn",
                      subject="坏邮件", arrived_at=before_deadline(days=2), state=MessageState.QUARANTINED,
                      error="RecursionError: maximum recursion depth exceeded\nTraceback (most recent call last):\n..."))
        s.flush()
        [row] = board_as_dict(build_board(s, SETTINGS))["quarantined"]
        assert (row["status"], row["sender"], row["reason"]) == ("quarantined", "broken@x.cn",
                                                                 "RecursionError: maximum recursion depth exceeded")
        assert export_document(s, SETTINGS)["quarantined"] == [row]
