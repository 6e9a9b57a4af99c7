"""What the unit wrote in a number cell ("约300") reaches staff as written (issue 13)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import openpyxl

from intake.app import App
from intake.export import export_document
from intake.pipeline import Location, ingest
from intake.samples import form_workbook, mime_message
from notifications.workbook import HEADER_ROW, build_workbook, sheet_title
from tests.support.campaigns import FORM1
from tests.support.intake_env import DEADLINE, intake_settings, stamped_pdf

ARRIVED = DEADLINE - dt.timedelta(days=1)
ROWS = [("港口建设劳动竞赛", "港口扩建工程", "约300", 9, 1000, 100, Decimal("3.2")),
        ("铁路建设劳动竞赛", "铁路工程", 20, 5, 800, 300, Decimal("1.5"))]


def test_a_number_cell_filled_with_text_is_kept_as_written_in_the_export_and_workbook(tmp_path: Path) -> None:
    settings = intake_settings(tmp_path)
    raw = mime_message(sender=("济南市总工会", "jinan@example.cn"), subject="济南市总工会竞赛项目申报", body="请查收。",
                       attachments=[("表一.xlsx", form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会", ROWS)),
                                    ("盖章.pdf", stamped_pdf())], date=ARRIVED)
    with App(settings) as app:
        ingest(app, raw, ARRIVED, Location(app.account, "INBOX", 1, 1))
        with app.db.session() as session:
            [submission] = export_document(session, app.settings)["submissions"]
            workbook = build_workbook(session, app.settings, now=ARRIVED)
    first, second = submission["form1_rows"]
    assert first["enterprises"] == "约300" and first["as_written"] == ["enterprises"]
    assert second["enterprises"] == 20 and second["as_written"] == []
    assert "non_numeric" in {p["code"] for p in submission["problems"]}

    ws = openpyxl.load_workbook(io.BytesIO(workbook))[sheet_title(FORM1)]
    column = 2 + [c.field for c in FORM1.columns].index("enterprises")
    cell = ws.cell(HEADER_ROW + 1, column)
    assert (cell.value, cell.data_type) == ("约300", "s")
    assert cell.comment is not None and "文字" in cell.comment.text
    assert ws.cell(HEADER_ROW + 2, column).value == 20
