"""The audit log: writers append unsealed events; one sealer puts them in order.

``record`` inserts an event in the caller's transaction and returns: no lock, no read of other
events, so audited writes run side by side. ``seal`` (a periodic job, and on demand before a
checkpoint, an export or a verification) gives every committed event its place in the one
append-only order (``seq``) and its Merkle leaf hash, in batches, under a lock only sealers take.

Order: on SQLite there is one writer at a time, so insertion (``id``) order is commit order. On
PostgreSQL a trigger stamps each event with its transaction's id (``xid``); the sealer takes only
events of transactions older than every one still open in this database, in ``xid`` order, so an
event committed later can never need a place before one already sealed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import DateTime, Text, cast, func, insert, select, text, type_coerce, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import merkle
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.db import canonical_json, utcnow

# Any constant works: it names the advisory lock that only sealers take (PostgreSQL).
_SEALER_LOCK_KEY = 0x636F756E746572  # "counter"
SEAL_BATCH = 5000
_INSERT_EVENT = insert(AuditEvent.__table__)  # built once: the hot path only binds parameters
_INSERT_RETURNING_ID = _INSERT_EVENT.returning(AuditEvent.__table__.c.id)
# What an entry is made of; ``data_text`` is the stored JSON text, not a value parsed from it.
ENTRY_COLUMNS = (AuditEvent.id, AuditEvent.seq, AuditEvent.time, AuditEvent.actor, AuditEvent.action,
                 AuditEvent.case_id, cast(AuditEvent.data, Text).label("data_text"), AuditEvent.hash)


def record(
    session: Session, action: AuditAction, actor: Actor | str, *, case_id: int | None = None, data: Any = None
) -> int:
    """Append one event in the caller's transaction (written, not committed); its id. ``action`` is an
    AuditAction: any other value (a string, even one equal to a known action) raises ValueError.

    A plain INSERT, not an ORM object: every audited write pays for it, and the unit of work's
    bookkeeping cost more than the insert itself."""
    session.flush()  # the caller's pending changes first, as when the event was an ORM object
    return session.execute(_INSERT_RETURNING_ID, _columns(action, actor, case_id, data)).scalar_one()


def append(
    session: Session, action: AuditAction, actor: Actor | str, *, case_id: int | None = None, data: Any = None
) -> None:
    """`record` without the flush first and the id back: for hot paths that need neither."""
    session.execute(_INSERT_EVENT, _columns(action, actor, case_id, data))


def _columns(action: AuditAction, actor: Actor | str, case_id: int | None, data: Any) -> dict[str, Any]:
    if not isinstance(action, AuditAction):
        raise ValueError(f"audit action {action!r} is not an AuditAction (app.audit.actions): "
                         "every action the trail records is listed there")
    payload = json.loads(canonical_json(data if data is not None else {}))  # hashed later exactly as stored
    return {"time": utcnow(), "actor": str(actor), "action": action.value, "case_id": case_id, "data": payload}


def entry(seq: int, time: datetime, actor: str, action: str, case_id: int | None, data_text: str) -> bytes:
    """The bytes a leaf hash covers: the canonical JSON of the event with its place in the order.
    ``data_text`` is the data exactly as stored (canonical JSON, written so): it is embedded, not
    re-encoded, so what is hashed is what the database holds, byte for byte."""
    case = "null" if case_id is None else str(int(case_id))
    utc = time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)  # SQLite's are naive UTC
    return (f'{{"action":{_string(action)},"actor":{_string(actor)},"case_id":{case},"data":{data_text},'
            f'"seq":{int(seq)},"time":"{utc.isoformat()}"}}').encode()


_string = encode_basestring  # a str as JSON, exactly as json.dumps(..., ensure_ascii=False) writes it


def entry_of(row: Row[Any]) -> bytes:
    """The entry of a row selected with ENTRY_COLUMNS."""
    if row.seq is None:
        raise ValueError(f"audit event {row.id} is not sealed yet")
    return entry(row.seq, row.time, row.actor, row.action, row.case_id, row.data_text)


# --- sealing ------------------------------------------------------------------------------------------


def seal(session: Session, *, batch_size: int = SEAL_BATCH) -> int:
    """Seal every event that may be sealed now, committing each batch; how many were sealed."""
    sealed = 0
    while True:
        count = _seal_batch(session, batch_size)
        session.commit()
        sealed += count
        if count < batch_size:
            return sealed


def _seal_batch(session: Session, batch_size: int) -> int:
    postgres = _take_sealer_lock(session)
    last = sealed_count(session)
    query = select(*ENTRY_COLUMNS).where(AuditEvent.seq.is_(None))
    if postgres:
        query = query.where(AuditEvent.xid < _oldest_open_transaction(session))
        query = query.order_by(AuditEvent.xid, AuditEvent.id)
    else:
        query = query.order_by(AuditEvent.id)
    rows = session.execute(query.limit(batch_size)).all()
    if not rows:
        return 0
    seals = []
    for seq, row in enumerate(rows, start=last + 1):
        leaf = merkle.leaf_hash(entry(seq, row.time, row.actor, row.action, row.case_id, row.data_text))
        seals.append({"id": row.id, "seq": seq, "hash": leaf.hex()})
    session.execute(update(AuditEvent), seals)
    return len(seals)


# The transactions still writing in this database, as full (epoch-aware) ids. pg_stat_activity gives
# 32-bit xids: each is placed in the epoch of ``next`` (all running ids are within 2^31 of it).
_OPEN_IN_THIS_DATABASE = text("""
    SELECT min(:next - (:next & 4294967295) + backend_xid::text::bigint
               - CASE WHEN backend_xid::text::bigint > (:next & 4294967295) THEN 4294967296 ELSE 0 END)
    FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL
