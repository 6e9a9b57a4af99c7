"""The console's security edges: the session cookie's flags, downloads that cannot run
in the browser, names written by senders shown escaped, the reverse proxy's prefix."""

from __future__ import annotations

import html
import os
import stat
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.web.auth import secret_key_path
from intake.web.download import content_disposition, safe_type
from storage.models import StoredFile, Submission, SubmissionStatus
from tests.support.web import SCRIPT_NAME, Site, build_demo, open_site


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("websec") / "demo")


@pytest.fixture
def sites(demo: Path, tmp_path: Path) -> Iterator[callable]:
    opened: list[Site] = []

    def make(**kw: object) -> Site:
        site = open_site(demo, tmp_path / str(len(opened)), **kw)
        opened.append(site)
        return site

    yield make
    for site in opened:
        site.client.close()
        site.app.close()


def session_cookie(response: object) -> SimpleCookie:
    jar = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    return jar


def script_file(site: Site) -> tuple[int, int]:
    with site.app.db.session() as session:
        stored = session.scalar(select(StoredFile).where(StoredFile.name == SCRIPT_NAME))
        return stored.submission_id, stored.id


def test_session_cookie_is_httponly_samesite_and_not_secure_over_http(sites: callable) -> None:
    morsel = session_cookie(sites().login())["intake_session"]
    assert morsel["httponly"] is True and morsel["samesite"].lower() == "lax" and not morsel["secure"]


def test_session_cookie_is_secure_over_https(sites: callable) -> None:
    morsel = session_cookie(sites(base_url="https://testserver").login())["intake_session"]
    assert morsel["secure"] is True and morsel["httponly"] is True


def test_secure_behind_a_trusted_proxy_that_says_https(sites: callable) -> None:
    site = sites(trusted_proxies=["testclient"])  # the TestClient's peer address
    response = site.client.post(
        "/login", data={"username": "admin", "password": "correct horse battery"},
        headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
    assert session_cookie(response)["intake_session"]["secure"] is True


def test_forwarded_proto_from_an_untrusted_peer_is_ignored(sites: callable) -> None:
    site = sites()  # trusts only loopback, not the TestClient's peer
    response = site.client.post("/login", data={"username": "admin", "password": "correct horse battery"},
                                headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
    assert not session_cookie(response)["intake_session"]["secure"]


def test_a_forged_or_foreign_cookie_is_no_session(sites: callable) -> None:
    site = sites()
    site.client.cookies.set("intake_session", "eyJ1IjoxfQ.forged.signature")
    assert site.client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_no_file_or_page_image_without_login(sites: callable) -> None:
    site = sites()
    submission_id, file_id = script_file(site)
    for path in (f"/submissions/{submission_id}/files/{file_id}", f"/submissions/{submission_id}/files/{file_id + 1}/pages/1.png"):
        response = site.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
        assert b"PK" not in response.content and b"%PDF" not in response.content


def test_a_file_name_written_as_markup_is_shown_escaped(sites: callable) -> None:
    site = sites()
    site.login()
    submission_id, _ = script_file(site)
    page = site.client.get(f"/submissions/{submission_id}").text
    assert "<img src=x" not in page
    assert html.escape(SCRIPT_NAME, quote=False) in page
    with site.app.db.session() as session:  # the unmatched mail is in the queue under the same rule
        assert session.get(Submission, submission_id).status is SubmissionStatus.UNMATCHED
    assert "<img src=x" not in site.client.get("/queue").text


def test_downloads_are_attachments_with_a_safe_type(sites: callable) -> None:
    site = sites()
    site.login()
    submission_id, file_id = script_file(site)
    response = site.client.get(f"/submissions/{submission_id}/files/{file_id}")
    assert response.status_code == 200 and response.content.startswith(b"PK")
    assert response.headers["content-type"] == safe_type(SCRIPT_NAME)
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''%3Cimg%20src%3Dx" in disposition
    assert "<" not in disposition and "\n" not in disposition


@pytest.mark.parametrize("name", ["page.html", "x.svg", "evil.htm", "noext", "a.js"])
def test_types_that_a_browser_would_run_are_octet_stream(name: str) -> None:
    assert safe_type(name) == "application/octet-stream"


def test_a_name_cannot_break_out_of_the_header() -> None:
    header = content_disposition('a"\r\nSet-Cookie: x=1;.pdf')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="') and header.count('"') == 2


def test_pages_carry_a_strict_content_security_policy(sites: callable) -> None:
    response = sites().client.get("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy


def test_login_never_redirects_to_another_site(sites: callable) -> None:
    site = sites()
    assert site.login(next="//evil.example/").headers["location"] == "/"
    assert site.login(next="https://evil.example/").headers["location"] == "/"


def test_healthz_answers_without_login(sites: callable) -> None:
    response = sites(users=False).client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")


def test_the_signing_key_is_a_private_file_made_once(sites: callable) -> None:
    site = sites()
    path = secret_key_path(site.settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = path.read_bytes()
    sites()  # another app over another copy: its own key; this one is unchanged
    assert path.read_bytes() == key


# --- behind a reverse proxy at a path prefix ----------------------------------------------


def test_base_path_prefixes_links_redirects_and_assets(sites: callable) -> None:
    site = sites(base_path="/intake")
    first = site.client.get("/intake/queue", follow_redirects=False)
    assert first.headers["location"] == "/intake/login?next=%2Fqueue"
    login = site.client.post("/intake/login", data={"username": "admin", "password": "correct horse battery",
                                                    "next": "/queue"}, follow_redirects=False)
    assert login.headers["location"] == "/intake/queue"
    assert session_cookie(login)["intake_session"]["path"] == "/intake"
    page = site.client.get("/intake/").text
    # The demo has two campaigns open: the nav keeps the one shown.
    assert 'href="/intake/static/console.css"' in page and 'href="/intake/queue?campaign=default"' in page
    assert 'href="/"' not in page and 'action="/logout"' not in page
    assert site.client.get("/intake/static/console.css").status_code == 200
    assert site.client.get("/intake/healthz").text == "ok"


def test_base_path_also_works_when_the_proxy_strips_the_prefix(sites: callable) -> None:
    site = sites(base_path="/intake")
    response = site.client.get("/queue", follow_redirects=False)  # the proxy removed "/intake"
    assert response.headers["location"] == "/intake/login?next=%2Fqueue"
