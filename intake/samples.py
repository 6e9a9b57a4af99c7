"""Sample mail for the demo: what units really send, written the way their clients write it.

Each sample is a complete RFC 5322 message (bytes) plus its arrival time, covering the
cases staff meet: a clean submission, a zip with GBK member names, a missing scan, a
form with errors, a late arrival, a sender we do not know, an out-of-office reply, a
resubmission, a forwarded mail and a Word table.
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

from parsers.forms import FORM1, FORM2, FormSpec

CST = dt.timezone(dt.timedelta(hours=8))
INBOX = "szscbhb@163.com"
# The receiving server's name in Authentication-Results; the demo config trusts it.
DEMO_AUTHSERV = "mx.demo.intake"


@dataclass(frozen=True)
class Sample:
    name: str  # what the demo shows about this case
    raw: bytes
    arrived_at: dt.datetime


FORM1_ROWS = [
    ("济南轨道交通建设劳动竞赛", "济南轨道交通6号线工程", 12, 8, 3500, 2100, Decimal("45.6")),
    ("黄河大桥建设劳动竞赛", "济南黄河凤凰大桥配套工程", 6, 3, 1200, 600, Decimal("12.3")),
]
FORM2_ROWS = [
    ("1", "全市焊工职业技能竞赛", "济南市总工会", "济南市技师学院", "焊工", 300, 30, "2024年10月，济南市技师学院"),
    ("2", "数控车工技能大赛", "济南市总工会", "济南二机床集团", "数控车工", 200, 20, "2024年9月，济南二机床集团"),
]


def form_workbook(spec: FormSpec, title: str, unit: str, rows: list[tuple], *, note: bool = True) -> bytes:
    """A unit's form in the notice's layout: title, 汇总单位/填写日期 line, header, rows, 合计."""
    book = Workbook()
    sheet = book.active
    sheet.title = "附件1" if spec.number == 1 else "附件2"
    width = len(spec.columns)
    sheet.cell(1, 1, title)
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet.cell(2, 1, f"汇总单位（公章）：{unit}")
    sheet.cell(2, width - 1, "填写日期：2024年2月20日")
    for col, column in enumerate(spec.columns, start=1):
        # Real templates wrap long labels by hand; the reader must cope.
        label = column.label.replace("初赛", "初\n赛").replace("决赛人数", "决\n赛人数")
        sheet.cell(3, col, label).alignment = Alignment(wrap_text=True)
    for r, row in enumerate(rows, start=4):
        for c, value in enumerate(row, start=1):
            sheet.cell(r, c, float(value) if isinstance(value, Decimal) else value)
    total_row = 4 + len(rows)
    sheet.cell(total_row, 1, "合计")
    for c, column in enumerate(spec.columns, start=1):
        if column.type.value != "text":
            values = [row[c - 1] for row in rows]
            if all(isinstance(v, (int, Decimal)) for v in values):
                total = sum(values)
                sheet.cell(total_row, c, float(total) if isinstance(total, Decimal) else total)
    if note:
        sheet.cell(total_row + 2, 1, "注：本表由各单位汇总后盖章报送。")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


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


def word_table(spec: FormSpec, title: str, unit: str, rows: list[tuple]) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(title)
    document.add_paragraph(f"汇总单位（公章）：{unit}        填写日期：2024年2月21日")
    table = document.add_table(rows=1, cols=len(spec.columns))
    for cell, column in zip(table.rows[0].cells, spec.columns, strict=True):
        cell.text = column.label
    for row in rows:
        cells = table.add_row().cells
        for cell, value in zip(cells, row, strict=True):
            cell.text = str(value)
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


def demo_samples(deadline: dt.datetime, titles: tuple[str, str]) -> list[Sample]:
    """The demo's mailbox, arranged around the campaign deadline."""
    t1, t2 = titles
    before = lambda hours: deadline - dt.timedelta(hours=hours)  # noqa: E731 - reads well here
    pdf, bare_pdf = scanned_pdf(seal=True), scanned_pdf(seal=False)
    samples: list[Sample] = []

    def add(name: str, raw: bytes, arrived: dt.datetime) -> None:
        samples.append(Sample(name, raw, arrived))

    jinan = ("济南市总工会", "jinan@example.cn")
    add("济南：Foxmail 发送，两张表 + 盖章 PDF，按时", mime_message(
        sender=jinan, subject="济南市总工会劳动竞赛项目申报", body="您好，附件为我单位汇总表，请查收。\n济南市总工会",
        attachments=[("附件1-竞赛项目汇总表（重点工程类）.xlsx", form_workbook(FORM1, t1, "济南市总工会", FORM1_ROWS)),
                     ("附件2-竞赛项目汇总表（技术技能类）.xlsx", form_workbook(FORM2, t2, "济南市总工会", FORM2_ROWS)),
                     ("济南市总工会盖章版.pdf", pdf)],
        style="rfc2047", date=before(72)), before(72))
    qingdao = ("青岛市总工会", "qingdao@example.cn")
    add("青岛：Outlook 发送 zip（GBK 文件名）", mime_message(
        sender=qingdao, subject="青岛市报送材料", body="请查收。",
        attachments=[("青岛市总工会报送材料.zip", gbk_zip({
            "青岛/附件1重点工程类.xlsx": form_workbook(FORM1, t1, "青岛市总工会", FORM1_ROWS[:1]),
            "青岛/盖章扫描件.pdf": pdf}))],
        style="rfc2231", date=before(50)), before(50))
    add("淄博：只有 Excel，缺盖章 PDF", mime_message(
        sender=("淄博市总工会", "zibo@example.cn"), subject="淄博市总工会竞赛项目", body="附件请查收",
        attachments=[("淄博市汇总表.xlsx", form_workbook(FORM2, t2, "淄博市总工会", FORM2_ROWS))],
        style="gbk8bit", date=before(30)), before(30))
    bad_rows = [("港口建设劳动竞赛", "枣庄港扩建工程", 5, 9, "约300", 100, Decimal("3.2"))]
    add("枣庄：表内有错（非公企业数大于企业数、人数写“约300”）", mime_message(
        sender=("枣庄市总工会", "zaozhuang@example.cn"), subject="枣庄市申报表", body="请审阅",
        attachments=[("枣庄市附件1.xlsx", form_workbook(FORM1, t1, "枣庄市总工会", bad_rows)), ("枣庄盖章.pdf", pdf)],
        date=before(20)), before(20))
    late = deadline + dt.timedelta(seconds=1)
    add("烟台：17:00:01 到达，逾期", mime_message(
        sender=("烟台市总工会", "yantai@example.cn"), subject="烟台市竞赛项目汇总表", body="抱歉晚了",
        attachments=[("烟台市附件2.xlsx", form_workbook(FORM2, t2, "烟台市总工会", FORM2_ROWS[:1])), ("烟台盖章.pdf", pdf)],
        date=late), late)
    add("潍坊：用个人邮箱发送，靠表内汇总单位认出", mime_message(
        sender=("王科长", "wang.kz@example.net"), subject="竞赛项目申报", body="潍坊市总工会 王科长",
        attachments=[("潍坊市附件1.xlsx", form_workbook(FORM1, t1, "潍坊市总工会", FORM1_ROWS[1:])), ("潍坊盖章.pdf", pdf)],
        date=before(10)), before(10))
    add("东营：自动回复（不应回信）", mime_message(
        sender=("东营市总工会", "dongying@example.cn"), subject="自动回复：竞赛项目征集", body="我现在不在办公室。",
        attachments=[], date=before(9), extra_headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}), before(9))
    add("济南：重新报送，替代之前的材料", mime_message(
        sender=jinan, subject="更正：济南市总工会劳动竞赛项目申报", body="更正后的材料，以此为准。",
        attachments=[("附件1-竞赛项目汇总表（重点工程类）更正.xlsx", form_workbook(FORM1, t1, "济南市总工会", FORM1_ROWS)),
                     ("附件2-竞赛项目汇总表（技术技能类）.xlsx", form_workbook(FORM2, t2, "济南市总工会", FORM2_ROWS)),
                     ("济南市总工会盖章版.pdf", pdf)],
        style="rfc2047", date=before(5)), before(5))
    inner = mime_message(
        sender=("省直机关工会", "szjg@example.cn"), subject="省直机关工会竞赛项目", body="请查收",
        attachments=[("省直机关附件2.docx", word_table(FORM2, t2, "山东省直机关工会", FORM2_ROWS[:1])), ("省直机关盖章.pdf", pdf)],
        date=before(4))
    add("省直机关：转发的邮件，Word 表格", forwarded(
        inner, sender=("省直机关工会", "szjg@example.cn"), subject="转发：省直机关工会竞赛项目", date=before(3)), before(3))
    add("泰安：彩色扫描件上没有公章", mime_message(
        sender=("泰安市总工会", "taian@example.cn"), subject="泰安市汇总表", body="请查收",
        attachments=[("泰安附件1.xlsx", form_workbook(FORM1, t1, "泰安市总工会", FORM1_ROWS[:1])), ("泰安扫描.pdf", bare_pdf)],
        date=before(2)), before(2))
    return samples
