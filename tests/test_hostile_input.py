"""Hostile mail, proven at the pipeline level: anyone can write to the mailbox.

Each case is a complete raw mail fed through `intake.pipeline.ingest` with the real
archive, database and parser worker. Each must end `processed` (never `quarantined`)
with the problem codes listed, within its timeout; after each, nothing but
content-addressed files may exist under the storage path. The cases share one App (one
database, one warm worker) so the corpus runs in seconds; the memory test at the end
reads the peak RSS of this process and of the worker over the whole corpus.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from intake.app import App
from intake.pipeline import Location, ingest
from intake.samples import sample_rows
from storage.models import Message, MessageState, ReplyKind, Submission, SubmissionStatus
from tests.fixtures import scans
from tests.fixtures.forms import encrypted_xlsx, entity_bomb_xlsx
from tests.support import archives
from tests.support import hostile as h
from tests.support.campaigns import FORM1
from tests.support.intake_env import intake_settings

SECONDS_PER_FILE = 20.0
CONTENT_ADDRESSED = re.compile(r"(files|mail)/([0-9a-f]{2})/\2[0-9a-f]{62}")
WORKER_CEILING_MB = 1536
MAIN_CEILING_MB = 1024


@dataclass(frozen=True)
class Case:
    build: Callable[[], bytes]
    codes: tuple[str, ...] = ()  # problem codes the submission must carry (others may join them)
    check: Callable[[Message], None] | None = None  # what else the case proves
    slow: bool = False
    timeout: float = 60


def _names(message: Message) -> list[str]:
    return [f.name for f in message.submission.files]


def _only_name(expected: str) -> Callable[[Message], None]:
    def check(message: Message) -> None:
        assert _names(message) == [expected]
    return check


def _kept_values(message: Message) -> None:
    assert len(message.submission.rows_of("form1")) == len(sample_rows(FORM1))


def _no_files(message: Message) -> None:
    assert _names(message) == []


def _only_the_archive(message: Message) -> None:
    """Every member refused: the archive sent is still listed (issue 13, item 5)."""
    files = message.submission.files
    assert files[0].name == "材料.zip" and {f.kind for f in files} <= {"zip", "7z", "rar"}


def _ignored(message: Message) -> None:
    assert message.submission.status is SubmissionStatus.IGNORED
    assert message.submission.reply is ReplyKind.NONE


def _pdf_read_inertly(message: Message) -> None:
    (pdf,) = message.submission.files
    assert (pdf.kind, pdf.pdf_pages, pdf.seal) == ("pdf", 1, True)


def _long_headers_kept_short(message: Message) -> None:
    assert len(message.subject) <= 2000
    _kept_values(message)


def _unusable_sender(message: Message) -> None:
    assert message.from_address is None
    assert message.submission.reply is ReplyKind.NONE
    _kept_values(message)


def _thousand_files(message: Message) -> None:
    # max_files_per_mail (50) are read; the rest are named by too_large problems.
    assert len(_names(message)) == 50
    assert sum(p.code == "too_large" for p in message.submission.problems) == 950


def _short_name(message: Message) -> None:
    (name,) = _names(message)
    assert len(name) <= 200
    _kept_values(message)


def _svg_inert(message: Message) -> None:
    assert sorted((f.name, f.kind) for f in message.submission.files) == [("图.svg", "other"), ("汇总表.xlsx", "xlsx")]


def _huge_page(message: Message) -> None:
    assert message.submission.files[0].pdf_pages == 1


def _calendar(ics: bytes, name: str | None) -> bytes:
    invite = h.part("text/calendar; method=REQUEST; charset=utf-8", ics, name=name)
    return h.raw_mail(h.multipart(h.text_part("会议邀请"), invite, subtype="alternative"))


ICS = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:\xe4\xbc\x9a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"


def _with_xlsx(*before: bytes, **options) -> bytes:  # noqa: ANN003 - multipart's options
    return h.multipart(*before, h.part("application/octet-stream", h.form1_xlsx(), name="汇总表.xlsx"), **options)


def _broken_boundary() -> bytes:
    entity = _with_xlsx(h.text_part(), boundary="real-boundary")
    return h.raw_mail(entity.replace(b'boundary="real-boundary"', b'boundary="declared-boundary"', 1))


def _eight_bit_headers() -> bytes:
    raw = h.raw_mail(_with_xlsx(h.text_part()), headers=(b"X-Mailer: \xff\xfe\x80\x81 \xc0\xc1",))
    raw = raw.replace(b"Subject: ", b"Subject: =?x-unknown-9?B?5rWL6K+V?= \xa4\xa4\xa4\xe5\xc0\xc1\xf5\xff ", 1)
    return raw.replace(b"From: ", b"From: \x8e\xa1\xfe\xfe ", 1)


def _long_header_lines() -> bytes:
    raw = h.raw_mail(_with_xlsx(h.text_part()), headers=(b"X-Padding: " + b"A" * 100_000,))
    return raw.replace(b"Subject: ", b"Subject: " + "长".encode() * 34_000, 1)


def _huge_page_pdf() -> bytes:
    import io

    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=(14_400, 14_400))  # 200 inches square: 30000 px at 150 dpi
    page.drawString(72, 72, "汇总表")
    page.showPage()
    page.save()
    return buffer.getvalue()


CASES: dict[str, Case] = {
    # --- archives
    "zip_bomb": Case(lambda: h.attach(("材料.zip", h.zip_bomb())), ("unsafe_file",), _only_the_archive),
    "nested_zips": Case(lambda: h.attach(("材料.zip", h.nested_zip(5))), ("unsafe_file",), _only_the_archive),
    "dotdot_path_in_zip": Case(lambda: h.attach(("材料.zip", h.zip_of({"../../etc/cron.d/汇总表.xlsx": h.form1_xlsx()}))),
                               ("unsafe_file",), _only_the_archive),
    "absolute_path_in_zip": Case(lambda: h.attach(("材料.zip", h.zip_of({"/etc/汇总表.xlsx": h.form1_xlsx()}))),
                                 ("unsafe_file",), _only_the_archive),
    "windows_drive_path_in_zip": Case(lambda: h.attach(("材料.zip", h.zip_of({"C:\\Windows\\汇总表.xlsx": h.form1_xlsx()}))),
                                      ("unsafe_file",), _only_the_archive),
    "nul_byte_in_zip_member_name": Case(lambda: h.attach(("材料.zip", h.zip_with_raw_name(b"evil.exe\x00.xlsx", b"MZ" + bytes(64)))),
                                        ("unsafe_file",), _only_the_archive),
    "zip_member_lying_about_its_size": Case(lambda: h.attach(("材料.zip", h.size_lying_zip())), ("unreadable_file",), _only_the_archive),
    "encrypted_zip_member": Case(lambda: h.attach(("材料.zip", h.encrypted_zip_member())), ("encrypted_file",), _only_the_archive),
    "rar_renamed_zip": Case(lambda: h.attach(("材料.zip", h.rar_file())), ("unreadable_file",), _only_the_archive),
    "rar_inside_zip": Case(lambda: h.attach(("材料.zip", h.zip_of({"表.rar": h.rar_file(), "汇总表.xlsx": h.form1_xlsx()}))),
                           ("unreadable_file", "missing_pdf"), _kept_values),
    "7z_bomb": Case(lambda: h.attach(("材料.7z", archives.seven_zip({"汇总表.xlsx": bytes(50 * h.MB)}))), ("unsafe_file",),
                    _only_name("材料.7z")),
    "dotdot_path_in_rar": Case(lambda: h.attach(("材料.rar", archives.rar5({"../../etc/汇总表.xlsx": h.form1_xlsx()}))),
                               ("unsafe_file",), _only_name("材料.rar")),
    "truncated_winmail_dat": Case(lambda: h.attach(("winmail.dat", h.truncated(archives.tnef([("汇总表.xlsx", h.form1_xlsx())])))),
                                  ("unreadable_file",)),
    # --- workbooks and documents
    "xml_entity_bomb_in_xlsx": Case(lambda: h.attach(("汇总表.xlsx", entity_bomb_xlsx())), ("unsafe_file",)),
    "truncated_xlsx": Case(lambda: h.attach(("汇总表.xlsx", h.truncated(h.form1_xlsx()))), ("unreadable_file",)),
    "office_encrypted_xlsx": Case(lambda: h.attach(("汇总表.xlsx", encrypted_xlsx())), ("encrypted_file",)),
    "exe_renamed_xlsx": Case(lambda: h.attach(("汇总表.xlsx", b"MZ\x90\x00" + bytes(4096))), ("unsafe_file",)),
    "xlsm_with_vba_project": Case(lambda: h.attach(("汇总表.xlsm", h.xlsm_with_macro())), ("missing_pdf",), _kept_values),
    "docx_with_external_entity": Case(lambda: h.attach(("汇总表.docx", h.xxe_docx())), ("unsafe_file",)),
    "xlsx_with_huge_shared_strings": Case(lambda: h.attach(("汇总表.xlsx", h.shared_strings_xlsx(1_000_000))),
                                          ("missing_pdf",), _kept_values, slow=True),
    "zero_byte_attachment": Case(lambda: h.attach(("汇总表.xlsx", b"")), ("unreadable_file",)),
    # --- PDFs
    "truncated_pdf": Case(lambda: h.attach(("扫描件.pdf", scans.truncated_pdf())), ("unreadable_file",)),
    "encrypted_pdf": Case(lambda: h.attach(("扫描件.pdf", scans.encrypted_pdf())), ("encrypted_file",)),
    "pdf_with_javascript_and_launch": Case(lambda: h.attach(("扫描件.pdf", scans.active_content_pdf())),
                                           ("missing_editable",), _pdf_read_inertly),
    "pdf_of_200_pages": Case(lambda: h.attach(("扫描件.pdf", scans.many_pages_pdf(200))), ("too_large",)),
    "pdf_that_is_html": Case(lambda: h.attach(("扫描件.pdf", b"<html><script>alert(1)</script></html>")), ("unreadable_file",)),
    "pdf_page_200_inches_square": Case(lambda: h.attach(("扫描件.pdf", _huge_page_pdf()), ("汇总表.xlsx", h.form1_xlsx())),
                                       ("seal_not_found",), _huge_page),
    "svg_with_script": Case(lambda: h.attach(("图.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
                                             ("汇总表.xlsx", h.form1_xlsx())), ("missing_pdf",), _svg_inert),
    # --- size
    "attachment_of_60_mb": Case(lambda: h.attach(("扫描件.pdf", b"%PDF-1.4\n" + bytes(60 * h.MB))), ("too_large",), _no_files,
                                slow=True),
    "message_of_50_mb": Case(lambda: h.attach(("扫描件.pdf", b"%PDF-1.4\n" + bytes(37 * h.MB))), ("too_large",), slow=True),
    "thousand_tiny_attachments": Case(lambda: h.attach(*((f"说明{n}.txt", b"x") for n in range(1000))),
                                      ("missing_pdf", "missing_editable", "too_large"), _thousand_files),
    # --- file names
    "dotdot_path_in_mime_name": Case(lambda: h.attach(("../../etc/passwd.xlsx", h.form1_xlsx())), ("missing_pdf",),
                                     _only_name("passwd.xlsx")),
    "absolute_windows_path_in_mime_name": Case(lambda: h.attach(("C:\\Windows\\System32\\汇总表.xlsx", h.form1_xlsx())),
                                               ("missing_pdf",), _only_name("汇总表.xlsx")),
    "nul_byte_in_mime_name": Case(lambda: h.attach(("evil\x00.exe.xlsx", h.form1_xlsx())), ("missing_pdf",),
                                  _only_name("evil.exe.xlsx")),
    "name_of_5000_characters": Case(lambda: h.attach(("表" * 5000 + ".xlsx", h.form1_xlsx())), ("missing_pdf",), _short_name),
    # --- MIME structure and headers
    "header_lines_of_100_kb": Case(_long_header_lines, ("missing_pdf",), _long_headers_kept_short),
    "broken_mime_boundary": Case(_broken_boundary, ("unreadable_file",), _no_files),
    "multipart_without_boundary": Case(lambda: h.raw_mail(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n"),
                                       ("unreadable_file",), _no_files),
    "multipart_cut_off_mid_attachment": Case(lambda: h.raw_mail(_with_xlsx(h.text_part(), close=False)[:-300]),
                                             ("unreadable_file",)),
    "eight_bit_headers_in_unknown_charset": Case(_eight_bit_headers, ("missing_pdf",), _unusable_sender),
    "html_only_body": Case(lambda: h.raw_mail(h.part("text/html; charset=utf-8", "<p>请查收</p><script>x()</script>".encode(), cte="8bit")),
                           ("no_attachments",)),
    "calendar_invite": Case(lambda: _calendar(ICS, "invite.ics"), ("unsupported_file",), _no_files),
    "calendar_invite_without_a_name": Case(lambda: _calendar(ICS, None), ("unsupported_file",), _no_files),
    "tnef_winmail_dat": Case(lambda: h.raw_mail(h.multipart(h.text_part(), h.part("application/ms-tnef", b"\x78\x9f\x3e\x22" + bytes(256),
                                                                                  name="winmail.dat"))),
                             ("unsupported_file",), _no_files),
    "multipart_nested_2000_deep": Case(lambda: h.raw_mail(h.nested_multipart(2000, h.part("application/pdf", b"%PDF", name="a.pdf"))),
                                       ("unsafe_file",), _no_files),
    "forwarded_2000_times": Case(lambda: h.raw_mail(h.nested_forwards(2000, h.text_part())), ("unsafe_file",), _no_files),
    "base64_garbage": Case(lambda: h.raw_mail(h.multipart(h.part("application/octet-stream", b"!!**%%\r\n@@==abc\xff\xfe\r\n",
                                                                 name="汇总表.xlsx", cte="8bit").replace(b"8bit", b"base64"))),
                           ("unreadable_file",)),
    "unknown_transfer_encoding": Case(lambda: h.raw_mail(h.multipart(h.part("application/octet-stream", h.form1_xlsx(),
                                                                            name="汇总表.xlsx").replace(b"Encoding: base64", b"Encoding: x-gzip64"))),
                                      ("unreadable_file",)),
    "empty_message": Case(lambda: b"", (), _ignored),
    "binary_noise_instead_of_a_message": Case(lambda: bytes(range(256)) * 64, (), _ignored),
}


class Corpus:
    """Runs each case once through one App and remembers the peak memory seen."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.uids = itertools.count(1)
        self.done: set[str] = set()
        self.worker_peak_kb = 0

    def run(self, name: str) -> Message:
        raw = CASES[name].build()
        outcome = ingest(self.app, raw, h.SENT, Location(self.app.account, "INBOX", 1, next(self.uids)))
        self.done.add(name)
        self._sample_worker()
        with self.app.db.session() as session:
            message = session.get(Message, outcome.message_pk)
            assert message is not None and message.submission is not None
            return _loaded(session, message)

    def run_rest(self) -> None:
        for name in CASES.keys() - self.done:
            self.run(name)

    def _sample_worker(self) -> None:
        for pid in self.app.worker_pids():
            self.worker_peak_kb = max(self.worker_peak_kb, vm_hwm_kb(pid))


