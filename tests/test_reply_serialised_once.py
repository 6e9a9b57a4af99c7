"""A reply is serialised once: the outbox stores the very bytes the old path produced
(the message serialised again with the outbox's policy), and the size bound measures them."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from notifications import replies
from notifications.compose import SMTP_WIRE
from storage.db import Database
from storage.models import OutboxItem, ReplyForm, Trust
from tests.conftest import make_submission, reply_settings
from tests.test_replies import original_of


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database("sqlite:///" + str(tmp_path / "t.db"))
    yield database
    database.dispose()


@pytest.mark.parametrize("trust", [Trust.REGISTERED, Trust.CLAIMED])
def test_the_stored_reply_is_the_built_message_serialised_as_before(
        db: Database, trust: Trust, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[EmailMessage] = []
    build = replies.build_message

    def recording(**kwargs: object) -> EmailMessage:
        built.append(build(**kwargs))
        return built[-1]

    monkeypatch.setattr(replies, "build_message", recording)
    submission = make_submission(trust=trust)
    with db.session() as session:
        session.add(submission)
        session.flush()
        new_id = replies.queue_reply(session, submission, original=original_of(submission), settings=reply_settings())
        assert new_id is not None
        item = session.get(OutboxItem, new_id)
        assert submission.reply_form is (ReplyForm.FULL if trust is Trust.REGISTERED else ReplyForm.SHORT)
    assert len(built) == 1  # the full context fitted: the reduced one was never rendered
    mail = built[0]
    # The old path: serialised with the message's own policy for the size check, then with
    # the outbox's policy when enqueued. Both give the stored bytes.
    assert item.raw == mail.as_bytes(policy=SMTP_WIRE)
    assert item.raw == mail.as_bytes()
    assert item.message_id == str(mail["Message-ID"])
    assert item.subject == str(mail["Subject"])
    assert item.to_address == ", ".join(a.addr_spec for a in mail["To"].addresses)
