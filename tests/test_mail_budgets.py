"""Budgets per mail, end to end through a real Dovecot: what one mail may cost in files
read, seconds and unpacked bytes, whatever it carries, so one mail cannot hold the poll.

Each test delivers a hostile mail followed by an ordinary submission and polls once the
way `intake poll` does; the hostile mail must end processed with `too_large` (or
`unsafe_file`) problems naming the files left unread, and the next mail in the same poll
must be processed too.
"""

from __future__ import annotations

import os
import tracemalloc
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.pipeline import Location, process_message, record_message
from intake.runs import poll_once
from storage.models import Message, MessageState, ProblemRecord, StoredFile
from tests.support import hostile as h
from tests.support.dovecot import Dovecot
from tests.support.intake_env import intake_settings, submission_mail


def dense_lines_pdf(lines: int = 20_000) -> bytes:
    """One page of `lines` stroked line segments (~150 KB) and one word: seconds of work
    for the PDF reader's table detection, which is what makes it a cheap way to hold a
    parser (the word makes it a text PDF: one without text is not given to that reader)."""
    ops = "BT /F1 12 Tf 50 800 Td (x) Tj ET\n" + "".join(
        f"{i % 595} {(i * 7) % 842} m {(i * 13) % 595} {(i * 3) % 842} l S\n" for i in range(lines))
    stream = zlib.compress(ops.encode(), 9)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
               b" /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"budget-{uuid.uuid4().hex[:12]}@example.org")


def poll_hostile_then_ordinary(tmp_path: Path, mailbox: Dovecot, hostile: bytes, **limits: float) -> list[Message]:
    """Deliver the hostile mail, then a valid submission; one poll; the messages in UID order."""
    mailbox.append(hostile)
    mailbox.append(submission_mail())
    settings = intake_settings(tmp_path, dovecot=mailbox, limits=limits, parsing={"seal_detection": False})
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            messages = session.scalars(select(Message).order_by(Message.uid)).all()
            for message in messages:
                list(message.submission.files), list(message.submission.problems)
            session.expunge_all()
    return messages


def problems(message: Message, code: str) -> list[ProblemRecord]:
    return [p for p in message.submission.problems if p.code == code]


def files(message: Message) -> list[StoredFile]:
    """The files read (archives sent are listed too, apart)."""
    return [f for f in message.submission.files if f.kind != "zip"]


def assert_next_mail_processed(messages: list[Message]) -> None:
    assert len(messages) == 2
    ordinary = messages[1]
    assert ordinary.state is MessageState.PROCESSED, ordinary.error
    assert sorted(f.kind for f in files(ordinary)) == ["pdf", "xlsx"]


@pytest.mark.timeout(180)
def test_thirty_slow_pdfs_stop_at_the_mails_time_budget_and_the_next_mail_is_processed(
    tmp_path: Path, mailbox: Dovecot
) -> None:
    pdf = dense_lines_pdf()
    hostile = h.attach(*((f"扫描件{n}.pdf", pdf) for n in range(30)))
    messages = poll_hostile_then_ordinary(tmp_path, mailbox, hostile, seconds_per_file=2, max_seconds_per_mail=5)
    slow = messages[0]
    assert slow.state is MessageState.PROCESSED, slow.error
    over_time = [p for p in problems(slow, "too_large") if "本邮件处理时间超过 5 秒" in p.message]
    read = {f.name for f in files(slow)}
    unread = {p.file for p in over_time}
    # Every file is a stored report or named by a time-budget problem (the one cut short
    # is both); the mail's tail was never read.
    assert read | unread == {f"扫描件{n}.pdf" for n in range(30)}
    assert "扫描件29.pdf" in unread - read and len(read) < 30
    assert all(p.message.startswith(f"《{p.file}》未读取") for p in over_time)
    assert_next_mail_processed(messages)


@pytest.mark.timeout(120)
def test_files_beyond_max_files_per_mail_are_recorded_as_too_large(tmp_path: Path, mailbox: Dovecot) -> None:
    hostile = h.attach(*((f"说明{n}.txt", b"x") for n in range(12)))
    messages = poll_hostile_then_ordinary(tmp_path, mailbox, hostile, max_files_per_mail=5)
    many = messages[0]
    assert many.state is MessageState.PROCESSED, many.error
    assert [f.name for f in files(many)] == [f"说明{n}.txt" for n in range(5)]
    refused = problems(many, "too_large")
    assert [p.file for p in refused] == [f"说明{n}.txt" for n in range(5, 12)]
    assert all("本邮件附件超过 5 个" in p.message for p in refused)
    assert_next_mail_processed(messages)


@pytest.mark.timeout(120)
def test_ten_zips_share_one_unpack_budget(tmp_path: Path, mailbox: Dovecot) -> None:
    # Each zip holds 4 members, well within max_zip_members=10 on its own; the mail's ten
    # zips hold 40, so all members past the tenth are refused.
    zips = [(f"材料{z}.zip", h.zip_of({f"表{z}-{m}.txt": f"{z}-{m}".encode() for m in range(4)})) for z in range(10)]
    messages = poll_hostile_then_ordinary(tmp_path, mailbox, h.attach(*zips), max_zip_members=10)
    zipped = messages[0]
    assert zipped.state is MessageState.PROCESSED, zipped.error
    assert len(files(zipped)) == 10
    assert {f.parent for f in files(zipped)} == {"材料0.zip", "材料1.zip", "材料2.zip"}
    refused = problems(zipped, "unsafe_file")
    assert {p.file for p in refused} == {f"材料{z}.zip" for z in range(2, 10)}
    assert_next_mail_processed(messages)


