"""Accounts and sessions of the staff console.

- Passwords: argon2id (argon2-cffi), never stored or logged in clear.
- Session: one signed cookie (itsdangerous) holding the user's id and the session's CSRF
  token; it is re-signed on every request, so its timestamp is the last activity and
  `session_idle_minutes` is an idle timeout. The user row is read on every request: a
  disabled account is out at its next click.
- Lockout: `MAX_FAILURES` wrong passwords in a row lock the account for `LOCK_MINUTES`.
- The signing key lives in a 0600 file beside the data (made once), unless configured.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings
from intake.actions import audit
from storage.files import open_private
from storage.models import Role, User

MIN_PASSWORD = 8
MAX_FAILURES = 5
LOCK_MINUTES = 15
COOKIE = "intake_session"
SECRET_FILE_NAME = "web-secret.key"

_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("intake-no-such-user")


class AccountError(Exception):
    """A refused account change (Chinese message)."""


# --- accounts ------------------------------------------------------------------------------


def check_password(password: str) -> None:
    if len(password.strip()) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 个字符。")


def add_user(session: Session, name: str, password: str, role: Role, *, actor: str, now: dt.datetime) -> User:
    name = name.strip()
    if not name or len(name) > 255 or any(not c.isprintable() for c in name):
        raise AccountError("用户名不能为空，也不能含控制字符。")
    check_password(password)
    if session.scalar(select(User).where(func.lower(User.name) == name.lower())) is not None:
        raise AccountError(f"用户「{name}」已存在。")
    user = User(name=name, password_hash=_hasher.hash(password), role=role, disabled=False, failed_logins=0,
                created_at=now)
    session.add(user)
    session.flush()
    audit(session, actor=actor, action="user_add", target=f"user:{name}", after={"name": name, "role": role.value},
          now=now)
    return user


def disable_user(session: Session, name: str, *, actor: str, now: dt.datetime) -> User:
    user = session.scalar(select(User).where(User.name == name.strip()))
    if user is None:
        raise AccountError(f"没有用户「{name}」。")
    before = {"disabled": user.disabled}
    user.disabled = True
    audit(session, actor=actor, action="user_disable", target=f"user:{user.name}", before=before,
          after={"disabled": True}, now=now)
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def has_users(session: Session) -> bool:
    return session.scalar(select(func.count(User.id))) > 0


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    message: str = ""  # why not, in Chinese (the same for a wrong name and a wrong password)


WRONG = "用户名或密码不正确。"


def login(session: Session, name: str, password: str, *, now: dt.datetime) -> LoginResult:
    """Check a login; count failures and lock after MAX_FAILURES; audit either way."""
    user = session.scalar(select(User).where(User.name == name.strip()))
    if user is None or user.disabled:
        _verify(_DUMMY_HASH, password)
        audit(session, actor=name.strip()[:255] or "?", action="login", target=None, note="失败：用户不存在或已停用",
              now=now)
        return LoginResult(None, WRONG)
    if user.locked_until is not None and user.locked_until > now:
        audit(session, actor=user.name, action="login", target=f"user:{user.name}", note="失败：账户已锁定", now=now)
        return LoginResult(None, f"连续输错密码次数过多，账户已锁定，请在 {_minutes_left(user.locked_until, now)} 分钟后再试。")
    if not _verify(user.password_hash, password):
        user.failed_logins = (user.failed_logins or 0) + 1
        note = f"失败：密码错误（第 {user.failed_logins} 次）"
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = now + dt.timedelta(minutes=LOCK_MINUTES)
            user.failed_logins = 0
            note += f"，锁定 {LOCK_MINUTES} 分钟"
        audit(session, actor=user.name, action="login", target=f"user:{user.name}", note=note, now=now)
        return LoginResult(None, WRONG)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit(session, actor=user.name, action="login", target=f"user:{user.name}", note="成功", now=now)
    return LoginResult(user)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _minutes_left(until: dt.datetime, now: dt.datetime) -> int:
    return max(1, int((until - now).total_seconds() // 60) + 1)


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionData:
    user_id: int
    csrf: str


class Sessions:
    """Sign and read the session cookie; expired (idle) or forged cookies read as None."""

    def __init__(self, secret: bytes, idle_minutes: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="intake-web-session")
        self.idle_seconds = idle_minutes * 60

    def new(self, user_id: int) -> SessionData:
        return SessionData(user_id, secrets.token_urlsafe(32))

    def dump(self, data: SessionData) -> str:
        return self._serializer.dumps({"u": data.user_id, "c": data.csrf})

    def load(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            raw = self._serializer.loads(cookie, max_age=self.idle_seconds)
        except BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("u"), int) or not isinstance(raw.get("c"), str):
            return None
        return SessionData(raw["u"], raw["c"])


def csrf_ok(data: SessionData | None, token: object) -> bool:
    return data is not None and isinstance(token, str) and hmac.compare_digest(data.csrf.encode(), token.encode())


def secret_key_path(settings: Settings) -> Path:
    if settings.web.secret_key_file is not None:
        return settings.resolve(settings.web.secret_key_file)
    return settings.resolve(settings.storage.path).parent / SECRET_FILE_NAME


def load_secret(settings: Settings) -> bytes:
    """The cookie signing key: read, or made once (0600) when there is none yet."""
    path = secret_key_path(settings)
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        data = b""
    if len(data) >= 32:
        return data
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
