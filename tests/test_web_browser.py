"""The staff console in a real browser: Debian's Chromium (Playwright) against `intake web`
started by the CLI over a folder made by `intake demo`, replies going to a real SMTP server.

Each test gets its own copy of the polled demo and its own server and SMTP sink, so the
acts of one test are not seen by another. Every page may only load assets from the
console's own origin: a request elsewhere is blocked and fails the test.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli_w
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from config.campaigns import LEGACY_ID
from intake.board import STATE_HEX
from tests.support.browser import (
    OriginGuard,
    add_unmatched_mail,
    cli,
    console_server,
    image_width,
    launch,
    log_in,
    make_demo,
)
from tests.support.smtp import Received, SmtpSink

LATE_UNIT, LATE_ADDRESS = "烟台市总工会", "yantai@example.cn"  # the demo's mail at 17:00:01
MISSING_UNIT, MISSING_ADDRESS = "东营市总工会", "dongying@example.cn"  # only an out-of-office reply
ASSIGN_TO = "济宁市总工会"  # nothing from it in the demo
PDF_UNIT = "枣庄市总工会"  # a sealed scan beside its workbook
PHONE = 390
MEDAL = "wuyi-2024"  # the demo's second campaign
LETTER_UNIT = "济南市总工会"  # its letter in the demo belongs to no campaign (其他来信)


@dataclass
class Console:
    config: Path
    base: str
    sink: SmtpSink
    page: Page
    dialogs: list[str] = field(default_factory=list)  # what each window.confirm() asked

    def status(self, campaign: str = LEGACY_ID) -> dict:
        """One campaign's `status --json` (the demo has two open; the console opens on the default)."""
        return json.loads(cli(self.config, "status", "--json", "--campaign", campaign))

    def unit(self, name: str, campaign: str = LEGACY_ID) -> dict:
        return next(u for u in self.status(campaign)["units"] if u["name"] == name)

    def mail_to(self, address: str) -> Received:
        """The first mail the sink got for `address`, waiting for it (a condition, not a sleep)."""
        count = 1
        while True:
            found = [m for m in self.sink.wait_for(count) if address in m.rcpt_tos]
            if found:
                return found[0]
            count += 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`intake demo`, an admin from `intake user add`, and one unmatched mail polled in."""
    folder = tmp_path_factory.mktemp("browser") / "demo"
    add_unmatched_mail(make_demo(folder))
    return folder


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink().start()
    yield s
    s.stop()


def open_console(demo: Path, tmp_path: Path, sink: SmtpSink, browser: Browser, width: int) -> Iterator[Console]:
    folder = tmp_path / "demo"
    shutil.copytree(demo, folder)
    config = folder / "intake.toml"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    data["smtp"].update(mode="send", host=sink.host, port=sink.port, security="none")  # loopback only
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    with console_server(config) as base:
        context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN")
        guard = OriginGuard(context, base)
        page = context.new_page()
        console = Console(config, base, sink, page)

        def accept(dialog: object) -> None:
            console.dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        log_in(page, base)
        yield console
        context.close()
    assert guard.foreign == [], "the console asked for assets outside its own origin"


@pytest.fixture
def office(demo: Path, tmp_path: Path, sink: SmtpSink, browser: Browser) -> Iterator[Console]:
    yield from open_console(demo, tmp_path, sink, browser, 1280)


@pytest.fixture
def phone(demo: Path, tmp_path: Path, sink: SmtpSink, browser: Browser) -> Iterator[Console]:
    yield from open_console(demo, tmp_path, sink, browser, PHONE)


def board_states(page: Page) -> dict[str, str]:
    rows = page.locator("#board tr[data-unit][data-state]")
    return {r.get_attribute("data-unit"): r.get_attribute("data-state") for r in rows.all()}


# --- the acts, as a person does them ---------------------------------------------------------


def assign_unmatched(c: Console) -> int:
    c.page.click("#nav-queue")
    c.page.locator("#queue-unmatched a").first.click()
    submission_id = int(c.page.url.rsplit("/", 1)[1])
    c.page.select_option("#assign-unit", ASSIGN_TO)
    c.page.click("#assign-form button[type=submit]")
    c.page.wait_for_selector("#done")
    return submission_id


def accept_late(c: Console, note: str) -> None:
    c.page.click("#nav-overview")
    c.page.locator(f'#board tr[data-unit="{LATE_UNIT}"] a[href*="/submissions/"]').click()
    c.page.fill("#late-note", note)
    c.page.click("#late-accept")
    c.page.wait_for_selector("#done")


def remind_missing(c: Console) -> str:
    """Tick the unit on the overview, preview, send; the previewed text."""
    c.page.click("#nav-overview")
    c.page.check(f'#board input[name="unit"][value="{MISSING_UNIT}"]')
    c.page.click("#remind-selected")
    preview = c.page.locator(f'section.draft[data-unit="{MISSING_UNIT}"] pre').inner_text()
    c.page.click("#remind-send-button")
    c.page.wait_for_selector(f'#remind-result li[data-unit="{MISSING_UNIT}"]')
    return preview


def route_letter(c: Console, campaign: str) -> int:
    """From the overview's 其他来信, open the letter and put it in `campaign`: pick, one click."""
    c.page.click("#nav-overview")
    c.page.locator("#other-mail li a").first.click()
    submission_id = int(c.page.url.rsplit("/", 1)[1])
    c.page.select_option("#route-campaign", campaign)
    c.page.click("#route-form button[type=submit]")
    c.page.wait_for_selector("#done")
    return submission_id


