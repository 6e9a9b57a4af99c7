"""The consolidated workbook staff forward upwards: one campaign's forms in its notice's layout.

One sheet per form of the campaign (its title, its 汇总单位 / 填写日期 line, its headers
after a leading 报送单位 column, the rows of every unit's current submission to that
campaign, a live 合计 row over the form's total fields unless it has none), then
报送情况 (each unit's state) and 问题清单 (every problem still open).

Rows of unmatched submissions are left out of the form sheets: until staff name the
unit, nobody can say whose projects they are. They are listed in 问题清单 instead.
Rows of a current submission that is not (yet) accepted are included, with the state
after the unit name and a tinted 报送单位 cell, so the totals show everything received.

Every value is written through `put`: text is stored as text whatever it starts with, so
a cell, filename or address a sender wrote as "=HYPERLINK(...)" is shown, never run. The
合计 SUMs, wrapped in `Formula`, are the only formulas in the book.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.orm import Session

from config.campaigns import CampaignSpec
from config.settings import Settings
from intake.board import KIND_LABELS, STATE_LABELS, Board, UnitState, build_board, local_time
from intake.tracking import unmatched_submissions
from parsers.forms import FormSpec, ValueType
from parsers.model import Severity
from storage.models import Submission

UNIT_COLUMN = "报送单位"
STATUS_SHEET = "报送情况"
PROBLEMS_SHEET = "问题清单"
HEADER_ROW = 3  # title, 汇总单位/填写日期, headers
NUMBER_FORMATS = {ValueType.INT: "#,##0", ValueType.DECIMAL: "#,##0.00", ValueType.DATE: "yyyy-mm-dd"}
SEVERITY_LABELS = {Severity.ERROR.value: "错误", Severity.WARNING.value: "提示"}
# The state is written after the unit name only where it is not plainly accepted.
ROW_MARKS = {UnitState.ACCEPTED_LATE: "逾期", UnitState.INCOMPLETE: "材料不全", UnitState.INVALID: "需修改",
             UnitState.AWAITING: "待确认"}
WRITTEN_NOTE = "单位填写的是文字，不是数字：按原样显示，未计入合计。"
MARK_FILL = PatternFill("solid", fgColor="FFF2CC")
HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
THIN = Side(style="thin", color="000000")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
BODY_FONT = Font(name="宋体", size=11)
BOLD_FONT = Font(name="宋体", size=11, bold=True)
TITLE_FONT = Font(name="黑体", size=16, bold=True)
WRAP = Alignment(wrap_text=True, vertical="center")
CENTRE_WRAP = Alignment(horizontal="center", vertical="center", wrap_text=True)
MIN_WIDTH, MAX_WIDTH, HEADER_WIDTH = 8, 40, 14
UNSHOWABLE = "\ufffd"  # stands in for a control character a worksheet cannot store


@dataclass(frozen=True)
class Formula:
    """A formula this module wrote (the 合计 SUMs): the only kind of cell `put` makes live."""

    text: str


def put(cell: Cell, value: object) -> Cell:
    """Write one value into a cell as data; every cell of the workbook goes through here.

    openpyxl makes any str starting with "=" a formula and "#N/A"-like strs error cells;
    forcing the text type stores them as inline strings, shown exactly as written. Control
    characters XML cannot hold (a CSV cell may carry them) become U+FFFD instead of making
    openpyxl refuse the whole workbook. Numbers, dates and None keep their own types.
    """
    if isinstance(value, Formula):
        cell.value = value.text
        return cell
    if isinstance(value, str):
        cell.value = ILLEGAL_CHARACTERS_RE.sub(UNSHOWABLE, value)
        cell.data_type = "s"
    else:
        cell.value = value
    return cell


def display_width(value: object) -> int:
    """Columns a value needs: CJK and full-width characters take two."""
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


_SHEET_UNSAFE = re.compile(r"[\\/*?:\[\]]")  # characters a sheet name may not hold


def sheet_title(spec: FormSpec, number: int | None = None) -> str:
    """`表1 重点工程类`: the form's position in its campaign and its short title. Without
    `number`, an id ending in digits (form2) gives it, else 1 (callers with a campaign pass it)."""
    if number is None:
        digits = re.search(r"(\d+)$", spec.id)
        number = int(digits.group(1)) if digits else 1
    return _SHEET_UNSAFE.sub("_", f"表{number} {spec.short_title}")[:31]


def build_workbook(session: Session, settings: Settings, campaign: CampaignSpec | None = None, *,
                   now: datetime | None = None, board: Board | None = None) -> bytes:
    """One campaign's .xlsx bytes (default: settings.campaign); pass the board when the
    caller has built one already."""
    campaign = campaign or settings.campaign
    board = board or build_board(session, settings, campaign)
    now = now or datetime.now(UTC)
    book = Workbook()
    book.remove(book.active)
    for number, spec in enumerate(campaign.forms, 1):
        _form_sheet(book.create_sheet(sheet_title(spec, number)), spec, board, now)
    _status_sheet(book.create_sheet(STATUS_SHEET), board, campaign)
    unmatched = [s for s in unmatched_submissions(session) if s.campaign in (campaign.id, None)]
    _problems_sheet(book.create_sheet(PROBLEMS_SHEET), board, unmatched)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _form_sheet(ws: Worksheet, spec: FormSpec, board: Board, now: datetime) -> None:
    columns = spec.columns
    last = len(columns) + 1
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=last)
    title_cell = put(ws.cell(1, 1), spec.title)
    title_cell.font, title_cell.alignment = TITLE_FONT, Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 36
    half = last // 2
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=half)
    ws.merge_cells(start_row=2, start_column=half + 1, end_row=2, end_column=last)
    put(ws.cell(2, 1), f"{spec.unit_label}：").font = BODY_FONT
    local = now.astimezone(board.timezone)
    date_cell = put(ws.cell(2, half + 1), f"{spec.date_label}：{local.year}年{local.month}月{local.day}日")
    date_cell.font = BODY_FONT
    date_cell.alignment = Alignment(horizontal="right")

    _header(ws, [UNIT_COLUMN, *(c.label for c in columns)])
    widths = [display_width(UNIT_COLUMN)] + [0] * len(columns)
    row_no = HEADER_ROW
    for board_row in board.rows:
        submission = board.current.get(board_row.name)
        if submission is None:
            continue
        mark = ROW_MARKS.get(board_row.state)
        unit_text = f"{board_row.name}（{mark}）" if mark else board_row.name
        for record in submission.rows_of(spec.id):
            row_no += 1
            written = record.as_written or {}
            values = [unit_text, *(written.get(c.field, spec.typed(c.field, record.values.get(c.field)))
                                   for c in columns)]
            _body_row(ws, row_no, values, [None, *(NUMBER_FORMATS.get(c.type) for c in columns)])
            if mark:
                ws.cell(row_no, 1).fill = MARK_FILL
            for index, column in enumerate(columns, start=2):
                if column.field in written:  # shown as the unit typed it, marked, left out of 合计
                    cell = ws.cell(row_no, index)
                    cell.fill = MARK_FILL
                    cell.comment = Comment(WRITTEN_NOTE, "intake")
            widths = [max(w, display_width(v)) for w, v in zip(widths, values, strict=True)]

    if spec.total_fields:  # `totals = []`: the form has no 合计 row
        _total_row(ws, spec, row_no)

    for index, (label, width) in enumerate(zip([UNIT_COLUMN, *(c.label for c in columns)], widths, strict=True), 1):
        header_width = min(display_width(label), HEADER_WIDTH)  # headers wrap
        ws.column_dimensions[get_column_letter(index)].width = max(MIN_WIDTH, min(MAX_WIDTH, max(width, header_width) + 2))
    _page_setup(ws)


def _total_row(ws: Worksheet, spec: FormSpec, last_row: int) -> None:
    """The 合计 row: a live SUM under each of the form's total fields, nothing elsewhere."""
    totals: list[object] = [spec.total_label]
    for index, column in enumerate(spec.columns, start=2):
        if column.field not in spec.total_fields:
            totals.append(None)
        elif last_row > HEADER_ROW:
            letter = get_column_letter(index)
            totals.append(Formula(f"=SUM({letter}{HEADER_ROW + 1}:{letter}{last_row})"))
        else:
            totals.append(0)
    formats = [None, *(NUMBER_FORMATS.get(c.type) for c in spec.columns)]
    _body_row(ws, last_row + 1, totals, formats, font=BOLD_FONT)
    ws.cell(last_row + 1, 1).alignment = CENTRE_WRAP


