"""The export contract: one JSON document per campaign with its submissions and every
unit's state for it.

Field names here are a promise to whoever reads the export; add fields, never rename.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from config.campaigns import LEGACY_FORMS, CampaignSpec
from config.settings import Settings
from intake.board import belongs_to, board_as_dict, build_board
from intake.decide import is_late
from parsers.forms import FormSpec
from storage.models import FormRowRecord, Message, Submission



def _number(value: Decimal | int | None) -> float | int | None:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _value(spec: FormSpec, field: str, stored: int | str | None) -> Any:
    """A stored value as the export gives it: numbers as today (int, or float for a
    decimal with a fraction), a date as its ISO text, text as text."""
    value = spec.typed(field, stored)
    if isinstance(value, dt.date):
        return value.isoformat()
    return _number(value) if isinstance(value, Decimal | int) else value


def _row(record: FormRowRecord, spec: FormSpec) -> dict[str, Any]:
    """A row's values; a number cell the unit filled with text carries that text, and
    `as_written` names such cells (so a reader can tell "约300" from 300)."""
    written = record.as_written or {}
    values = {c.field: written.get(c.field, _value(spec, c.field, record.values.get(c.field))) for c in spec.columns}
    return values | {"cell": record.cell, "as_written": sorted(written)}


def _forms(submission: Submission, campaign: CampaignSpec) -> dict[str, Any]:
    """`forms: {form id: rows}`, plus `form1_rows` / `form2_rows` as before campaigns were
    data when the campaign's forms carry those ids (the contract's older names)."""
    forms = {spec.id: [_row(r, spec) for r in submission.rows_of(spec.id)] for spec in campaign.forms}
    legacy = {f"{form_id}_rows": forms[form_id] for form_id in LEGACY_FORMS if form_id in forms}
    return {"forms": forms, **legacy}


def submission_dict(submission: Submission, campaign: CampaignSpec) -> dict[str, Any]:
    message: Message = submission.message
    return {
        "id": submission.id,
        "message_id": message.message_id,
        "campaign": submission.campaign,
        "routed_by": submission.routed_by,
        "routing": submission.routing,
        "unit": submission.unit,
        "sender": message.from_address,
        "sender_name": message.from_name,
        "subject": message.subject,
        "received_at": message.arrived_at.isoformat(),
        # Against today's deadline (an extension shows at once); the reply sent keeps its kind.
        "late": is_late(message.arrived_at, campaign.deadline),
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
        **_forms(submission, campaign),
        "assigned_by": submission.assigned_by,
        "assigned_at": submission.assigned_at.isoformat() if submission.assigned_at else None,
        # How far the unit can be believed (intake.trust) and staff's word on a claim.
        "trust": submission.trust.value,
        "confirmation": submission.confirmation.value if submission.confirmation else None,
        "confirmed_by": submission.confirmed_by,
        "confirmed_at": submission.confirmed_at.isoformat() if submission.confirmed_at else None,
        "reply_form": submission.reply_form.value if submission.reply_form else None,
    }


def export_document(session: Session, settings: Settings, campaign: CampaignSpec | None = None) -> dict[str, Any]:
    """One campaign's export (default: settings.campaign): its submissions and unit states,
    and the `other` mail (for no campaign) as a list of its own."""
    campaign = campaign or settings.campaign
    submissions = session.scalars(
        select(Submission)
        .join(Submission.message)
        .where(belongs_to(campaign, settings))
        .options(selectinload(Submission.files), selectinload(Submission.problems), selectinload(Submission.rows))
        .order_by(Message.arrived_at, Submission.id)
    ).all()
    board = build_board(session, settings, campaign)
    data = board_as_dict(board)
    return {
        "campaign": {"id": campaign.id, "name": campaign.name, "deadline": campaign.deadline.isoformat(),
                     "closes_at": campaign.closes_at.isoformat() if campaign.closes_at else None},
        "submissions": [submission_dict(s, campaign) for s in submissions],
        # Mail that could not be processed has no submission; it is listed, never left out.
        "quarantined": data["quarantined"],
        "other": [
            {"id": o.submission_id, "sender": o.sender, "subject": o.subject,
             "received_at": o.arrived_at.isoformat(), "routing": o.routing}
            for o in board.other if o.campaign is None
        ],
        "units": data["units"],
        "counts": data["counts"],
    }


export = export_document
