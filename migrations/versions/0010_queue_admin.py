"""queues: dual-approval threshold, required role, archived_at

A queue may set its own dual-approval threshold (NULL: the global setting applies), require a
senior reviewer to decide its cases, and be archived (it then receives no new cases). Existing
queues keep today's behaviour: no threshold of their own, any reviewer, not archived.

Revision ID: 0010_queue_admin
Revises: 0009_controls
Create Date: 2026-11-29 09:10:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0010_queue_admin'
down_revision = '0009_controls'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dual_approval_threshold', sa.Numeric(18, 4), nullable=True))
        batch_op.add_column(sa.Column('required_role', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('archived_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE queues SET required_role = 'reviewer'")
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.alter_column('required_role', existing_type=sa.String(length=20), nullable=False,
                              server_default='reviewer')


def downgrade():
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('archived_at')
        batch_op.drop_column('required_role')
        batch_op.drop_column('dual_approval_threshold')
