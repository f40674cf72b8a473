"""state read back from audit events gets its own columns and tables

cases.sla_window_minutes, cases.sla_next_at (indexed), cases.execution_refused_at,
executions.round_started_at, and the tables rule_firings, execution_attempts and
upstream_notices. The audit events stay as they are: evidence, no longer state.

Data:
- sla_window_minutes: the window the latest ``rule.fired`` / ``case.sla_breached`` event gave
  the case (what the code read until now), else its queue's ``sla_minutes``.
- sla_next_at, for the cases whose clock runs and that have a step left: in a round-the-clock
  queue, the moment of the next step (due time less the window's remaining share); in a queue
  with business hours, the time of this migration, an early approximation: the first SLA sweep
  after it visits those cases once, takes any step that is due and stores the exact time
  (``sla.check_case`` repairs a stale ``sla_next_at``).
- execution_refused_at: the time of the case's latest ``case.execution_refused`` event.
- round_started_at: the time of the case's latest ``case.execution_retried`` event, else the
  execution's created_at (what ``_round_start`` read until now).
- rule_firings: one row per (case, rule, version) of the ``rule.fired`` events, the first one.
- execution_attempts and upstream_notices start empty: the attempts and notifications before
  this migration are in the audit trail only. A notification job still queued then opens its
  outbox row when it runs (counting the attempts before it as made).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

"""
from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TIME = sa.DateTime(timezone=True)
STEPS = (50, 75, 100)
# The statuses in which the SLA clock runs (app.escalation.sla.CLOCK_STATUSES at this revision).
CLOCK_STATUSES = ('received', 'analyzing', 'pending_review', 'ai_failed', 'in_review', 'awaiting_second_approval')

audit_events = sa.table('audit_events', sa.column('seq', sa.BigInteger()), sa.column('time', TIME),
                        sa.column('action', sa.String()), sa.column('case_id', sa.Integer()),
                        sa.column('data', JSON))
cases = sa.table('cases', sa.column('id', sa.Integer()), sa.column('queue_id', sa.Integer()),
                 sa.column('status', sa.String()), sa.column('sla_due_at', TIME),
                 sa.column('sla_paused_at', TIME), sa.column('sla_notified_pct', sa.Integer()),
                 sa.column('sla_window_minutes', sa.Integer()), sa.column('sla_next_at', TIME),
                 sa.column('execution_refused_at', TIME))
queues = sa.table('queues', sa.column('id', sa.Integer()), sa.column('sla_minutes', sa.Integer()),
                  sa.column('business_hours', JSON))
escalation_rules = sa.table('escalation_rules', sa.column('id', sa.Integer()))
rule_firings = sa.table('rule_firings', sa.column('case_id', sa.Integer()), sa.column('rule_id', sa.Integer()),
                        sa.column('rule_version', sa.Integer()), sa.column('fired_at', TIME),
                        sa.column('trigger', sa.String()))


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sla_window_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sla_next_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('execution_refused_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_cases_sla_next_at', ['sla_next_at'], unique=False)

    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('round_started_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('rule_firings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_rule_firings_case_id_cases')),
    sa.ForeignKeyConstraint(['rule_id'], ['escalation_rules.id'], name=op.f('fk_rule_firings_rule_id_escalation_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_firings')),
    sa.UniqueConstraint('case_id', 'rule_id', 'rule_version', name=op.f('uq_rule_firings_case_id_rule_id_rule_version'))
    )
    op.create_table('execution_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('execution_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], name=op.f('fk_execution_attempts_execution_id_executions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_execution_attempts'))
    )
    with op.batch_alter_table('execution_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_execution_attempts_execution_id'), ['execution_id'], unique=False)

    op.create_table('upstream_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('webhook_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_upstream_notices_case_id_cases')),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_upstream_notices_decision_id_decisions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_notices')),
    sa.UniqueConstraint('webhook_id', name=op.f('uq_upstream_notices_webhook_id'))
    )
    with op.batch_alter_table('upstream_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upstream_notices_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_upstream_notices_status_next_attempt', ['status', 'next_attempt_at'], unique=False)

    conn = op.get_bind()
    _backfill_windows(conn)
    _backfill_next_steps(conn)
    _backfill_from_latest_event(conn)
    _backfill_firings(conn)

    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.alter_column('round_started_at', existing_type=sa.DateTime(timezone=True), nullable=False)


