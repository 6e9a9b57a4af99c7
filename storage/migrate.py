"""Schema migrations with Alembic, run programmatically at start (SQLite and PostgreSQL)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from storage.files import open_private

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Two processes starting on a fresh database (two `intake poll`s, a standby runner) must
# not both create the tables: migrations take a lock first.
MIGRATION_LOCK_KEY = 0x696E74616B65  # "intake"


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        yield
        return
    with open(open_private(Path(f"{database}.migrate.lock")), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; a no-op when it is already there."""
    config = alembic_config()
    lock = _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else nullcontext()
    with lock, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def make_revision(message: str) -> None:
    """Developers: autogenerate a revision from storage/models.py (`python -m storage.migrate MSG`)."""
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    upgrade(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    import sys

    make_revision(" ".join(sys.argv[1:]) or "schema change")