def _status_sheet(ws: Worksheet, board: Board, campaign: CampaignSpec) -> None:
    counts = [f"表{number}行数" for number in range(1, len(campaign.forms) + 1)]
    headers = ["序号", "单位", "类别", "状态", "到达时间", "是否逾期", "问题数", *counts, "报送编号"]
    rows = [
        [
            i,
            r.name,
            KIND_LABELS[r.kind],
            STATE_LABELS[r.state],
            local_time(r.arrived_at, board.timezone),
            "是" if r.late else "",
            r.problems if r.submission_id else None,
            *(r.form_rows.get(form.id, 0) if r.submission_id else None for form in campaign.forms),
            r.submission_id,
        ]
        for i, r in enumerate(board.rows, 1)
    ]
    _table_sheet(ws, headers, rows)


def _problems_sheet(ws: Worksheet, board: Board, unmatched: Sequence[Submission]) -> None:
    headers = ["单位", "文件", "单元格", "级别", "代码", "问题"]
    rows: list[list[object]] = []
    for board_row in board.rows:
        submission = board.current.get(board_row.name)
        if submission is not None:
            rows.extend(_problem_rows(board_row.name, submission))
    for submission in unmatched:
        who = f"未识别（{submission.message.from_address or '发件人不明'}）"
        rows.append([who, None, None, "待处理", "unmatched", "无法确定报送单位，请用 intake assign 指定单位。"])
        rows.extend(_problem_rows(who, submission))
    _table_sheet(ws, headers, rows)