def _utc(moment):
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _backfill_windows(conn):
    conn.execute(sa.text(
        "UPDATE cases SET sla_window_minutes = (SELECT queues.sla_minutes FROM queues WHERE queues.id = cases.queue_id)"))
    given = {}
    rows = conn.execute(sa.select(audit_events.c.case_id, audit_events.c.data)
                        .where(audit_events.c.action.in_(('rule.fired', 'case.sla_breached')),
                               audit_events.c.case_id.is_not(None))
                        .order_by(audit_events.c.seq))
    for case_id, data in rows:
        if isinstance(data, dict) and data.get('sla_window_minutes'):
            given[case_id] = int(data['sla_window_minutes'])
    if given:
        conn.execute(cases.update().where(cases.c.id == sa.bindparam('case_id'))
                     .values(sla_window_minutes=sa.bindparam('window')),
                     [{'case_id': case_id, 'window': window} for case_id, window in given.items()])


def _backfill_next_steps(conn):
    round_the_clock = {queue_id for queue_id, hours in conn.execute(sa.select(queues.c.id, queues.c.business_hours))
                       if not hours}
    now = datetime.now(UTC)
    rows = conn.execute(sa.select(cases.c.id, cases.c.queue_id, cases.c.sla_due_at, cases.c.sla_notified_pct,
                                  cases.c.sla_window_minutes)
                        .where(cases.c.status.in_(CLOCK_STATUSES), cases.c.queue_id.is_not(None),
                               cases.c.sla_due_at.is_not(None), cases.c.sla_paused_at.is_(None),
                               cases.c.sla_notified_pct < 100)).all()
    updates = []
    for case_id, queue_id, due, notified, window in rows:
        step = next(s for s in STEPS if s > notified)
        if queue_id in round_the_clock and window is not None:
            at = _utc(due) - timedelta(minutes=window * (1 - step / 100))
        else:
            at = now  # business hours: the first sweep computes the exact time
        updates.append({'case_id': case_id, 'at': at})
    if updates:
        conn.execute(cases.update().where(cases.c.id == sa.bindparam('case_id')).values(sla_next_at=sa.bindparam('at')),
                     updates)


def _backfill_from_latest_event(conn):
    conn.execute(sa.text(
        "UPDATE cases SET execution_refused_at = (SELECT MAX(audit_events.time) FROM audit_events "
        "WHERE audit_events.case_id = cases.id AND audit_events.action = 'case.execution_refused')"))
    conn.execute(sa.text(
        "UPDATE executions SET round_started_at = COALESCE((SELECT MAX(audit_events.time) FROM audit_events "
        "WHERE audit_events.case_id = executions.case_id AND audit_events.action = 'case.execution_retried'), "
        "executions.created_at)"))


def _backfill_firings(conn):
    rules = set(conn.scalars(sa.select(escalation_rules.c.id)))
    seen, firings = set(), []
    rows = conn.execute(sa.select(audit_events.c.case_id, audit_events.c.time, audit_events.c.data)
                        .where(audit_events.c.action == 'rule.fired', audit_events.c.case_id.is_not(None))
                        .order_by(audit_events.c.seq))
    for case_id, time, data in rows:
        key = (case_id, data.get('rule_id'), data.get('version'))
        if key[1] not in rules or key[2] is None or key in seen:
            continue
        seen.add(key)
        firings.append({'case_id': case_id, 'rule_id': key[1], 'rule_version': key[2], 'fired_at': _utc(time),
                        'trigger': str(data.get('trigger') or 'unknown')[:20]})
    if firings:
        conn.execute(rule_firings.insert(), firings)


def downgrade():
    with op.batch_alter_table('upstream_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_upstream_notices_status_next_attempt')
        batch_op.drop_index(batch_op.f('ix_upstream_notices_case_id'))

    op.drop_table('upstream_notices')
    with op.batch_alter_table('execution_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_execution_attempts_execution_id'))

    op.drop_table('execution_attempts')
    op.drop_table('rule_firings')
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_column('round_started_at')

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_sla_next_at')
        batch_op.drop_column('execution_refused_at')
        batch_op.drop_column('sla_next_at')
        batch_op.drop_column('sla_window_minutes')
