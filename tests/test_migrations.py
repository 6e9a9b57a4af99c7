"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import Database
from storage.models import Base


def test_the_migrations_build_exactly_the_schema_the_models_describe(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        db.dispose()


def test_migrating_twice_is_a_no_op(database_url: str) -> None:
    Database(database_url).dispose()
    Database(database_url).dispose()