@pytest.mark.timeout(120)
def test_ten_zips_share_one_budget_of_unpacked_bytes(tmp_path: Path, mailbox: Dovecot) -> None:
    # 1 MB of incompressible bytes per zip: each alone is under max_unpacked_bytes (3 MB),
    # the mail's ten together are not.
    zips = [(f"材料{z}.zip", h.zip_of({f"表{z}.bin": uuid.uuid4().bytes * (h.MB // 16)}, method=0)) for z in range(10)]
    messages = poll_hostile_then_ordinary(tmp_path, mailbox, h.attach(*zips), max_unpacked_bytes=3 * h.MB + 1024)
    zipped = messages[0]
    assert zipped.state is MessageState.PROCESSED, zipped.error
    assert [f.parent for f in files(zipped)] == ["材料0.zip", "材料1.zip", "材料2.zip"]
    assert {p.file for p in problems(zipped, "unsafe_file")} >= {f"材料{z}.zip/表{z}.bin" for z in range(3, 10)}
    assert_next_mail_processed(messages)


def test_unpacked_members_are_archived_and_read_from_disk(tmp_path: Path, mailbox: Dovecot) -> None:
    member = b"unpacked member " + uuid.uuid4().bytes
    messages = poll_hostile_then_ordinary(tmp_path, mailbox, h.attach(("材料.zip", h.zip_of({"说明.txt": member}))))
    (stored,) = files(messages[0])
    assert (tmp_path / "files" / "files" / stored.sha256[:2] / stored.sha256).read_bytes() == member


@pytest.mark.timeout(120)
def test_large_mail_is_fetched_one_at_a_time(tmp_path: Path, mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    from intake import mailbox as imap
    from intake import poller

    small = [submission_mail(subject=f"小 {n}") for n in range(3)]
    large = [h.attach((f"扫描件{n}.pdf", b"%PDF-1.4\n" + uuid.uuid4().bytes * (4 * h.MB // 16))) for n in range(3)]
    for raw in [*small, *large]:
        mailbox.append(raw)
    fetched_together: list[list[int]] = []
    real_fetch = imap.fetch

    def spy(client, uids):  # noqa: ANN001, ANN202 - the real FETCH, recording what was asked together
        fetched_together.append(list(uids))
        return real_fetch(client, uids)

    monkeypatch.setattr(imap, "fetch", spy)
    monkeypatch.setattr(poller, "FETCH_BYTES", 4 * h.MB)
    with App(intake_settings(tmp_path, dovecot=mailbox, parsing={"seal_detection": False})) as app:
        report = poll_once(app)
    assert report.new == 6
    # The three small mails (~60 KB each) in one FETCH; each ~5.5 MB mail alone.
    assert sorted(map(len, fetched_together)) == [1, 1, 1, 3]


def test_a_large_mail_is_never_read_whole_or_parsed_in_the_poller_process(tmp_path: Path) -> None:
    # The stdlib parser holds ~8 times a mail's size; in the poller that was 455 MB for a
    # 59 MB mail. Now the poller reads the header block and a parser process the rest:
    # everything the poller allocates while processing stays far below the mail's size.
    scan = b"%PDF-1.4\n" + os.urandom(22 * h.MB)
    raw = h.attach(("扫描件.pdf", scan), ("汇总表.xlsx", h.form1_xlsx()))
    size = len(raw)
    assert size > 30 * h.MB
    settings = intake_settings(tmp_path, parsing={"seal_detection": False})
    with App(settings) as app:
        message, _created = record_message(app, raw, h.SENT, Location("test", "INBOX", source_key="large"))
        del raw  # the fetched bytes: held once, before processing starts
        tracemalloc.start()  # traces this process only, not the parser processes
        try:
            outcome = process_message(app, message.id)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        with app.db.session() as session:
            stored = sorted(f.name for f in session.get(Message, message.id).submission.files)
    assert outcome.state is MessageState.PROCESSED
    assert stored == ["扫描件.pdf", "汇总表.xlsx"]  # the parser process read it all
    assert peak < size // 10, f"poller allocated {peak / h.MB:.1f} MB for a {size / h.MB:.1f} MB mail"


def all_header_mail(lines: int) -> bytes:
    """A mail that is nearly all header: `lines` short header lines after the real ones.
    The stdlib parser keeps a few hundred bytes per header line."""
    return h.raw_mail(h.text_part(), headers=(b"X-Padding: a\r\n" * lines).rstrip(b"\r\n").split(b"\r\n"))


@pytest.mark.timeout(180)
def test_a_mail_whose_parse_exhausts_the_parser_process_is_recorded_and_the_next_mail_is_processed(
    tmp_path: Path, mailbox: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intake.app

    # 25 MB of header lines cost the parser ~10 times that; the parser process may grow by 150 MB.
    monkeypatch.setattr(intake.app, "WORKER_MEMORY_MB", 150)
    messages = poll_hostile_then_ordinary(tmp_path, mailbox, all_header_mail(1_800_000))
    hostile = messages[0]
    assert hostile.state is MessageState.PROCESSED, hostile.error
    assert hostile.from_address == "jinan@example.cn"  # the ledger read only the capped header block
    (problem,) = problems(hostile, "too_large")
    assert problem.message.startswith("邮件过大或结构异常，读取时占用内存超过上限")
    assert files(hostile) == []
    assert_next_mail_processed(messages)
