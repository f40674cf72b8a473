"""indexes for the audit page: events by actor and by action, newest first, and by time

The audit page filters the log by actor, action and time range and pages newest first by ``id``:
(actor, id) and (action, id) answer a filtered page from the index alone, however large the log.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 08:00:00

"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_audit_events_actor_id', 'audit_events', ['actor', 'id'], unique=False)
    op.create_index('ix_audit_events_action_id', 'audit_events', ['action', 'id'], unique=False)
    op.create_index('ix_audit_events_time', 'audit_events', ['time'], unique=False)


def downgrade():
    op.drop_index('ix_audit_events_time', table_name='audit_events')
    op.drop_index('ix_audit_events_action_id', table_name='audit_events')
    op.drop_index('ix_audit_events_actor_id', table_name='audit_events')
