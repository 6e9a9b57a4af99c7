"""Opening the database: one engine, SQLite tuned for a crash-safe single writer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from intake import stages
from storage.files import create_private_file
from storage.migrate import upgrade


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI types
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer and a crash leaves no partial transaction.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(item) for item in value)
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list | tuple):
        return False
    return any(map(_has_nul, value))


def _replace_nul(_conn, _cursor, statement, parameters, _context, _executemany):  # noqa: ANN001, ANN202
    # PostgreSQL text cannot hold NUL and SQLite can; senders' headers, file names and cells
    # may carry one. One rule for both engines: NUL becomes U+FFFD, visibly, at the door.
    # (Looked for first: rebuilding every statement's parameters costs more than the look.)
    return statement, _without_nul(parameters) if _has_nul(parameters) else parameters


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            # SQLite gives -wal and -shm the database file's mode, so a 0600 file keeps all three private.
            create_private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "before_cursor_execute", _replace_nul, retval=True)
    return engine


class Database:
    """The engine plus a session factory; `with db.session() as s:` commits or rolls back."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as session:
            with session.begin():
                yield session
                started = time.perf_counter()  # reached only on success: the commit follows
            stages.add("commit", time.perf_counter() - started)

    def dispose(self) -> None:
        self.engine.dispose()
