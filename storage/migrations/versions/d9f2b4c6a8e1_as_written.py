"""form rows keep number cells a unit filled with text, as written

Revision ID: d9f2b4c6a8e1
Revises: c3e8a1f5d6b7
Create Date: 2026-11-29 08:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'd9f2b4c6a8e1'
down_revision: Union[str, Sequence[str], None] = 'c3e8a1f5d6b7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    for table in ('form1_rows', 'form2_rows'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('as_written', sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in ('form1_rows', 'form2_rows'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('as_written')
