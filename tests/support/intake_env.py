"""Settings and sample mail for tests that drive the whole pipeline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from config.settings import Settings, settings_from_dict
from intake.samples import form_workbook, mime_message, scanned_pdf
from tests.support.campaigns import FORM1, FORM2

CST = dt.timezone(dt.timedelta(hours=8))
DEADLINE = dt.datetime(2024, 2, 25, 17, 0, 0, tzinfo=CST)
UNITS = [
    {"name": "济南市总工会", "kind": "city", "emails": ["jinan@example.cn"], "aliases": ["济南市总"]},
    {"name": "青岛市总工会", "kind": "city", "emails": ["qingdao@example.cn"], "aliases": ["青岛市总"]},
    {"name": "淄博市总工会", "kind": "city", "emails": ["zibo@example.cn"], "aliases": []},
    {"name": "山东省直机关工会", "kind": "organ", "emails": ["szjg@example.cn"], "aliases": ["省直机关工会"]},
    {"name": "山东能源集团工会", "kind": "enterprise", "emails": ["sdny@example.cn"], "aliases": []},
]


def intake_settings(tmp_path: Path, *, dovecot: Any = None, **sections: dict) -> Settings:
    raw: dict[str, Any] = {
        "campaign": {"name": "2024年度测试竞赛", "deadline": DEADLINE},
        "database": {"url": f"sqlite:///{tmp_path / 'intake.db'}"},
        "storage": {"path": str(tmp_path / "files")},
        "smtp": {"mode": "file", "outbox_dir": str(tmp_path / "outbox"), "from_address": "intake@example.org"},
        "authenticity": {"require": False},
        "units": UNITS,
    }
    if dovecot is not None:
        raw["mailbox"] = {
            "source": "imap", "host": dovecot.host, "port": dovecot.port, "security": "none",
            "username": dovecot.username, "password": dovecot.password, "timeout_seconds": 20,
        }
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return settings_from_dict(raw, base_dir=tmp_path)


_PDF = None


def stamped_pdf() -> bytes:
    global _PDF  # noqa: PLW0603 - rendering the scan once per test session is enough
    if _PDF is None:
        _PDF = scanned_pdf(seal=True, dpi=100)
    return _PDF


def submission_mail(
    sender: tuple[str, str] = ("济南市总工会", "jinan@example.cn"),
    *,
    subject: str = "济南市总工会竞赛项目申报",
    unit: str = "济南市总工会",
    date: dt.datetime | None = None,
    style: str = "rfc2231",
    names: tuple[str, str] = ("附件1-竞赛项目汇总表（重点工程类）.xlsx", "盖章扫描件.pdf"),
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A complete, valid submission: form 1 as xlsx plus the stamped scan."""
    return mime_message(
        sender=sender, subject=subject, body=f"请查收。\n{unit}",
        attachments=[(names[0], form_workbook(FORM1, "竞赛项目汇总表（重点工程类）", unit)),
                     (names[1], stamped_pdf())],
        style=style, date=date or DEADLINE - dt.timedelta(days=1), extra_headers=extra_headers,
    )


def form2_workbook(unit: str) -> bytes:
    return form_workbook(FORM2, "竞赛项目汇总表（技术技能类、创新创意类、工作推进类）", unit)


def settings_as_toml(settings: Settings) -> dict:
    """Settings back to the TOML a user would write (secrets in the clear: tests only)."""
    data = settings.model_dump(mode="json", exclude={"base_dir"})
    data["mailbox"]["password"] = settings.mailbox.password.get_secret_value()
    data["smtp"]["password"] = settings.smtp.password.get_secret_value()
    data["database"]["url"] = settings.database_url
    return _drop_none(data)


def _drop_none(value):  # noqa: ANN001, ANN202 - TOML has no null
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
