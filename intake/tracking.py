"""One current submission per unit and campaign: the newest trusted one by arrival; older
ones stay, superseded. A unit's mail to one campaign never touches its record in another,
and `other` mail (routed to no campaign) is never anyone's record.

A new arrival is linked between its two neighbours by arrival time (two indexed lookups),
so the cost does not grow with the unit's history; the result does not depend on the
order mails are processed in (a retried older mail that is processed after a newer one
still ends up superseded). Rare changes (a reprocess, a staff decision, the unit's first
trusted mail after claims) settle the whole unit again.

Only a trusted submission (intake.trust: a registered address, or one staff confirmed)
replaces another. A claimed one waits for staff (status `held`, 待确认) while the unit
has a trusted record; when the unit has nothing trusted, the newest claim stands in,
still marked 待确认, so a unit that did submit from an unregistered address is not shown
as 未报送.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session, joinedload

from intake.registry import UnitRegistry
from intake.trust import TRUSTED, awaits_staff, is_trusted
from storage.models import Confirmation, LateDecision, ReplyKind, Submission, SubmissionStatus, Trust

STAFF_SOURCE = "staff"


class TrackingError(Exception):
    """A staff command that cannot be carried out; the message is Chinese, for the terminal."""


# Statuses of submissions that are not their unit's record (for "what was current").
NOT_CURRENT = (
    SubmissionStatus.SUPERSEDED,
    SubmissionStatus.IGNORED,
    SubmissionStatus.UNMATCHED,
    SubmissionStatus.HELD,
    SubmissionStatus.REJECTED,
    SubmissionStatus.OTHER,
)


def _closed_unaccepted(submission: Submission) -> bool:
    """Mail for a campaign past its closes_at (the 已截止 reply) waits for staff to accept it."""
    return submission.reply == ReplyKind.CLOSED and submission.late_decision is not LateDecision.ACCEPTED


def _counts(submission: Submission) -> bool:
    # Ignored and other mail, claims staff rejected, late mail staff did not accept and a
    # closed campaign's mail staff have not accepted never become current, never supersede.
    return (
        submission.content_status not in (SubmissionStatus.IGNORED, SubmissionStatus.OTHER)
        and submission.confirmation is not Confirmation.REJECTED
        and submission.late_decision is not LateDecision.REJECTED
        and not _closed_unaccepted(submission)
    )


def _visible_status(submission: Submission) -> SubmissionStatus:
    if submission.content_status in (SubmissionStatus.IGNORED, SubmissionStatus.OTHER):
        return submission.content_status
    if submission.confirmation is Confirmation.REJECTED or submission.late_decision is LateDecision.REJECTED:
        return SubmissionStatus.REJECTED
    if submission.unit is None:
        return SubmissionStatus.UNMATCHED
    if _closed_unaccepted(submission):
        return SubmissionStatus.HELD  # waits for staff, like a claim
    return submission.content_status


def _of_campaign(campaign: str | BindParameter[str] | None) -> ColumnElement[bool]:
    return Submission.campaign.is_(None) if campaign is None else Submission.campaign == campaign


# Submissions in the order their mail arrived (then id): the submission's own copy of the
# arrival, so no join to the messages and, within a unit, the ix_submissions_chain order.
BY_ARRIVAL = (Submission.arrived_at, Submission.id)
BY_ARRIVAL_NEWEST_FIRST = (Submission.arrived_at.desc(), Submission.id.desc())


def _history(session: Session, unit: str, campaign: str | None) -> list[Submission]:
    """The unit's counted submissions to one campaign, oldest first (arrival time, then id)."""
    rows = session.scalars(
        select(Submission).where(Submission.unit == unit, _of_campaign(campaign)).order_by(*BY_ARRIVAL)
    )
    return [s for s in rows if _counts(s)]


def _settle_unit(session: Session, unit: str, campaign: str | None) -> Submission | None:
    """Make the newest trusted submission current, older ones superseded and untrusted
    ones held; with nothing trusted, claims stand among themselves. Returns the current."""
    history = _history(session, unit, campaign)
    if not history:
        return None
    chain = [s for s in history if is_trusted(s)] or history
    in_chain = {s.id for s in chain}
    for held in (s for s in history if s.id not in in_chain):
        held.status = SubmissionStatus.HELD
        held.superseded_by_id = None
    newest = chain[-1]
    # Each older submission points at the one that replaced it (a chain, not all at the
    # newest): a new arrival then changes one row, not the unit's whole history.
    for older, newer in zip(chain, chain[1:]):
        older.status = SubmissionStatus.SUPERSEDED
        older.superseded_by_id = newer.id
    newest.status = _visible_status(newest)
    newest.superseded_by_id = None
    return newest


