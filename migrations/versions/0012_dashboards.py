"""case_openings (when each reviewer first opened each case); date-range indexes for the dashboards

Revision ID: 0012_dashboards
Revises: 0011_people_admin
Create Date: 2026-11-29 09:45:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012_dashboards'
down_revision = '0011_people_admin'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'case_openings',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_openings_case_id_cases')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_case_openings_user_id_users')),
        sa.PrimaryKeyConstraint('case_id', 'user_id', name=op.f('pk_case_openings')),
    )
    op.create_index('ix_case_openings_opened_at', 'case_openings', ['opened_at'], unique=False)
    op.create_index(op.f('ix_recommendations_created_at'), 'recommendations', ['created_at'], unique=False)
    op.create_index(op.f('ix_decisions_created_at'), 'decisions', ['created_at'], unique=False)
    op.create_index('ix_cases_sla_stopped_at', 'cases', ['sla_stopped_at'], unique=False)


def downgrade():
    op.drop_index('ix_cases_sla_stopped_at', table_name='cases')
    op.drop_index(op.f('ix_decisions_created_at'), table_name='decisions')
    op.drop_index(op.f('ix_recommendations_created_at'), table_name='recommendations')
    op.drop_index('ix_case_openings_opened_at', table_name='case_openings')
    op.drop_table('case_openings')
