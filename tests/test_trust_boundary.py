"""Only the unit can change the unit's record: strangers and forged senders end 待确认.

End to end: real Dovecot in, the pipeline, the database; the attacks of issue 9 each
as a mail a stranger could send.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.export import export_document
from intake.runs import poll_once
from intake.samples import form_workbook, mime_message
from intake.tracking import confirm, current_submissions
from notifications.digest import build_digest
from notifications.notices import queue_replacement_notice
from tests.support.campaigns import FORM1
from storage.models import (
    Confirmation,
    OutboxItem,
    OutboxKind,
    Submission,
    SubmissionStatus,
    Trust,
    utcnow,
)
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, stamped_pdf, submission_mail

JINAN = ("济南市总工会", "jinan@example.cn")
STRANGER = ("王某", "stranger@evil.example")
AUTHSERV = "mx.example.org"
GENUINE_AT = DEADLINE - dt.timedelta(days=2)
LATER = DEADLINE - dt.timedelta(days=1)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"trust-{uuid.uuid4().hex[:12]}@example.org")


def settings_for(tmp_path: Path, mailbox: Dovecot):  # noqa: ANN201
    return intake_settings(
        tmp_path, dovecot=mailbox,
        authenticity={"trusted_authserv_ids": [AUTHSERV], "require": True},
    )


def genuine_mail() -> bytes:
    return mime_message(
        sender=JINAN, subject="济南市总工会竞赛项目申报", body="请查收。", date=GENUINE_AT,
        attachments=[("汇总表.xlsx", form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会")),
                     ("盖章扫描件.pdf", stamped_pdf())],
        extra_headers={"Authentication-Results": f"{AUTHSERV}; dkim=pass header.d=example.cn; dmarc=pass header.from=example.cn"},
        authenticated=False,
    )


STRANGER_ROWS = [("虚构的劳动竞赛", "不存在的工程", 1, 0, 10, 0, 9)]


def stranger_mail(*, sheet_unit: str, subject: str) -> bytes:
    return mime_message(
        sender=STRANGER, subject=subject, body="请查收。", date=LATER,
        attachments=[("汇总表.xlsx", form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", sheet_unit, STRANGER_ROWS)),
                     ("盖章扫描件.pdf", stamped_pdf())],
        authenticated=False,
    )


def run(tmp_path: Path, mailbox: Dovecot, *mails: tuple[bytes, dt.datetime]) -> App:
    for raw, at in mails:
        mailbox.append(raw, at)
    app = App(settings_for(tmp_path, mailbox))
    poll_once(app)
    return app


def the_claim(app: App) -> Submission:
    with app.db.session() as session:
        return session.scalars(select(Submission).where(Submission.unit_source != "sender")).one()


@pytest.mark.parametrize(
    ("sheet_unit", "subject", "source"),
    [("济南市总工会", "项目申报", "sheet"), ("", "济南市总工会竞赛项目申报", "subject")],
    ids=["by-sheet", "by-subject"],
)
def test_a_stranger_naming_a_unit_waits_for_staff_and_changes_nothing(
    tmp_path: Path, mailbox: Dovecot, sheet_unit: str, subject: str, source: str
) -> None:
    with run(tmp_path, mailbox, (genuine_mail(), GENUINE_AT), (stranger_mail(sheet_unit=sheet_unit, subject=subject), LATER)) as app:
        with app.db.session() as session:
            claim = session.scalars(select(Submission).where(Submission.unit_source == source)).one()
            genuine = session.scalars(select(Submission).where(Submission.unit_source == "sender")).one()
            assert (claim.unit, claim.trust, claim.confirmation) == ("济南市总工会", Trust.CLAIMED, Confirmation.PENDING)
            assert claim.status is SubmissionStatus.HELD
            assert claim.needs_review
            assert "unit_unconfirmed" in {p.code for p in claim.problems}
            assert genuine.trust is Trust.VERIFIED
            assert current_submissions(session)["济南市总工会"].id == genuine.id
            # The workbook and the export carry the unit's own rows, not the stranger's.
            exported = {s["id"]: s for s in export_document(session, app.settings)["submissions"]}
            assert exported[claim.id]["trust"] == "claimed"
            assert exported[genuine.id]["trust"] == "verified"
            digest = build_digest(session, app.settings, now=LATER, since=None)
            assert f"#{claim.id}" in digest.text and "待确认" in digest.text


def test_a_forged_registered_address_that_failed_authentication_is_only_claimed(tmp_path: Path, mailbox: Dovecot) -> None:
    forged = mime_message(
        sender=JINAN, subject="济南市总工会竞赛项目申报（更正）", body="请以此为准。", date=LATER,
        attachments=[("汇总表.xlsx", form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", "济南市总工会", STRANGER_ROWS)),
                     ("盖章扫描件.pdf", stamped_pdf())],
        extra_headers={"Authentication-Results": f"{AUTHSERV}; spf=fail smtp.mailfrom=evil.example; "
                                                 "dkim=fail header.d=example.cn; dmarc=fail header.from=example.cn"},
        authenticated=False,
    )
    with run(tmp_path, mailbox, (genuine_mail(), GENUINE_AT), (forged, LATER)) as app:
        with app.db.session() as session:
            rows = session.scalars(select(Submission).order_by(Submission.id)).all()
            genuine, claim = sorted(rows, key=lambda s: s.message.arrived_at)
            assert (claim.trust, claim.status, claim.unit_source) == (Trust.CLAIMED, SubmissionStatus.HELD, "sender")
            assert current_submissions(session)["济南市总工会"].id == genuine.id


def test_confirming_a_claim_that_replaces_the_units_record_tells_the_units_registered_address(
    tmp_path: Path, mailbox: Dovecot
) -> None:
    with run(tmp_path, mailbox, (genuine_mail(), GENUINE_AT), (stranger_mail(sheet_unit="济南市总工会", subject="申报"), LATER)) as app:
        claim = the_claim(app)
        with app.db.session() as session:
            confirmed, replaced = confirm(session, claim.id, by="王芳", now=utcnow())
            assert replaced is not None and replaced.trust is Trust.VERIFIED
            notice = queue_replacement_notice(session, app.settings, confirmed, replaced)
            assert notice is not None and notice.kind is OutboxKind.NOTICE
            assert notice.to_address == "jinan@example.cn"
            assert "stranger" not in notice.raw.decode("ascii", "replace")
            assert current_submissions(session)["济南市总工会"].id == claim.id
        with app.db.session() as session:
            assert session.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.NOTICE)).one()
