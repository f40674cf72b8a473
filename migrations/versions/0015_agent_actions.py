"""agent_action: cases.expires_at and the statuses responded and expired; the agent_tools
policies; upstream notices without a decision (case.expired); reason codes for respond

Revision ID: 0015_agent_actions
Revises: 0014_screening
Create Date: 2026-11-29 10:15:00

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0015_agent_actions'
down_revision = '0014_screening'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
OLD_STATUSES = ['received', 'analyzing', 'pending_review', 'ai_failed', 'in_review', 'awaiting_second_approval',
                'needs_info', 'approved', 'rejected', 'executing', 'executed', 'execution_failed', 'withdrawn']
NEW_STATUSES = [*OLD_STATUSES, 'responded', 'expired']
RESPOND_CODES = [
    ("answered_question", "Answered the agent's question"),
    ("clarified_goal", "Clarified what the user wants"),
]


def _status_check(statuses):
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_cases_expires_at', ['expires_at'], unique=False)
        batch_op.drop_constraint(op.f('ck_cases_status_known'), type_='check')
        batch_op.create_check_constraint(op.f('ck_cases_status_known'), _status_check(NEW_STATUSES))
    with op.batch_alter_table('upstream_notices', schema=None) as batch_op:
        batch_op.alter_column('decision_id', existing_type=sa.Integer(), nullable=True)
    op.create_table(
        'agent_tools',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('arguments', JSON, nullable=False),
        sa.Column('two_approvals', sa.Boolean(), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_agent_tools_queue_id_queues')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_tools')),
        sa.UniqueConstraint('name', name=op.f('uq_agent_tools_name')),
    )
    codes = sa.table('reason_codes', sa.column('code', sa.String), sa.column('label', sa.String),
                     sa.column('kinds', JSON), sa.column('active', sa.Boolean),
                     sa.column('created_at', sa.DateTime(timezone=True)))
    now = datetime.now(timezone.utc)
    op.bulk_insert(codes, [{"code": code, "label": label, "kinds": ["respond"], "active": True, "created_at": now}
                           for code, label in RESPOND_CODES])


def downgrade():
    op.execute("DELETE FROM reason_codes WHERE code IN ("
               + ", ".join(f"'{code}'" for code, _ in RESPOND_CODES) + ")")
    op.drop_table('agent_tools')
    op.execute("DELETE FROM upstream_notices WHERE decision_id IS NULL")
    with op.batch_alter_table('upstream_notices', schema=None) as batch_op:
        batch_op.alter_column('decision_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_cases_status_known'), type_='check')
        batch_op.create_check_constraint(op.f('ck_cases_status_known'), _status_check(OLD_STATUSES))
        batch_op.drop_index('ix_cases_expires_at')
        batch_op.drop_column('expires_at')
