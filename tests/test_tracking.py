from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from intake.registry import UnitRegistry
from intake.tracking import TrackingError, _settle_unit, assign, confirm, current_submissions, reject, settle_current
from storage.db import Database
from storage.models import Confirmation, Submission, SubmissionStatus, Trust
from tests.support.submissions import add_submission, before_deadline, make_db, make_settings

S = SubmissionStatus
NOW = datetime(2024, 2, 24, 2, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return make_db(tmp_path)


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    return UnitRegistry.from_settings(make_settings().units)


def store(session, **kwargs) -> tuple[Submission, Submission | None]:  # noqa: ANN001
    submission = add_submission(session, **kwargs)
    return submission, settle_current(session, submission)


def test_it_supersedes_the_older_submission_when_a_newer_one_arrives(db: Database) -> None:
    with db.session() as s:
        first, replaced_first = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2), status=S.INVALID)
        second, replaced_second = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        assert replaced_first is None
        assert replaced_second is first
        assert (first.status, first.superseded_by_id) == (S.SUPERSEDED, second.id)
        assert (second.status, second.superseded_by_id) == (S.ACCEPTED, None)
        # The older one stays in the history with its own verdict.
        assert first.content_status is S.INVALID


def test_it_keeps_the_newest_current_when_an_older_mail_is_processed_last(db: Database) -> None:
    with db.session() as s:
        newer, _ = store(s, unit="青岛市总工会", arrived_at=before_deadline(hours=2), status=S.INCOMPLETE)
        older, replaced = store(s, unit="青岛市总工会", arrived_at=before_deadline(hours=5))
        assert replaced is None
        assert (older.status, older.superseded_by_id) == (S.SUPERSEDED, newer.id)
        assert newer.status is S.INCOMPLETE
        assert current_submissions(s)["青岛市总工会"] is newer


def test_it_makes_a_late_resubmission_current_and_keeps_it_late(db: Database) -> None:
    with db.session() as s:
        on_time, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        late, replaced = store(s, unit="济南市总工会", arrived_at=before_deadline(hours=-3))
        assert replaced is on_time
        assert on_time.status is S.SUPERSEDED
        assert (late.status, late.late) == (S.ACCEPTED, True)


def test_it_never_lets_ignored_mail_supersede_anything(db: Database) -> None:
    with db.session() as s:
        real, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        auto_reply, replaced = store(s, unit="济南市总工会", arrived_at=before_deadline(hours=1), status=S.IGNORED)
        assert replaced is None
        assert (real.status, auto_reply.status) == (S.ACCEPTED, S.IGNORED)


def test_a_reprocessed_submission_that_turns_out_ignored_hands_current_back(db: Database) -> None:
    with db.session() as s:
        real, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        newer, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        newer.status = newer.content_status = S.IGNORED  # as a reprocess would decide
        newer.unit = None
        assert settle_current(s, newer) is None
        assert (real.status, real.superseded_by_id, newer.status) == (S.ACCEPTED, None, S.IGNORED)


def test_it_marks_a_submission_without_a_unit_unmatched(db: Database) -> None:
    with db.session() as s:
        orphan, replaced = store(s, unit=None, arrived_at=before_deadline(days=1), status=S.INCOMPLETE)
        assert (replaced, orphan.status, orphan.content_status) == (None, S.UNMATCHED, S.INCOMPLETE)


def test_assigning_an_unmatched_submission_records_who_and_when_and_settles_the_unit(
    db: Database, registry: UnitRegistry
) -> None:
    with db.session() as s:
        earlier, _ = store(s, unit="山东省教育工会", arrived_at=before_deadline(days=3))
        orphan, _ = store(s, unit=None, arrived_at=before_deadline(days=1))
        orphan_id = orphan.id
    with db.session() as s:
        assigned = assign(s, orphan_id, "省教育工会", by="wang", now=NOW, registry=registry)
        assert (assigned.unit, assigned.unit_source, assigned.assigned_by) == ("山东省教育工会", "staff", "wang")
        assert assigned.assigned_at == NOW
        assert assigned.status is S.ACCEPTED
        assert s.get(Submission, earlier.id).status is S.SUPERSEDED


def test_reassigning_a_submission_gives_its_old_unit_back_its_previous_current(
    db: Database, registry: UnitRegistry
) -> None:
    with db.session() as s:
        mine, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=3))
        misread, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        assign(s, misread.id, "青岛市总工会", by="li", now=NOW, registry=registry)
        assert (mine.status, mine.superseded_by_id) == (S.ACCEPTED, None)
        assert misread.status is S.ACCEPTED
        assert set(current_submissions(s)) == {"济南市总工会", "青岛市总工会"}


@pytest.mark.parametrize(
    ("submission_id", "unit", "words"),
    [(999, "济南市总工会", "999"), (None, "火星工会", "火星工会")],
)
def test_assign_raises_a_chinese_tracking_error_for_unknown_ids_and_units(
    db: Database, registry: UnitRegistry, submission_id: int | None, unit: str, words: str
) -> None:
    with db.session() as s:
        orphan, _ = store(s, unit=None, arrived_at=before_deadline(days=1))
        with pytest.raises(TrackingError, match=words):
            assign(s, submission_id or orphan.id, unit, by="wang", now=NOW, registry=registry)


def test_assign_refuses_ignored_mail(db: Database, registry: UnitRegistry) -> None:
    with db.session() as s:
        spam, _ = store(s, unit=None, arrived_at=before_deadline(days=1), status=S.IGNORED)
        with pytest.raises(TrackingError, match="忽略"):
            assign(s, spam.id, "济南市总工会", by="wang", now=NOW + timedelta(hours=1), registry=registry)


# Trust: a claim never replaces a trusted record by itself (intake.trust).


