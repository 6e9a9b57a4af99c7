"""Sample mail for the demo: what units really send, written the way their clients write it.

Each sample is a complete RFC 5322 message (bytes) plus its arrival time, covering the
cases staff meet: a clean submission, a zip with GBK member names, a missing scan, a
form with errors, a late arrival, a sender we do not know, an out-of-office reply, a
resubmission, a forwarded mail and a Word table. With a second campaign open beside the
first: a recommendation for it, one with a value out of its bounds, and a unit's letter
that belongs to no campaign.
"""

from __future__ import annotations

import base64
import email
import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote

from openpyxl import Workbook
from openpyxl.styles import Alignment
from PIL import Image, ImageDraw

from config.campaigns import CampaignSpec
from parsers.forms import Column, FormSpec, Op, ValueType, plain, typed
from parsers.labels import short_label

CST = dt.timezone(dt.timedelta(hours=8))
INBOX = "szscbhb@163.com"
# The receiving server's name in Authentication-Results; the demo config trusts it.
DEMO_AUTHSERV = "mx.demo.intake"


@dataclass(frozen=True)
class Sample:
    name: str  # what the demo shows about this case
    raw: bytes
    arrived_at: dt.datetime


Rows = list[dict[str, object]]
# Made-up values for a column with no `samples`, by type (cycled like samples).
_MADE_UP = {ValueType.TEXT: ("示例一", "示例二", "示例三"), ValueType.INT: ("10", "20", "30"),
            ValueType.DECIMAL: ("1.5", "2.25", "3"), ValueType.DATE: ("2024-01-15", "2024-02-01", "2023-12-31")}


def sample_rows(spec: FormSpec, n: int = 2) -> Rows:
    """`n` rows of the form from its columns' `samples` (cycled), in plain values
    (parsers.forms.plain): what reading the written file gives back."""
    return [{c.field: plain(c.type, typed(c.type, _cycle(c.samples or _MADE_UP[c.type], i))) for c in spec.columns}
            for i in range(n)]


def _cycle(values: tuple[str, ...], i: int) -> str:
    return values[i % len(values)]


def broken_row(spec: FormSpec) -> tuple[dict[str, object], str]:
    """A sample row with the form's first row rule broken and a count written as text
    (“约300”), and what is wrong with it in words for the demo's list."""
    row, wrong = sample_rows(spec, 1)[0], []
    fields: tuple[str, ...] = ()
    if spec.rules:
        left, op, right = fields = spec.rules[0].parts
        row[left] = plain(spec.column(left).type, _breaking(op, spec.typed(right, row[right])))
        wrong.append(f"{short_label(spec.column(left))}{op.broken}{short_label(spec.column(right))}")
    vague = next((c for c in spec.columns if c.type.numeric and c.field not in fields), None)
    if vague is not None:
        row[vague.field] = "约300"
        wrong.append(f"{short_label(vague)}写“约300”")
    return row, "、".join(wrong)


def out_of_range_row(spec: FormSpec) -> tuple[dict[str, object], str]:
    """A sample row with the form's first bounded column 20 over its `max` (a score of 120
    out of 100), and what is wrong with it in words for the demo's list."""
    row = sample_rows(spec, 1)[0]
    column = next(c for c in spec.columns if c.max is not None)
    value = typed(column.type, str(column.max)) + 20
    row[column.field] = plain(column.type, value)
    return row, f"{short_label(column)}写 {value}，超过 {column.max}"


def _breaking(op: Op, right: object) -> object:
    step = dt.timedelta(days=1) if isinstance(right, dt.date) else 1
    return right - step if op in (Op.GE, Op.GT) else right + step  # type: ignore[operator]


def _cell(column: Column, value: object) -> object:
    """A value as a unit's Excel holds it: numbers as numbers, dates as dates, text as text
    (a count written “约300” stays text)."""
    if value is None or isinstance(value, str) and column.type is ValueType.TEXT:
        return value
    found = typed(column.type, value)
    return float(found) if isinstance(found, Decimal) else found


def _wrapped(label: str) -> str:
    # Real templates wrap long labels by hand inside the cell; the reader must cope.
    return label[:3] + "\n" + label[3:] if len(label) >= 6 and "(" not in label[:4] and "（" not in label[:4] else label


def _as_dicts(spec: FormSpec, rows: Rows | list[tuple] | None) -> Rows:
    if rows is None:
        return sample_rows(spec)
    return [r if isinstance(r, dict) else dict(zip((c.field for c in spec.columns), r, strict=True)) for r in rows]


