"""Phone photos of the stamped form as the stamped copy: upright, seal-checked, kept as a
PDF, counted as the scan, named as a photo in the reply; end to end through a real Dovecot."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from config.settings import LimitsSettings, ParsingSettings
from intake.app import App
from intake.decide import completeness
from intake.export import export_document
from intake.runs import poll_once
from intake.samples import form_workbook, mime_message, sample_rows
from parsers.dispatch import parse_file
from parsers.model import FileKind, FileReport, ProblemCode, report_from_json, report_to_json
from storage.models import OutboxItem
from tests.fixtures import shapes
from tests.support.campaigns import DEFAULT_FORMS, FORM1
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings

PHOTOS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpg_exif_6": ("盖章件.jpg", shapes.jpeg_rotated),
    "png": ("盖章件.png", shapes.png),
    "heic": ("IMG_0042.HEIC", shapes.heic),
}


def _parse(data: bytes, name: str, **parsing: object) -> FileReport:
    return parse_file(data, name, limits=LimitsSettings(), parsing=ParsingSettings(**parsing), forms=DEFAULT_FORMS)


def _page_size(pdf: bytes) -> tuple[float, float]:
    document = pdfium.PdfDocument(pdf)
    try:
        assert len(document) == 1
        return document[0].get_size()
    finally:
        document.close()


@pytest.mark.parametrize(("name", "build"), PHOTOS.values(), ids=PHOTOS.keys())
def test_a_photo_of_the_stamped_form_is_the_stamped_copy(name: str, build: Callable[[], bytes]) -> None:
    report = _parse(build(), name)
    assert report.kind is FileKind.PHOTO
    assert report.pdf is not None and report.pdf.seal is True
    assert [p.code for p in report.problems] == [ProblemCode.PHOTO_NOT_PDF]
    assert report.problems[0].message.startswith(f"《{name}》是照片而不是扫描的 PDF，已按盖章件处理")
    assert report.derived_pdf is not None and report.derived_pdf.startswith(b"%PDF")


def test_the_exif_orientation_is_applied_before_the_pdf_is_made() -> None:
    stored = shapes.jpeg_rotated()
    from PIL import Image

    with Image.open(io.BytesIO(stored)) as image:
        assert image.height > image.width  # stored on its side
    width, height = _page_size(_parse(stored, "盖章件.jpg").derived_pdf)
    assert width > height  # the landscape form, upright
    assert round(height / 72 * 25.4) == 210  # A4 across the short side


def test_a_photo_without_a_seal_says_so() -> None:
    report = _parse(shapes.jpeg_rotated(seal=False), "未盖章.jpg")
    assert report.pdf is not None and report.pdf.seal is False
    assert [p.code for p in report.problems] == [ProblemCode.PHOTO_NOT_PDF, ProblemCode.SEAL_NOT_FOUND]


def test_with_photos_as_scan_off_a_photo_stays_an_image() -> None:
    report = _parse(shapes.jpeg_rotated(), "盖章件.jpg", photos_as_scan=False)
    assert (report.kind, report.pdf, report.derived_pdf, report.problems) == (FileKind.IMAGE, None, None, [])


def test_a_signature_logo_is_not_taken_for_a_photo_of_the_form() -> None:
    report = _parse(shapes.signature_logo(), "image001.png")
    assert (report.kind, report.derived_pdf, report.problems) == (FileKind.IMAGE, None, [])


def test_a_decompression_bomb_is_not_decoded() -> None:
    """A PNG header claiming 100000 × 100000 pixels (30 GB decoded) with one tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    report = _parse(bomb, "bomb.png")
    assert (report.kind, report.derived_pdf) == (FileKind.IMAGE, None)


def test_the_derived_pdf_survives_the_worker_round_trip() -> None:
    report = _parse(shapes.png(), "盖章件.png")
    assert report_from_json(report_to_json(report)).derived_pdf == report.derived_pdf


def test_a_photo_counts_as_the_scan_for_completeness() -> None:
    photo = FileReport("盖章件.jpg", FileKind.PHOTO, "0" * 64, 1)
    image = FileReport("image001.png", FileKind.IMAGE, "1" * 64, 1)
    assert completeness([photo]).has_pdf is True
    assert completeness([image]).has_pdf is False


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, dovecot: Dovecot) -> Iterator[tuple[App, Dovecot]]:
    mailbox = dovecot.add_user(f"photos-{uuid.uuid4().hex[:12]}@example.org")
    with App(intake_settings(tmp_path, dovecot=mailbox)) as application:
        yield application, mailbox


@pytest.mark.parametrize(("name", "build"), PHOTOS.values(), ids=PHOTOS.keys())
def test_a_workbook_and_a_photo_through_the_mailbox_are_accepted(app: tuple[App, Dovecot], name: str,
                                                                 build: Callable[[], bytes]) -> None:
    application, mailbox = app
    when = DEADLINE - dt.timedelta(days=1)
    workbook = form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会", sample_rows(FORM1))
    mailbox.append(mime_message(sender=("济南市总工会", "jinan@example.cn"), subject="济南市总工会竞赛项目申报",
                                body="请查收。", attachments=[("附件1.xlsx", workbook), (name, build())], date=when), when)

    poll_once(application)

    with application.db.session() as session:
        (submission,) = export_document(session, application.settings)["submissions"]
        (reply,) = session.scalars(select(OutboxItem)).all()
        body = email.message_from_bytes(reply.raw, policy=email.policy.default).get_body(("plain",)).get_content()
    assert submission["status"] == "accepted"
    assert [(f["name"], f["kind"], f["seal"]) for f in submission["files"]] == [("附件1.xlsx", "xlsx", None),
                                                                               (name, "photo", True)]
    assert (submission["has_pdf"], submission["seal"], len(submission["form1_rows"])) == (True, True, len(sample_rows(FORM1)))
    assert [(p["code"], p["severity"]) for p in submission["problems"]] == [("photo_not_pdf", "warning")]
    assert f"{name}（照片，已按盖章件处理）" in body
    # The PDF made from the photo is kept in the archive beside the original.
    derived = submission["files"][1]["derived_pdf_sha256"]
    assert derived and application.archive.read("files", derived).startswith(b"%PDF")
