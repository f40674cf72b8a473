"""a sealed Merkle-tree audit log: unsealed inserts, one sealer, signed checkpoints

Writers no longer take a global lock to link each event to the one before: they insert it
unsealed (``seq`` and ``hash`` empty) under a new identity column ``id``, and the sealer gives it
its place and its RFC 9162 Merkle leaf hash. ``prev_hash`` goes; existing events keep their
order and get leaf hashes. ``data`` is kept as the canonical JSON text written (json, not jsonb,
on PostgreSQL), since leaves hash it byte for byte. The triggers now allow exactly one change, sealing (in order, gap-free),
refuse inserts that would replace a row (SQLite's INSERT OR REPLACE), and on PostgreSQL stamp
each event with its transaction id. ``audit_checkpoints`` holds the signed tree heads.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 06:20:00

"""
import hashlib
import json
from datetime import UTC

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TIME = sa.DateTime(timezone=True)
EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
REFUSED = "audit_events is append-only"
GENESIS_HASH = "0" * 64

events = sa.table('audit_events', sa.column('id', sa.BigInteger()), sa.column('seq', sa.BigInteger()),
                  sa.column('time', TIME), sa.column('actor', sa.String()), sa.column('action', sa.String()),
                  sa.column('case_id', sa.Integer()), sa.column('data', JSON), sa.column('hash', sa.String()),
                  sa.column('prev_hash', sa.String()))


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _time(moment):
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).isoformat()


def _leaf_hash(row, seq):
    """The leaf hash of app.audit.chain.entry at this revision (format v1)."""
    document = {"seq": seq, "time": _time(row.time), "actor": row.actor, "action": row.action,
                "case_id": row.case_id, "data": row.data}
    return hashlib.sha256(b"\x00" + _canonical(document).encode()).hexdigest()


def _chain_hash(row, seq, prev_hash):
    """The hash-chain link of revision 0001..0004's app.audit.chain.event_hash."""
    document = {"seq": seq, "time": _time(row.time), "actor": row.actor, "action": row.action,
                "case_id": row.case_id, "data": row.data, "prev_hash": prev_hash}
    return hashlib.sha256(_canonical(document).encode()).hexdigest()


def upgrade():
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    _drop_chain_triggers(postgres)
    if postgres:
        op.execute("ALTER TABLE audit_events ADD COLUMN id BIGSERIAL")
        op.execute("UPDATE audit_events SET id = seq")
        op.execute("SELECT setval('audit_events_id_seq', COALESCE((SELECT max(id) FROM audit_events), 0) + 1, false)")
        op.execute("ALTER TABLE audit_events DROP CONSTRAINT pk_audit_events")
        op.execute("ALTER TABLE audit_events DROP CONSTRAINT uq_audit_events_hash")
        op.execute("ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY (id)")
        op.execute("ALTER TABLE audit_events ALTER COLUMN seq DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL")
        op.execute("ALTER TABLE audit_events ADD CONSTRAINT uq_audit_events_seq UNIQUE (seq)")
        op.execute("ALTER TABLE audit_events DROP COLUMN prev_hash, ADD COLUMN xid BIGINT")
        op.execute("ALTER TABLE audit_events ALTER COLUMN data TYPE json USING data::json")
    else:
        _rebuild_sqlite_table(new=True)
    _canonical_data_and_leaves(conn, postgres)
    op.create_index('ix_audit_events_unsealed', 'audit_events', ['id'], unique=False,
                    sqlite_where=sa.text('seq IS NULL'), postgresql_where=sa.text('seq IS NULL'))
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), nullable=False),
    sa.Column('root_hash', sa.String(length=64), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('signature', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoints'))
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_checkpoints_tree_size'), ['tree_size'], unique=False)
    _create_log_triggers(postgres)


def _canonical_data_and_leaves(conn, postgres):
    """Each event's data rewritten as canonical JSON text (what leaves hash), and its leaf hash."""
    rows = conn.execute(sa.select(events.c.id, events.c.seq, events.c.time, events.c.actor, events.c.action,
                                  events.c.case_id, events.c.data).order_by(events.c.seq)).all()
    text = sa.bindparam("data_text", type_=sa.Text())
    new_data = sa.cast(text, sa.JSON()) if postgres else text  # SQLite: CAST AS JSON would make a number
    updates = [{"key": row.id, "data_text": _canonical(row.data), "new_hash": _leaf_hash(row, row.seq)}
               for row in rows]
    if updates:
        conn.execute(events.update().where(events.c.id == sa.bindparam("key"))
                     .values(data=new_data, hash=sa.bindparam("new_hash")), updates)


def _rebuild_sqlite_table(new):
    """SQLite cannot change a primary key in place: copy into a table of the other shape."""
    columns = [sa.Column('time', sa.DateTime(timezone=True), nullable=False),
               sa.Column('actor', sa.String(length=80), nullable=False),
               sa.Column('action', sa.String(length=60), nullable=False),
               sa.Column('case_id', sa.Integer(), nullable=True),
               sa.Column('data', JSON, nullable=False)]
    if new:
        op.create_table('audit_events_new',
            sa.Column('id', EVENT_ID, nullable=False), sa.Column('seq', sa.BigInteger(), nullable=True),
            *columns, sa.Column('hash', sa.String(length=64), nullable=True),
            sa.Column('xid', sa.BigInteger(), nullable=True),
            sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name='fk_audit_events_case_id_cases'),
            sa.PrimaryKeyConstraint('id', name='pk_audit_events'),
            sa.UniqueConstraint('seq', name='uq_audit_events_seq'))
        copied = "id, seq, time, actor, action, case_id, data, hash"
        source = "seq, seq, time, actor, action, case_id, data, hash"
    else:
        op.create_table('audit_events_new',
            sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False), *columns,
            sa.Column('prev_hash', sa.String(length=64), nullable=False),
            sa.Column('hash', sa.String(length=64), nullable=False),
            sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name='fk_audit_events_case_id_cases'),
            sa.PrimaryKeyConstraint('seq', name='pk_audit_events'),
            sa.UniqueConstraint('hash', name='uq_audit_events_hash'))
        copied = "seq, time, actor, action, case_id, data, prev_hash, hash"
        source = "seq, time, actor, action, case_id, data, '', 'x' || seq"  # relinked below
    op.execute(f"INSERT INTO audit_events_new ({copied}) SELECT {source} FROM audit_events")
    op.drop_index('ix_audit_events_case_id', table_name='audit_events')
    op.drop_table('audit_events')
    op.rename_table('audit_events_new', 'audit_events')
    op.create_index('ix_audit_events_case_id', 'audit_events', ['case_id'], unique=False)


