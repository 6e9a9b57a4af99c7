"""staff console: users, audit log, late decisions, staff review of seal and mismatch

Revision ID: c3e8a1f5d6b7
Revises: b7d1c0a9e2f4
Create Date: 2026-11-29 08:20:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'c3e8a1f5d6b7'
down_revision: Union[str, Sequence[str], None] = 'b7d1c0a9e2f4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('password_hash', sa.Text(), nullable=False),
        sa.Column('role', sa.Enum('staff', 'admin', name='role', native_enum=False, length=32), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('failed_logins', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('name', name=op.f('uq_users_name')),
    )
    op.create_table('audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=255), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=255), nullable=True),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_decision', sa.Enum('accepted', 'rejected', name='latedecision',
                                                               native_enum=False, length=32), nullable=True))
        batch_op.add_column(sa.Column('late_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('late_decided_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('late_decided_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('seal_override', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('mismatch_checked', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('review_note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        for column in ('review_note', 'mismatch_checked', 'seal_override', 'late_decided_at', 'late_decided_by',
                       'late_note', 'late_decision'):
            batch_op.drop_column(column)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
    op.drop_table('audit_log')
    op.drop_table('users')
