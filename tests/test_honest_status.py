"""Honest status: a reply that could not be sent shows in `poll` (Chinese reason, exit 1)
and in `status` / `status --json`; `digest --send` says what really became of the digest.
Real Dovecot, a real aiosmtpd with AUTH; the wrong password is the one an office types."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from intake.cli import main
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, submission_mail
from tests.support.runner import write_config
from tests.support.smtp import SmtpSink

SMTP_USER = "intake@example.org"


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Dovecot:
    return dovecot.add_user(f"honest-{request.node.name[:40]}@example.org")


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink(users={SMTP_USER: "right-code"}).start()
    yield sink
    sink.stop()


def config(tmp_path: Path, mailbox: Dovecot, sink: SmtpSink, password: str, **smtp: object) -> Path:
    settings = intake_settings(
        tmp_path, dovecot=mailbox, digest={"recipients": ["staff@example.org"]},
        smtp={"mode": "send", "host": sink.host, "port": sink.port, "security": "none",
              "username": SMTP_USER, "password": password, "from_address": SMTP_USER, **smtp},
    )
    path = write_config(settings, tmp_path / "intake.toml")
    path.chmod(0o600)
    return path


def intake(path: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--config", str(path), *args])
    assert "Traceback" not in result.output
    return result


def test_a_wrong_smtp_password_fails_poll_and_shows_in_status(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    mailbox.append(submission_mail(), DEADLINE - dt.timedelta(hours=3))
    path = config(tmp_path, mailbox, smtp_server, "web-password", max_attempts=1)

    polled = intake(path, "poll")

    assert polled.exit_code == 1
    failed = [line for line in polled.output.splitlines() if line.startswith("✗ 发送失败")]
    assert len(failed) == 1 and "jinan@example.cn" in failed[0] and "授权码" in failed[0]
    document = json.loads(intake(path, "status", "--json").output)
    assert document["outbox"]["failed"] == 1 and document["outbox"]["pending"] == 0
    assert "用户名或密码错误" in document["outbox"]["failed_items"][0]["reason"]
    assert document["outbox"]["failed_items"][0]["to"] == "jinan@example.cn"
    assert "✗ 发送失败" in intake(path, "status").output
    assert smtp_server.messages == []


def test_a_reply_still_being_retried_is_pending_with_its_age(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    mailbox.append(submission_mail(), DEADLINE - dt.timedelta(hours=3))
    path = config(tmp_path, mailbox, smtp_server, "web-password", max_attempts=5)

    polled = intake(path, "poll")

    assert polled.exit_code == 1 and "! 暂未发出，稍后自动重试（已尝试 1 次）" in polled.output
    outbox = json.loads(intake(path, "status", "--json").output)["outbox"]
    assert (outbox["pending"], outbox["failed"]) == (1, 0)
    assert outbox["oldest_pending_age_seconds"] >= 0 and "授权码" in outbox["retrying_items"][0]["reason"]


def test_a_poll_whose_replies_went_out_exits_zero(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    mailbox.append(submission_mail(), DEADLINE - dt.timedelta(hours=3))
    path = config(tmp_path, mailbox, smtp_server, "right-code")

    assert intake(path, "poll").exit_code == 0
    assert json.loads(intake(path, "status", "--json").output)["outbox"]["pending"] == 0
    assert len(smtp_server.messages) == 1


def test_digest_send_says_queued_not_sent_when_the_login_fails(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    path = config(tmp_path, mailbox, smtp_server, "web-password")

    result = intake(path, "digest", "--send")

    assert result.exit_code == 1
    assert "已排队" in result.output and "已发送" not in result.output and "授权码" in result.output


def test_digest_send_says_sent_when_it_was(tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink) -> None:
    path = config(tmp_path, mailbox, smtp_server, "right-code")

    result = intake(path, "digest", "--send")

    assert result.exit_code == 0 and "今日汇总已发送" in result.output
    assert len(smtp_server.messages) == 1
    again = intake(path, "digest", "--send")
    assert "今日汇总此前已发送，不再重复" in again.output and len(smtp_server.messages) == 1


def test_assign_prints_the_state_in_chinese_not_the_stored_value() -> None:
    from intake.board import submission_label as status_label
    from tests.conftest import make_submission

    assert status_label(make_submission(), DEADLINE) == "已受理"
    assert status_label(make_submission(arrived_at=DEADLINE + dt.timedelta(hours=1)), DEADLINE) == "逾期受理"


def test_failed_replies_are_retried_or_dismissed_by_hand_and_poll_is_clean_again(
    tmp_path: Path, mailbox: Dovecot, smtp_server: SmtpSink
) -> None:
    mailbox.append(submission_mail(), DEADLINE - dt.timedelta(hours=3))
    mailbox.append(submission_mail(sender=("青岛市总工会", "qingdao@example.cn"), subject="青岛市总工会竞赛项目申报",
                                   unit="青岛市总工会"), DEADLINE - dt.timedelta(hours=2))
    wrong = config(tmp_path, mailbox, smtp_server, "web-password", max_attempts=1)
    assert intake(wrong, "poll").exit_code == 1  # the first reply fails; the login failure defers the second
    assert intake(wrong, "poll").exit_code == 1  # ... which fails on the next run
    first, second = json.loads(intake(wrong, "status", "--json").output)["outbox"]["failed_items"]

    fixed = config(tmp_path, mailbox, smtp_server, "right-code", max_attempts=1)  # the office fixes the password
    retried = intake(fixed, "outbox", "retry", str(first["id"]), "--by", "娄文华")
    assert retried.exit_code == 0 and "已重新排队 1 封" in retried.output
    assert [m.rcpt_tos for m in smtp_server.messages] == [[first["to"]]]
    dismissed = intake(fixed, "outbox", "dismiss", str(second["id"]), "--note", "地址已停用", "--by", "娄文华")
    assert dismissed.exit_code == 0
    assert intake(fixed, "poll").exit_code == 0
    assert json.loads(intake(fixed, "status", "--json").output)["outbox"]["failed"] == 0
    audit = intake(fixed, "audit").output
    assert "娄文华 重新发送" in audit and "娄文华 放弃发送" in audit and "地址已停用" in audit
    assert intake(fixed, "outbox", "dismiss", str(second["id"])).exit_code != 0  # not failed any more
