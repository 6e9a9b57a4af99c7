"""Campaigns as data: one notice per TOML file, any number open at once.

A campaign is its name, deadline, contact, the words that mark its mail, the reply
wording that differs, and its forms (parsers.forms). It is written either in a file of
its own (`[[campaigns]] file = "campaigns/2025.toml"`, or a shipped one by name:
`file = "2024-劳动竞赛"`) with the table's other keys overriding the file's, or inline.

Today's single `[campaign]` section (name, deadline, form1_title, form2_title, contact)
keeps working: it is the shipped 2024 notice with those keys laid over it, under the id
`default`.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from parsers.forms import FormSet, FormSpec

SHIPPED = Path(__file__).parent / "campaigns"
LEGACY_FILE = "2024-劳动竞赛"
LEGACY_ID = "default"
# `[campaign] form1_title` / `form2_title` of the single-campaign config name the
# shipped notice's forms by position.
_LEGACY_TITLES = {"form1_title": 0, "form2_title": 1}
# Form ids the export and `status --json` named before campaigns were data: their rows
# stay under `form1_rows` / `form2_rows` and their counts under by_form "1" / "2".
LEGACY_FORMS = {"form1": "1", "form2": "2"}
_YEAR = re.compile(r"^\d{4}\s*年(?:度)?")


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
    name: Annotated[str, Field(min_length=1)]
    deadline: dt.datetime
    # After this the campaign is closed: its mail gets the 已截止 reply and goes to staff.
    closes_at: dt.datetime | None = None
    contact: str = ""
    # Words in a subject or a file name that mark a mail as this campaign's when it
    # carries no form (a scan only, a question); the name and form titles count too.
    keywords: tuple[str, ...] = ()
    # Names from the [[units]] registry asked to submit; None: every registered unit.
    units: tuple[str, ...] | None = None
    requires_pdf: bool = True  # a stamped scan (PDF/OFD/photo) must come with the forms
    requires_editable: bool = True  # and an editable file (Excel, Word …)
    reply_note: str = ""  # one paragraph the replies add, in this campaign's words
    forms: tuple[FormSpec, ...] = Field(min_length=1)

    @field_validator("deadline", "closes_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("需要带时区的时间，例如 2024-02-25T17:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _own_forms(self) -> CampaignSpec:
        ids = [f.id for f in self.forms]
        if len(set(ids)) != len(ids):
            raise ValueError(f"征集“{self.name}”中有两个表使用同一个 id")
        if self.closes_at is not None and self.closes_at < self.deadline:
            raise ValueError(f"征集“{self.name}”的 closes_at 早于 deadline")
        # Each form knows its campaign, so a form key (`campaign/form`) is unique.
        object.__setattr__(self, "forms", tuple(f.model_copy(update={"campaign": self.id}) for f in self.forms))
        return self

    def form(self, form_id: str) -> FormSpec:
        return next(f for f in self.forms if f.id == form_id)

    def is_open(self, now: dt.datetime) -> bool:
        return self.closes_at is None or now < self.closes_at

    @cached_property
    def all_keywords(self) -> tuple[str, ...]:
        """Its own keywords, its name (also without a leading 2024年度) and every form's
        title and short title, with the parts a title joins with 、 or brackets."""
        words = [*self.keywords, self.name, _YEAR.sub("", self.name)]
        for form in self.forms:
            words += [form.title, form.short_title, *re.split(r"[（）()、]", form.title), *form.short_title.split("、")]
        return tuple(dict.fromkeys(w.strip() for w in words if len(w.strip()) >= 3))


class CampaignFileError(ValueError):
    """A campaign file that cannot be used, as one Chinese line naming file and key."""


def shipped_campaigns() -> list[Path]:
    return sorted(SHIPPED.glob("*.toml"))


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CampaignFileError(f"征集文件不存在：{path}") from None
    except tomllib.TOMLDecodeError as err:
        raise CampaignFileError(f"征集文件 {path} 不是有效的 TOML：{err}") from None


def _locate(name: str, base_dir: Path) -> Path:
    """A path relative to the config's folder, else a shipped campaign by its file name."""
    path = Path(name)
    if not path.is_absolute() and (base_dir / path).exists():
        return base_dir / path
    if path.is_absolute():
        return path
    shipped = SHIPPED / (name if name.endswith(".toml") else name + ".toml")
    return shipped if shipped.exists() else base_dir / path


def campaign_from_entry(entry: dict[str, Any], base_dir: Path, *, legacy: bool = False,
                        where: str = "campaigns") -> CampaignSpec:
    """One `[campaign]` or `[[campaigns]]` table as a campaign: its file (if any) with the
    table's keys over it. A legacy table with no forms gets the shipped 2024 notice's.
    `where` is the table's key path in the config (`campaigns.1`), for messages."""
    entry = dict(entry)
    in_config = "配置项 " + ("campaign" if legacy else where) + "."
    in_file = in_config
    data: dict[str, Any] = {}
    if "file" in entry:
        path = _locate(str(entry.pop("file")), base_dir)
        data, in_file = _read(path), f"征集文件 {path} 中 "
    elif legacy and "forms" not in entry:
        data = _read(SHIPPED / f"{LEGACY_FILE}.toml")
        data["id"] = LEGACY_ID
        del data["deadline"]  # `[campaign] deadline` stays required: never the shipped file's
        forms = [dict(f) for f in data["forms"]]
        for key, index in _LEGACY_TITLES.items():
            if key in entry:
                forms[index]["title"] = entry.pop(key)
        data["forms"] = forms
    data.update(entry)
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as err:
        from config.settings import explain  # settings imports this module

        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        # A key the config's table set is the config's mistake; anything else the file's.
        prefix = in_config if first["loc"] and first["loc"][0] in entry else in_file
        raise CampaignFileError(f"{prefix}{key or '（整体）'} 有误：{explain(first)}") from None


def load_campaign_file(path: Path) -> CampaignSpec:
    """A campaign file on its own (`intake check --campaign-file`, tests)."""
    path = Path(path).resolve()  # a relative path is the caller's, not the file's folder's
    return campaign_from_entry({"file": str(path)}, path.parent)


class Campaigns:
    """Every configured campaign, in the config's order."""

    def __init__(self, campaigns: tuple[CampaignSpec, ...]) -> None:
        ids = [c.id for c in campaigns]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise CampaignFileError(f"两个征集使用了同一个 id：{doubled[0]}")
        self.all = campaigns

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.all)

    def __len__(self) -> int:
        return len(self.all)

    def get(self, campaign_id: str | None) -> CampaignSpec | None:
        return next((c for c in self.all if c.id == campaign_id), None)

    def open(self, now: dt.datetime) -> tuple[CampaignSpec, ...]:
        return tuple(c for c in self.all if c.is_open(now))

    @cached_property
    def forms(self) -> FormSet:
        """Every form of every campaign: a parser recognises them all, routing picks one."""
        return FormSet(tuple(f for c in self.all for f in c.forms))

    def shared_keywords(self) -> list[tuple[str, str, str]]:
        """(keyword, campaign, campaign) for an explicit keyword two campaigns both claim."""
        seen: dict[str, str] = {}
        clashes = []
        for campaign in self.all:
            for word in dict.fromkeys(campaign.keywords):
                if word in seen and seen[word] != campaign.id:
                    clashes.append((word, seen[word], campaign.id))
                seen.setdefault(word, campaign.id)
        return clashes
