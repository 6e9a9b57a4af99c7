"""The deadline as data: staff may extend a campaign's deadline (web console, `intake
deadline`) without editing the file, and every state, the board, digest and workbook
follow at once.

The campaign's `deadline` in the file is the default; a value set by staff is kept in the
kv table under `campaign.<id>.deadline` and wins. The key of the single-campaign days,
`campaign.deadline`, is still read for the legacy `default` campaign (a per-campaign key
set since wins over it). Replies already sent keep the verdict they were sent on.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from config.campaigns import LEGACY_ID, CampaignSpec
from config.settings import Settings
from storage.models import KeyValue

DEADLINE_KEY = "campaign.deadline"  # the legacy key: the `default` campaign's


def deadline_key(campaign_id: str) -> str:
    return f"campaign.{campaign_id}.deadline"


def deadline_override(session: Session, campaign_id: str = LEGACY_ID) -> dt.datetime | None:
    keys = [deadline_key(campaign_id), *([DEADLINE_KEY] if campaign_id == LEGACY_ID else [])]
    for key in keys:
        row = session.get(KeyValue, key)
        if row is not None:
            return dt.datetime.fromisoformat(row.value)
    return None


def set_deadline_override(session: Session, campaign_id: str, new: dt.datetime) -> None:
    """Store staff's deadline for one campaign (the caller audits it)."""
    session.merge(KeyValue(key=deadline_key(campaign_id), value=new.isoformat()))


def _effective(campaign: CampaignSpec, session: Session) -> CampaignSpec:
    override = deadline_override(session, campaign.id)
    if override is None or override == campaign.deadline:
        return campaign
    return campaign.model_copy(update={"deadline": override})


def effective_settings(settings: Settings, session: Session) -> Settings:
    """The settings with the deadlines staff set (if any) in place of the file's."""
    campaigns = tuple(_effective(c, session) for c in settings.campaigns)
    if all(new is old for new, old in zip(campaigns, settings.campaigns, strict=True)):
        return settings
    return settings.model_copy(update={"campaigns": campaigns})
