"""intake_config_stamp: a stamp that changes with every change to api_clients, queues or escalation_rules

Intake keeps the API clients, queue routing and enabled rules it reads per process while the stamp
is unchanged (app.intake.config_cache). Triggers give the stamp a new random value in the
transaction of every INSERT, UPDATE or DELETE (and, on PostgreSQL, TRUNCATE) of those tables:
random, so a stamp a rolled-back change wrote never comes back for other contents.

Revision ID: 0019_intake_config_stamp
Revises: 0018_undone_approvals
Create Date: 2026-11-29 12:45:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0019_intake_config_stamp'
down_revision = '0018_undone_approvals'
branch_labels = None
depends_on = None

TABLES = ('api_clients', 'queues', 'escalation_rules')
SQLITE_OPERATIONS = ('INSERT', 'UPDATE', 'DELETE')
PG_RANDOM = "(random() * 9.2e18)::bigint"


def upgrade():
    op.create_table(
        'intake_config_stamp',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stamp', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_intake_config_stamp')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"INSERT INTO intake_config_stamp (id, stamp) VALUES (1, {PG_RANDOM})")
        op.execute(f"""
            CREATE FUNCTION intake_config_restamp() RETURNS trigger AS $$
            BEGIN
                UPDATE intake_config_stamp SET stamp = {PG_RANDOM};
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql
        """)
        for table in TABLES:
            op.execute(f"""CREATE TRIGGER {table}_restamp_intake AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
                           ON {table} FOR EACH STATEMENT EXECUTE FUNCTION intake_config_restamp()""")
        return
    op.execute("INSERT INTO intake_config_stamp (id, stamp) VALUES (1, random())")
    for table in TABLES:
        for operation in SQLITE_OPERATIONS:
            op.execute(f"""CREATE TRIGGER {table}_{operation.lower()}_restamp_intake AFTER {operation} ON {table}
                           BEGIN UPDATE intake_config_stamp SET stamp = random(); END""")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_restamp_intake ON {table}")
        op.execute("DROP FUNCTION intake_config_restamp()")
    else:
        for table in TABLES:
            for operation in SQLITE_OPERATIONS:
                op.execute(f"DROP TRIGGER {table}_{operation.lower()}_restamp_intake")
    op.drop_table('intake_config_stamp')
