"""The append-only, hash-chained audit trail: appending and verifying."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.db import canonical_json, json_digest, utcnow

GENESIS_HASH = "0" * 64
# Any constant works: it names the one advisory lock that serialises appends on PostgreSQL.
_CHAIN_LOCK_KEY = 0x636F756E746572  # "counter"


def event_hash(seq: int, time: str, actor: str, action: str, case_id: int | None, data: Any, prev_hash: str) -> str:
    document = {
        "seq": seq,
        "time": time,
        "actor": actor,
        "action": action,
        "case_id": case_id,
        "data": data,
        "prev_hash": prev_hash,
    }
    return json_digest(document)


def _hash_of(event: AuditEvent) -> str:
    return event_hash(
        event.seq, event.time.isoformat(), event.actor, event.action, event.case_id, event.data, event.prev_hash
    )


def _lock_chain(session: Session) -> None:
    """Serialise appenders so two transactions never link to the same predecessor.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write statement that
    changes nothing still takes the database write lock, held until commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    else:
        session.execute(text("UPDATE audit_events SET seq = seq WHERE 0 = 1"))


def record(
    session: Session, action: AuditAction, actor: Actor | str, *, case_id: int | None = None, data: Any = None
) -> AuditEvent:
    """Append one event in the caller's transaction (flushed, not committed). ``action`` is an
    AuditAction: any other value (a string, even one equal to a known action) raises ValueError."""
    if not isinstance(action, AuditAction):
        raise ValueError(f"audit action {action!r} is not an AuditAction (app.audit.actions): "
                         "every action the trail records is listed there")
    _lock_chain(session)
    last = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
    now = utcnow()
    payload = _jsonable(data if data is not None else {})
    event = AuditEvent(
        seq=seq, time=now, actor=str(actor), action=action.value, case_id=case_id, data=payload, prev_hash=prev_hash
    )
    event.hash = event_hash(seq, now.isoformat(), str(actor), action.value, case_id, payload, prev_hash)
    session.add(event)
    session.flush()
    return event


def _jsonable(data: Any) -> Any:
    """Round-trip through canonical JSON so what is hashed is exactly what is stored."""
    return json.loads(canonical_json(data))


@dataclass
class VerifyResult:
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def iter_events(session: Session, batch_size: int = 1000) -> Iterator[AuditEvent]:
    """Walk the chain in sequence order, one keyset page at a time."""
    after = 0
    while True:
        page = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(batch_size)
        ).all()
        if not page:
            return
        yield from page
        after = page[-1].seq
        session.expunge_all()


def count_events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def verify(session: Session, *, batch_size: int = 1000, progress: Callable[[int], None] | None = None) -> VerifyResult:
    expected_seq, expected_prev = 1, GENESIS_HASH
    checked = 0
    for event in iter_events(session, batch_size):
        if event.seq != expected_seq:
            return VerifyResult(checked, expected_seq, f"sequence {expected_seq} is missing (next is {event.seq})")
        if event.prev_hash != expected_prev:
            return VerifyResult(checked, event.seq, "prev_hash does not match the previous event's hash")
        if _hash_of(event) != event.hash:
            return VerifyResult(checked, event.seq, "hash does not match the event's contents")
        expected_seq, expected_prev = event.seq + 1, event.hash
        checked += 1
        if progress and checked % batch_size == 0:
            progress(checked)
    return VerifyResult(checked)
