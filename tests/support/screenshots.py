"""The README's pictures of the console: `python -m tests.support.screenshots [--out DIR]`.

Runs `intake demo` in a temporary folder, starts `intake web` on it, logs in through the
form in Debian's Chromium and saves the overview at 1280 px and 390 px wide, one
submission page, and the page of the demo's letter for no campaign with its 归入征集
form (the second campaign chosen), as PNG. Heights are capped so the files stay small.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

from tests.support.browser import OriginGuard, cli, console_server, image_width, launch, log_in, make_demo

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MAX_HEIGHT = 1800  # px of page shown; the rest of a long page is left out
SUBMISSION_UNIT = "枣庄市总工会"  # problems in its cells, and a sealed scan
ROUTE_TO = "wuyi-2024"  # the demo's second campaign, chosen for its letter for no campaign


def shoot(page: Page, path: Path, height: int | None = None) -> None:
    height = min(height or page.evaluate("document.documentElement.scrollHeight"), MAX_HEIGHT)
    width = page.viewport_size["width"]
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    # 256 colours are plenty for a page of text and flat badges, at a third of the bytes.
    with Image.open(path) as shot:
        shot.convert("RGB").quantize(256).save(path, optimize=True)


def shoot_down_to(page: Page, selector: str, path: Path) -> None:
    """The page from its top down to `selector`'s bottom edge (the facts, then that form)."""
    bottom = page.locator(selector).evaluate("e => e.getBoundingClientRect().bottom + window.scrollY")
    shoot(page, path, int(bottom) + 16)


def wait_for_images(page: Page) -> None:
    for image in page.locator("img").all():
        image_width(image)
    page.evaluate("window.scrollTo(0, 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="intake-shots-") as tmp:
        config = make_demo(Path(tmp) / "demo")
        units = json.loads(cli(config, "status", "--json", "--campaign", "default"))["units"]
        submission_id = next(u["submission_id"] for u in units if u["name"] == SUBMISSION_UNIT)
        letter_id = json.loads(cli(config, "status", "--json"))["campaigns"][0]["other"][0]["submission_id"]
        with console_server(config) as base, sync_playwright() as playwright:
            browser = launch(playwright)
            for width, name in ((1280, "console-1280.png"), (390, "console-390.png")):
                context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
                guard = OriginGuard(context, base)
                page = context.new_page()
                log_in(page, base)
                shoot(page, out / name)
                if width == 1280:
                    page.goto(f"{base}/submissions/{submission_id}")
                    wait_for_images(page)
                    shoot(page, out / "console-submission.png")
                    page.goto(f"{base}/submissions/{letter_id}")
                    page.select_option("#route-campaign", ROUTE_TO)
                    shoot_down_to(page, "#route-form", out / "console-route.png")
                context.close()
                if guard.foreign:
                    raise SystemExit(f"the console asked for assets elsewhere: {guard.foreign}")
            browser.close()
    for name in ("console-1280.png", "console-390.png", "console-submission.png", "console-route.png"):
        print(out / name)


if __name__ == "__main__":
    main()
