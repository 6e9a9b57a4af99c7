"""A real browser on a real console: Debian's Chromium driven by Playwright, `intake web`
started as the CLI starts it, over a demo folder made by the CLI.

Playwright never downloads a browser here: it is pointed at /usr/bin/chromium (the Debian
package `chromium`, installed by .ci/run), and every request that would leave the console's
own origin is blocked and recorded, so a page that needs a CDN fails its test.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tomli_w
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright, Route

from config.settings import load_settings
from intake.samples import form_workbook, mime_message, scanned_pdf
from tests.support.dovecot import free_port

PASSWORD = "correct horse battery"
STRANGER = ("某人", "someone@elsewhere.example")
STRANGER_UNIT = "不存在的某某工会"  # no registry unit: the mail stays unmatched
# Root in CI needs --no-sandbox; the rest keep Chromium off the network (a closed machine
# refuses its background connections, which would otherwise show up as failures).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# The `intake` console script, by the running interpreter (`-m intake.cli` would miss the
# commands that intake.cli_users registers on intake.cli.main).
INTAKE = [sys.executable, "-c", "from intake.cli import main; main()"]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium package is missing: apt-get install -y --no-install-recommends chromium "
                           "(.ci/run installs it; Playwright is never allowed to download a browser)")
    return path


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def cli(config: Path | None, *args: str, stdin: str | None = None) -> str:
    """One `intake` command, as a user types it; its output, or the test fails with it."""
    command = [*INTAKE, *(["--config", str(config)] if config else []), *args]
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=240, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def make_demo(folder: Path, *, smtp_port: int | None = None) -> Path:
    """`intake demo` in `folder` and an admin account; with `smtp_port`, replies from then on
    go to a real SMTP server on loopback instead of .eml files. Returns the config path."""
    cli(None, "demo", "--dir", str(folder))
    config = folder / "intake.toml"
    if smtp_port is not None:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
        data["smtp"].update(mode="send", host="127.0.0.1", port=smtp_port, security="none")
        config.write_text(tomli_w.dumps(data), encoding="utf-8")
    cli(config, "user", "add", "admin", "--role", "admin", stdin=PASSWORD + "\n")
    return config


def add_unmatched_mail(config: Path) -> None:
    """A stranger's mail naming no registry unit, dropped into the demo's Maildir and polled."""
    settings = load_settings(config)
    arrived = settings.campaign.deadline - dt.timedelta(hours=1)
    form = settings.campaign.forms[0]
    raw = mime_message(sender=STRANGER, subject="报送材料", body=f"请查收。\n{STRANGER_UNIT}",
                       attachments=[("附件1.xlsx", form_workbook(form, form.title, STRANGER_UNIT)),
                                    ("盖章扫描件.pdf", scanned_pdf())],
                       date=arrived)
    path = settings.resolve(settings.mailbox.maildir) / "new" / "9001.stranger"
    path.write_bytes(raw)
    os.utime(path, (arrived.timestamp(), arrived.timestamp()))  # the Maildir's arrival time
    cli(config, "poll")


@contextmanager
def console_server(config: Path) -> Iterator[str]:
    """`intake web` in a child process on a free loopback port; yields its base URL once
    /healthz answers, stops it afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([*INTAKE, "--config", str(config), "web",
                                "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_healthy(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(base: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if process.poll() is not None:
            raise AssertionError(f"intake web exited {process.returncode}:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # polling a port that is not open yet, bounded by `limit`
    raise AssertionError(f"intake web did not answer on {base} within {timeout:.0f} s")


class OriginGuard:
    """Every request of a browser context that is not to `origin` is aborted and kept in
    `.foreign` (the test asserts it stays empty)."""

    def __init__(self, context: BrowserContext, origin: str) -> None:
        self.origin = origin.rstrip("/")
        self.foreign: list[str] = []
        context.route(lambda url: not self._own(url), self._block)

    def _own(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def _block(self, route: Route) -> None:
        self.foreign.append(route.request.url)
        route.abort()


def log_in(page: Page, base: str, name: str = "admin", password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(base + "/")


def image_width(image: Locator) -> int:
    """The natural width of an <img> once it has loaded (lazy ones are scrolled to first);
    decode() settles when the image has arrived, and fails if it cannot be shown."""
    image.scroll_into_view_if_needed()
    return image.evaluate("i => i.decode().then(() => i.naturalWidth, () => 0)")
