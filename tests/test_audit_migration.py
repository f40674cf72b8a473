"""Migration 0005 turns the hash chain into the sealed Merkle log, keeping every event and its
order, and back (SQLite, and PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app.audit import chain
from app.audit.models import AuditEvent
from app.db import JSONType
from app.extensions import db
from tests.conftest import ROOT, audit_log_intact

MIGRATIONS = str(ROOT / "migrations")
OLD_EVENTS = sa.table("audit_events", sa.column("seq"), sa.column("time", sa.DateTime(timezone=True)),
                      sa.column("actor"), sa.column("action"), sa.column("case_id"), sa.column("data", JSONType),
                      sa.column("prev_hash"), sa.column("hash"))
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _link(seq: int, actor: str, data: dict, prev_hash: str) -> str:
    """The hash-chain link of revisions 0001..0004, written out by hand."""
    document = {"seq": seq, "time": T0.isoformat(), "actor": actor, "action": "user.login", "case_id": None,
                "data": data, "prev_hash": prev_hash}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_0005_keeps_every_event_in_order_and_seals_it(app, runner):
    db.session.remove()
    downgrade(directory=MIGRATIONS, revision="0004")
    prev = "0" * 64
    rows = []
    for seq, (actor, data) in enumerate([("user:1", {"b": 2, "a": "é"}), ("system:x", {}),
                                         ("client:3", {"n": [3, 1]})], start=1):
        link = _link(seq, actor, data, prev)
        rows.append({"seq": seq, "time": T0, "actor": actor, "action": "user.login", "case_id": None,
                     "data": data, "prev_hash": prev, "hash": link})
        prev = link
    with db.engine.begin() as conn:
        conn.execute(sa.insert(OLD_EVENTS), rows)
    upgrade(directory=MIGRATIONS)

    events = db.session.execute(sa.select(*chain.ENTRY_COLUMNS).order_by(AuditEvent.seq)).all()
    assert [(e.seq, e.actor) for e in events] == [(1, "user:1"), (2, "system:x"), (3, "client:3")]
    assert events[0].data_text == '{"a":"é","b":2}'
    first = json.dumps({"action": "user.login", "actor": "user:1", "case_id": None, "data": {"a": "é", "b": 2},
                        "seq": 1, "time": T0.isoformat()}, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False)
    assert events[0].hash == hashlib.sha256(b"\x00" + first.encode()).hexdigest()
    chain.record(db.session, chain.AuditAction.USER_LOGOUT, "user:1")
    db.session.commit()
    assert audit_log_intact()
    assert chain.sealed_count(db.session) == 4

    db.session.remove()
    downgrade(directory=MIGRATIONS, revision="0004")  # back to the chain: four linked events
    with db.engine.connect() as conn:
        back = conn.execute(sa.select(OLD_EVENTS).order_by(OLD_EVENTS.c.seq)).all()
    assert [row.seq for row in back] == [1, 2, 3, 4]
    assert back[0].hash == rows[0]["hash"] and back[2].hash == rows[2]["hash"]
    assert back[3].prev_hash == back[2].hash
    upgrade(directory=MIGRATIONS)
