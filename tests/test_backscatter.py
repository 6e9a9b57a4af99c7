"""A backscatter flood through the whole path: Dovecot in, the pipeline, SMTP out to a real sink.

Some 300 forged mails from strangers (and a few forging a unit's address, failing
authentication), each carrying attacker text in subject, display name, file name, sheet
and body, arrive before and after one genuine mail from a unit. Whatever we send must
carry none of that text, the hourly caps must hold, and the unit's receipt must go out,
in full, before any reply to a stranger.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.app import App
from intake.runs import poll_once
from intake.samples import DEMO_AUTHSERV, form_workbook, mime_message
from storage.models import Message, ReplyForm, Submission, Trust
from tests.support.campaigns import FORM1
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail
from tests.support.smtp import Received, SmtpSink

MARKER = "EVIL-TEXT"
UNIT_ADDRESS = "jinan@example.cn"
FLOOD_DOMAIN = "flood.example"
OTHER_DOMAINS = [f"d{n:02d}.example" for n in range(15)]
FORGED_UNIT_MAILS = 10
GENUINE_AT = 250  # the genuine mail arrives after this many forged ones
PER_DOMAIN, TOTAL = 20, 60  # the [smtp] defaults


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Dovecot:
    return dovecot.add_user(f"flood-{uuid.uuid4().hex[:12]}@example.org")


def strangers() -> list[str]:
    """~300 addresses: 150 at one domain, 10 at each of 15 others."""
    return [f"user{n}@{FLOOD_DOMAIN}" for n in range(150)] + [
        f"user{n}@{domain}" for domain in OTHER_DOMAINS for n in range(10)
    ]


def forged_mail(n: int, address: str, when: dt.datetime, *, failed_auth: bool = False) -> bytes:
    """A mail whose every sender-written field carries `EVIL-TEXT-<n>`."""
    mark = f"{MARKER}-{n:03d}"
    # Every tenth claims a unit in its sheet; the rest write the marker there.
    unit = "济南市总工会" if n % 10 == 0 else f"{mark} 官方客服"
    sheet = form_workbook(FORM1, f"{mark} 汇总表", unit,
                          [(f"{mark} 中奖通知", f"{mark} 请访问 http://phish.example", 1, 1, f"{mark} 请致电", 1, Decimal("1"))])
    headers = None
    if failed_auth:
        headers = {"Authentication-Results": f"{DEMO_AUTHSERV}; spf=fail smtp.mailfrom=example.cn; "
                                             f"dkim=fail header.d=example.cn; dmarc=fail header.from=example.cn"}
    return mime_message(
        sender=(f"{mark} 客服中心", address), subject=f"{mark} 您的账户异常", body=f"{mark} 请点击链接",
        attachments=[(f"{mark}-汇总表.xlsx", sheet)],
        date=when, authenticated=not failed_auth, extra_headers=headers,
    )


def flood(start: dt.datetime) -> tuple[list[tuple[bytes, dt.datetime]], bytes]:
    """The mails in arrival order, one second apart, and the genuine one among them."""
    senders = [(UNIT_ADDRESS, True)] * FORGED_UNIT_MAILS + [(a, False) for a in strangers()]
    forged = [forged_mail(n, address, start, failed_auth=failed) for n, (address, failed) in enumerate(senders)]
    genuine = submission_mail(date=start)  # authenticated by our receiving server: dmarc=pass
    ordered = [*forged[:GENUINE_AT], genuine, *forged[GENUINE_AT:]]
    return [(raw, start + dt.timedelta(seconds=i)) for i, raw in enumerate(ordered)], genuine


def decoded_text(received: Received) -> str:
    """Every header and text part as a mail client shows them (encoded-words decoded)."""
    reply = email.message_from_bytes(received.data, policy=email.policy.default)
    headers = "\n".join(f"{k}: {v}" for k, v in reply.items())
    bodies = "\n".join(p.get_content() for p in reply.walk() if p.get_content_maintype() == "text")
    return headers + "\n" + bodies


def domain_of(received: Received) -> str:
    [recipient] = received.rcpt_tos
    return recipient.rpartition("@")[2].lower()


def test_a_forged_flood_relays_no_text_is_capped_and_the_units_receipt_goes_first(
    tmp_path: Path, mailbox: Dovecot, smtp_sink: SmtpSink
) -> None:
    mails, genuine = flood(DEADLINE - dt.timedelta(hours=6))
    mailbox.append_many(mails)
    settings = intake_settings(
        tmp_path, dovecot=mailbox,
        authenticity={"trusted_authserv_ids": [DEMO_AUTHSERV], "require": False},
        smtp={"mode": "send", "host": smtp_sink.host, "port": smtp_sink.port, "security": "none",
              "from_address": "szscbhb@example.org", "from_name": "省总工会劳动竞赛"},
    )
    assert settings.smtp.hourly_cap_per_domain == PER_DOMAIN and settings.smtp.hourly_cap_total == TOTAL
    with App(settings) as app:
        poll_once(app)
        with app.db.session() as session:
            rows = session.execute(select(Submission, Message).join(Message)).all()
            genuine_id = email.message_from_bytes(genuine)["Message-ID"]
            [unit] = [s for s, m in rows if m.message_id == genuine_id]
            assert unit.trust is Trust.VERIFIED and unit.reply_form is ReplyForm.FULL and unit.reply_suppressed is None
            forged = [s for s, m in rows if m.message_id != genuine_id]
            assert len(forged) == len(mails) - 1
            assert all(s.reply_form is ReplyForm.SHORT or s.reply_suppressed for s in forged)
            suppressed = Counter(s.reply_suppressed for s in forged if s.reply_form is None)

    sent = smtp_sink.messages
    # Nothing a sender wrote comes back: not in the bytes, not once decoded.
    assert not [m for m in sent if MARKER.encode() in m.data or MARKER in decoded_text(m)]
    # The unit's genuine receipt, in full, before any reply to a stranger.
    first = email.message_from_bytes(sent[0].data, policy=email.policy.default)
    assert sent[0].rcpt_tos == [UNIT_ADDRESS] and first["In-Reply-To"] == genuine_id
    assert first["Subject"].startswith("【已收到】") and "重点工程类 2 项" in first.get_body(("plain",)).get_content()
    short = sent[1:]
    assert all(email.message_from_bytes(m.data, policy=email.policy.default)["Subject"].startswith("【自动回复】")
               for m in short)
    # The caps hold: 60 short replies in the hour, at most 20 to any one domain.
    per_domain = Counter(domain_of(m) for m in short)
    assert len(short) == TOTAL and max(per_domain.values()) == PER_DOMAIN == per_domain[FLOOD_DOMAIN]
    # Forgeries of the unit's address used their own daily allowance, not the unit's.
    assert sum(m.rcpt_tos == [UNIT_ADDRESS] for m in short) == 5
    assert suppressed["daily_cap"] == FORGED_UNIT_MAILS - 5
    assert set(suppressed) == {"daily_cap", "domain_cap", "global_cap"} and sum(suppressed.values()) == len(forged) - TOTAL
