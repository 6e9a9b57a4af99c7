"""Rendering mail bodies from Jinja2 templates: one template name gives a text and an HTML part.

The packaged templates live in notifications/templates; a folder named in the config
([smtp] templates_dir) may override any of them file by file.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import BaseLoader, ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

PACKAGED_TEMPLATES = Path(__file__).parent / "templates"
# Submitters and staff all read Beijing time, whatever the server's clock says.
DISPLAY_TZ = ZoneInfo("Asia/Shanghai")
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
# How often an edited template is looked for: a reply renders two templates and the
# files they include, and Jinja would stat every one of them on every reply.
RELOAD_CHECK_SECONDS = 2.0


def cn_time(value: dt.datetime) -> str:
    """`2024年2月25日 16:59:59` in Asia/Shanghai (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(DISPLAY_TZ)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S}"


def cn_number(value: Decimal | int | float | None) -> str:
    """A figure as a person writes it: 12.5, not 12.5000 or 1.25E+1; thousands unseparated."""
    if value is None:
        return "—"
    number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


class _CheckedNowAndThen(BaseLoader):
    """A loader whose templates are checked for edits at most every RELOAD_CHECK_SECONDS
    (Jinja's own check stats each file each time it is used). An edited template still
    takes effect in a running poller, a moment later."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        checked = [time.monotonic(), True]  # when last checked, and the answer

        def now_and_then() -> bool:
            if checked[1] and time.monotonic() - checked[0] < RELOAD_CHECK_SECONDS:
                return True
            checked[:] = [time.monotonic(), bool(uptodate is None or uptodate())]
            return checked[1]

        return source, filename, now_and_then

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


@lru_cache(maxsize=8)
def environment(templates_dir: Path | None = None) -> Environment:
    """One environment per override folder; autoescape for *.html.j2 only."""
    loaders = [FileSystemLoader(str(templates_dir))] if templates_dir else []
    loaders.append(FileSystemLoader(str(PACKAGED_TEMPLATES)))
    env = Environment(
        loader=_CheckedNowAndThen(ChoiceLoader(loaders)),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cn_time"] = cn_time
    env.filters["cn_number"] = cn_number
    return env


def render(template: str, context: dict, templates_dir: Path | None = None) -> tuple[str, str]:
    """Render `{template}.txt.j2` and `{template}.html.j2` -> (text, html)."""
    env = environment(Path(templates_dir) if templates_dir else None)
    text = env.get_template(f"{template}.txt.j2").render(context)
    # Optional sections leave blank lines behind; a reader wants at most one in a row.
    text = _BLANK_RUNS.sub("\n\n", text).strip() + "\n"
    html = env.get_template(f"{template}.html.j2").render(context)
    return text, html
