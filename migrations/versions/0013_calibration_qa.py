"""Confidence calibration and QA sampling

queues.qa_share: the share of a queue's approved decisions drawn for QA; users.qa_all: every
approval of the user is drawn; calibrations: the fitted agreement curve per (case type, model);
qa_reviews: the drawn decisions and the senior reviewers' verdicts.

Revision ID: 0013_calibration_qa
Revises: 0012_dashboards
Create Date: 2026-11-29 09:45:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0013_calibration_qa'
down_revision = '0012_dashboards'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    for table, column, kind, value, default in (('queues', 'qa_share', sa.Double(), '0', sa.text('0')),
                                                ('users', 'qa_all', sa.Boolean(), 'false', sa.false())):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(column, kind, nullable=True))
        op.execute(f"UPDATE {table} SET {column} = {value}")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=kind, nullable=False, server_default=default)
    op.create_table(
        'calibrations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_type', sa.String(length=40), nullable=False),
        sa.Column('model', sa.String(length=120), nullable=False),
        sa.Column('decisions', sa.Integer(), nullable=False),
        sa.Column('agreements', sa.Integer(), nullable=False),
        sa.Column('curve', JSON, nullable=False),
        sa.Column('bins', JSON, nullable=False),
        sa.Column('fitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_calibrations')),
        sa.UniqueConstraint('case_type', 'model', name=op.f('uq_calibrations_case_type_model')),
    )
    op.create_table(
        'qa_reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('decision_id', sa.Integer(), nullable=False),
        sa.Column('queue_id', sa.Integer(), nullable=False),
        sa.Column('reasons', JSON, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('verdict', sa.String(length=10), nullable=True),
        sa.Column('verdict_reason', sa.Text(), nullable=True),
        sa.Column('verdict_by_id', sa.Integer(), nullable=True),
        sa.Column('verdict_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("verdict IS NULL OR verdict IN ('agree', 'disagree')",
                           name=op.f('ck_qa_reviews_verdict_known')),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_qa_reviews_case_id_cases')),
        sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_qa_reviews_decision_id_decisions')),
        sa.ForeignKeyConstraint(['queue_id'], ['queues.id'], name=op.f('fk_qa_reviews_queue_id_queues')),
        sa.ForeignKeyConstraint(['verdict_by_id'], ['users.id'], name=op.f('fk_qa_reviews_verdict_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_qa_reviews')),
        sa.UniqueConstraint('decision_id', name=op.f('uq_qa_reviews_decision_id')),
    )
    op.create_index('ix_qa_reviews_case_id', 'qa_reviews', ['case_id'])
    op.create_index('ix_qa_reviews_queue_open', 'qa_reviews', ['queue_id', 'verdict'])


def downgrade():
    op.drop_table('qa_reviews')
    op.drop_table('calibrations')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('qa_all')
    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('qa_share')
