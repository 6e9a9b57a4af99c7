from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from intake.tracking import settle_current
from notifications.reminders import due_slot, parse_offset, queue_reminders
from storage.models import OutboxItem, OutboxKind
from storage.models import SubmissionStatus as S
from tests.support.submissions import DEADLINE, add_submission, before_deadline, make_db, make_settings

ON = make_settings(reminders={"enabled": True, "before": ["3d", "4h"]})


@pytest.fixture
def session(tmp_path: Path):
    """济南 accepted, 青岛 invalid, 教育 incomplete; 机关 and 能源 have sent nothing."""
    with make_db(tmp_path).session() as s:
        for unit, status in [("济南市总工会", S.ACCEPTED), ("青岛市总工会", S.INVALID), ("山东省教育工会", S.INCOMPLETE)]:
            settle_current(s, add_submission(s, unit=unit, status=status, arrived_at=before_deadline(days=5)))
        yield s


def recipients(items: list[OutboxItem]) -> list[str]:
    return sorted(item.to_address for item in items)


@pytest.mark.parametrize(("text", "expected"), [("3d", timedelta(days=3)), ("4h", timedelta(hours=4)), (" 30M ", timedelta(minutes=30))])
def test_offsets_are_read_in_days_hours_and_minutes(text: str, expected: timedelta) -> None:
    assert parse_offset(text) == expected


def test_only_the_latest_slot_that_has_come_is_due() -> None:
    slots = ["3d", "4h", "nonsense"]
    assert due_slot(slots, DEADLINE, DEADLINE - timedelta(days=4)) is None
    assert due_slot(slots, DEADLINE, DEADLINE - timedelta(days=2)) == "3d"
    assert due_slot(slots, DEADLINE, DEADLINE - timedelta(hours=1)) == "4h"
    assert due_slot(slots, DEADLINE, DEADLINE) is None


def test_it_reminds_every_unit_without_an_accepted_submission(session: Session) -> None:
    items = queue_reminders(session, ON, now=DEADLINE - timedelta(days=2))
    assert recipients(items) == ["edu@sdjy.cn", "ghb@sdenergy.com", "jggh@sd.gov.cn", "qdzgh@qd.gov.cn"]
    assert {i.kind for i in items} == {OutboxKind.REMINDER}
    assert "reminder:山东能源集团工会:3d" in {i.dedupe_key for i in items}


def test_it_never_reminds_a_unit_whose_submission_was_accepted(session: Session) -> None:
    items = queue_reminders(session, ON, now=DEADLINE - timedelta(hours=3))
    assert "jnzgh@163.com" not in recipients(items)


def test_it_writes_only_to_addresses_never_to_registered_domains(session: Session) -> None:
    settle_current(session, add_submission(session, unit="济南市总工会", status=S.INVALID, arrived_at=before_deadline(days=4)))
    items = queue_reminders(session, ON, now=DEADLINE - timedelta(days=2))
    assert "jnzgh@163.com" in recipients(items)
    assert not any("jnzgh.gov.cn" in to for to in recipients(items))


def test_each_reminder_is_sent_at_most_once_per_slot(session: Session) -> None:
    assert len(queue_reminders(session, ON, now=DEADLINE - timedelta(days=2))) == 4
    assert queue_reminders(session, ON, now=DEADLINE - timedelta(days=1)) == []
    assert len(queue_reminders(session, ON, now=DEADLINE - timedelta(hours=2))) == 4


def test_it_sends_nothing_before_the_first_slot_or_after_the_deadline(session: Session) -> None:
    assert queue_reminders(session, ON, now=DEADLINE - timedelta(days=4)) == []
    assert queue_reminders(session, ON, now=DEADLINE + timedelta(minutes=1)) == []


def test_reminders_are_off_unless_enabled(session: Session) -> None:
    assert queue_reminders(session, make_settings(), now=DEADLINE - timedelta(hours=1)) == []


def test_the_reminder_names_the_unit_deadline_and_what_to_send(session: Session) -> None:
    items = queue_reminders(session, ON, now=DEADLINE - timedelta(days=2, hours=3))
    by_unit = {i.dedupe_key.split(":")[1]: email.message_from_bytes(i.raw, policy=policy.default) for i in items}
    missing = by_unit["山东能源集团工会"]
    text = missing.get_body(preferencelist=("plain",)).get_content()
    assert missing["Subject"] == "【提醒】2024年劳动竞赛项目申报报送即将截止（距截止还有 2 天 3 小时）"
    assert text.startswith("山东能源集团工会：")
    assert "2024年2月25日 17:00:00" in text and "尚未收到贵单位报送的材料" in text
    assert "intake@sdzgh.cn" in text and "重点工程类" in text
    invalid = by_unit["青岛市总工会"].get_body(preferencelist=("html",)).get_content()
    assert "「<b>需修改</b>」" in invalid
