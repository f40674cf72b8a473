"""shadow_recommendations: a shadow model's analyses, kept apart from the recommendations

A route of the AI routing file may name a shadow provider and model: after the primary answered,
a separate job analyses the same case with it and stores the answer here, with its provenance.
Nothing shown to reviewers or executed reads this table; `flask ai compare-shadow` does.

Revision ID: 0016_shadow
Revises: 0015_agent_actions
Create Date: 2026-11-29 10:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0016_shadow'
down_revision = '0015_agent_actions'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    op.create_table(
        'shadow_recommendations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('case_version', sa.Integer(), nullable=False),
        sa.Column('recommendation_id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=40), nullable=False),
        sa.Column('model', sa.String(length=120), nullable=False),
        sa.Column('template_version', sa.String(length=40), nullable=False),
        sa.Column('prompt_hash', sa.String(length=64), nullable=True),
        sa.Column('input_hash', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=True),
        sa.Column('parameters', JSON, nullable=False),
        sa.Column('rationale', sa.Text(), nullable=True),
        sa.Column('confidence', sa.Double(), nullable=True),
        sa.Column('flags', JSON, nullable=False),
        sa.Column('hard_flags', JSON, nullable=False),
        sa.Column('citations', JSON, nullable=False),
        sa.Column('details', JSON, nullable=False),
        sa.Column('tokens_in', sa.Integer(), nullable=False),
        sa.Column('tokens_out', sa.Integer(), nullable=False),
        sa.Column('cost_usd', sa.Numeric(precision=14, scale=8), nullable=False),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_shadow_recommendations_case_id_cases')),
        sa.ForeignKeyConstraint(['recommendation_id'], ['recommendations.id'],
                                name=op.f('fk_shadow_recommendations_recommendation_id_recommendations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shadow_recommendations')),
        sa.UniqueConstraint('recommendation_id', name=op.f('uq_shadow_recommendations_recommendation_id')),
    )
    with op.batch_alter_table('shadow_recommendations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shadow_recommendations_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shadow_recommendations_created_at'), ['created_at'], unique=False)


def downgrade():
    op.drop_table('shadow_recommendations')
