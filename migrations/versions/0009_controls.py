"""pauses: the kill switch (AI analysis or executions paused, everywhere or for one queue)

A row is a pause in force; resuming deletes it (the audit log keeps the history). One pause of
each kind per queue, and one of each kind for every queue (queue_id NULL: a partial unique index,
as a unique constraint lets NULLs repeat).

Revision ID: 0009_controls
Revises: 0008
Create Date: 2026-11-29 09:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0009_controls'
down_revision = '0008'
branch_labels = None
depends_on = None

EVERYWHERE = sa.text('queue_id IS NULL')


def upgrade():
    op.create_table('pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('what', sa.String(length=20), nullable=False),
    sa.Column('queue_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('paused_by', sa.String(length=255), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("what IN ('ai', 'executions')", name=op.f('ck_pauses_what_known')),
    sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_pauses_queue_id_queues')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pauses')),
    sa.UniqueConstraint('what', 'queue_id', name=op.f('uq_pauses_what_queue_id'))
    )
    with op.batch_alter_table('pauses', schema=None) as batch_op:
        batch_op.create_index('uq_pauses_what_everywhere', ['what'], unique=True, sqlite_where=EVERYWHERE,
                              postgresql_where=EVERYWHERE)


def downgrade():
    op.drop_table('pauses')
