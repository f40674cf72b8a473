"""users.must_change_password; reason codes move from the configuration into reason_codes

A user given a one-time password (created or reset by an admin) must change it at the next
sign-in. The reason codes are seeded with the values the configuration held, each offered for
every decision kind, so existing installs offer exactly what they did before.

Revision ID: 0011_people_admin
Revises: 0010_queue_admin
Create Date: 2026-11-29 09:15:00

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0011_people_admin'
down_revision = '0010_queue_admin'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
KINDS = ["approve", "edit", "reject", "escalate", "request_info", "blind"]
CODES = [
    ("policy_breach", "Policy breach"),
    ("insufficient_evidence", "Insufficient evidence"),
    ("incorrect_ai_parameters", "Incorrect AI parameters"),
    ("sanctions_concern", "Sanctions concern"),
    ("customer_risk", "Customer risk"),
    ("needs_more_information", "Needs more information"),
    ("data_quality", "Data quality"),
    ("other", "Other"),
]


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), nullable=True))
    op.execute("UPDATE users SET must_change_password = false")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('must_change_password', existing_type=sa.Boolean(), nullable=False,
                              server_default=sa.false())

    table = op.create_table(
        'reason_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('label', sa.String(length=120), nullable=False),
        sa.Column('kinds', JSON, nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code'),
    )
    now = datetime.now(timezone.utc)
    op.bulk_insert(table, [{"code": code, "label": label, "kinds": KINDS, "active": True, "created_at": now}
                           for code, label in CODES])


def downgrade():
    op.drop_table('reason_codes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
