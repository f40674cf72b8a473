"""``python -m workers.scheduler``: RQ's cron scheduler, enqueueing the periodic jobs, and the
audit log's sealer (a thread of its own: it needs only the database).

Each periodic job is idempotent and derives its work from the database, so
running several schedulers at once is safe. When Redis goes away the scheduler
does not exit: it logs, waits (1 s, doubling to at most 30 s) and starts again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask
from redis.exceptions import RedisError
from rq.cron import CronScheduler

from app import create_app
from app.ai.jobs import requeue_stuck_cases
from app.audit.jobs import checkpoint_audit_log, run_sealer
from app.escalation.jobs import rules_sweep, sla_sweep
from app.execution.jobs import expire_due_calls, retry_due_executions, retry_due_notices
from app.jobs import redis_connection
from app.oversight.jobs import refresh_calibrations
from app.review.jobs import release_expired_claims

# (job, queue, the config key holding its interval in seconds)
PERIODIC_JOBS: list[tuple[Callable[[], object], str, str]] = [
    (requeue_stuck_cases, "default", "SWEEP_INTERVAL_SECONDS"),
    (sla_sweep, "default", "SLA_SWEEP_INTERVAL_SECONDS"),
    (rules_sweep, "default", "RULES_SWEEP_INTERVAL_SECONDS"),
    (release_expired_claims, "default", "SWEEP_INTERVAL_SECONDS"),
    (retry_due_executions, "execute", "SWEEP_INTERVAL_SECONDS"),
    (retry_due_notices, "execute", "SWEEP_INTERVAL_SECONDS"),
    (expire_due_calls, "execute", "SWEEP_INTERVAL_SECONDS"),
    (checkpoint_audit_log, "default", "AUDIT_CHECKPOINT_SECONDS"),
    (refresh_calibrations, "default", "CALIBRATION_REFRESH_SECONDS"),
]


RECONNECT_FIRST_WAIT, RECONNECT_LONGEST_WAIT = 1.0, 30.0
log = logging.getLogger("countersign.scheduler")


def build_scheduler(app: Flask | None = None) -> CronScheduler:
    app = app or create_app()
    with app.app_context():
        scheduler = CronScheduler(connection=redis_connection(), logging_level="INFO")
        for func, queue, interval_key in PERIODIC_JOBS:
            scheduler.register(func, queue_name=queue, interval=int(app.config[interval_key]))
    return scheduler


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(levelname)s %(name)s: %(message)s")
    app = create_app()
    threading.Thread(target=run_sealer, args=(app, threading.Event()), name="audit-sealer", daemon=True).start()
    wait = RECONNECT_FIRST_WAIT
    while True:
        started = time.monotonic()
        try:
            build_scheduler(app).start()  # returns when asked to stop (SIGTERM, Ctrl-C)
            return 0
        except RedisError as exc:
            if time.monotonic() - started > RECONNECT_LONGEST_WAIT:
                wait = RECONNECT_FIRST_WAIT  # it ran a while: a new outage starts the backoff afresh
            log.warning("Redis unreachable (%s): the scheduler starts again in %.0f s", exc.__class__.__name__, wait)
            time.sleep(wait)
            wait = min(wait * 2, RECONNECT_LONGEST_WAIT)


if __name__ == "__main__":
    raise SystemExit(main())