def settle_current(session: Session, submission: Submission, *, first: bool = False) -> Submission | None:
    """Settle the submission's unit (within its campaign) after it was stored, re-assigned
    or routed again. `first`: it was just created (nothing can point at it yet).

    Returns the submission this one replaced as current, or None (first of its unit, an
    older mail processed late, unmatched or ignored).
    """
    session.flush()
    # A reprocessed, re-assigned or re-routed submission may have left a unit (or a
    # campaign) whose older mail it superseded; that record's newest must become current again.
    left = [] if first else session.execute(
        select(Submission.unit, Submission.campaign).where(Submission.superseded_by_id == submission.id).distinct()
    ).all()
    for unit, campaign in left:
        if unit is not None and ((unit, campaign) != (submission.unit, submission.campaign) or not _counts(submission)):
            _settle_unit(session, unit, campaign)
    if submission.unit is None or not _counts(submission):
        submission.status = _visible_status(submission)
        submission.superseded_by_id = None
        return None
    previous = session.scalars(_head_statement(submission.campaign is None), _placing(submission)).first()
    if left or submission.superseded_by_id is not None:
        newest = _settle_unit(session, submission.unit, submission.campaign)  # it was linked already: redo
    else:
        newest = _link(session, submission)
    # The links just set are flushed by the next query or the commit (autoflush).
    return previous if newest is submission else None


@cache  # built once: constructing the expression costs more than running it
def _counted_clause() -> ColumnElement[bool]:
    """_counts as SQL."""
    return and_(
        Submission.content_status.not_in((SubmissionStatus.IGNORED, SubmissionStatus.OTHER)),
        or_(Submission.confirmation.is_(None), Submission.confirmation != Confirmation.REJECTED),
        or_(Submission.late_decision.is_(None), Submission.late_decision != LateDecision.REJECTED),
        or_(Submission.reply.is_(None), Submission.reply != ReplyKind.CLOSED,
            Submission.late_decision == LateDecision.ACCEPTED),
    )


@cache
def _trusted_clause() -> ColumnElement[bool]:
    """intake.trust.is_trusted as SQL."""
    return or_(Submission.trust.in_(tuple(TRUSTED)), Submission.confirmation == Confirmation.CONFIRMED)


# The statements settling runs for every mail are built once (per shape) with bound
# parameters, _placing's: building and keying them anew cost more than running them.
_UNIT, _CAMPAIGN, _ID, _ARRIVED = (bindparam(n) for n in ("unit", "campaign", "id", "arrived"))


def _placing(submission: Submission) -> dict[str, object]:
    return {"unit": submission.unit, "campaign": submission.campaign, "id": submission.id,
            "arrived": submission.arrived_at}


def _others(no_campaign: bool) -> Select:
    """The unit's other submissions of the campaign that count."""
    return select(Submission).where(Submission.unit == _UNIT, _of_campaign(None if no_campaign else _CAMPAIGN),
                                    Submission.id != _ID, _counted_clause())


@cache
def _head_statement(no_campaign: bool) -> Select:
    """The unit's current submission other than this one (the head: near the newest)."""
    return (select(Submission)
            .where(Submission.unit == _UNIT, _of_campaign(None if no_campaign else _CAMPAIGN), Submission.id != _ID,
                   Submission.status.not_in(NOT_CURRENT))
            .order_by(*BY_ARRIVAL_NEWEST_FIRST)
            .limit(1))  # without it SQLite walks the unit's whole chain for the rows .first() drops


@cache
def _trusted_exists_statement(no_campaign: bool) -> Select:
    return select(_others(no_campaign).where(_trusted_clause()).exists())


@cache
def _neighbour_statements(no_campaign: bool, trusted_chain: bool) -> tuple[Select, Select]:
    """This submission's neighbours in its unit's chain by (arrival, id): the one just
    before and the id of the one just after, each a range on arrived_at the index
    (ix_submissions_chain) can seek, one step each way."""
    chain = _others(no_campaign)
    if trusted_chain:
        chain = chain.where(_trusted_clause())
    earlier = and_(Submission.arrived_at <= _ARRIVED, or_(Submission.arrived_at < _ARRIVED, Submission.id < _ID))
    later = and_(Submission.arrived_at >= _ARRIVED, or_(Submission.arrived_at > _ARRIVED, Submission.id > _ID))
    return (chain.where(earlier).order_by(*BY_ARRIVAL_NEWEST_FIRST).limit(1),
            chain.with_only_columns(Submission.id).where(later).order_by(*BY_ARRIVAL).limit(1))


def _link(session: Session, submission: Submission) -> Submission | None:
    """Put a submission that nothing links to into its unit's chain between its two
    neighbours by arrival: two indexed lookups instead of loading the unit's history.
    Falls back to settling the whole unit when the chain changes kind (the unit's first
    trusted submission arrives: its claims all go back to waiting)."""
    no_campaign, placing = submission.campaign is None, _placing(submission)
    trusted_exists = session.scalar(_trusted_exists_statement(no_campaign), placing) or False
    if is_trusted(submission) and not trusted_exists:
        return _settle_unit(session, submission.unit, submission.campaign)
    if not is_trusted(submission) and trusted_exists:
        submission.status = SubmissionStatus.HELD  # a claim waits; the trusted chain stands
        submission.superseded_by_id = None
        return None
    earlier, later = _neighbour_statements(no_campaign, trusted_exists)
    before = session.scalars(earlier, placing).first()
    after_id = session.scalar(later, placing)
    if before is not None:
        before.status = SubmissionStatus.SUPERSEDED
        before.superseded_by_id = submission.id
    if after_id is not None:
        submission.status = SubmissionStatus.SUPERSEDED
        submission.superseded_by_id = after_id
        return None
    submission.status = _visible_status(submission)
    submission.superseded_by_id = None
    return submission


