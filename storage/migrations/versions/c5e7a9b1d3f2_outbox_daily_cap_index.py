"""outbox: index (kind, to_address, created_at) for the daily cap's per-address count

Without it the count read every reply of the day (the kind/created_at index) to find one
address's: the poll slowed as a busy day's outbox grew (10,000 replies: 33 -> 25 msg/s).

Revision ID: c5e7a9b1d3f2
Revises: b2c4d6e8f0a1
Create Date: 2026-11-29 12:00:00

"""
from typing import Sequence, Union

from alembic import op


revision: str = 'c5e7a9b1d3f2'
down_revision: Union[str, Sequence[str], None] = 'b2c4d6e8f0a1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_kind_to_created', ['kind', 'to_address', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_kind_to_created')
