"""Which campaign a mail belongs to: pure, so every branch is tested without a mailbox.

Several campaigns (config.campaigns) may be open in one mailbox at once. A mail is routed
by the first of these that decides:

1. **form**: the tables recognised in its editable files. Each campaign scores
   (tables, rows) of its forms; the highest score wins. When no file holds a table, the
   forms its PDFs name (title or header text) count instead, one point per form. Two
   campaigns' forms in one mail: the higher score wins and the reason names both.
2. **keyword**: `CampaignSpec.all_keywords` (its own keywords, its name, its forms'
   titles) in the subject, then in the file names. The longest keyword found wins; two
   campaigns matching equally long words is a tie, and a tie routes nowhere (staff decide).
   The body is never read for keywords: signatures, quoted notices and letterheads name
   campaigns in passing far too often.
3. **only**: nothing recognisable, but the mail carries a spreadsheet, Word or PDF file
   and exactly one campaign is open: it is a submission attempt for that campaign (an
   unreadable workbook or an unknown layout still gets its 需修改 / 材料不全 reply, as a
   single-campaign mailbox always did).
4. **none**: anything else (a letter with a .docx while several campaigns are open, a
   question with no keyword) is `other` mail, for staff.

At every step open campaigns are preferred: a closed campaign is chosen only when no
open one matches at that step, and then `closed` is set (the mail gets the 已截止 reply).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from config.campaigns import Campaigns, CampaignSpec
from parsers.filetypes import extension
from parsers.sniff import TABLE_EXTENSIONS, WORD_EXTENSIONS

RoutedBy = Literal["form", "keyword", "only", "none", "staff"]
# What a sender's "document" is: a file that could be a form or its stamped copy, by the
# names the parsers know for tables, Word and WPS files, and stamped copies.
DOCUMENT_EXTENSIONS = TABLE_EXTENSIONS | WORD_EXTENSIONS | {"docx", "pdf", "ofd"}


@dataclass(frozen=True)
class Route:
    campaign: CampaignSpec | None
    routed_by: RoutedBy
    reason: str  # in Chinese, for staff
    closed: bool = False  # the chosen campaign is past its closes_at


@dataclass(frozen=True)
class Table:
    """A recognised table as routing sees it: its form's key and how many rows it holds."""

    form: str
    rows: int


def is_document(name: str) -> bool:
    return extension(name) in DOCUMENT_EXTENSIONS


def route(
    *,
    tables: Sequence[Table],
    pdf_forms: Iterable[str],
    subject: str,
    file_names: Sequence[str],
    documents: bool,
    campaigns: Campaigns,
    now: dt.datetime,
) -> Route:
    """The campaign a mail belongs to (see the module docstring for the rule)."""
    form_of = {key: form.campaign for key, form in campaigns.forms.by_key.items()}
    by_tables: dict[str, tuple[int, int]] = {}
    for table in tables:
        if table.form in form_of:
            count, rows = by_tables.get(form_of[table.form], (0, 0))
            by_tables[form_of[table.form]] = (count + 1, rows + table.rows)
    by_pdf: dict[str, tuple[int, int]] = {}
    for key in dict.fromkeys(pdf_forms):
        if key in form_of:
            by_pdf[form_of[key]] = (by_pdf.get(form_of[key], (0, 0))[0] + 1, 0)
    for scores, what in ((by_tables, "附件中的表格"), (by_pdf, "PDF 中的表名")):
        if scores and (found := _by_forms(scores, what, campaigns, now)) is not None:
            return found
    for text, what in ((subject, "邮件主题"), (" ".join(file_names), "附件文件名")):
        if found := _by_keyword(text, what, campaigns, now):
            return found
    open_now = campaigns.open(now)
    if documents and len(open_now) == 1:
        only = open_now[0]
        return Route(only, "only", f"未识别出表格或关键词，但附有文件，且只有“{only.name}”正在征集")
    if documents:
        return Route(None, "none", f"附有文件，但未识别出任何征集的表格或关键词，且有 {len(open_now)} 个征集正在进行")
    return Route(None, "none", "未识别出任何征集的表格或关键词")


def _preferring_open(ids: Iterable[str], campaigns: Campaigns, now: dt.datetime) -> list[CampaignSpec]:
    found = [c for c in (campaigns.get(i) for i in ids) if c is not None]
    return [c for c in found if c.is_open(now)] or found


def _by_forms(scores: dict[str, tuple[int, int]], what: str, campaigns: Campaigns, now: dt.datetime) -> Route | None:
    candidates = _preferring_open(scores, campaigns, now)
    ranked = sorted(candidates, key=lambda c: scores[c.id], reverse=True)
    best = ranked[0]
    if len(ranked) > 1 and scores[ranked[1].id] == scores[best.id]:
        return None  # as many of each: the subject or file names decide
    reason = f"{what}属于“{best.name}”"
    others = [c for c in campaigns if c.id in scores and c.id != best.id]
    if others:
        reason += "；另有" + "、".join(f"“{c.name}”" for c in others) + "的表格，按较多者归入"
    return _chosen(best, "form", reason, now)


def _by_keyword(text: str, what: str, campaigns: Campaigns, now: dt.datetime) -> Route | None:
    if not text.strip():
        return None
    longest: dict[str, str] = {}
    for campaign in campaigns:
        words = [w for w in campaign.all_keywords if w in text]
        if words:
            longest[campaign.id] = max(words, key=len)
    if not longest:
        return None
    candidates = _preferring_open(longest, campaigns, now)
    size = max(len(longest[c.id]) for c in candidates)
    best = [c for c in candidates if len(longest[c.id]) == size]
    if len(best) > 1:
        names = "、".join(f"“{c.name}”（{longest[c.id]}）" for c in best)
        return Route(None, "none", f"{what}同样匹配{names}，无法判断，请工作人员归入")
    return _chosen(best[0], "keyword", f"{what}含“{longest[best[0].id]}”，归入“{best[0].name}”", now)


def _chosen(campaign: CampaignSpec, routed_by: RoutedBy, reason: str, now: dt.datetime) -> Route:
    if campaign.is_open(now):
        return Route(campaign, routed_by, reason)
    return Route(campaign, routed_by, f"{reason}；该征集已于 {campaign.closes_at:%Y-%m-%d %H:%M} 截止", closed=True)

