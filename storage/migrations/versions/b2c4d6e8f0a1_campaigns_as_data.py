"""campaigns as data: one generic form_rows table; submissions know their campaign

Rows of any campaign's forms go into form_rows (values by field, JSON); the rows of the
2024 notice's two fixed tables move there under the form ids `form1` and `form2`, and
every existing submission belongs to the single `[campaign]` of the config it came from
(id `default`, config.campaigns.LEGACY_ID).

Revision ID: b2c4d6e8f0a1
Revises: a1b2c3d4e5f7
Create Date: 2026-11-29 10:50:00

"""
import json
from decimal import Decimal
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'b2c4d6e8f0a1'
down_revision: Union[str, Sequence[str], None] = 'a1b2c3d4e5f7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The fixed tables as they were (a migration is a snapshot: it never imports the models).
OLD = {
    "form1": ("form1_rows", ("competition", "project", "enterprises", "private_enterprises", "workers",
                             "private_workers", "investment")),
    "form2": ("form2_rows", ("seq", "competition", "organizer", "undertaker", "event", "prelim", "final",
                             "final_time_place")),
}
LEGACY_ID = "default"


def _plain(value):
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "") else text
    if isinstance(value, float):  # SQLite hands NUMERIC back as float
        return _plain(Decimal(repr(value)))
    return value


def _json(value):
    """A JSON column read by plain SQL: text on SQLite, already a dict on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    form_rows = op.create_table(
        'form_rows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('form', sa.String(length=64), nullable=False),
        sa.Column('ordinal', sa.Integer(), nullable=False),
        sa.Column('cell', sa.String(length=255), nullable=True),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('as_written', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'],
                                name=op.f('fk_form_rows_submission_id_submissions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_form_rows')),
    )
    with op.batch_alter_table('form_rows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_rows_submission_id'), ['submission_id'], unique=False)
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('campaign', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('routed_by', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('routing', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_submissions_campaign'), ['campaign'], unique=False)

    bind = op.get_bind()
    bind.execute(sa.text("UPDATE submissions SET campaign = :c, routed_by = 'only'"), {"c": LEGACY_ID})
    for form, (table, fields) in OLD.items():
        rows = bind.execute(sa.text(
            f"SELECT submission_id, ordinal, cell, as_written, {', '.join(fields)} FROM {table} ORDER BY id")).mappings()
        batch = [{"submission_id": r["submission_id"], "form": form, "ordinal": r["ordinal"], "cell": r["cell"],
                  "values": {f: _plain(r[f]) for f in fields},
                  "as_written": _json(r["as_written"])}
                 for r in rows]
        if batch:
            op.bulk_insert(form_rows, batch)
    op.drop_table('form1_rows')
    op.drop_table('form2_rows')


def downgrade() -> None:
    raise NotImplementedError("campaigns as data is not reversible: back up the database first (intake backup)")
