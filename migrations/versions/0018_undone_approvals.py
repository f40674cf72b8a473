"""undone_approvals: approvals their reviewers took back, so that no verdict count includes them

Revision ID: 0018_undone_approvals
Revises: 0017_review_auto_next
Create Date: 2026-11-29 12:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0018_undone_approvals'
down_revision = '0017_review_auto_next'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'undone_approvals',
        sa.Column('decision_id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('undone_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_undone_approvals_decision_id_decisions')),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_undone_approvals_case_id_cases')),
        sa.PrimaryKeyConstraint('decision_id', name=op.f('pk_undone_approvals')),
    )
    op.create_index(op.f('ix_undone_approvals_case_id'), 'undone_approvals', ['case_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_undone_approvals_case_id'), table_name='undone_approvals')
    op.drop_table('undone_approvals')