def form_workbook(spec: FormSpec, title: str, unit: str, rows: Rows | list[tuple] | None = None, *,
                  note: bool = True, sheet_name: str | None = None) -> bytes:
    """A unit's form in the notice's layout: title, unit/date line, header, rows, 合计 (for
    a form with totals). `rows`: dicts field → value (a tuple is the values in column order);
    None: `sample_rows(spec)`."""
    rows = _as_dicts(spec, rows)
    book = Workbook()
    sheet = book.active
    sheet.title = sheet_name or _sheet_name(spec)
    width = len(spec.columns)
    sheet.cell(1, 1, title)
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet.cell(2, 1, f"{spec.unit_label}（公章）：{unit}")
    date_line = f"{spec.date_label}：2024年2月20日"
    if width >= 2:
        sheet.cell(2, max(2, width - 1), date_line)
    else:
        sheet.cell(2, 1, f"{spec.unit_label}（公章）：{unit}    {date_line}")
    for col, column in enumerate(spec.columns, start=1):
        sheet.cell(3, col, _wrapped(column.label)).alignment = Alignment(wrap_text=True)
    for r, row in enumerate(rows, start=4):
        for c, column in enumerate(spec.columns, start=1):
            sheet.cell(r, c, _cell(column, row.get(column.field)))
    end = 4 + len(rows)
    if spec.total_fields:
        _total_row(sheet, spec, rows, end)
        end += 1
    if note:
        sheet.cell(end + 1, 1, "注：本表由各单位汇总后盖章报送。")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _sheet_name(spec: FormSpec) -> str:
    """附件1 for form1 (the notice's attachments are numbered as its forms), else the short title."""
    digits = spec.id.lstrip("abcdefghijklmnopqrstuvwxyz_")
    return f"附件{digits}" if digits.isdigit() else spec.short_title[:31]


def _total_row(sheet, spec: FormSpec, rows: Rows, at: int) -> None:  # noqa: ANN001 - an openpyxl sheet
    # The label goes in the first column that holds no figure of the 合计 row.
    label_at = next((i for i, c in enumerate(spec.columns, start=1) if c.field not in spec.total_fields), 1)
    sheet.cell(at, label_at, spec.total_label)
    for c, column in enumerate(spec.columns, start=1):
        if column.field not in spec.total_fields:
            continue
        values = [typed(column.type, row.get(column.field)) for row in rows]
        if all(isinstance(v, (int, Decimal)) for v in values):
            total = sum(values)
            sheet.cell(at, c, float(total) if isinstance(total, Decimal) else total)


def scanned_pdf(*, seal: bool = True, dpi: int = 150) -> bytes:
    """An image-only A4 'scan' of a printed table, with a red round seal when asked."""
    buffer = io.BytesIO()
    scanned_page(seal=seal, dpi=dpi).save(buffer, "PDF", resolution=dpi)
    return buffer.getvalue()


