"""queues.case_types: route a domain's case types to their own queues

A new case goes to the queue its case type is routed to, else to its domain's default queue.
Existing queues route no case type of their own (``[]``): routing is unchanged until set.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 07:10:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_types', JSON, nullable=True))
    op.execute("UPDATE queues SET case_types = '[]'")
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.alter_column('case_types', existing_type=JSON, nullable=False)


def downgrade():
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('case_types')
