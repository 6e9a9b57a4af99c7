"""Cross-process locks, so two `intake run` processes never do the same work twice.

`exclusive(db, name)` is a named lock across processes and machines for a whole job
(e.g. "poll"): a PostgreSQL session-level advisory lock, or on SQLite (one machine only) an
flock on a file beside the database. Both are released by the operating system or the
server when the holder dies, so a crashed process never leaves a stale lock behind and a
standby machine takes over on its next attempt.

`claim_message(session, pk)` is the row-level guard inside the processing transaction.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from storage.db import Database
from storage.files import open_private
from storage.models import Message


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (Python's hash() changes per process)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8, person=b"intake-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_path(db: Database, name: str) -> Path | None:
    """The lock file beside a SQLite database file; None for an in-memory database."""
    database = make_url(db.url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]
    return Path(f"{database}.{slug}-{advisory_key(name) & 0xFFFFFFFF:08x}.lock")


@contextmanager
def exclusive(db: Database, name: str, *, wait: bool = False) -> Iterator[bool]:
    """Hold the lock `name` for the block; yields whether it was acquired.

    With wait=False a busy lock yields False at once; with wait=True it blocks until free.
    """
    if db.is_sqlite:
        with _file_lock(lock_path(db, name), wait=wait) as acquired:
            yield acquired
    else:
        with _advisory_lock(db, advisory_key(name), wait=wait) as acquired:
            yield acquired


@contextmanager
def _advisory_lock(db: Database, key: int, *, wait: bool) -> Iterator[bool]:
    # A dedicated connection in autocommit: the lock belongs to the server session, and an
    # open transaction held for a whole poll would pin old row versions against vacuum.
    conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if wait:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            acquired = True
        else:
            acquired = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                except Exception:
                    # A session that cannot say unlock must not go back to the pool still
                    # holding the lock; dropping it makes the server release it.
                    conn.invalidate()
                    raise
    finally:
        conn.close()


@contextmanager
def _file_lock(path: Path | None, *, wait: bool) -> Iterator[bool]:
    if path is None:
        # An in-memory database exists only inside this one process: nothing to contend.
        yield True
        return
    # flock (not lockf): it belongs to the open file, so two opens in one process also
    # exclude each other, as two PostgreSQL sessions do. The file is never deleted:
    # unlinking a lock file races with a process that has just opened it.
    fd = open_private(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            acquired = False
        yield acquired
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def claim_message(session: Session, message_pk: int) -> bool:
    """Lock the message's row for this transaction; False if another transaction holds it.

    PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so a second worker skips the row instead
    of waiting and then processing it again. SQLite has one writer at a time and SQLAlchemy
    renders no FOR UPDATE there, so the claim succeeds whenever the row exists. The lock ends
    with the transaction: after claiming, re-read the message's state (the locked row is the
    latest committed version) to see whether another worker already finished it.
    """
    claimed = session.execute(
        select(Message.id).where(Message.id == message_pk).with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    return claimed is not None