def scanned_page(*, seal: bool = True, dpi: int = 150) -> Image.Image:
    """The A4 page image of `scanned_pdf` (also the page image of an OFD)."""
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    page = Image.new("RGB", (width, height), (246, 242, 231))  # a colour scan sees paper as warm
    draw = ImageDraw.Draw(page)
    top, left, right = int(1.6 * dpi), int(0.7 * dpi), width - int(0.7 * dpi)
    for i in range(6):
        y = top + i * int(0.35 * dpi)
        draw.line([(left, y), (right, y)], fill=(40, 40, 40), width=2)
    for i in range(8):
        x = left + i * (right - left) // 7
        draw.line([(x, top), (x, top + 5 * int(0.35 * dpi))], fill=(40, 40, 40), width=2)
    # The date is filled in by hand in blue ink: a colour scan shows colour even without a seal.
    pen = [(left + int(4.6 * dpi) + k * 9, top - int(0.3 * dpi) + (k % 3) * 5) for k in range(40)]
    draw.line(pen, fill=(30, 60, 170), width=3)
    if seal:
        diameter = int(40 / 25.4 * dpi)  # a 40 mm 公章
        cx, cy = int(width * 0.7), top + int(2.4 * dpi)
        r = diameter // 2
        red = (205, 30, 40)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=red, width=max(3, dpi // 30))
        star = [(cx + r * 0.3 * f * _cos(a), cy + r * 0.3 * f * _sin(a)) for a, f in _star_points()]
        draw.polygon(star, fill=red)
        for k in range(14):  # the arc of characters around the ring, as blobs
            angle = 200 + k * 10
            bx, by = cx + r * 0.72 * _cos(angle), cy + r * 0.72 * _sin(angle)
            draw.rectangle([bx - 6, by - 6, bx + 6, by + 6], fill=red)
    return page


def _cos(degrees: float) -> float:
    import math

    return math.cos(math.radians(degrees))


def _sin(degrees: float) -> float:
    import math

    return math.sin(math.radians(degrees))


def _star_points() -> list[tuple[float, float]]:
    return [(-90 + i * 36, 1.0 if i % 2 == 0 else 0.4) for i in range(10)]


def word_table(spec: FormSpec, title: str, unit: str, rows: Rows | list[tuple] | None = None) -> bytes:
    """The form as a Word table (no 合计 row, as units usually send it); rows as in form_workbook."""
    from docx import Document

    document = Document()
    document.add_paragraph(title)
    document.add_paragraph(f"{spec.unit_label}（公章）：{unit}        {spec.date_label}：2024年2月21日")
    table = document.add_table(rows=1, cols=len(spec.columns))
    for cell, column in zip(table.rows[0].cells, spec.columns, strict=True):
        cell.text = column.label
    for row in _as_dicts(spec, rows):
        cells = table.add_row().cells
        for cell, column in zip(cells, spec.columns, strict=True):
            value = row.get(column.field)
            cell.text = "" if value is None else str(value)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def letter_docx(title: str, paragraphs: list[str]) -> bytes:
    """A Word letter with no table: what a unit sends about anything but a form."""
    from docx import Document

    document = Document()
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


class _GbkZipInfo(zipfile.ZipInfo):
    """zipfile writes non-ASCII names as UTF-8 and sets the flag; Windows tools do not."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's hook
        return self.filename.encode("gbk"), self.flag_bits


def gbk_zip(members: dict[str, bytes]) -> bytes:
    """A zip as Windows' own compressor writes it: GBK names, no UTF-8 flag."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = _GbkZipInfo(name, date_time=(2024, 2, 20, 10, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


# --- building messages like the clients do ----------------------------------------------

def _rfc2047_quoted(name: str) -> str:
    """Foxmail / QQ Mail: an encoded-word inside a quoted parameter (not valid RFC 2047)."""
    return '"=?gb2312?B?' + base64.b64encode(name.encode("gb18030")).decode() + '?="'


def _rfc2231(name: str) -> str:
    """Outlook / 163 webmail."""
    return "utf-8''" + quote(name.encode("utf-8"))


def mime_message(
    *,
    sender: tuple[str, str],
    subject: str,
    body: str,
    attachments: list[tuple[str, bytes]],
    style: str = "rfc2231",
    date: dt.datetime,
    extra_headers: dict[str, str] | None = None,
    authenticated: bool = True,
) -> bytes:
    """Hand-built MIME so the filename encodings are exactly what each client sends."""
    boundary = "----=_Part_" + make_msgid().strip("<>").split("@")[0].replace(".", "")
    name_b64 = base64.b64encode(sender[0].encode("gb18030")).decode()
    subject_b64 = base64.b64encode(subject.encode("gb18030")).decode()
    domain = sender[1].split("@")[1]
    auth = (
        [f"Authentication-Results: {DEMO_AUTHSERV}; spf=pass smtp.mailfrom={domain}; "
         f"dkim=pass header.d={domain}; dmarc=pass header.from={domain}"]
        if authenticated else []
    )
    head = [
        *auth,
        f"From: =?GBK?B?{name_b64}?= <{sender[1]}>",
        f"To: {INBOX}",
        f"Subject: =?GBK?B?{subject_b64}?=",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {make_msgid(domain=domain)}",
        "MIME-Version: 1.0",
        *(f"{k}: {v}" for k, v in (extra_headers or {}).items()),
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    parts = [
        "\r\n".join(
            [
                f"--{boundary}",
                "Content-Type: text/plain; charset=GBK",
                "Content-Transfer-Encoding: base64",
                "",
                base64.encodebytes(body.encode("gb18030")).decode().replace("\n", "\r\n"),
            ]
        ).encode()
    ]
    for filename, data in attachments:
        if style == "rfc2047":
            disposition = f"attachment; filename={_rfc2047_quoted(filename)}"
        elif style == "gbk8bit":
            disposition = None
        else:
            disposition = f"attachment; filename*={_rfc2231(filename)}"
        lines = [f"--{boundary}".encode(), b"Content-Type: application/octet-stream"]
        if disposition is None:
            lines.append(b'Content-Disposition: attachment; filename="' + filename.encode("gbk") + b'"')
        else:
            lines.append(f"Content-Disposition: {disposition}".encode())
        lines += [b"Content-Transfer-Encoding: base64", b"", base64.encodebytes(data).replace(b"\n", b"\r\n")]
        parts.append(b"\r\n".join(lines))
    return ("\r\n".join(head) + "\r\n\r\n").encode() + b"\r\n".join(parts) + f"\r\n--{boundary}--\r\n".encode()


def forwarded(inner: bytes, *, sender: tuple[str, str], subject: str, date: dt.datetime) -> bytes:
    outer = EmailMessage()
    domain = sender[1].split("@")[1]
    outer["Authentication-Results"] = f"{DEMO_AUTHSERV}; dkim=pass header.d={domain}; dmarc=pass header.from={domain}"
    outer["From"] = f"{sender[0]} <{sender[1]}>"
    outer["To"] = INBOX
    outer["Subject"] = subject
    outer["Date"] = format_datetime(date)
    outer["Message-ID"] = make_msgid(domain=sender[1].split("@")[1])
    outer.set_content("转发单位报送材料，请查收。")
    outer.add_attachment(email.message_from_bytes(inner))  # message/rfc822, as Outlook forwards
    return outer.as_bytes()


def demo_samples(campaign: CampaignSpec, second: CampaignSpec | None = None) -> list[Sample]:
    """The demo's mailbox, arranged around the campaign's deadline: its first form is 附件1,
    its second (else the first again) 附件2. With a `second` campaign open beside it, three
    more mails before that one's deadline (second_campaign_samples)."""
    deadline = campaign.deadline
    form1, form2 = campaign.forms[0], campaign.forms[min(1, len(campaign.forms) - 1)]
    t1, t2 = form1.title, form2.title
    rows1, rows2 = sample_rows(form1), sample_rows(form2)
    before = lambda hours: deadline - dt.timedelta(hours=hours)  # noqa: E731 - reads well here
    pdf, bare_pdf = scanned_pdf(seal=True), scanned_pdf(seal=False)
    samples: list[Sample] = []

    def add(name: str, raw: bytes, arrived: dt.datetime) -> None:
        samples.append(Sample(name, raw, arrived))

    jinan = ("济南市总工会", "jinan@example.cn")
    add("济南：Foxmail 发送，两张表 + 盖章 PDF，按时", mime_message(
        sender=jinan, subject="济南市总工会劳动竞赛项目申报", body="您好，附件为我单位汇总表，请查收。\n济南市总工会",
        attachments=[("附件1-竞赛项目汇总表（重点工程类）.xlsx", form_workbook(form1, t1, "济南市总工会", rows1)),
                     ("附件2-竞赛项目汇总表（技术技能类）.xlsx", form_workbook(form2, t2, "济南市总工会", rows2)),
                     ("济南市总工会盖章版.pdf", pdf)],
        style="rfc2047", date=before(72)), before(72))
    qingdao = ("青岛市总工会", "qingdao@example.cn")
    add("青岛：Outlook 发送 zip（GBK 文件名）", mime_message(
        sender=qingdao, subject="青岛市报送材料", body="请查收。",
        attachments=[("青岛市总工会报送材料.zip", gbk_zip({
            "青岛/附件1重点工程类.xlsx": form_workbook(form1, t1, "青岛市总工会", rows1[:1]),
            "青岛/盖章扫描件.pdf": pdf}))],
        style="rfc2231", date=before(50)), before(50))
    add("淄博：只有 Excel，缺盖章 PDF", mime_message(
        sender=("淄博市总工会", "zibo@example.cn"), subject="淄博市总工会竞赛项目", body="附件请查收",
        attachments=[("淄博市汇总表.xlsx", form_workbook(form2, t2, "淄博市总工会", rows2))],
        style="gbk8bit", date=before(30)), before(30))
    bad_row, wrong = broken_row(form1)
    bad_rows = [bad_row]
    add(f"枣庄：表内有错（{wrong}）", mime_message(
        sender=("枣庄市总工会", "zaozhuang@example.cn"), subject="枣庄市申报表", body="请审阅",
        attachments=[("枣庄市附件1.xlsx", form_workbook(form1, t1, "枣庄市总工会", bad_rows)), ("枣庄盖章.pdf", pdf)],
        date=before(20)), before(20))
    late = deadline + dt.timedelta(seconds=1)
    add("烟台：17:00:01 到达，逾期", mime_message(
        sender=("烟台市总工会", "yantai@example.cn"), subject="烟台市竞赛项目汇总表", body="抱歉晚了",
        attachments=[("烟台市附件2.xlsx", form_workbook(form2, t2, "烟台市总工会", rows2[:1])), ("烟台盖章.pdf", pdf)],
        date=late), late)
    add("潍坊：用个人邮箱发送，靠表内汇总单位认出", mime_message(
        sender=("王科长", "wang.kz@example.net"), subject="竞赛项目申报", body="潍坊市总工会 王科长",
        attachments=[("潍坊市附件1.xlsx", form_workbook(form1, t1, "潍坊市总工会", rows1[1:])), ("潍坊盖章.pdf", pdf)],
        date=before(10)), before(10))
    add("东营：自动回复（不应回信）", mime_message(
        sender=("东营市总工会", "dongying@example.cn"), subject="自动回复：竞赛项目征集", body="我现在不在办公室。",
        attachments=[], date=before(9), extra_headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}), before(9))
    add("济南：重新报送，替代之前的材料", mime_message(
        sender=jinan, subject="更正：济南市总工会劳动竞赛项目申报", body="更正后的材料，以此为准。",
        attachments=[("附件1-竞赛项目汇总表（重点工程类）更正.xlsx", form_workbook(form1, t1, "济南市总工会", rows1)),
                     ("附件2-竞赛项目汇总表（技术技能类）.xlsx", form_workbook(form2, t2, "济南市总工会", rows2)),
                     ("济南市总工会盖章版.pdf", pdf)],
        style="rfc2047", date=before(5)), before(5))
    inner = mime_message(
        sender=("省直机关工会", "szjg@example.cn"), subject="省直机关工会竞赛项目", body="请查收",
        attachments=[("省直机关附件2.docx", word_table(form2, t2, "山东省直机关工会", rows2[:1])), ("省直机关盖章.pdf", pdf)],
        date=before(4))
    add("省直机关：转发的邮件，Word 表格", forwarded(
        inner, sender=("省直机关工会", "szjg@example.cn"), subject="转发：省直机关工会竞赛项目", date=before(3)), before(3))
    add("泰安：彩色扫描件上没有公章", mime_message(
        sender=("泰安市总工会", "taian@example.cn"), subject="泰安市汇总表", body="请查收",
        attachments=[("泰安附件1.xlsx", form_workbook(form1, t1, "泰安市总工会", rows1[:1])), ("泰安扫描.pdf", bare_pdf)],
        date=before(2)), before(2))
    return samples + (second_campaign_samples(second, pdf) if second is not None else [])


def second_campaign_samples(campaign: CampaignSpec, pdf: bytes) -> list[Sample]:
    """Mail for a second open campaign, after the first one's deadline and before its own:
    a clean recommendation, one with a value out of bounds, and a letter for no campaign
    (a .docx that is no form, so it is 其他来信 and gets no reply)."""
    form = campaign.forms[0]
    before = lambda days: campaign.deadline - dt.timedelta(days=days)  # noqa: E731 - reads well here
    bad_row, wrong = out_of_range_row(form)
    qingdao, zibo = ("青岛市总工会", "qingdao@example.cn"), ("淄博市总工会", "zibo@example.cn")
    return [
        Sample(f"青岛：{campaign.name}，推荐表 + 盖章 PDF", mime_message(
            sender=qingdao, subject=f"青岛市总工会{form.title}", body="您好，附件为我单位推荐材料，请查收。\n青岛市总工会",
            attachments=[(f"青岛市{form.title}.xlsx", form_workbook(form, form.title, "青岛市总工会")),
                         ("青岛市推荐材料盖章版.pdf", pdf)],
            date=before(6)), before(6)),
        Sample(f"淄博：{form.short_title}表内有错（{wrong}）", mime_message(
            sender=zibo, subject=f"淄博市总工会{form.title}", body="请查收。",
            attachments=[(f"淄博市{form.short_title}.xlsx", form_workbook(form, form.title, "淄博市总工会", [bad_row])),
                         ("淄博市推荐材料盖章版.pdf", pdf)],
            date=before(4)), before(4)),
        Sample("济南：与征集无关的来信（Word 请示，其他来信，不回复）", mime_message(
            sender=("济南市总工会", "jinan@example.cn"), subject="关于职工疗养安排的请示", body="请审阅附件。\n济南市总工会",
            attachments=[("关于职工疗养安排的请示.docx", letter_docx("关于职工疗养安排的请示", [
                "省总工会：", "我会拟于今年五月组织一线职工分批疗养，现将安排报上，请予审示。", "济南市总工会"]))],
            date=before(3)), before(3)),
    ]