def assign(
    session: Session,
    submission_id: int,
    unit_name: str,
    *,
    by: str,
    now: datetime,
    registry: UnitRegistry,
) -> Submission:
    """Staff name the unit of a submission (`intake assign`); the history of both units is settled."""
    submission = session.get(Submission, submission_id, options=[joinedload(Submission.message)])
    if submission is None:
        raise TrackingError(f"没有编号为 {submission_id} 的报送记录。")
    unit = registry.by_name(unit_name)
    if unit is None:
        raise TrackingError(f"「{unit_name}」不是登记的报送单位（或简称对应多个单位），请使用配置中的单位全称。")
    if submission.content_status is SubmissionStatus.OTHER:
        raise TrackingError(f"报送记录 {submission_id} 未归入任何征集（其他来信），请先用 intake route {submission_id} 征集编号 归入。")
    if not _counts(submission):
        raise TrackingError(f"报送记录 {submission_id} 是自动回复或无关邮件，已忽略，不能指定单位。")
    submission.unit = unit.name
    submission.unit_source = STAFF_SOURCE
    submission.assigned_by = by
    submission.assigned_at = now
    # A person named the unit: that is a confirmation, though the mail proved nothing.
    submission.trust = Trust.CLAIMED
    _decide(submission, Confirmation.CONFIRMED, by=by, now=now)
    settle_current(session, submission)
    return submission


def _decide(submission: Submission, decision: Confirmation, *, by: str, now: datetime) -> None:
    submission.confirmation = decision
    submission.confirmed_by = by
    submission.confirmed_at = now
    submission.needs_review = decision is not Confirmation.CONFIRMED and submission.needs_review


def _claimed(session: Session, submission_id: int) -> Submission:
    submission = session.get(Submission, submission_id, options=[joinedload(Submission.message)])
    if submission is None:
        raise TrackingError(f"没有编号为 {submission_id} 的报送记录。")
    if submission.unit is None:
        raise TrackingError(f"报送记录 {submission_id} 尚未确定单位，请先用 intake assign 指定单位。")
    if not awaits_staff(submission):
        state = {Confirmation.CONFIRMED: "已确认", Confirmation.REJECTED: "已驳回"}.get(submission.confirmation)
        raise TrackingError(
            f"报送记录 {submission_id} 不需要确认（{state or '发件地址已登记'}）。"
        )
    return submission


def confirm(session: Session, submission_id: int, *, by: str, now: datetime) -> tuple[Submission, Submission | None]:
    """Staff confirm a claimed submission is its unit's (`intake confirm`).

    Returns (submission, the record it replaced or None); the caller tells the unit's
    registered address when a record was replaced.
    """
    submission = _claimed(session, submission_id)
    _decide(submission, Confirmation.CONFIRMED, by=by, now=now)
    replaced = settle_current(session, submission)
    return submission, replaced


def reject(session: Session, submission_id: int, *, by: str, now: datetime) -> Submission:
    """Staff reject a claimed submission (`intake reject`): it never counts for the unit."""
    submission = _claimed(session, submission_id)
    _decide(submission, Confirmation.REJECTED, by=by, now=now)
    settle_current(session, submission)
    return submission


def current_submissions(session: Session, campaign: str | None = None) -> dict[str, Submission]:
    """Each unit's current submission, by unit name (what the board, digest and workbook
    show); with `campaign`, its current submission to that campaign only."""
    query = (
        select(Submission)
        .where(
            Submission.unit.is_not(None),
            Submission.status.not_in(NOT_CURRENT),
        )
        .order_by(*BY_ARRIVAL)
    )
    rows = session.scalars(query if campaign is None else query.where(Submission.campaign == campaign))
    # Oldest first, so a newer one wins should two ever be current at once.
    return {s.unit: s for s in rows if s.unit is not None}


def _listed(session: Session, campaign: str | None, *where: ColumnElement[bool]) -> list[Submission]:
    query = select(Submission).where(*where)
    if campaign is not None:
        query = query.where(Submission.campaign == campaign)
    return list(session.scalars(query.order_by(*BY_ARRIVAL)))


def pending_confirmations(session: Session, campaign: str | None = None) -> list[Submission]:
    """Claimed submissions waiting for staff to confirm or reject, oldest first (of one
    campaign, or all)."""
    return _listed(session, campaign, Submission.confirmation == Confirmation.PENDING, Submission.unit.is_not(None))


def unmatched_submissions(session: Session, campaign: str | None = None) -> list[Submission]:
    """Submissions waiting for staff to name their unit, oldest first (of one campaign, or all)."""
    return _listed(session, campaign, Submission.status == SubmissionStatus.UNMATCHED)


def other_mail(session: Session) -> list[Submission]:
    """Mail routed to no campaign (其他来信), oldest first: for staff, never anyone's record."""
    return _listed(session, None, Submission.status == SubmissionStatus.OTHER)
