"""The mailbox's login pause as people see it: a row in the kv table.

`intake run` keeps the timer itself (intake/scheduler.py); this row says why no mail is
being fetched, for `status`, `check` and the digest, and stays until a login succeeds.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy.orm import Session

from storage.models import KeyValue

AUTH_PAUSE_KEY = "mailbox.auth_paused_until"


@dataclass(frozen=True)
class LoginPause:
    until: dt.datetime
    reason: str  # the Chinese login-refused line, server's words included
    failures: int

    def describe(self, tz: ZoneInfo) -> str:
        return f"邮箱连续 {self.failures} 次登录被拒绝，已暂停收信至 {self.until.astimezone(tz):%m月%d日 %H:%M}：{self.reason}"


def record_pause(session: Session, pause: LoginPause) -> None:
    value = {"until": pause.until.isoformat(), "reason": pause.reason, "failures": pause.failures}
    session.merge(KeyValue(key=AUTH_PAUSE_KEY, value=json.dumps(value, ensure_ascii=False)))


def current_pause(session: Session) -> LoginPause | None:
    row = session.get(KeyValue, AUTH_PAUSE_KEY)
    if row is None:
        return None
    value = json.loads(row.value)
    return LoginPause(dt.datetime.fromisoformat(value["until"]), value["reason"], int(value["failures"]))


def clear_pause(session: Session) -> None:
    session.execute(delete(KeyValue).where(KeyValue.key == AUTH_PAUSE_KEY))
