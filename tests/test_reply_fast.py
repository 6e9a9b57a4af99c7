"""build_message writes its headers ready-folded: a reader decodes the same mail as from the
email.headerregistry builder it replaced (kept here as the reference), in bytes that are
folded, encoded and CRLF-terminated, and an encoded-word look-alike stays literal text."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import email.utils
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.compose import SMTP_WIRE, _msg_id, build_message, one_line, wire_bytes
from notifications.render import DISPLAY_TZ

FROM = ("ldjs@example.org", "省总工会劳动竞赛申报")


def reference_message(*, from_address: str, from_name: str, to: str, subject: str, text: str, html: str,
                      in_reply_to: str | None = None, references: list[str] | None = None,
                      attachments: tuple = (), auto_submitted: str = "auto-generated") -> EmailMessage:
    """The builder before ready-folded headers (headers parsed and folded by the registry)."""
    from email.headerregistry import Address

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(display_name=one_line(from_name), addr_spec=one_line(from_address))
    msg["To"] = one_line(to)
    msg["Subject"] = one_line(subject)
    msg["Date"] = format_datetime(dt.datetime.now(DISPLAY_TZ))
    msg["Message-ID"] = make_msgid(domain="example.org")
    if in_reply_to:
        msg["In-Reply-To"] = _msg_id(in_reply_to)
    if references:
        msg["References"] = " ".join(_msg_id(r) for r in references)
    msg["Auto-Submitted"] = one_line(auto_submitted)
    msg["X-Loop"] = one_line(from_address)
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    for filename, mime_type, data in attachments:
        maintype, _, subtype = mime_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=one_line(filename) or "attachment")
    return msg


def parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def assert_wire_form(raw: bytes) -> None:
    assert raw.endswith(b"\r\n")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998 and b"\r" not in line and b"\n" not in line


def header_values(mail: EmailMessage, *, recipients: bool = True) -> dict:
    values = {name: str(mail[name]) for name in ("Subject", "Auto-Submitted", "X-Loop", "X-Auto-Response-Suppress",
                                                  "MIME-Version")}
    # Message ids as a list: the registry could fold a long list whole onto a second line,
    # which a reader gets back with a leading space.
    values.update({name: str(mail[name] or "").split() for name in ("In-Reply-To", "References")})
    for name in ("From", "To") if recipients else ("From",):
        values[name] = [(a.display_name, a.addr_spec) for a in mail[name].addresses]
    return values


def contents(mail: EmailMessage) -> list:
    return [(p.get_content_type(), p.get_content_charset(), p.get_filename(),
             p.get_content() if not p.is_multipart() else None) for p in mail.walk()]


# Text as submitters write it: Chinese, ASCII with quoting specials, controls, runs of spaces.
_CHARS = st.sampled_from(list("宁波市总工会报送汇总表李明【】（）《》“”，。 ") + list("abcXYZ019 .,;:<>@\"'\\()[]-_")
                         + ["\r", "\n", "\t", "\x00", "\u2028", "\x85", "  ", "😀"])
TEXT = st.lists(_CHARS, max_size=120).map("".join)
# Encoded-word look-alikes are apart: the registry decoded them a second time (see below).
PLAIN = TEXT.filter(lambda s: "=?" not in s)
NAME = st.lists(_CHARS.filter(lambda c: c.isprintable() or c == " "), max_size=40).map("".join).map(str.strip)
MSG_ID = st.from_regex(r"<[a-z0-9.]{1,60}@[a-z0-9.]{1,40}>", fullmatch=True)
BODY = st.lists(st.sampled_from(["你好，", "abc", "\n", "\r\n", "x" * 90, "长" * 40, "<p>", "From x", "--="]),
                max_size=30).map("".join)


@settings(max_examples=100, deadline=None)
@given(name=NAME, subject=PLAIN, in_reply_to=st.none() | MSG_ID, references=st.lists(MSG_ID, max_size=10),
       text=BODY, html=BODY, domain=st.sampled_from(["ningbo.example.cn", "a.cn"]))
def test_a_reply_reads_as_the_registry_built_one(name: str, subject: str, in_reply_to: str | None,
                                                  references: list[str], text: str, html: str, domain: str) -> None:
    address = f"zgh@{domain}"
    common = dict(from_address=FROM[0], from_name=FROM[1], subject=subject, text=text, html=html,
                  in_reply_to=in_reply_to, references=references or None, auto_submitted="auto-replied")
    new = build_message(to=(name, address), **common)
    old = reference_message(to=email.utils.formataddr((name, address)), **common)
    raw = wire_bytes(new)
    assert_wire_form(raw)
    assert raw == new.as_bytes(policy=SMTP_WIRE)  # the serialiser the outbox used before
    mail, before = parsed(raw), parsed(old.as_bytes(policy=SMTP_WIRE))
    # To is one recipient named as the sender wrote, whatever the name holds (compared
    # without whitespace: the stdlib reader puts a space between the encoded words of a
    # long name, which RFC 2047 readers join). Not the registry's reading: it made a name
    # with a comma two addresses (one of them the sender's own words), dropped leading
    # punctuation, and wrote "." names the stdlib cannot read back.
    [(display_name, to_address)] = header_values(mail)["To"]
    assert ("".join(display_name.split()), to_address) == ("".join(name.split()), address)
    values, reference = header_values(mail, recipients=False), header_values(before, recipients=False)
    # The subject as written, up to runs of spaces: the registry's refolding dropped some.
    assert mail["Subject"] == one_line(subject) or "".join(values["Subject"].split()) == "".join(reference["Subject"].split())
    values.pop("Subject"), reference.pop("Subject")
    assert values == reference
    assert contents(mail) == contents(before)
    assert email.utils.parsedate_to_datetime(str(mail["Date"])) is not None and mail["Message-ID"]


@settings(max_examples=50, deadline=None)
@given(to=st.sampled_from(["staff@sdzgh.cn", "a@b.cn, c@d.cn", "省总 <b@sdzgh.cn>", '"x, y" <x@y.cn>']),
       subject=PLAIN, filenames=st.lists(TEXT, max_size=3))
def test_a_mail_with_attachments_reads_as_the_registry_built_one(to: str, subject: str, filenames: list[str]) -> None:
    files = tuple((f + ".xlsx", "application/vnd.ms-excel", f.encode("utf-8", "replace")) for f in filenames)
    common = dict(from_address=FROM[0], from_name=FROM[1], to=to, subject=subject, text="见附件", html="<p>见附件</p>",
                  attachments=files)
    new, old = build_message(**common), reference_message(**common)
    raw = wire_bytes(new)
    assert_wire_form(raw)
    mail, before = parsed(raw), parsed(old.as_bytes(policy=SMTP_WIRE))
    assert header_values(mail) == header_values(before)
    assert contents(mail) == contents(before)
    assert [p.get_content() for p in mail.iter_attachments()] == [p.get_content() for p in before.iter_attachments()]


def test_an_encoded_word_in_a_subject_or_name_is_shown_literally_not_decoded_into_headers() -> None:
    word = "=?utf-8?b?" + base64.b64encode("\r\nBcc: victim@example.com\r\n\r\nforged".encode()).decode() + "?="
    for subject in (f"汇总 {word}", f"x {word}"):
        mail = build_message(from_address=FROM[0], from_name=FROM[1], to=(f"李明 {word}", "zgh@ningbo.example.cn"),
                             subject=subject, text="t", html="t")
        raw = wire_bytes(mail)
        assert b"\r\nBcc" not in raw and b"forged" not in raw
        reply = parsed(raw)
        assert reply["Bcc"] is None and reply["Subject"] == subject
        # Python's address parser keeps the space between two encoded words of a name.
        shown = reply["To"].addresses[0].display_name
        assert "\n" not in shown and shown.replace(" ", "") == f"李明{word}"


def test_controls_in_a_recipient_name_become_spaces() -> None:
    mail = build_message(from_address=FROM[0], from_name=FROM[1], to=("李明\r\nX-Evil: 1", "zgh@ningbo.example.cn"),
                         subject="s", text="t", html="t")
    raw = wire_bytes(mail)
    assert b"X-Evil: 1\r\n" not in raw
    assert parsed(raw)["To"].addresses[0].display_name == "李明 X-Evil: 1"
