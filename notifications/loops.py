"""Whether a received mail may be answered at all (RFC 3834, as Zammad and RT check it).

Machines must never answer machines: an auto-reply to an out-of-office, a bounce or a
mailing list can loop for ever or hit a stranger whose address was forged. Headers
decide first; the subject heuristics only add to them. What slips through is bounded in
notifications.replies: strangers get only a short reply quoting nothing, capped per
domain and in total per hour, and every address has a daily cap.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from intake.mailread import MailView
from intake.mime import decode_header_value

# Any of these, with any value, marks mail written by a program.
AUTORESPONDER_HEADERS = ("X-Auto-Response-Suppress", "X-Autoreply", "X-Autorespond", "X-Autoreply-From")
BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
REPORT_TYPES = frozenset(
    {"multipart/report", "message/delivery-status", "message/disposition-notification",
     "message/global-delivery-status", "message/global-disposition-notification"}
)
# Local parts that never read their mail, with optional decorations (no-reply+abc, noreply123).
_NOREPLY_LOCAL = re.compile(
    r"^(mailer[-_.]?daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?)([-_.+0-9].*)?$",
    re.IGNORECASE,
)
# Where a delivery status notification carries the returned mail (RFC 3462 / 6522).
RETURNED_PARTS = frozenset({"message/rfc822", "text/rfc822-headers", "message/global", "text/global-headers"})
_BOUNCER_LOCAL = re.compile(r"^(mailer[-_.]?daemon|postmaster)$", re.IGNORECASE)
# qmail returns the mail inline in a text/plain part, after this fixed line.
_QMAIL_COPY = "Below this line is a copy of the message"
# LISTSERV and majordomo send list mail with the list's owner as Sender / envelope sender.
_LIST_OWNER = re.compile(r"(^|[<\s])(owner-[^@\s<>]+|[^@\s<>]+-(owner|request))@", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"自动回复|自动答复|自动应答|退信|投递失败|无法投递|^(已读|read)\s*[:：]|"
    r"auto[- ]?reply|automatic reply|auto[- ]?response|out of (the )?office|"
    r"undelivered mail|undeliverable|delivery status notification|delivery (has )?failed|"
    r"mail delivery (failed|failure|subsystem)|returned mail|failure notice",
    re.IGNORECASE,
)


def _header(msg: MailView, name: str) -> str | None:
    """Decoded header text, or None when absent; a malformed header never raises."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - bad input must not crash the decision
        return ""
    return None if value is None else decode_header_value(value)


def _from_address(msg: MailView) -> str:
    # As servers read it (the addr-spec, never a decoded display name): intake.mime.read_from's,
    # read once with the headers ("" unless the mail names exactly one usable address).
    return (msg.from_address or "").lower()


def no_reply_reason(
    msg: MailView,
    *,
    sender: str | None,
    our_addresses: Collection[str],
    known_sender: bool,
    has_attachments: bool,
) -> str | None:
    """None when a reply is allowed; else a short machine reason for the ledger. `msg` is
    the mail as parsed (`MailView.from_bytes(raw)` builds one from raw bytes)."""
    ours = {a.strip().lower() for a in our_addresses if a}
    from_address = _from_address(msg)
    if is_bounce(msg):  # first: whatever else it carries, a bounce is never a submission
        return "bounce"
    reply_to = (sender or "").strip().lower()
    if not reply_to:
        return "no_sender"
    if reply_to in ours or from_address in ours:
        return "own_address"
    loop = _header(msg, "X-Loop")
    if loop is not None and any(a in loop.lower() for a in ours):
        return "x_loop"
    auto_submitted = _header(msg, "Auto-Submitted")
    if auto_submitted is not None and auto_submitted.split(";")[0].strip().lower() != "no":
        return "auto_submitted"
    if any(_header(msg, name) is not None for name in AUTORESPONDER_HEADERS):
        return "autoresponder_header"
    precedence = (_header(msg, "Precedence") or "").strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"precedence_{precedence}"
    if any(key.lower().startswith("list-") for key in msg.keys()) or _is_list_without_list_headers(msg):
        return "list_header"
    return_path = _header(msg, "Return-Path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "empty_return_path"
    for address in (reply_to, from_address):
        if _NOREPLY_LOCAL.match(address.partition("@")[0]):
            return "noreply_sender"
    if _AUTO_SUBJECT.search(_header(msg, "Subject") or ""):
        return "auto_reply_subject"
    if not known_sender and not has_attachments:
        return "unknown_sender_no_attachments"
    return None


def is_bounce(msg: MailView) -> bool:
    """A delivery status notification: a report (RFC 6522), or the mail system's own
    sender (MAILER-DAEMON, postmaster) returning a mail, as a part or inline (qmail)."""
    if msg.content_types & REPORT_TYPES:
        return True
    if not _BOUNCER_LOCAL.match(_from_address(msg).partition("@")[0]):
        return False
    return bool(msg.content_types & RETURNED_PARTS) or _QMAIL_COPY in msg.body_text


def _is_list_without_list_headers(msg: MailView) -> bool:
    """ezmlm marks list mail with Mailing-List: and "Delivered-To: mailing list ...";
    LISTSERV and majordomo with the list owner as Sender or Return-Path."""
    if _header(msg, "Mailing-List") is not None:
        return True
    if any("mailing list" in decode_header_value(value).lower() for value in msg.get_all("Delivered-To")):
        return True
    return any(_LIST_OWNER.search(_header(msg, name) or "") for name in ("Sender", "Return-Path"))
