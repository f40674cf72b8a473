"""drop cases.created_by_user_id: cases are only ever created by API clients

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 04:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint('fk_cases_created_by_user_id_users', type_='foreignkey')
        batch_op.drop_column('created_by_user_id')


def downgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_user_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_cases_created_by_user_id_users', 'users', ['created_by_user_id'], ['id'])
