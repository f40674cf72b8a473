"""The hash-chained, append-only audit trail."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.extensions import db


def append(n: int, actor: str = "system:test") -> None:
    for i in range(n):
        chain.record(db.session, AuditAction.USER_LOGIN, actor, data={"i": i, "amount": "10.50"})
    db.session.commit()


def tamper(sql: str) -> None:
    """What an attacker with database access would do: get past the triggers, change a row."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        conn.exec_driver_sql(sql)


def test_events_link_into_a_chain(app):
    append(3)
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == chain.GENESIS_HASH
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert len({e.hash for e in events}) == 3
    assert chain.verify(db.session).ok


def test_hash_covers_every_field(app):
    append(1)
    e = db.session.scalar(select(AuditEvent))
    base = dict(seq=e.seq, time=e.time.isoformat(), actor=e.actor, action=e.action, case_id=e.case_id,
                data=e.data, prev_hash=e.prev_hash)
    assert chain.event_hash(**base) == e.hash
    for field, other in [("seq", 2), ("time", "2026-01-01T00:00:00+00:00"), ("actor", "user:9"),
                         ("action", "x"), ("case_id", 7), ("data", {"i": 1}), ("prev_hash", "f" * 64)]:
        assert chain.event_hash(**{**base, field: other}) != e.hash, field


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor = 'user:666'", "DELETE FROM audit_events"])
def test_database_refuses_update_and_delete(app, statement):
    append(2)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    assert db.session.scalar(select(AuditEvent.actor).where(AuditEvent.seq == 1)) == "system:test"


def test_truncate_is_refused(app):
    append(1)
    # PostgreSQL: the statement trigger refuses it. SQLite has no TRUNCATE statement at all.
    refusal = "append-only" if db.engine.dialect.name == "postgresql" else "syntax error"
    with pytest.raises(DBAPIError, match=refusal), db.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))
    assert db.session.scalar(select(AuditEvent.seq)) == 1


def test_verify_cli_passes_on_intact_chain(app, runner):
    append(5)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 5 events verified" in result.output


@pytest.mark.parametrize(("sql", "bad_seq", "reason"), [
    ("UPDATE audit_events SET data = '{\"i\": 99, \"amount\": \"10.50\"}' WHERE seq = 4", 4, "hash does not match"),
    ("UPDATE audit_events SET actor = 'user:1' WHERE seq = 2", 2, "hash does not match"),
    ("DELETE FROM audit_events WHERE seq = 3", 3, "sequence 3 is missing"),
    ("UPDATE audit_events SET hash = '" + "a" * 64 + "' WHERE seq = 5", 5, "hash does not match"),
])
def test_verify_cli_names_first_tampered_sequence(app, runner, sql, bad_seq, reason):
    append(6)
    db.session.remove()
    tamper(sql)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"audit chain BROKEN at sequence {bad_seq}" in result.output
    assert reason in result.output


def test_verify_reports_progress_on_large_chains(app, runner):
    append(2500)
    result = runner.invoke(args=["audit", "verify", "--batch-size", "1000"])
    assert result.exit_code == 0
    assert "verifying 2500 audit events" in result.output
    assert "1000/2500 (40%)" in result.output and "2000/2500 (80%)" in result.output
    assert "2500 events verified" in result.output


def test_parallel_writers_never_fork_the_chain(app):
    writers, per_writer = 8, 15
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []
    engine = db.engine

    def write(worker: int) -> None:
        barrier.wait()
        try:
            for i in range(per_writer):
                with Session(engine) as session:
                    chain.record(session, AuditAction.USER_LOGIN, Actor.system(f"w{worker}"), data={"i": i})
                    session.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = db.session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, writers * per_writer + 1))
    result = chain.verify(db.session)
    assert result.ok, result.reason
    assert result.checked == writers * per_writer


@pytest.mark.parametrize("action", ["test.event", "case.received", "case.no_such_move"])
def test_only_an_audit_action_is_recorded(app, action):
    with pytest.raises(ValueError, match="is not an AuditAction"):
        chain.record(db.session, action, "system:test", data={})
    db.session.rollback()
    assert chain.count_events(db.session) == 0


def test_every_lifecycle_move_has_its_audit_action():
    from app.cases import lifecycle

    assert {lifecycle.ACTIONS[event].value for event in lifecycle.TRANSITIONS} == {
        f"case.{event}" for event in lifecycle.TRANSITIONS}
    assert AuditAction("case.received") is AuditAction.CASE_RECEIVED  # the stored values are the strings
