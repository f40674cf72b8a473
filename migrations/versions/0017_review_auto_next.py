"""users.auto_next: after a decision, move on to the next case of the queue

A reviewer's preference in the reviewer workspace, on unless they turn it off.

Revision ID: 0017_review_auto_next
Revises: 0016_shadow
Create Date: 2026-11-29 10:10:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0017_review_auto_next'
down_revision = '0016_shadow'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_next', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('auto_next')
