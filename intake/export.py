"""The export contract: one JSON document with every submission and every unit's state.

Field names here are a promise to whoever reads the export; add fields, never rename.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from config.settings import Settings
from intake.board import board_as_dict, build_board
from intake.decide import is_late
from parsers.forms import FORM1, FORM2, FormSpec
from storage.models import Form1Record, Form2Record, Message, Submission


def _number(value: Decimal | int | None) -> float | int | None:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _row(record: Form1Record | Form2Record, spec: FormSpec) -> dict[str, Any]:
    """A row's values; a number cell the unit filled with text carries that text, and
    `as_written` names such cells (so a reader can tell "约300" from 300)."""
    written = record.as_written or {}
    values = {c.field: written.get(c.field, _number(getattr(record, c.field))) for c in spec.columns}
    return values | {"cell": record.cell, "as_written": sorted(written)}


def submission_dict(submission: Submission, deadline: datetime) -> dict[str, Any]:
    message: Message = submission.message
    return {
        "id": submission.id,
        "message_id": message.message_id,
        "unit": submission.unit,
        "sender": message.from_address,
        "sender_name": message.from_name,
        "subject": message.subject,
        "received_at": message.arrived_at.isoformat(),
        # Against today's deadline (an extension shows at once); the reply sent keeps its kind.
        "late": is_late(message.arrived_at, deadline),
        "status": submission.status.value,
        "content_status": submission.content_status.value,
        "reply": submission.reply.value,
        "reply_suppressed": submission.reply_suppressed,
        "needs_review": submission.needs_review,
        "unit_source": submission.unit_source,
        "sheet_unit": submission.sheet_unit,
        "files": [
            {"name": f.name, "kind": f.kind, "sha256": f.sha256, "size": f.size, "parent": f.parent,
             "pages": f.pdf_pages, "seal": f.seal, "seal_kind": f.seal_kind, "signer": f.signer,
             "derived_pdf_sha256": f.derived_sha256,
             "url": f.url, "expires_at": f.expires_at.isoformat() if f.expires_at else None}
            for f in submission.files
        ],
        "has_pdf": submission.has_pdf,
        "has_editable": submission.has_editable,
        "seal": submission.seal,
        "problems": [
            {"code": p.code, "severity": p.severity, "message": p.message, "file": p.file, "cell": p.cell}
            for p in submission.problems
        ],
        "form1_rows": [_row(r, FORM1) for r in submission.form1_rows],
        "form2_rows": [_row(r, FORM2) for r in submission.form2_rows],
        "assigned_by": submission.assigned_by,
        "assigned_at": submission.assigned_at.isoformat() if submission.assigned_at else None,
        # How far the unit can be believed (intake.trust) and staff's word on a claim.
        "trust": submission.trust.value,
        "confirmation": submission.confirmation.value if submission.confirmation else None,
        "confirmed_by": submission.confirmed_by,
        "confirmed_at": submission.confirmed_at.isoformat() if submission.confirmed_at else None,
        "reply_form": submission.reply_form.value if submission.reply_form else None,
    }


def export_document(session: Session, settings: Settings) -> dict[str, Any]:
    submissions = session.scalars(
        select(Submission)
        .join(Submission.message)
        .options(
            selectinload(Submission.files),
            selectinload(Submission.problems),
            selectinload(Submission.form1_rows),
            selectinload(Submission.form2_rows),
        )
        .order_by(Message.arrived_at, Submission.id)
    ).all()
    board = board_as_dict(build_board(session, settings))
    return {
        "campaign": {"name": settings.campaign.name, "deadline": settings.campaign.deadline.isoformat()},
        "submissions": [submission_dict(s, settings.campaign.deadline) for s in submissions],
        # Mail that could not be processed has no submission; it is listed, never left out.
        "quarantined": board["quarantined"],
        "units": board["units"],
        "counts": board["counts"],
    }