def _loaded(session, message: Message) -> Message:  # noqa: ANN001
    """The message with everything the checks read loaded, usable after the session ends."""
    submission = message.submission
    for relation in (submission.files, submission.problems, submission.rows):
        list(relation)
    session.expunge(message)
    return message


def vm_hwm_kb(pid: int | str) -> int:
    """Peak resident set size of a process (Linux /proc), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def stored_paths(root: Path) -> Iterator[str]:
    return (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    settings = intake_settings(tmp_path_factory.mktemp("hostile"), limits={"seconds_per_file": SECONDS_PER_FILE})
    with App(settings) as app:
        yield Corpus(app)


def _param(name: str) -> pytest.param:
    case = CASES[name]
    marks = [pytest.mark.timeout(case.timeout), *([pytest.mark.slow] if case.slow else [])]
    return pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", [_param(name) for name in CASES])
def test_hostile_mail_ends_processed_with_its_problem_recorded(corpus: Corpus, name: str) -> None:
    message = corpus.run(name)
    assert message.state is MessageState.PROCESSED, message.error
    recorded = {p.code for p in message.submission.problems}
    assert set(CASES[name].codes) <= recorded, sorted(recorded)
    if CASES[name].check:
        CASES[name].check(message)
    root = corpus.app.archive.root
    escaped = [path for path in stored_paths(root) if not CONTENT_ADDRESSED.fullmatch(path)]
    assert escaped == []


@pytest.mark.timeout(300)
def test_every_archived_file_is_named_by_its_own_sha256(corpus: Corpus) -> None:
    corpus.run_rest()
    root = corpus.app.archive.root
    paths = list(stored_paths(root))
    assert paths
    for path in paths:
        assert CONTENT_ADDRESSED.fullmatch(path), path
        assert hashlib.sha256((root / path).read_bytes()).hexdigest() == path.rsplit("/", 1)[1]


@pytest.mark.timeout(300)
def test_memory_stays_bounded_over_the_corpus(corpus: Corpus) -> None:
    corpus.run_rest()
    main_mb, worker_mb = vm_hwm_kb("self") / 1024, corpus.worker_peak_kb / 1024
    print(f"\nhostile corpus ({len(CASES)} mails): peak RSS main {main_mb:.0f} MB, parser worker {worker_mb:.0f} MB")
    assert 0 < worker_mb < WORKER_CEILING_MB
    assert main_mb < MAIN_CEILING_MB