def late_message_id(demo: Path) -> str:
    """The Message-ID of the late mail, read from the demo's Maildir (not from intake)."""
    for path in (demo / "maildir" / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if LATE_ADDRESS in str(message["From"]):
            return message["Message-ID"]
    raise AssertionError("the demo has no late mail")


def mail_text(received: Received) -> tuple[email.message.EmailMessage, str]:
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    return message, message.get_body(("plain",)).get_content()


# --- tests -----------------------------------------------------------------------------------


def test_after_login_every_unit_shows_its_status_json_state(office: Console) -> None:
    expected = {u["name"]: u["state"] for u in office.status()["units"]}
    assert board_states(office.page) == expected
    assert office.page.locator("#countdown").is_visible()
    assert office.page.locator(".who").inner_text() == "admin"


def test_state_badges_wear_the_digests_colours(office: Console) -> None:
    shown = office.page.eval_on_selector_all(
        "#counts .state", "els => els.map(e => [e.dataset.state, getComputedStyle(e).backgroundColor])")
    rgb = {s.value: "rgb({}, {}, {})".format(*bytes.fromhex(h[1:])) for s, h in STATE_HEX.items()}
    assert dict(shown) == rgb


def test_a_submission_shows_its_pdf_pages_as_images(office: Console) -> None:
    office.page.locator(f'#board tr[data-unit="{PDF_UNIT}"] a[href*="/submissions/"]').click()
    images = office.page.locator(".pages img")
    assert images.count() >= 1
    assert all(image_width(image) > 0 for image in images.all())


def test_assign_an_unmatched_submission(office: Console) -> None:
    assert office.unit(ASSIGN_TO)["submission_id"] is None
    submission_id = assign_unmatched(office)
    assert office.dialogs == ["确定把这份报送指定给所选单位？"]
    assert office.unit(ASSIGN_TO)["submission_id"] == submission_id
    office.page.click("#nav-overview")
    assert board_states(office.page)[ASSIGN_TO] == office.unit(ASSIGN_TO)["state"] != "missing"
    office.page.click("#nav-queue")
    assert office.page.locator("#queue-unmatched").count() == 0  # the stranger's was the only one


def test_accepting_a_late_submission_sends_the_follow_up_in_its_thread(office: Console, demo: Path) -> None:
    assert office.unit(LATE_UNIT)["late_undecided"] is True
    accept_late(office, "经研究同意受理")
    assert office.dialogs == ["确定作出该决定？单位会收到回复邮件。"]
    message, text = mail_text(office.mail_to(LATE_ADDRESS))
    original = late_message_id(demo)
    assert message["In-Reply-To"] == original and original in message["References"]
    assert "经研究同意受理" in text
    office.page.click("#nav-overview")
    row = office.page.locator(f'#board tr[data-unit="{LATE_UNIT}"]')
    assert row.get_attribute("data-state") == "accepted_late" and row.locator(".tag").count() == 0


def test_a_reminder_is_previewed_then_delivered(office: Console) -> None:
    preview = remind_missing(office)
    assert office.dialogs == ["确定发送以上催报邮件？"]
    _, text = mail_text(office.mail_to(MISSING_ADDRESS))
    assert text.strip().splitlines() == preview.strip().splitlines()  # the wire has CRLF
    office.page.click("#nav-overview")
    assert office.page.locator(f'#board tr[data-unit="{MISSING_UNIT}"] td.reminded').inner_text().strip() != ""


def test_the_audit_page_lists_the_acts(office: Console) -> None:
    assign_unmatched(office)
    accept_late(office, "同意")
    remind_missing(office)
    office.page.click("#nav-audit")
    rows = office.page.locator("#audit tbody tr[data-action]")
    acts = [(r.get_attribute("data-action"), r.locator("td").nth(1).inner_text()) for r in rows.all()]
    for action in ("assign", "late_accepted", "remind"):
        assert (action, "admin") in acts


def test_a_letter_for_no_campaign_is_routed_to_the_medal_campaign_with_one_click(office: Console) -> None:
    assert office.unit(LETTER_UNIT, MEDAL)["state"] == "missing"
    submission_id = route_letter(office, MEDAL)
    assert office.dialogs == ["确定把这封邮件归入所选征集？将按该征集重新判定；此前未回复过的，单位会收到该征集的回复。"]
    assert office.page.locator("#done").inner_text() == "已完成：归入征集"
    office.page.click(f'#campaigns a[data-campaign="{MEDAL}"]')
    medal = office.unit(LETTER_UNIT, MEDAL)
    assert medal["submission_id"] == submission_id
    assert board_states(office.page)[LETTER_UNIT] == medal["state"] != "missing"
    assert office.page.locator("#other-mail").count() == 0  # the only letter for no campaign
    office.page.click("#nav-audit")
    row = office.page.locator('#audit tbody tr[data-action="route"]')
    assert row.count() == 1 and row.locator("td").nth(1).inner_text() == "admin"


def test_at_phone_width_the_board_fits_and_the_nav_works(phone: Console) -> None:
    page = phone.page
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE + 1
    assert board_states(page) == {u["name"]: u["state"] for u in phone.status()["units"]}
    for link in page.locator("#nav a").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE
    page.click("#nav-queue")
    page.wait_for_url(phone.base + f"/queue?campaign={LEGACY_ID}")  # two campaigns open: the nav keeps the one shown
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE + 1