""")


def _oldest_open_transaction(session: Session) -> int:
    """The id below which every transaction of this database has finished: the oldest one still
    open, else the next id to be given. Transactions of other databases on the same server never
    write this table, so they do not hold sealing back (the snapshot's xmin would wait for them).
    The next id is read first: a transaction that starts writing later gets a larger id. (No
    prepared transactions here: Countersign never uses two-phase commit.)"""
    next_id = session.scalar(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"))
    session.execute(text("SELECT pg_stat_clear_snapshot()"))  # activity as of now, not as first read
    oldest = session.scalar(_OPEN_IN_THIS_DATABASE, {"next": next_id})
    return min(next_id, oldest) if oldest is not None else next_id


def _take_sealer_lock(session: Session) -> bool:
    """Wait for any other sealer to finish; True on PostgreSQL. On SQLite a write that changes
    nothing takes the database's write lock, held until commit, before anything is read."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEALER_LOCK_KEY})
        return True
    session.execute(text("UPDATE audit_events SET seq = seq WHERE 0 = 1"))
    return False


def unsealed_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))) or 0


def sealed_count(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.seq))) or 0


# --- reading in order ---------------------------------------------------------------------------------


# The same columns read without the ORM and its time-zone type, for the one pass over the whole log
# (about 1.5x faster); `entry` makes the times UTC.
_EVENTS = AuditEvent.__table__
_RAW_ENTRY_COLUMNS = (_EVENTS.c.id, _EVENTS.c.seq, type_coerce(_EVENTS.c.time, DateTime(timezone=True)).label("time"),
                      _EVENTS.c.actor, _EVENTS.c.action, _EVENTS.c.case_id,
                      cast(_EVENTS.c.data, Text).label("data_text"), _EVENTS.c.hash)


def iter_entries(session: Session, *, batch_size: int = 5000) -> Iterator[tuple[int, bytes, str | None]]:
    """(seq, entry, stored leaf hash) of every sealed event, in order, a keyset page at a time
    (constant memory): what verification reads."""
    connection, after = session.connection(), 0
    while True:
        page = connection.execute(select(*_RAW_ENTRY_COLUMNS).where(_EVENTS.c.seq > after)
                                  .order_by(_EVENTS.c.seq).limit(batch_size)).all()
        if not page:
            return
        for _id, seq, time, actor, action, case_id, data_text, stored in page:
            yield seq, entry(seq, time, actor, action, case_id, data_text), stored
        after = page[-1].seq


def leaf_hash_pages(session: Session, upto: int, *, batch_size: int = 50000) -> Iterator[tuple[int, bytes]]:
    """The leaf hashes of events 1..upto as stored, a page at a time: (the first seq of the page, its
    leaf hashes end to end). Checkpoints, proofs and exports pass over every leaf: on PostgreSQL the
    database decodes and joins a page's hashes, so Python gets one bytes object a page. Stops at the
    first seq missing (the tree is then smaller than ``upto``: the callers check)."""
    connection, after = session.connection(), 0
    while after < upto:
        last = min(after + batch_size, upto)
        page = _page(connection, after, last)
        if page:
            yield after + 1, page
        if len(page) != (last - after) * 32:
            return
        after = last


_JOINED_PAGE = text("SELECT string_agg(decode(hash, 'hex'), ''::bytea ORDER BY seq), count(*) FROM audit_events "
                    "WHERE seq > :after AND seq <= :last")


def _page(connection: Connection, after: int, last: int) -> bytes:
    """The leaf hashes of events after+1..last end to end, up to the first one missing."""
    if connection.dialect.name == "postgresql":
        joined, count = connection.execute(_JOINED_PAGE, {"after": after, "last": last}).one()
        if count == last - after and len(joined or b"") == count * 32:  # seq is unique: all of them are there
            return bytes(joined)
    leaves: list[bytes] = []
    for seq, leaf in connection.execute(select(_EVENTS.c.seq, _EVENTS.c.hash).where(
            _EVENTS.c.seq > after, _EVENTS.c.seq <= last).order_by(_EVENTS.c.seq)):
        if seq != after + 1 + len(leaves):
            break
        leaves.append(bytes.fromhex(leaf))
    return b"".join(leaves)
