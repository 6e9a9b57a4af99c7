"""The deadline as data: staff may extend it (web console, `intake deadline`) without
editing the file, and every state, the board, digest and workbook follow at once.

The file's `[campaign] deadline` is the default; a value set by staff is kept in the kv
table and wins. Replies already sent keep the verdict they were sent on.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from config.settings import Settings
from storage.models import KeyValue

DEADLINE_KEY = "campaign.deadline"


def deadline_override(session: Session) -> dt.datetime | None:
    row = session.get(KeyValue, DEADLINE_KEY)
    return dt.datetime.fromisoformat(row.value) if row else None


def effective_settings(settings: Settings, session: Session) -> Settings:
    """The settings with the deadline staff set (if any) in place of the file's."""
    override = deadline_override(session)
    if override is None or override == settings.campaign.deadline:
        return settings
    campaign = settings.campaign.model_copy(update={"deadline": override})
    return settings.model_copy(update={"campaign": campaign})