def _problem_rows(unit: str, submission: Submission) -> Iterable[list[object]]:
    for p in submission.problems:
        yield [unit, p.file, p.cell, SEVERITY_LABELS.get(p.severity, p.severity), p.code, p.message]


def _table_sheet(ws: Worksheet, headers: list[str], rows: list[list[object]]) -> None:
    """A plain list sheet: header on row 1, filters, frozen header, widths from content."""
    _header(ws, headers, row=1)
    widths = [display_width(h) for h in headers]
    for row_no, values in enumerate(rows, start=2):
        _body_row(ws, row_no, values)
        widths = [max(w, display_width(v)) for w, v in zip(widths, values, strict=True)]
    for index, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(index)].width = max(MIN_WIDTH, min(MAX_WIDTH + 20, width + 2))
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(len(rows) + 1, 2)}"
    _page_setup(ws, header_rows=1)


def _header(ws: Worksheet, labels: list[str], row: int = HEADER_ROW) -> None:
    for col, label in enumerate(labels, 1):
        cell = put(ws.cell(row, col), label)
        cell.font, cell.alignment, cell.border, cell.fill = BOLD_FONT, CENTRE_WRAP, BORDER, HEADER_FILL
    ws.row_dimensions[row].height = 45


def _body_row(
    ws: Worksheet,
    row: int,
    values: Sequence[object],
    formats: Sequence[str | None] = (),
    font: Font = BODY_FONT,
) -> None:
    for col, value in enumerate(values, 1):
        cell = put(ws.cell(row, col), value)
        cell.font, cell.alignment, cell.border = font, WRAP, BORDER
        number_format = formats[col - 1] if col <= len(formats) else None
        if number_format:
            cell.number_format = number_format


def _page_setup(ws: Worksheet, header_rows: int = HEADER_ROW) -> None:
    """A4 landscape, one page wide, headers repeated, frozen under the header."""
    ws.freeze_panes = ws.cell(header_rows + 1, 1)
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"1:{header_rows}"
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
