"""What intake reads on every request, kept per process while it is current: the API client of a
token, the queue a domain's case type goes to, the enabled escalation rules.

Every change to api_clients, queues or escalation_rules gives ``intake_config_stamp`` a new random
stamp (database triggers, migration 0019), in the changing transaction. An intake reads that one
row first, once per transaction; while the stamp is the one this process's copies were read at,
they are used, else they are dropped and read again. So a change, a client's revocation included,
takes effect for every process with the first request that begins after it is committed, as when
each request read the tables. A row gone (no stamp) means no copies: everything is read.

The copies are detached ORM objects (read in a session of their own) shared by the process's
threads and never modified: each request merges its own into its session (``load=False``: no query).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction

from app.cases import queues
from app.cases.models import Queue
from app.escalation.services import ActiveRule, active_rules
from app.intake.models import ApiClient, IntakeConfigStamp

T = TypeVar("T")
_STAMP = "countersign.intake.config_stamp"  # session.info key: the stamp read in this transaction
_NO_STAMP = object()
_READ_STAMP = select(IntakeConfigStamp.stamp).where(IntakeConfigStamp.id == 1)


class _Copies:
    """One database's copies, all read at ``stamp``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._found: dict[Hashable, Any] = {}

    def get(self, stamp: int | None, key: Hashable, read: Callable[[], T]) -> T:
        if stamp is None:
            return read()
        with self._lock:
            if stamp != self._stamp:
                self._stamp, self._found = stamp, {}
            elif key in self._found:
                return self._found[key]
        value = read()  # outside the lock: a database round trip
        with self._lock:
            # Nothing found is not kept: unknown tokens must not fill the memory. A newer stamp seen
            # by another thread meanwhile: not kept either.
            if value is not None and stamp == self._stamp:
                self._found[key] = value
        return value


_copies: weakref.WeakKeyDictionary[Engine, _Copies] = weakref.WeakKeyDictionary()
_copies_lock = threading.Lock()


def _of(session: Session) -> _Copies:
    engine = session.get_bind()
    with _copies_lock:
        return _copies.setdefault(engine, _Copies())  # type: ignore[arg-type]


def stamp(session: Session) -> int | None:
    """The stamp as this transaction read it (read now if not yet)."""
    found = session.info.get(_STAMP, _NO_STAMP)
    if found is _NO_STAMP:
        found = session.scalar(_READ_STAMP)
        session.info[_STAMP] = found
    return found  # type: ignore[return-value]


@event.listens_for(Session, "after_transaction_end")
def _forget_stamp(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost one: the next transaction reads it again
        session.info.pop(_STAMP, None)


def client(session: Session, token_hash: str) -> ApiClient | None:
    """The API client with this token hash (active or not), in ``session``; None when there is none."""
    found = _of(session).get(stamp(session), ("client", token_hash), lambda: _read_apart(
        session, lambda apart: apart.scalar(select(ApiClient).where(ApiClient.token_hash == token_hash))))
    return session.merge(found, load=False) if found is not None else None


def receiving(session: Session, domain: str, case_type: str) -> Queue:
    """`app.cases.queues.receiving`, in ``session``."""
    found = _of(session).get(stamp(session), ("queue", domain, case_type), lambda: _read_apart(
        session, lambda apart: queues.route(apart, domain, case_type)))
    return session.merge(found, load=False) if found is not None else queues.receiving(session, domain, case_type)


def rules(session: Session) -> list[ActiveRule]:
    """`app.escalation.services.active_rules` (immutable values: shared as they are)."""
    return _of(session).get(stamp(session), ("rules",), lambda: active_rules(session))


def _read_apart(session: Session, read: Callable[[Session], T]) -> T:
    """``read`` in a session of its own on ``session``'s connection (the same transaction), closed
    after: what it loads is a detached copy to share, which no commit of ``session`` expires."""
    with Session(bind=session.connection(), autoflush=False) as apart:
        return read(apart)
