"""Periodic jobs of the escalation engine: ``sla_sweep`` and ``rules_sweep``.

Each takes a Redis lock (a second scheduler's run skips while it is held), renewed while the
sweep runs, with a short TTL: a worker killed mid-sweep holds the next runs off for at most
SWEEP_LOCK_SECONDS. The services' compare-and-set updates keep even two racing sweeps from
notifying or escalating twice, so the lock only saves work. The SLA sweep reads what is due
from the database (``cases.sla_next_at``); the rules sweep keeps its marks (where each line
stood) in a Redis hash.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from app.db import utcnow
from app.escalation import services, sla
from app.extensions import db
from app.jobs import job, redis_connection

log = logging.getLogger(__name__)
KEY_PREFIX = "countersign:escalation"


class RedisMarks:
    """The marks of one sweep in a Redis hash: band key → epoch seconds."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key
        self.loaded = {k.decode(): float(v) for k, v in redis.hgetall(key).items()}

    def get(self, key: str) -> datetime | None:
        seconds = self.loaded.get(key)
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)

    def __setitem__(self, key: str, value: datetime) -> None:
        self.loaded[key] = value.timestamp()
        self.redis.hset(self.key, key, repr(value.timestamp()))


def run_exclusive(name: str, sweep: Callable[[Redis], Any]) -> dict[str, Any]:
    """Run ``sweep(redis)`` unless another run holds the lock; its report, or ``{"skipped": ...}``."""
    redis = redis_connection()
    ttl = current_app.config["SWEEP_LOCK_SECONDS"]
    # Not thread-local: the thread that renews the lock must know its token.
    lock = redis.lock(f"{KEY_PREFIX}:lock:{name}", timeout=ttl, blocking=False, thread_local=False)
    if not lock.acquire():
        log.info("%s skipped: another run holds the lock", name)
        return {"skipped": "another run holds the lock"}
    try:
        with _renewed(lock, ttl, name):
            report = sweep(redis)
    finally:
        _release(lock, name)
    return asdict(report)


@contextmanager
def _renewed(lock: Lock, ttl: float, name: str) -> Iterator[None]:
    """Reset the lock's TTL every third of it while the block runs."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(ttl / 3):
            try:
                lock.reacquire()
            except (LockError, RedisError) as exc:
                log.warning("%s could not renew its lock (%s): another run may start", name, exc.__class__.__name__)
                return

    renewer = threading.Thread(target=renew, name=f"{name}-lock", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()


def _release(lock: Any, name: str) -> None:
    try:
        lock.release()
    except LockError:
        log.warning("%s outlived its lock (SWEEP_LOCK_SECONDS): another run may have started", name)


@job
def sla_sweep() -> dict[str, Any]:
    """Take the SLA steps (50 %, 75 %, breach) that are due."""
    return run_exclusive("sla-sweep", lambda _: sla.sweep(db.session, utcnow(), db.session.commit))


@job
def rules_sweep() -> dict[str, Any]:
    """Evaluate the rules on the open cases that changed or crossed a time line since the last run."""
    overlap = timedelta(seconds=current_app.config["SWEEP_OVERLAP_SECONDS"])
    return run_exclusive("rules-sweep", lambda redis: services.sweep(
        db.session, utcnow(), RedisMarks(redis, f"{KEY_PREFIX}:marks:rules-sweep"), db.session.commit,
        overlap=overlap))
