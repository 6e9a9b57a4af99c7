"""Reminders before the deadline to units that have nothing accepted yet (off by default).

`[reminders] before = ["3d", "4h"]` makes two slots. When a slot's time has come, each
unit still missing, incomplete or invalid gets one mail for it (dedupe key
"reminder:<unit>:<slot>", intake.board.reminder_key). Each open campaign has its own
slots: a unit missing from campaign A is reminded about A only. Only the latest slot that has come is sent, so a service
that was down for the 3d slot does not send two reminders at once at 4h. Nothing is
sent from the deadline on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy.orm import Session

from config.campaigns import CampaignSpec
from config.settings import Settings, parse_offset  # one parser: also validates the file at load
from intake.board import STATE_LABELS, UnitState, build_board, reminder_key
from notifications.compose import build_message, enqueue
from notifications.digest import time_left
from notifications.render import render
from storage.models import OutboxItem, OutboxKind

log = logging.getLogger(__name__)
REMIND_STATES = (UnitState.MISSING, UnitState.INCOMPLETE, UnitState.INVALID)


def due_slot(before: list[str], deadline: datetime, now: datetime) -> str | None:
    """The latest slot whose time has come, or None (none yet, or the deadline has passed)."""
    if now >= deadline:
        return None
    due: list[tuple[timedelta, str]] = []
    for slot in before:
        try:
            offset = parse_offset(slot)
        except ValueError as err:
            log.warning("%s", err)
            continue
        if deadline - offset <= now:
            due.append((offset, slot.strip()))
    return min(due)[1] if due else None


def unit_addresses(settings: Settings, unit_name: str) -> list[str]:
    """A unit's own mail addresses; "@domain" entries identify senders, nobody reads them."""
    for unit in settings.units:
        if unit.name == unit_name:
            return [e.strip() for e in unit.emails if e.strip() and not e.strip().startswith("@")]
    return []


def reminder_mail(settings: Settings, unit_name: str, state: UnitState, addresses: list[str], now: datetime,
                  campaign: CampaignSpec | None = None) -> EmailMessage:
    """The reminder one unit gets about one campaign (default: settings.campaign), whether
    a slot came (run) or staff sent it (催报)."""
    campaign = campaign or settings.campaign
    context = {
        "campaign": campaign,
        "unit": unit_name,
        "state": state.value,
        "state_label": STATE_LABELS[state],
        "deadline": campaign.deadline,
        "time_left": time_left(campaign.deadline, now),
        "mailbox": settings.smtp.from_address,
        "forms": [spec.short_title for spec in campaign.forms],
    }
    text, html = render("reminder", context, settings.smtp.templates_dir)
    subject = (f"【提醒】{campaign.name}报送即将截止（{time_left(campaign.deadline, now)}）" if now < campaign.deadline
               else f"【催报】{campaign.name}")
    return build_message(
        from_address=settings.smtp.from_address,
        from_name=settings.smtp.from_name or campaign.name,
        to=", ".join(addresses),
        subject=subject,
        text=text,
        html=html,
    )


def queue_reminders(session: Session, settings: Settings, *, now: datetime) -> list[OutboxItem]:
    if not settings.reminders.enabled:
        return []
    queued: list[OutboxItem] = []
    for campaign in settings.campaign_set.open(now):
        queued += _campaign_reminders(session, settings, campaign, now)
    return queued


def _campaign_reminders(session: Session, settings: Settings, campaign: CampaignSpec, now: datetime) -> list[OutboxItem]:
    slot = due_slot(settings.reminders.before, campaign.deadline, now)
    if slot is None:
        return []
    board = build_board(session, settings, campaign)
    queued: list[OutboxItem] = []
    for row in board.rows_in(*REMIND_STATES):
        addresses = unit_addresses(settings, row.name)
        if not addresses:
            continue
        message = reminder_mail(settings, row.name, row.state, addresses, now, campaign)
        item = enqueue(session, kind=OutboxKind.REMINDER, dedupe_key=reminder_key(row.name, slot, campaign.id),
                       message=message)
        if item is not None:
            queued.append(item)
    return queued
