"""Staff acts (intake.actions): each changes the record by the rules, queues its mail, and is audited."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from intake import actions
from intake.board import UnitState, build_board
from intake.deadline import effective_settings
from intake.registry import UnitRegistry
from intake.tracking import TrackingError, settle_current
from storage.db import Database
from storage.models import AuditEntry, LateDecision, OutboxItem, OutboxKind, SubmissionStatus, Trust
from tests.support.submissions import DEADLINE, add_submission, before_deadline, make_db, make_settings

SETTINGS = make_settings(smtp={"from_address": "intake@sdzgh.cn", "from_name": "省总工会", "daily_cap_per_recipient": 2})
NOW = DEADLINE + timedelta(days=1)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return make_db(tmp_path)


def state(session, unit: str, settings=SETTINGS) -> UnitState:  # noqa: ANN001
    return next(r for r in build_board(session, settings).rows if r.name == unit).state


def audit_rows(session) -> list[AuditEntry]:  # noqa: ANN001
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_accepting_a_late_submission_counts_it_late_and_answers_in_its_thread(db: Database) -> None:
    with db.session() as s:
        late = add_submission(s, unit="青岛市总工会", arrived_at=before_deadline(hours=-2), sender="qdzgh@qd.gov.cn")
        late.message.message_id = "<late-1@qd.gov.cn>"
        settle_current(s, late)
        _, mail = actions.decide_late(s, SETTINGS, late.id, LateDecision.ACCEPTED, actor="王芳", now=NOW, note="同意受理")
        assert state(s, "青岛市总工会") is UnitState.ACCEPTED_LATE
        assert mail is not None and mail.kind is OutboxKind.FOLLOW_UP and mail.to_address == "qdzgh@qd.gov.cn"
        sent = email.message_from_bytes(mail.raw, policy=email.policy.default)
        assert sent["In-Reply-To"] == "<late-1@qd.gov.cn>" and "<late-1@qd.gov.cn>" in sent["References"]
        assert "予以受理" in sent.get_body(preferencelist=("plain",)).get_content()
        [entry] = audit_rows(s)
        assert (entry.actor, entry.action, entry.target, entry.note) == ("王芳", "late_accepted", f"submission:{late.id}", "同意受理")
        assert entry.before["late_decision"] is None and entry.after["late_decision"] == "accepted"


def test_rejecting_a_late_submission_leaves_the_units_on_time_record(db: Database) -> None:
    with db.session() as s:
        on_time = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(days=1), status=SubmissionStatus.INCOMPLETE)
        settle_current(s, on_time)
        late = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=-2))
        settle_current(s, late)
        assert state(s, "济南市总工会") is UnitState.ACCEPTED_LATE
        actions.decide_late(s, SETTINGS, late.id, LateDecision.REJECTED, actor="王芳", now=NOW)
        assert late.status is SubmissionStatus.REJECTED
        assert state(s, "济南市总工会") is UnitState.INCOMPLETE


def test_an_on_time_submission_cannot_be_decided_as_late(db: Database) -> None:
    with db.session() as s:
        on_time = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        with pytest.raises(TrackingError, match="不是逾期报送"):
            actions.decide_late(s, SETTINGS, on_time.id, LateDecision.ACCEPTED, actor="王芳", now=NOW)


def test_a_claims_late_follow_up_goes_to_the_units_registered_address_not_the_stranger(db: Database) -> None:
    with db.session() as s:
        claim = add_submission(s, unit="青岛市总工会", arrived_at=before_deadline(hours=-2), sender="x@evil.example",
                               trust=Trust.CLAIMED)
        settle_current(s, claim)
        _, mail = actions.decide_late(s, SETTINGS, claim.id, LateDecision.ACCEPTED, actor="王芳", now=NOW)
        assert mail.to_address == "qdzgh@qd.gov.cn"


def test_review_sets_the_seal_by_hand_and_marks_a_mismatch_checked(db: Database) -> None:
    with db.session() as s:
        sub = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        actions.review(s, sub.id, actor="王芳", now=NOW, seal=True, mismatch_checked=True, note="电子签章")
        assert (sub.seal, sub.seal_override, sub.mismatch_checked, sub.review_note) == (True, True, True, "电子签章")
        assert audit_rows(s)[0].after["seal_override"] is True


def test_assign_confirm_and_reject_are_audited_with_the_row_before_and_after(db: Database) -> None:
    registry = UnitRegistry.from_settings(SETTINGS.units)
    with db.session() as s:
        orphan = add_submission(s, unit=None, arrived_at=before_deadline(days=2))
        settle_current(s, orphan)
        claim = add_submission(s, unit="青岛市总工会", arrived_at=before_deadline(days=1), trust=Trust.CLAIMED)
        settle_current(s, claim)
        actions.assign_unit(s, registry, orphan.id, "济南市总工会", actor="王芳", now=NOW)
        actions.reject_claim(s, claim.id, actor="李强", now=NOW)
        first, second = audit_rows(s)
        assert (first.action, first.before["unit"], first.after["unit"]) == ("assign", None, "济南市总工会")
        assert (second.actor, second.action, second.after["status"]) == ("李强", "reject", "rejected")


def test_a_reminder_previews_the_exact_mail_and_respects_the_daily_cap(db: Database) -> None:
    with db.session() as s:
        [draft] = actions.reminder_drafts(s, SETTINGS, ["青岛市总工会"], now=before_deadline(days=2))
        assert draft.to == ["qdzgh@qd.gov.cn"] and draft.refused is None and "青岛市总工会" in draft.text
        for hours in (3, 2):
            actions.remind(s, SETTINGS, ["青岛市总工会"], actor="王芳", now=before_deadline(days=2, hours=hours))
        queued = s.scalars(select(OutboxItem).where(OutboxItem.kind == OutboxKind.REMINDER)).all()
        assert len(queued) == 2
        [third] = actions.remind(s, SETTINGS, ["青岛市总工会"], actor="王芳", now=before_deadline(days=2, hours=1))
        assert third.refused and "上限" in third.refused
        row = next(r for r in build_board(s, SETTINGS).rows if r.name == "青岛市总工会")
        assert row.last_reminded is not None


def test_a_unit_that_submitted_is_not_reminded(db: Database) -> None:
    with db.session() as s:
        settle_current(s, add_submission(s, unit="济南市总工会", arrived_at=before_deadline(days=1)))
        [draft] = actions.remind(s, SETTINGS, ["济南市总工会"], actor="王芳", now=before_deadline(hours=5))
        assert draft.refused and "无需催报" in draft.refused


def test_an_extended_deadline_turns_a_late_unit_on_time_and_is_audited(db: Database) -> None:
    with db.session() as s:
        settle_current(s, add_submission(s, unit="济南市总工会", arrived_at=before_deadline(hours=-2)))
        assert state(s, "济南市总工会") is UnitState.ACCEPTED_LATE
        actions.set_deadline(s, SETTINGS, DEADLINE + timedelta(days=3), actor="王芳", now=NOW, note="延期")
        extended = effective_settings(SETTINGS, s)
        assert extended.campaign.deadline == DEADLINE + timedelta(days=3)
        assert state(s, "济南市总工会", extended) is UnitState.ACCEPTED
        [entry] = audit_rows(s)
        assert entry.before == {"deadline": DEADLINE.isoformat()} and entry.note == "延期"