def _create_log_triggers(postgres):
    if postgres:
        op.execute(f"""
            CREATE FUNCTION audit_events_guard() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    IF NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL THEN
                        RAISE EXCEPTION '{REFUSED}: events are inserted unsealed';
                    END IF;
                    NEW.xid := pg_current_xact_id()::text::bigint;
                    RETURN NEW;
                END IF;
                IF TG_OP = 'UPDATE' THEN
                    IF OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL
                       AND NEW.id = OLD.id AND NEW.time = OLD.time AND NEW.actor = OLD.actor
                       AND NEW.action = OLD.action AND NEW.case_id IS NOT DISTINCT FROM OLD.case_id
                       AND NEW.data::text = OLD.data::text AND NEW.xid IS NOT DISTINCT FROM OLD.xid
                       AND NEW.seq = COALESCE((SELECT max(seq) FROM audit_events), 0) + 1 THEN
                        RETURN NEW;  -- sealing: the next place in the order, nothing else changed
                    END IF;
                END IF;
                RAISE EXCEPTION '{REFUSED}: % refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""CREATE TRIGGER audit_events_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_events
                      FOR EACH ROW EXECUTE FUNCTION audit_events_guard()""")
        op.execute("""CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
                      FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard()""")
        _append_only_postgres("audit_checkpoints", "audit_checkpoints_append_only", "audit_checkpoints_no_change")
        return
    op.execute(f"""
        CREATE TRIGGER audit_events_insert_unsealed BEFORE INSERT ON audit_events
        WHEN NEW.seq IS NOT NULL OR NEW.hash IS NOT NULL
             OR EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, '{REFUSED}: INSERT refused (events are inserted unsealed, over no other)'); END
    """)
    op.execute(f"""
        CREATE TRIGGER audit_events_seal_only BEFORE UPDATE ON audit_events
        WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL AND NEW.id = OLD.id
                  AND NEW.time IS OLD.time AND NEW.actor IS OLD.actor AND NEW.action IS OLD.action
                  AND NEW.case_id IS OLD.case_id AND NEW.data IS OLD.data AND NEW.xid IS OLD.xid
                  AND NEW.seq = COALESCE((SELECT max(seq) FROM audit_events), 0) + 1)
        BEGIN SELECT RAISE(ABORT, '{REFUSED}: UPDATE refused'); END
    """)
    op.execute(f"""CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
                   BEGIN SELECT RAISE(ABORT, '{REFUSED}: DELETE refused'); END""")
    op.execute("""
        CREATE TRIGGER audit_checkpoints_insert_new BEFORE INSERT ON audit_checkpoints
        WHEN EXISTS (SELECT 1 FROM audit_checkpoints WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: INSERT refused (over another)'); END
    """)
    for operation in ("UPDATE", "DELETE"):
        op.execute(f"""CREATE TRIGGER audit_checkpoints_no_{operation.lower()} BEFORE {operation} ON audit_checkpoints
                       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: {operation} refused'); END""")


