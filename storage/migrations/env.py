"""Alembic environment: uses the connection intake hands in (see storage/migrate.py)."""

from alembic import context

from storage.models import Base, UTCDateTime


def render_item(type_, obj, autogen_context):  # noqa: ANN001, ANN201 - Alembic hook
    # Migrations store plain timezone-aware DateTime; UTC handling is the model's job.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes.get("connection")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
