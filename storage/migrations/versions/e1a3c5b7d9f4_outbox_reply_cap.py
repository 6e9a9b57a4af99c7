"""outbox: a reply's auth_failed, and index (kind, to_address, auth_failed, created_at)

The daily cap counted an address's replies of the day per authentication verdict by
joining each to its mail's auth_results: as many row reads and JSON values as replies,
so a poll answering one address all day slowed with every reply (2,000: 46 -> 41 msg/s).
The verdict is now kept on the reply's row and counted from the index alone. Replies
already queued get it from their mail (the same rule, intake.trust.authentication_failed).

Revision ID: e1a3c5b7d9f4
Revises: d7f9b1c3e5a2
Create Date: 2026-11-29 14:10:00

"""
import json
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from intake.trust import authentication_failed


revision: str = 'e1a3c5b7d9f4'
down_revision: Union[str, Sequence[str], None] = 'd7f9b1c3e5a2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_failed', sa.Boolean(), nullable=True))
    connection = op.get_bind()
    replies = connection.execute(sa.text(
        "SELECT outbox.id, messages.auth_results FROM outbox "
        "JOIN submissions ON submissions.id = outbox.submission_id "
        "JOIN messages ON messages.id = submissions.message_pk WHERE outbox.kind = 'reply'"
    )).all()
    for outbox_id, auth in replies:
        auth = json.loads(auth) if isinstance(auth, str) else auth
        connection.execute(sa.text("UPDATE outbox SET auth_failed = :failed WHERE id = :id"),
                           {"failed": authentication_failed(auth), "id": outbox_id})
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_kind_to_created')
        batch_op.create_index('ix_outbox_reply_cap', ['kind', 'to_address', 'auth_failed', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_reply_cap')
        batch_op.create_index('ix_outbox_kind_to_created', ['kind', 'to_address', 'created_at'], unique=False)
        batch_op.drop_column('auth_failed')
