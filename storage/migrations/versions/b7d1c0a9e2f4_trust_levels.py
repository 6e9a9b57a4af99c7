"""trust levels, staff confirmation, reply form, outbox priority

Revision ID: b7d1c0a9e2f4
Revises: faaef43978df
Create Date: 2026-11-29 08:10:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'b7d1c0a9e2f4'
down_revision: Union[str, Sequence[str], None] = 'faaef43978df'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trust', _enum('trust', 'verified', 'registered', 'claimed', 'unknown'),
                                      nullable=False, server_default='unknown'))
        batch_op.add_column(sa.Column('confirmation', _enum('confirmation', 'pending', 'confirmed', 'rejected'),
                                      nullable=True))
        batch_op.add_column(sa.Column('confirmed_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reply_form', _enum('replyform', 'full', 'short'), nullable=True))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('priority')
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('reply_form')
        batch_op.drop_column('confirmed_at')
        batch_op.drop_column('confirmed_by')
        batch_op.drop_column('confirmation')
        batch_op.drop_column('trust')
