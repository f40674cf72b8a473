"""Periodic jobs of the escalation engine: ``sla_sweep`` and ``rules_sweep``.

Each runs under `app.jobs.run_exclusive`'s Redis lock (a second scheduler's run skips while it is
held). The services' compare-and-set updates keep even two racing sweeps from
notifying or escalating twice, so the lock only saves work. The SLA sweep reads what is due
from the database (``cases.sla_next_at``); the rules sweep keeps its marks (where each line
stood) in a Redis hash.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from redis import Redis

from app.db import utcnow
from app.escalation import services, sla
from app.extensions import db
from app.jobs import job, run_exclusive

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
