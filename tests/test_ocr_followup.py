"""OCR of image-only scans runs after the reply and only adds warnings for staff."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.runs import poll_once
from intake.samples import form_workbook, mime_message
from tests.support.campaigns import FORM1
from storage.models import Submission
from tests.fixtures.scans import sealed_scan
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings
from tests.support.smtp import SmtpSink


@pytest.mark.slow
def test_a_scan_naming_another_unit_is_flagged_after_the_receipt_went_out(tmp_path: Path) -> None:
    server, sink = Dovecot().start(), SmtpSink().start()
    try:
        # The workbook is Qingdao's; the stamped scan (read only by OCR) is Jinan's.
        raw = mime_message(sender=("青岛市总工会", "qingdao@example.cn"), subject="青岛报送", body="请查收",
                           attachments=[("青岛附件1.xlsx", form_workbook(FORM1, "表", "青岛市总工会")),
                                        ("盖章件.pdf", sealed_scan())],
                           date=DEADLINE - dt.timedelta(hours=1))
        server.append(raw, DEADLINE - dt.timedelta(hours=1))
        settings = intake_settings(tmp_path, dovecot=server, parsing={"ocr": True},
                                   smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none"})
        with App(settings) as app:
            poll_once(app)
            with app.db.session() as session:
                submission = session.scalars(select(Submission)).one()
                codes = [p.code for p in submission.problems]
                assert submission.ocr_pending is False and submission.needs_review
                assert "pdf_mismatch" in codes
        (reply,) = sink.messages  # sent by the poll before OCR ran: a plain receipt
        assert email.message_from_bytes(reply.data, policy=email.policy.default)["Subject"].startswith("【已收到】")
        assert submission.reply.value == "receipt"
    finally:
        sink.stop()
        server.cleanup()
