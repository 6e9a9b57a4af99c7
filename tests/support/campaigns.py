"""The shipped campaign files as tests use them: the 2024 notice (also as the legacy
`[campaign]` config's `default` campaign) and the second notice (五一劳动奖章推荐)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from config.campaigns import SHIPPED, CampaignSpec, campaign_from_entry, load_campaign_file
from parsers.forms import FormSet

CST = dt.timezone(dt.timedelta(hours=8))
LDJS: CampaignSpec = load_campaign_file(SHIPPED / "2024-劳动竞赛.toml")
WUYI: CampaignSpec = load_campaign_file(SHIPPED / "2024-五一劳动奖章推荐.toml")
# What a test config's `[campaign]` section becomes (tests/support/intake_env.py).
DEFAULT: CampaignSpec = campaign_from_entry(
    {"name": "2024年度测试竞赛", "deadline": dt.datetime(2024, 2, 25, 17, 0, tzinfo=CST)}, Path("."), legacy=True)

FORMS_2024 = FormSet(LDJS.forms)
DEFAULT_FORMS = FormSet(DEFAULT.forms)
# The legacy campaign's forms: what parsers find in a test config's mailbox.
FORM1 = DEFAULT.form("form1")
FORM2 = DEFAULT.form("form2")
BOTH = FormSet((*LDJS.forms, *WUYI.forms))