def _drop_log_triggers(postgres):
    if postgres:
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_guard ON audit_events")
        op.execute("DROP FUNCTION audit_events_guard()")
    else:
        for name in ("audit_events_insert_unsealed", "audit_events_seal_only", "audit_events_no_delete"):
            op.execute(f"DROP TRIGGER {name}")


def _drop_chain_triggers(postgres):
    """Revision 0001's triggers (refuse every UPDATE and DELETE)."""
    if postgres:
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_no_update_delete ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")


def _append_only_postgres(table, function, row_trigger):
    """A function refusing every change, fired on each UPDATE and DELETE and on TRUNCATE of ``table``."""
    op.execute(f"""
        CREATE FUNCTION {function}() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '{table} is append-only: % refused', TG_OP;
        END;
        $$ LANGUAGE plpgsql
    """)
    op.execute(f"""CREATE TRIGGER {row_trigger} BEFORE UPDATE OR DELETE ON {table}
                   FOR EACH ROW EXECUTE FUNCTION {function}()""")
    op.execute(f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
                   FOR EACH STATEMENT EXECUTE FUNCTION {function}()""")


def _create_chain_triggers(postgres):
    """Revision 0001's triggers, as 0001 made them."""
    if postgres:
        _append_only_postgres("audit_events", "audit_events_append_only", "audit_events_no_update_delete")
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER audit_events_no_{operation.lower()} BEFORE {operation} ON audit_events
                           BEGIN SELECT RAISE(ABORT, '{REFUSED}: {operation} refused'); END""")


def downgrade():
    """Back to the hash chain: unsealed events are placed after the sealed ones, in id order."""
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    _drop_log_triggers(postgres)
    if postgres:
        op.execute("DROP TRIGGER audit_checkpoints_no_truncate ON audit_checkpoints")
        op.execute("DROP TRIGGER audit_checkpoints_no_change ON audit_checkpoints")
        op.execute("DROP FUNCTION audit_checkpoints_append_only()")
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_checkpoints_tree_size'))
    op.drop_table('audit_checkpoints')
    op.drop_index('ix_audit_events_unsealed', table_name='audit_events')
    _place_unsealed(conn)
    if postgres:
        op.execute("ALTER TABLE audit_events DROP CONSTRAINT uq_audit_events_seq")
        op.execute("ALTER TABLE audit_events DROP CONSTRAINT pk_audit_events")
        op.execute("ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY (seq)")
        op.execute("ALTER TABLE audit_events DROP COLUMN id, DROP COLUMN xid, ADD COLUMN prev_hash VARCHAR(64)")
        op.execute("ALTER TABLE audit_events ALTER COLUMN data TYPE jsonb USING data::jsonb")
    else:
        _rebuild_sqlite_table(new=False)
    _relink(conn)
    if postgres:
        op.execute("ALTER TABLE audit_events ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN hash SET NOT NULL")
        op.execute("ALTER TABLE audit_events ADD CONSTRAINT uq_audit_events_hash UNIQUE (hash)")
    _create_chain_triggers(postgres)


def _place_unsealed(conn):
    last = conn.execute(sa.select(sa.func.max(events.c.seq))).scalar() or 0
    unsealed = conn.execute(sa.select(events.c.id).where(events.c.seq.is_(None)).order_by(events.c.id)).all()
    for offset, row in enumerate(unsealed, start=1):
        conn.execute(events.update().where(events.c.id == row.id).values(seq=last + offset))


def _relink(conn):
    rows = conn.execute(sa.select(events.c.seq, events.c.time, events.c.actor, events.c.action,
                                  events.c.case_id, events.c.data).order_by(events.c.seq)).all()
    prev_hash = GENESIS_HASH
    for row in rows:
        link = _chain_hash(row, row.seq, prev_hash)
        conn.execute(events.update().where(events.c.seq == row.seq).values(prev_hash=prev_hash, hash=link))
        prev_hash = link
