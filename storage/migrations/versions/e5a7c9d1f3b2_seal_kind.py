"""files: seal kind (scan or electronic), an electronic seal's signer, the PDF made from a photo

Revision ID: e5a7c9d1f3b2
Revises: d9f2b4c6a8e1
Create Date: 2026-11-29 08:50:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'e5a7c9d1f3b2'
down_revision: Union[str, Sequence[str], None] = 'd9f2b4c6a8e1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('signer', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('derived_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_column('derived_sha256')
        batch_op.drop_column('signer')
        batch_op.drop_column('seal_kind')
