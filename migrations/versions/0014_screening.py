"""recommendations.hard_flags and recommendations.screen_action

Every recommendation keeps the local pre-screen's hard flags for its case (whichever provider
answered) and the local analyzer's action, shown beside the answer as a second opinion.
Recommendations stored before have no hard flags on record and no second opinion (NULL).

Revision ID: 0014_screening
Revises: 0013_calibration_qa
Create Date: 2026-11-29 10:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0014_screening'
down_revision = '0013_calibration_qa'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hard_flags', JSON, nullable=True))
        batch_op.add_column(sa.Column('screen_action', sa.String(length=40), nullable=True))
    op.execute("UPDATE recommendations SET hard_flags = '[]'")
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.alter_column('hard_flags', existing_type=JSON, nullable=False, server_default=sa.text("'[]'"))


def downgrade():
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_column('screen_action')
        batch_op.drop_column('hard_flags')
