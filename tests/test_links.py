"""Large-attachment links (超大附件): recognised in real-shaped bodies, recorded as files of
kind `link`, answered as received (never 【材料不全】), shown to staff; fetched only from
the providers' hosts within byte and time limits (a local server imitates the link page)."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import threading
import uuid
from collections.abc import Iterator
from email.utils import format_datetime, make_msgid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.export import export_document
from intake.links import CHINA, LinkFetchError, fetch_link, find_links
from intake.runs import poll_once
from intake.samples import form_workbook
from notifications.digest import attention_groups
from intake.board import build_board
from tests.support.campaigns import FORM1
from storage.models import OutboxItem, Submission, SubmissionStatus
from tests.fixtures.link_bodies import FORWARDED_TEXT, NETEASE_HTML, NETEASE_TEXT, QQ_HTML
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings
from tests.support.smtp import SmtpSink

NETEASE_PDF = "https://mail.163.com/large-attachment-download/index.html?p=X1&file=AbC123"
NETEASE_XLSX = "https://dashi.163.com/html/cloud-attachment-download/?key=K9zz"
QQ_PDF = "https://wx.mail.qq.com/ftn/download?func=3&k=a1b2c3&key=d4e5f6&code=77aa"
QQ_ZIP = "https://mail.qq.com/cgi-bin/ftnExs_download?t=exs_ftn_download&k=0f0e&code=99"


def facts(bodies: list[tuple[str, str]]) -> list[tuple]:
    return [(link.url, link.name, link.size, link.expires_at) for link in find_links(bodies)]


def test_163_html_block_yields_each_file_with_name_size_and_expiry() -> None:
    expiry = dt.datetime(2024, 3, 20, 10, 35, tzinfo=CHINA)
    assert facts([("text/html", NETEASE_HTML)]) == [
        (NETEASE_PDF, "盖章扫描件.pdf", round(58.21 * 1024**2), expiry),
        (NETEASE_XLSX, "附件1-竞赛项目汇总表（重点工程类）.xlsx", 2560, expiry),
    ]


def test_qq_html_block_reads_each_title_for_its_own_link() -> None:
    expiry = dt.datetime(2024, 3, 26, 17, 33, tzinfo=CHINA)
    assert facts([("text/html", QQ_HTML)]) == [
        (QQ_PDF, "盖章扫描件.pdf", round(120.5 * 1024**2), expiry),
        (QQ_ZIP, "报送材料.zip", 300 * 1024**2, expiry),
    ]


def test_plain_text_and_forwarded_bodies_are_read_alike() -> None:
    assert facts([("text/plain", NETEASE_TEXT)]) == [
        (NETEASE_PDF, "盖章扫描件.pdf", round(58.21 * 1024**2), dt.datetime(2024, 3, 20, 10, 35, tzinfo=CHINA))]
    assert facts([("text/plain", FORWARDED_TEXT)]) == [
        (QQ_PDF, "盖章扫描件.pdf", round(120.5 * 1024**2), dt.datetime(2024, 3, 26, 17, 33, tzinfo=CHINA))]


def test_the_same_link_in_text_and_html_is_one_link() -> None:
    assert [f[0] for f in facts([("text/plain", NETEASE_TEXT), ("text/html", NETEASE_HTML)])] == [NETEASE_PDF, NETEASE_XLSX]


def test_lookalike_hosts_and_paths_are_not_provider_links() -> None:
    body = ("盖章扫描件.pdf (1M, 2024年3月20日 10:35 到期) https://mail.163.com.evil.example/large-attachment-download/x "
            "https://evil.example/ftn/download?k=1 https://mail.qq.com/cgi-bin/frame_html?x=1")
    assert find_links([("text/plain", body)]) == []


# --- through Dovecot: recorded, answered as received, shown to staff ----------------------


def link_mail(*, html: str, text: str, attachments: list[tuple[str, bytes]], date: dt.datetime) -> bytes:
    """A 163 webmail mail: multipart/mixed of (text + HTML alternative) and attachments."""
    def b64(data: bytes) -> str:
        return base64.encodebytes(data).decode().replace("\n", "\r\n")
    lines = [
        "From: =?UTF-8?B?" + base64.b64encode("济南市总工会".encode()).decode() + "?= <jinan@example.cn>",
        "To: intake@example.org", "Subject: =?UTF-8?B?" + base64.b64encode("竞赛项目申报（超大附件）".encode()).decode() + "?=",
        f"Date: {format_datetime(date)}", f"Message-ID: {make_msgid(domain='example.cn')}", "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="MIX"', "", "--MIX", 'Content-Type: multipart/alternative; boundary="ALT"', "",
        "--ALT", "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: base64", "", b64(text.encode()),
        "--ALT", "Content-Type: text/html; charset=UTF-8", "Content-Transfer-Encoding: base64", "", b64(html.encode()),
        "--ALT--",
    ]
    for name, data in attachments:
        encoded = base64.b64encode(name.encode()).decode()
        lines += ["--MIX", f'Content-Type: application/octet-stream; name="=?UTF-8?B?{encoded}?="',
                  f'Content-Disposition: attachment; filename="=?UTF-8?B?{encoded}?="', "Content-Transfer-Encoding: base64", "",
                  b64(data)]
    lines.append("--MIX--")
    return "\r\n".join(lines).encode()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"links-{uuid.uuid4().hex[:12]}@example.org")


def test_a_linked_pdf_beside_the_form_awaits_download_and_is_never_called_missing(
        tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink) -> None:
    arrived = DEADLINE - dt.timedelta(hours=5)
    pdf_only_html = NETEASE_HTML.split('<div style="clear:both;height:36px;padding:6px 4px;"><div style="float:left;width:36px;"><a href="https://dashi')[0]
    xlsx = form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会")
    mailbox.append(link_mail(html=pdf_only_html, text=NETEASE_TEXT, attachments=[("附件1.xlsx", xlsx)], date=arrived), arrived)
    settings = intake_settings(tmp_path, dovecot=mailbox, smtp={
        "mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
        "from_address": "intake@example.org"})
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            submission = session.scalars(select(Submission)).one()
            assert submission.status is SubmissionStatus.AWAITING_DOWNLOAD
            assert {p.code for p in submission.problems} >= {"link_pending"}
            assert "missing_pdf" not in {p.code for p in submission.problems}
            (link,) = [f for f in submission.files if f.kind == "link"]
            assert (link.name, link.url) == ("盖章扫描件.pdf", NETEASE_PDF)
            exported = {f["kind"]: f for f in export_document(session, settings)["submissions"][0]["files"]}
            assert exported["link"]["url"] == NETEASE_PDF
            assert exported["link"]["expires_at"] == "2024-03-20T02:35:00+00:00"
            board = build_board(session, settings)
            (row,) = [r for r in board.rows if r.name == "济南市总工会"]
            assert row.state.value == "awaiting_download"
            groups = {g.key or g.title: g.items for g in attention_groups(session, board)}
            (pending,) = [items for items in groups.values() if any("超大附件《盖章扫描件.pdf》" in i for i in items)]
            assert "2024-03-20 10:35 到期" in pending[0] and NETEASE_PDF in pending[0]
            assert session.scalars(select(OutboxItem)).one().subject.startswith("【已收到链接】")
    (reply,) = smtp_sink.wait_for(1)
    message = email.message_from_bytes(reply.data, policy=email.policy.default)
    assert message["Subject"].startswith("【已收到链接】")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "将由工作人员下载" in text and "盖章扫描件.pdf" in text and "材料不全" not in text


# --- the downloader, against a local server imitating the link page ----------------------


class _LinkSite(BaseHTTPRequestHandler):
    payload = b"%PDF-1.4 scanned form\n" * 100

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/large-attachment-download/"):
            body = b'<html><body><a class="btn" download href="/file?id=1">\xe4\xb8\x8b\xe8\xbd\xbd</a></body></html>'
            self._send(200, "text/html; charset=utf-8", body)
        elif self.path.startswith("/file"):
            self._send(200, "application/octet-stream", self.payload,
                       {"Content-Disposition": "attachment; filename*=UTF-8''%E7%9B%96%E7%AB%A0.pdf"})
        elif self.path.startswith("/elsewhere"):
            self._send(302, "text/plain", b"", {"Location": "http://attacker.invalid/steal"})
        else:
            self._send(404, "text/plain", b"gone")

    def _send(self, code: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def link_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LinkSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


LOCAL = frozenset({"127.0.0.1"})


def test_the_landing_page_is_followed_to_the_file(link_site: str) -> None:
    fetched = fetch_link(f"{link_site}/large-attachment-download/index.html?file=AbC", max_bytes=10_000,
                         seconds=10, hosts=LOCAL)
    assert (fetched.data, fetched.name) == (_LinkSite.payload, "盖章.pdf")


def test_a_file_over_the_byte_cap_is_not_kept(link_site: str) -> None:
    with pytest.raises(LinkFetchError, match="上限"):
        fetch_link(f"{link_site}/file?id=1", max_bytes=len(_LinkSite.payload) - 1, seconds=10, hosts=LOCAL)


def test_only_allowed_hosts_are_contacted_even_through_a_redirect(link_site: str) -> None:
    with pytest.raises(LinkFetchError, match="未允许"):
        fetch_link(f"{link_site}/file?id=1", max_bytes=10_000, seconds=10, hosts=frozenset({"mail.163.com"}))
    with pytest.raises(LinkFetchError, match="未允许"):
        fetch_link(f"{link_site}/elsewhere", max_bytes=10_000, seconds=10, hosts=LOCAL)


def test_an_expired_link_says_so(link_site: str) -> None:
    with pytest.raises(LinkFetchError, match="HTTP 404"):
        fetch_link(f"{link_site}/gone", max_bytes=10_000, seconds=10, hosts=LOCAL)
