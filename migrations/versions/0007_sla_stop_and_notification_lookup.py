"""when a case's SLA clock stopped for good; notifications found by case

``cases.sla_stopped_at``: a decided (or withdrawn) case is judged "SLA met" or "breached" as of
this moment, not as of now. Cases already decided get the time of their last decision (else of
their last change). ``ix_notifications_case_id``: a case's notifications resolve with it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 07:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

STOPPED = ('approved', 'rejected', 'executing', 'executed', 'execution_failed', 'withdrawn')


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sla_stopped_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_case_id'), ['case_id'], unique=False)
    statuses = ", ".join(f"'{status}'" for status in STOPPED)
    op.execute(f"""
        UPDATE cases SET sla_stopped_at = COALESCE(
            (SELECT max(decisions.created_at) FROM decisions WHERE decisions.case_id = cases.id), cases.updated_at)
        WHERE status IN ({statuses})
    """)


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_case_id'))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('sla_stopped_at')
