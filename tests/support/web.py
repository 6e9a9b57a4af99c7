"""The web console over a real database: the demo's mail, polled into a tmp folder, plus
one unmatched mail whose attachment name is markup. Each test gets its own copy."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import warnings

from rich.console import Console

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x suggests httpx2; httpx serves the TestClient the same
    from starlette.testclient import TestClient

from config.settings import Settings, load_settings
from intake.app import App
from intake.demo import run_demo
from intake.pipeline import Location, ingest
from intake.web.app import create_app
from intake.web.auth import add_user
from storage.models import Role, utcnow
from tests.support.intake_env import submission_mail

PASSWORD = "correct horse battery"
# Markup, as a sender may name a file (no "/": the pipeline keeps only a path's last part).
SCRIPT_NAME = "<img src=x onerror=alert(1)>表.xlsx"
STRANGER = "someone@elsewhere.example"


def build_demo(folder: Path) -> Path:
    """The demo folder with one more mail: unmatched, from a stranger, its file named in markup."""
    run_demo(folder, Console(quiet=True))
    settings = load_settings(folder / "intake.toml")
    raw = submission_mail(("某人", STRANGER), subject="报送材料", unit="不存在的某某工会",
                          names=(SCRIPT_NAME, "盖章扫描件.pdf"))
    with App(settings) as app:
        ingest(app, raw, settings.campaign.deadline - dt.timedelta(days=2), Location(app.account, "INBOX", 1, 1))
    return folder


@dataclass
class Site:
    client: TestClient
    app: App
    settings: Settings

    def login(self, name: str = "admin", password: str = PASSWORD, **kw: object) -> object:
        return self.client.post("/login", data={"username": name, "password": password, **kw}, follow_redirects=False)

    def csrf(self, path: str = "/") -> str:
        page = self.client.get(path)
        return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

    def post(self, path: str, data: dict | None = None, *, csrf: str | None = None, **kw: object) -> object:
        token = self.csrf() if csrf is None else csrf
        return self.client.post(path, data={"csrf": token, **(data or {})}, follow_redirects=False, **kw)


def open_site(base: Path, tmp_path: Path, *, users: bool = True, base_url: str = "http://testserver",
              **web: object) -> Site:
    folder = tmp_path / "site"
    shutil.copytree(base, folder)
    settings = load_settings(folder / "intake.toml")
    if web:
        settings = settings.model_copy(update={"web": settings.web.model_copy(update=web)})
    app = App(settings)
    if users:
        with app.db.session() as session:
            add_user(session, "admin", PASSWORD, Role.ADMIN, actor="test", now=utcnow())
            add_user(session, "clerk", PASSWORD, Role.STAFF, actor="test", now=utcnow())
    client = TestClient(create_app(settings, intake_app=app), base_url=base_url)
    return Site(client, app, settings)
