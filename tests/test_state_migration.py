"""Migration 0003 moves state out of the audit log: what it backfills from the rows and events
written before it (SQLite, and PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app.cases.models import Case, Execution
from app.db import JSONType
from app.escalation.models import RuleFiring
from app.extensions import db
from tests.conftest import ROOT

MIGRATIONS = str(ROOT / "migrations")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TIME = sa.DateTime(timezone=True)
LONDON = {"timezone": "Europe/London", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def _table(name: str, *columns: sa.ColumnClause[Any]) -> sa.TableClause:
    return sa.table(name, sa.column("id", sa.Integer()), *columns)


CLIENTS = _table("api_clients", sa.column("name"), sa.column("token_hash"), sa.column("token_prefix"),
                 sa.column("signing_secrets", JSONType), sa.column("allowed_domains", JSONType),
                 sa.column("callback_hosts", JSONType), sa.column("active"), sa.column("created_at", TIME))
QUEUES = _table("queues", sa.column("name"), sa.column("domain"), sa.column("is_default"), sa.column("sla_minutes"),
                sa.column("blind_review"), sa.column("business_hours", JSONType), sa.column("created_at", TIME))
USERS = _table("users", sa.column("email"), sa.column("name"), sa.column("password_hash"), sa.column("role"),
               sa.column("active"), sa.column("created_at", TIME))
RULES = _table("escalation_rules", sa.column("name"), sa.column("position"), sa.column("version"),
               sa.column("enabled"), sa.column("conditions", JSONType), sa.column("actions", JSONType),
               sa.column("created_at", TIME), sa.column("updated_at", TIME))
CASES = _table("cases", sa.column("client_id"), sa.column("external_id"), sa.column("domain"), sa.column("case_type"),
               sa.column("title"), sa.column("payload", JSONType), sa.column("status"), sa.column("priority"),
               sa.column("confidential"), sa.column("queue_id"), sa.column("sla_due_at", TIME),
               sa.column("sla_paused_at", TIME), sa.column("sla_notified_pct"), sa.column("requires_dual_approval"),
               sa.column("reopen_count"), sa.column("version"), sa.column("created_at", TIME),
               sa.column("updated_at", TIME))
DECISIONS = _table("decisions", sa.column("case_id"), sa.column("reviewer_id"), sa.column("kind"),
                   sa.column("case_version"), sa.column("parameters", JSONType), sa.column("diff", JSONType),
                   sa.column("created_at", TIME))
EXECUTIONS = _table("executions", sa.column("case_id"), sa.column("decision_id"), sa.column("idempotency_key"),
                    sa.column("status"), sa.column("attempts"), sa.column("created_at", TIME))
EVENTS = sa.table("audit_events", sa.column("seq"), sa.column("time", TIME), sa.column("actor"), sa.column("action"),
                  sa.column("case_id"), sa.column("data", JSONType), sa.column("prev_hash"), sa.column("hash"))


def _case(conn: sa.Connection, case_id: int, queue_id: int, status: str = "pending_review", **values: Any) -> None:
    conn.execute(CASES.insert().values(
        id=case_id, client_id=1, external_id=f"M-{case_id}", domain="finance", case_type="payment_release",
        title=f"Case {case_id}", payload={}, status=status, priority=1, confidential=False, queue_id=queue_id,
        requires_dual_approval=False, reopen_count=0, version=1, created_at=T0, updated_at=T0,
        **{"sla_due_at": minutes(60), "sla_paused_at": None, "sla_notified_pct": 0, **values}))


def _events(conn: sa.Connection, *events: tuple[str, int, datetime, dict[str, Any]]) -> None:
    conn.execute(EVENTS.insert(), [
        {"seq": seq, "time": time, "actor": "system:test", "action": action, "case_id": case_id, "data": data,
         "prev_hash": f"{seq - 1:064d}", "hash": f"{seq:064d}"}
        for seq, (action, case_id, time, data) in enumerate(events, start=1)])


def _seed_before_0003(conn: sa.Connection) -> None:
    conn.execute(CLIENTS.insert().values(id=1, name="upstream", token_hash="h", token_prefix="p", signing_secrets=[],
                                         allowed_domains=["finance"], callback_hosts=[], active=True, created_at=T0))
    conn.execute(QUEUES.insert(), [
        {"id": 1, "name": "finance", "domain": "finance", "is_default": True, "sla_minutes": 60,
         "blind_review": False, "business_hours": None, "created_at": T0},
        {"id": 2, "name": "office-hours", "domain": "finance", "is_default": False, "sla_minutes": 120,
         "blind_review": False, "business_hours": LONDON, "created_at": T0}])
    conn.execute(USERS.insert().values(id=1, email="r@example.com", name="R", password_hash="!", role="reviewer",
                                       active=True, created_at=T0))
    conn.execute(RULES.insert().values(id=1, name="slower", position=1, version=2, enabled=True,
                                       conditions={"domain": "finance"}, actions=[{"set_sla": {"minutes": 240}}],
                                       created_at=T0, updated_at=T0))
    _case(conn, 1, 1)  # round the clock, nothing taken: 50 % at 30 minutes
    _case(conn, 2, 1, sla_due_at=minutes(240), sla_notified_pct=50)  # a rule gave it 240 minutes: 75 % next
    _case(conn, 3, 2)  # business hours: the first sweep computes it
    _case(conn, 4, 1, status="needs_info", sla_paused_at=minutes(10))  # paused
    _case(conn, 5, 1, status="approved")  # decided
    _case(conn, 6, 1, sla_notified_pct=100)  # breached, left where it is
    conn.execute(DECISIONS.insert(), [{"id": i, "case_id": 5, "reviewer_id": 1, "kind": "approve", "case_version": 1,
                                       "parameters": {}, "diff": {}, "created_at": T0} for i in (1, 2)])
    conn.execute(EXECUTIONS.insert(), [
        {"id": 1, "case_id": 5, "decision_id": 1, "idempotency_key": "exec_5_1", "status": "failed", "attempts": 3,
         "created_at": T0},
        {"id": 2, "case_id": 6, "decision_id": 2, "idempotency_key": "exec_6_2", "status": "pending", "attempts": 0,
         "created_at": minutes(5)}])
    _events(conn,
            ("rule.fired", 2, minutes(1), {"rule_id": 1, "version": 1, "trigger": "intake", "actions": []}),
            ("rule.fired", 2, minutes(2), {"rule_id": 1, "version": 2, "trigger": "sweep", "actions": [],
                                           "sla_window_minutes": 240}),
            ("rule.fired", 2, minutes(3), {"rule_id": 1, "version": 2, "trigger": "sweep", "actions": []}),
            ("rule.fired", 1, minutes(4), {"rule_id": 99, "version": 1, "trigger": "sweep", "actions": []}),
            ("case.sla_breached", 6, minutes(60), {"sla_window_minutes": 30}),
            ("case.execution_refused", 5, minutes(70), {"reason": "tampered"}),
            ("case.execution_retried", 5, minutes(80), {"execution_id": 1}),
            ("case.execution_retried", 5, minutes(90), {"execution_id": 1}))


def test_0003_backfills_state_from_the_rows_and_events_before_it(app):
    db.session.remove()
    downgrade(directory=MIGRATIONS, revision="0002")
    with db.engine.begin() as conn:
        _seed_before_0003(conn)
    before = datetime.now(UTC)
    upgrade(directory=MIGRATIONS)
    cases = {c.id: c for c in db.session.scalars(sa.select(Case))}
    assert {i: c.sla_window_minutes for i, c in cases.items()} == {1: 60, 2: 240, 3: 120, 4: 60, 5: 60, 6: 30}
    assert cases[1].sla_next_at == minutes(30)
    assert cases[2].sla_next_at == minutes(240 - 60)  # 75 % of its own 240 minutes
    assert before <= cases[3].sla_next_at <= datetime.now(UTC)  # visited by the first sweep, which sets it
    assert [cases[i].sla_next_at for i in (4, 5, 6)] == [None, None, None]
    assert cases[5].execution_refused_at == minutes(70) and cases[1].execution_refused_at is None
    rounds = {e.id: e.round_started_at for e in db.session.scalars(sa.select(Execution))}
    assert rounds == {1: minutes(90), 2: minutes(5)}
    firings = [(f.case_id, f.rule_id, f.rule_version, f.trigger, f.fired_at)
               for f in db.session.scalars(sa.select(RuleFiring).order_by(RuleFiring.id))]
    assert firings == [(2, 1, 1, "intake", minutes(1)), (2, 1, 2, "sweep", minutes(2))]
