"""The short notice a unit gets when staff confirm a claimed submission that replaces its record.

A claim (a mail that only named the unit) can become the unit's record only by a
person's word; the unit hears of it at its own registered address, so a mistaken or
forged confirmation does not go unnoticed. The notice quotes nothing the claiming mail
wrote: only times and counts.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from config.settings import Settings
from intake.board import campaign_of
from notifications.compose import build_message, enqueue
from notifications.reminders import unit_addresses
from notifications.render import render
from storage.models import OutboxItem, OutboxKind, Submission


def queue_replacement_notice(
    session: Session, settings: Settings, submission: Submission, replaced: Submission
) -> OutboxItem | None:
    """Queue the notice once per confirmed submission; None when the unit has no address."""
    addresses = unit_addresses(settings, submission.unit or "")
    if not addresses:
        return None
    campaign = campaign_of(settings, submission)
    context = {
        "campaign": campaign,
        "unit": submission.unit,
        "submission": submission,
        "replaced": replaced,
        "confirmed_by": submission.confirmed_by,
    }
    text, html = render("notice", context, settings.smtp.templates_dir)
    message = build_message(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name or campaign.name,
        to=", ".join(addresses),
        subject=f"【报送已更新】{campaign.name}",
        text=text,
        html=html,
    )
    return enqueue(
        session, kind=OutboxKind.NOTICE, dedupe_key=f"notice:{submission.id}", message=message,
        submission_id=submission.id,
    )