def test_a_claimed_submission_waits_held_while_the_unit_has_a_trusted_record(db: Database) -> None:
    with db.session() as s:
        genuine, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        claim, replaced = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1), trust=Trust.CLAIMED)
        assert replaced is None
        assert genuine.status is S.ACCEPTED
        assert claim.status is S.HELD
        assert current_submissions(s)["济南市总工会"] is genuine


def test_a_claim_stands_in_when_the_unit_has_nothing_else_and_still_awaits_staff(db: Database) -> None:
    with db.session() as s:
        claim, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2), trust=Trust.CLAIMED)
        assert current_submissions(s)["济南市总工会"] is claim
        assert claim.confirmation is Confirmation.PENDING
        # The unit's own mail then takes over and the claim goes back to waiting.
        genuine, replaced = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        assert replaced is claim
        assert claim.status is S.HELD
        assert current_submissions(s)["济南市总工会"] is genuine


def test_confirming_a_newer_claim_makes_it_current_and_names_the_record_it_replaced(db: Database) -> None:
    with db.session() as s:
        genuine, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        claim, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1), trust=Trust.CLAIMED)
        confirmed, replaced = confirm(s, claim.id, by="王芳", now=NOW)
        assert replaced is genuine
        assert (confirmed.confirmation, confirmed.confirmed_by, confirmed.confirmed_at) == (Confirmation.CONFIRMED, "王芳", NOW)
        assert genuine.status is S.SUPERSEDED
        assert current_submissions(s)["济南市总工会"] is claim


def test_rejecting_a_standing_claim_leaves_the_unit_without_a_record(db: Database) -> None:
    with db.session() as s:
        claim, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2), trust=Trust.CLAIMED)
        rejected = reject(s, claim.id, by="王芳", now=NOW)
        assert rejected.status is S.REJECTED
        assert "济南市总工会" not in current_submissions(s)


def test_confirm_refuses_a_submission_that_needs_no_confirmation(db: Database) -> None:
    with db.session() as s:
        genuine, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        with pytest.raises(TrackingError, match="不需要确认"):
            confirm(s, genuine.id, by="王芳", now=NOW)


# Linking by neighbours gives exactly the chain a full settle of the unit gives.

ARRIVALS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=20), st.sampled_from([Trust.REGISTERED, Trust.VERIFIED, Trust.CLAIMED])),
    min_size=1, max_size=12,
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=ARRIVALS, order=st.randoms(use_true_random=False))
def test_linking_by_neighbours_in_any_processing_order_equals_a_full_settle(
    tmp_path_factory: pytest.TempPathFactory, arrivals: list, order: random.Random
) -> None:
    db = make_db(tmp_path_factory.mktemp("chain"))
    try:
        with db.session() as s:
            order.shuffle(arrivals)  # the order mails happen to be processed in
            subs = []
            for hours, trust in arrivals:
                subs.append(add_submission(s, unit="济南市总工会", arrived_at=before_deadline(days=2) + timedelta(hours=hours),
                                           trust=trust, subject=f"{len(subs)}"))
                settle_current(s, subs[-1])
            incremental = [(x.id, x.status, x.superseded_by_id) for x in subs]
            _settle_unit(s, "济南市总工会", "default")
            s.flush()
            assert [(x.id, x.status, x.superseded_by_id) for x in subs] == incremental
    finally:
        db.dispose()


# --- one record per unit and campaign ----------------------------------------------------


def test_a_units_mail_to_another_campaign_never_supersedes_its_record(db: Database) -> None:
    with db.session() as s:
        ldjs, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2), campaign="ldjs-2024")
        wuyi, replaced = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1), campaign="wuyi-2024")
        newer, replaced_newer = store(s, unit="济南市总工会", arrived_at=before_deadline(hours=1), campaign="wuyi-2024")

        assert replaced is None and replaced_newer is wuyi
        assert (ldjs.status, ldjs.superseded_by_id) == (S.ACCEPTED, None)
        assert current_submissions(s, "ldjs-2024")["济南市总工会"] is ldjs
        assert current_submissions(s, "wuyi-2024")["济南市总工会"] is newer
        assert wuyi.superseded_by_id == newer.id


def test_other_mail_is_never_a_record_and_never_supersedes(db: Database) -> None:
    with db.session() as s:
        record, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        other, replaced = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1), status=S.OTHER)

        assert replaced is None and (other.status, other.campaign) == (S.OTHER, None)
        assert record.status is S.ACCEPTED and current_submissions(s)["济南市总工会"] is record


def test_a_closed_campaigns_mail_waits_for_staff_before_it_becomes_the_record(db: Database) -> None:
    from storage.models import LateDecision, ReplyKind

    with db.session() as s:
        record, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        closed = add_submission(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        closed.reply = ReplyKind.CLOSED
        assert settle_current(s, closed) is None
        assert (closed.status, record.status) == (S.HELD, S.ACCEPTED)

        closed.late_decision = LateDecision.ACCEPTED
        assert settle_current(s, closed) is record
        assert (closed.status, record.status) == (S.ACCEPTED, S.SUPERSEDED)


def test_moving_a_submission_to_another_campaign_restores_the_record_it_had_replaced(db: Database) -> None:
    with db.session() as s:
        older, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=2))
        newer, _ = store(s, unit="济南市总工会", arrived_at=before_deadline(days=1))
        assert older.superseded_by_id == newer.id

        newer.campaign = "wuyi-2024"  # as staff routing it elsewhere leaves it
        settle_current(s, newer)

        assert (older.status, older.superseded_by_id) == (S.ACCEPTED, None)
        assert current_submissions(s, "default")["济南市总工会"] is older
        assert current_submissions(s, "wuyi-2024")["济南市总工会"] is newer
