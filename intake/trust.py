"""How far a submission's unit can be believed: the one rule, and what follows from it.

The mailbox is public. Anyone can write a unit's name into a sheet, a subject or a body,
and anyone can put a unit's registered address into From. So a submission is only as
good as the evidence for who sent it:

- `verified`: the From is a registered address (or domain) of the unit and authentication
  passed (aligned DKIM, or DMARC from our own receiving server);
- `registered`: a registered address, with nothing checked either way (no signature, or
  no checks configured);
- `claimed`: the unit was only named by the mail (sheet, subject, body), or the From is a
  registered address whose authentication *failed*; staff also make a submission
  `claimed` + confirmed when they assign its unit by hand;
- `unknown`: no unit at all.

What follows: a claimed submission waits for staff (待确认) and never replaces a trusted
record by itself (intake.tracking); only a registered address gets a full reply
(notifications.replies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parsers.model import Problem, ProblemCode
from storage.models import Confirmation, Submission, Trust

TRUSTED = frozenset({Trust.VERIFIED, Trust.REGISTERED})
# Results that are positive evidence of forgery, as opposed to no evidence at all
# (RFC 8601 §2.7.1 and §2.7.2 result values).
_DKIM_FAILED = frozenset({"fail", "policy", "permerror"})
_DMARC_FAILED = frozenset({"fail"})


def authentication_failed(auth: Mapping[str, Any] | None) -> bool:
    """True when the checks ran and said no: DMARC fail, or DKIM fail with no pass.

    "No signature" or "no checks configured" is not failure: most small-office mail has
    no signature, and it is `registered`, not `claimed`.
    """
    if not auth or auth.get("verified") is not False:
        return False
    return (auth.get("dmarc") or "") in _DMARC_FAILED or (auth.get("dkim") or "") in _DKIM_FAILED


def trust_level(*, unit_source: str | None, auth: Mapping[str, Any] | None) -> Trust:
    """The trust a submission earns from where its unit came from and the sender checks.

    unit_source is intake.registry.UnitMatch.source ("sender", "sheet", "subject",
    "body") or None; auth is intake.authenticity.AuthVerdict.as_dict().
    """
    if unit_source is None:
        return Trust.UNKNOWN
    if unit_source != "sender" or authentication_failed(auth):
        return Trust.CLAIMED
    if auth and auth.get("verified") is True:
        return Trust.VERIFIED
    return Trust.REGISTERED


def is_trusted(submission: Submission) -> bool:
    """Whether the submission may stand as its unit's record without a person's word."""
    return submission.trust in TRUSTED or submission.confirmation is Confirmation.CONFIRMED


def awaits_staff(submission: Submission) -> bool:
    """A claimed submission nobody has confirmed or rejected yet (待确认)."""
    return submission.confirmation is Confirmation.PENDING


# Where a claim's unit was read, in staff's words (the problem below, the digest, the console).
SOURCE_WORDS = {"sheet": "表格中的汇总单位", "subject": "邮件主题", "body": "邮件正文"}


def claim_basis(unit_source: str | None) -> str:
    """Why a claim names its unit, in a few words: 据邮件主题, or a failed registered address."""
    if unit_source == "sender":
        return "登记邮箱但验证未通过"
    return f"据{SOURCE_WORDS.get(unit_source or '', '邮件内容')}"


def unconfirmed_problem(submission: Submission) -> Problem:
    """The staff-facing note on a claimed submission: why it waits, and how to settle it."""
    sender = submission.message.from_address or "（无）"
    if submission.unit_source == "sender":
        why = f"发件地址 {sender} 是该单位登记的邮箱，但发件人验证未通过（可能是伪造的发件人）"
    else:
        why = f"单位是根据{SOURCE_WORDS.get(submission.unit_source or '', '邮件内容')}认定的，发件地址 {sender} 不是该单位登记的邮箱"
    return Problem(
        ProblemCode.UNIT_UNCONFIRMED,
        f"待确认：{why}。确认前不会替代「{submission.unit}」已有的报送；"
        "请核实后确认或驳回（intake confirm / intake reject 报送编号）。",
    )
