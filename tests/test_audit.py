"""The audit log: unsealed inserts, the sealer's one order, signed checkpoints, and `audit verify`
catching every kind of tampering, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Text, cast, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain, checkpoints, verification
from app.audit.actions import AuditAction
from app.audit.models import AuditCheckpoint, AuditEvent
from app.extensions import db
from tools.verify_export import load_public_key, verify_checkpoint


def append(n: int, actor: str = "system:test", *, seal: bool = True) -> None:
    for i in range(n):
        chain.record(db.session, AuditAction.USER_LOGIN, actor, data={"i": i, "amount": "10.50"})
    db.session.commit()
    if seal:
        chain.seal(db.session)


def tamper(*statements: str) -> None:
    """What an attacker with database access would do: get past the triggers, change rows."""
    db.session.remove()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            for trigger in ("audit_events_seal_only", "audit_events_no_delete", "audit_checkpoints_no_update",
                            "audit_checkpoints_no_delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in statements:
            conn.exec_driver_sql(statement)


def leaf_of(seq: int, time: str, actor: str, action: str, case_id: int | None, data: dict) -> str:
    """The leaf hash as docs/audit-log.md defines it, written out independently of the app."""
    document = {"seq": seq, "time": time, "actor": actor, "action": action, "case_id": case_id, "data": data}
    text_ = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"\x00" + text_.encode()).hexdigest()


def verify_cli(runner) -> tuple[int, str]:
    result = runner.invoke(args=["audit", "verify"])
    return result.exit_code, result.output


# --- writing and sealing ----------------------------------------------------------------------------------


def test_events_are_written_unsealed_and_sealed_in_order(app):
    chain.record(db.session, AuditAction.USER_LOGIN, "system:test", data={"z": "é", "a": [1, {"y": 2, "b": None}]})
    db.session.commit()
    stored = db.session.scalar(select(cast(AuditEvent.data, Text)))
    assert stored == '{"a":[1,{"b":null,"y":2}],"z":"é"}'  # canonical text, kept byte for byte
    append(2, seal=False)
    assert db.session.scalars(select(AuditEvent.seq)).all() == [None, None, None]
    assert chain.seal(db.session) == 3
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.seq for e in events] == [1, 2, 3]
    for e in events:
        assert e.hash == leaf_of(e.seq, e.time.isoformat(), e.actor, e.action, e.case_id, e.data)
    assert chain.seal(db.session) == 0


def test_entry_covers_every_field(app):
    base = dict(seq=1, time=chain.utcnow(), actor="user:1", action="user.login", case_id=None, data_text='{"i":1}')
    leaf = chain.entry(**base)
    assert json.loads(leaf) == {"seq": 1, "time": base["time"].isoformat(), "actor": "user:1",
                                "action": "user.login", "case_id": None, "data": {"i": 1}}
    for field, other in [("seq", 2), ("time", base["time"].replace(year=2020)), ("actor", "user:9"),
                         ("action", "x"), ("case_id", 7), ("data_text", '{"i":2}'), ("data_text", '{"i": 1}')]:
        assert chain.entry(**{**base, field: other}) != leaf, field


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET actor = 'user:666'",
    "UPDATE audit_events SET seq = seq + 10",
    "UPDATE audit_events SET hash = 'f' || substr(hash, 2)",
    "DELETE FROM audit_events",
])
def test_database_refuses_every_change_to_a_sealed_event(app, statement):
    append(2)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text(statement))
    assert db.session.scalar(select(AuditEvent.actor).where(AuditEvent.seq == 1)) == "system:test"


def test_database_refuses_sealing_out_of_order_or_changing_while_sealing(app):
    append(1)
    append(2, seal=False)
    first, second = db.session.scalars(select(AuditEvent.id).where(AuditEvent.seq.is_(None))
                                       .order_by(AuditEvent.id)).all()
    for statement in (f"UPDATE audit_events SET seq = 3, hash = 'x' WHERE id = {first}",  # a gap
                      f"UPDATE audit_events SET seq = 1, hash = 'x' WHERE id = {first}",  # taken
                      f"UPDATE audit_events SET seq = 2, hash = 'x', actor = 'user:9' WHERE id = {first}"):
        with pytest.raises(DBAPIError), db.engine.begin() as conn:
            conn.execute(text(statement))
    with db.engine.begin() as conn:  # the one change allowed: the next place, nothing else
        conn.execute(text(f"UPDATE audit_events SET seq = 2, hash = 'x' WHERE id = {second}"))


def test_replacing_inserts_are_refused(app):
    append(2)
    row = db.session.execute(select(AuditEvent.id, AuditEvent.time).where(AuditEvent.seq == 1)).one()
    db.session.remove()
    values = f"({row.id}, 1, '{row.time.isoformat()}', 'user:666', 'user.login', NULL, '{{}}', '{'0' * 64}')"
    columns = "(id, seq, time, actor, action, case_id, data, hash)"
    if db.engine.dialect.name == "sqlite":
        statements = [f"INSERT OR REPLACE INTO audit_events {columns} VALUES {values}",
                      f"REPLACE INTO audit_events {columns} VALUES {values}",
                      f"INSERT OR REPLACE INTO audit_events (id, time, actor, action, data) "
                      f"VALUES ({row.id}, '{row.time.isoformat()}', 'user:666', 'user.login', '{{}}')"]
    else:
        statements = [f"INSERT INTO audit_events {columns} VALUES {values} "
                      "ON CONFLICT (id) DO UPDATE SET actor = excluded.actor",
                      f"INSERT INTO audit_events {columns} VALUES {values.replace(str(row.id), '999999', 1)}"]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    assert db.session.scalars(select(AuditEvent.actor)).all() == ["system:test", "system:test"]


def test_truncate_is_refused(app):
    append(1)
    # PostgreSQL: the statement trigger refuses it. SQLite has no TRUNCATE statement at all.
    refusal = "append-only" if db.engine.dialect.name == "postgresql" else "syntax error"
    for table in ("audit_events", "audit_checkpoints"):
        with pytest.raises(DBAPIError, match=refusal), db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table}"))
    assert db.session.scalar(select(AuditEvent.seq)) == 1


def test_checkpoints_are_append_only(app):
    append(2)
    checkpoints.create(db.session, app.config)
    for statement in ("UPDATE audit_checkpoints SET tree_size = 1", "DELETE FROM audit_checkpoints"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))


CONNECTIONS = 20


def test_concurrent_writers_get_one_gap_free_order(app):
    """50 writers x 1,000 events, committed 20 at a time, while a sealer keeps sealing."""
    writers, per_writer, per_commit = 50, 1000, 20
    barrier = threading.Barrier(writers + 1)
    errors: list[BaseException] = []
    done = threading.Event()
    # 20 connections for the 51 threads, taken in turns for as long as it takes: each transaction
    # still races 19 others and the sealer. A connection each (51) would leave another test run's
    # PostgreSQL tests too few of the server's 100, and on SQLite make 50 writers poll one lock,
    # where a busy machine can starve one past its 30 s timeout.
    engine = create_engine(db.engine.url, **{**app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_size": CONNECTIONS,
                                             "max_overflow": 0, "pool_timeout": 600})

    def write(worker: int) -> None:
        barrier.wait()
        try:
            for start in range(0, per_writer, per_commit):
                with Session(engine) as session:
                    for i in range(start, start + per_commit):
                        chain.record(session, AuditAction.USER_LOGIN, Actor.system(f"w{worker}"), data={"i": i})
                    session.commit()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def seal() -> None:
        barrier.wait()
        with Session(engine) as session:
            while not done.is_set():
                chain.seal(session)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    sealer = threading.Thread(target=seal)
    for thread in [*threads, sealer]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    sealer.join()
    engine.dispose()
    assert errors == []
    chain.seal(db.session)
    rows = db.session.execute(select(AuditEvent.seq, AuditEvent.actor, AuditEvent.data)
                              .order_by(AuditEvent.seq)).all()
    assert [row.seq for row in rows] == list(range(1, writers * per_writer + 1))
    for worker in range(writers):  # each writer's events in the order it wrote them
        assert [row.data["i"] for row in rows if row.actor == f"system:w{worker}"] == list(range(per_writer))
    assert verification.verify(db.session, app.config).checked == writers * per_writer


def test_postgres_sealer_waits_for_older_open_transactions(app):
    """A transaction still open must not be overtaken: events committed after it began wait.
    (SQLite has one writer at a time: nothing can be overtaken there.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the PostgreSQL pass of the suite runs it")
    with Session(db.engine) as older, Session(db.engine) as newer:
        chain.record(older, AuditAction.USER_LOGIN, "system:older")  # holds the older transaction id
        chain.record(newer, AuditAction.USER_LOGIN, "system:newer")
        newer.commit()
        assert chain.seal(db.session) == 0
        older.commit()
    assert chain.seal(db.session) == 2
    assert db.session.scalars(select(AuditEvent.actor).order_by(AuditEvent.seq)).all() == [
        "system:older", "system:newer"]


def test_postgres_sealer_does_not_wait_for_other_databases(app):
    """A long transaction of another database on the same server never writes this log: sealing
    goes on while it is open (the snapshot's xmin alone would wait for it)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the PostgreSQL pass of the suite runs it")
    other = sa.create_engine(db.engine.url.set(database="postgres"), poolclass=sa.pool.NullPool)
    with other.connect() as elsewhere:
        elsewhere.exec_driver_sql("SELECT pg_current_xact_id()")  # holds a transaction id, open
        append(2, seal=False)
        assert chain.seal(db.session) == 2
        elsewhere.rollback()
    other.dispose()


@pytest.mark.parametrize("action", ["test.event", "case.received", "case.no_such_move"])
def test_only_an_audit_action_is_recorded(app, action):
    with pytest.raises(ValueError, match="is not an AuditAction"):
        chain.record(db.session, action, "system:test", data={})
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_every_lifecycle_move_has_its_audit_action():
    from app.cases import lifecycle

    assert {lifecycle.ACTIONS[event].value for event in lifecycle.TRANSITIONS} == {
        f"case.{event}" for event in lifecycle.TRANSITIONS}
    assert AuditAction("case.received") is AuditAction.CASE_RECEIVED  # the stored values are the strings


# --- checkpoints ------------------------------------------------------------------------------------------


def test_a_checkpoint_is_signed_stored_and_published(app, runner):
    append(5, seal=False)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["tree_size"] == 5
    stored = db.session.scalar(select(AuditCheckpoint))
    assert stored.document() == document
    verify_checkpoint(document, load_public_key(checkpoints.public_key(app.config)))
    files = sorted(Path(app.config["AUDIT_CHECKPOINT_DIR"]).iterdir())
    assert len(files) == 1
    published = json.loads(files[0].read_text())
    assert published["checkpoint"] == document and published["previous_tree_size"] == 0
    assert published["leaves"] == db.session.scalars(select(AuditEvent.hash).order_by(AuditEvent.seq)).all()

    append(2)
    second = json.loads(runner.invoke(args=["audit", "checkpoint"]).output)
    assert second["tree_size"] == 7
    newest = json.loads(sorted(Path(app.config["AUDIT_CHECKPOINT_DIR"]).iterdir())[-1].read_text())
    assert newest["previous_tree_size"] == 5 and len(newest["leaves"]) == 2


def test_no_checkpoint_without_a_signing_key(app, runner):
    app.config["AUDIT_SIGNING_KEY"] = ""
    append(1)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 2
    assert "no audit signing key" in result.output and "audit keygen" in result.output


def test_keygen_writes_a_key_pair_that_signs(app, runner, tmp_path):
    out = tmp_path / "keys" / "audit.pem"
    result = runner.invoke(args=["audit", "keygen", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    app.config.update(AUDIT_SIGNING_KEY="", AUDIT_SIGNING_KEY_FILE=str(out))
    assert checkpoints.public_key(app.config) == Path(f"{out}.pub").read_text().strip()
    again = runner.invoke(args=["audit", "keygen", "--out", str(out)])
    assert again.exit_code == 2 and "never overwritten" in again.output


def test_a_changed_history_is_never_signed_over(app, runner):
    append(4)
    checkpoints.create(db.session, app.config)
    tamper("UPDATE audit_events SET actor = 'user:666' WHERE seq = 2")
    tamper(*_recompute_hashes(2))
    append(1)
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 2
    assert "no longer match the last checkpoint" in result.output
    assert db.session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 1


# --- verification -------------------------------------------------------------------------------------------


def test_verify_passes_on_an_intact_log(app, runner):
    append(5)
    checkpoints.create(db.session, app.config)
    append(3, seal=False)
    code, output = verify_cli(runner)
    assert code == 0, output
    assert "audit log intact: 8 events verified against 2 signed checkpoints" in output


def _recompute_hashes(*seqs: int) -> list[str]:
    """UPDATE statements giving rows their hashes as they now read (a rewritten history)."""
    statements = []
    for e in db.session.scalars(select(AuditEvent).where(AuditEvent.seq.in_(seqs))):
        leaf = leaf_of(e.seq, e.time.isoformat(), e.actor, e.action, e.case_id, e.data)
        statements.append(f"UPDATE audit_events SET hash = '{leaf}' WHERE id = {e.id}")
    return statements


@pytest.mark.parametrize(("case", "bad_seq", "reason"), [
    ("changed", 4, "event 4 was changed: its contents do not match its leaf hash"),
    ("deleted", 3, "event 3 is missing (the next event is 4)"),
    ("newest deleted", 5, "events 5..6 are missing"),
    ("reordered", 2, "event 2 was changed"),
    ("rewritten", 4, "event 4 was changed: it is not the event published in checkpoint-000000000006"),
])
def test_verify_names_the_first_bad_event(app, runner, case, bad_seq, reason):
    append(6)
    checkpoints.create(db.session, app.config)
    if case == "changed":
        tamper("UPDATE audit_events SET data = '{\"i\": 99, \"amount\": \"10.50\"}' WHERE seq = 4")
    elif case == "deleted":
        tamper("DELETE FROM audit_events WHERE seq = 3")
    elif case == "newest deleted":
        tamper("DELETE FROM audit_events WHERE seq >= 5")
    elif case == "reordered":
        tamper("UPDATE audit_events SET seq = -2 WHERE seq = 2", "UPDATE audit_events SET seq = 2 WHERE seq = 3",
               "UPDATE audit_events SET seq = 3 WHERE seq = -2")
    else:
        tamper("UPDATE audit_events SET actor = 'user:666' WHERE seq = 4")
        tamper(*_recompute_hashes(4))
    code, output = verify_cli(runner)
    assert code == 1, output
    assert f"audit log BROKEN at event {bad_seq}: " in output
    assert reason in output


def test_a_rewritten_history_fails_against_the_stored_checkpoint_alone(app, runner):
    """Without the published files, the signed root still catches recomputed hashes and names
    where the change lies (after the last checkpoint that still matches)."""
    app.config["AUDIT_CHECKPOINT_DIR"] = ""
    append(3)
    checkpoints.create(db.session, app.config)
    append(3)
    checkpoints.create(db.session, app.config)
    tamper("UPDATE audit_events SET actor = 'user:666' WHERE seq = 5")
    tamper(*_recompute_hashes(5))
    code, output = verify_cli(runner)
    assert code == 1
    assert "audit log BROKEN at event 4: the first 6 events do not match checkpoint #" in output
    assert "an event among 4..6 was changed, removed or reordered" in output


def test_a_forged_checkpoint_fails_its_signature(app, runner):
    append(3)
    checkpoints.create(db.session, app.config)
    tamper("UPDATE audit_checkpoints SET root_hash = '" + "0" * 64 + "'")
    code, output = verify_cli(runner)
    assert code == 1
    assert re.search(r"BROKEN: checkpoint #\d+ \(database\) of 3 events: checkpoint signature does not verify",
                     output), output


def test_deleted_checkpoints_and_events_are_caught_by_the_published_file(app, runner):
    append(4)
    checkpoints.create(db.session, app.config)
    tamper("DELETE FROM audit_checkpoints", "DELETE FROM audit_events WHERE seq = 4")
    code, output = verify_cli(runner)
    assert code == 1
    assert "audit log BROKEN at event 4: events 4..4 are missing: checkpoint file checkpoint-000000000004" in output


def test_verify_reports_progress_on_large_logs(app, runner):
    append(2500)
    code, output = verify_cli(runner)
    assert code == 0
    assert "verifying 2500 audit events" in output
    assert "1000/2500 (40%)" in output and "2000/2500 (80%)" in output
    assert "2500 events verified" in output
