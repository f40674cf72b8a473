"""Waiting for a decision: ``GET /api/v1/cases/<id>?wait=SECONDS`` answers as soon as the case
leaves the reviewers' hands, or when the wait ends.

A waiting request holds no database connection: it reads the case, gives its connection back,
and blocks on a Redis subscription to the case's channel. Every committed move of a case out of
the waiting statuses is published there (a Session after_commit hook, fed by the lifecycle's
`on_move`), and the waiter reads the case once more and answers. Without Redis the waiter falls
back to reading the case once a second. So a wait costs a web thread and an idle Redis
connection, not a database connection and not a reviewer's request worker: see the web
server's set-up in docs/agent-approvals.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from app.cases import lifecycle
from app.cases.models import Case, Status
from app.db import on_outer_commit
from app.jobs import redis_connection

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60
POLL_SECONDS = 1.0  # without Redis
# While a case is in one of these, the agent's question is still with the reviewers.
WAITING = frozenset(lifecycle.BEFORE_APPROVAL - {Status.NEEDS_INFO})
_MOVED = "countersign.agents.decided_cases"  # session.info key

T = TypeVar("T")


def channel(case_id: int) -> str:
    return f"countersign:case-decided:{case_id}"


def is_waiting(status: str) -> bool:
    return Status(status) in WAITING


@lifecycle.on_move
def _note_decided(case: Case) -> None:
    if not is_waiting(case.status):
        session = Session.object_session(case)
        if session is not None:
            session.info.setdefault(_MOVED, set()).add(case.id)


def _publish_decided(session: Session, decided: set[int]) -> None:
    try:
        connection = redis_connection()
        for case_id in sorted(decided):
            connection.publish(channel(case_id), "decided")
    except (RedisError, RuntimeError) as exc:  # no Redis, or no app context: waiters poll or time out
        log.warning("could not publish %d decided case(s): %s", len(decided), exc.__class__.__name__)


on_outer_commit(_MOVED, _publish_decided)


def wait_for_decision(case_id: int, seconds: float, read: Callable[[], T], status_of: Callable[[T], str],
                      release: Callable[[], None]) -> T:
    """``read()`` the case; while its status is waiting, block up to ``seconds`` until its decision
    is published, then ``read()`` again. ``release()`` gives the database connection back before
    each block (the last read's connection is the request's to give back)."""
    found = read()
    if seconds <= 0 or not is_waiting(status_of(found)):
        return found
    deadline = time.monotonic() + seconds
    release()
    try:
        pubsub = redis_connection().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel(case_id))
    except RedisError:
        return _poll(deadline, read, status_of, release)
    try:
        found = read()  # decided between the first read and the subscription: no message will come
        while is_waiting(status_of(found)) and (left := deadline - time.monotonic()) > 0:
            release()
            if pubsub.get_message(timeout=left) is not None:
                found = read()
        return found
    except RedisError:
        return _poll(deadline, read, status_of, release)
    finally:
        pubsub.close()


def _poll(deadline: float, read: Callable[[], T], status_of: Callable[[T], str], release: Callable[[], None]) -> T:
    found = read()
    while is_waiting(status_of(found)) and (left := deadline - time.monotonic()) > 0:
        release()
        time.sleep(min(POLL_SECONDS, left))
        found = read()
    return found
