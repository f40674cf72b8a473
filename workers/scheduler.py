"""``python -m workers.scheduler``: RQ's cron scheduler, enqueueing the periodic jobs.

Each periodic job is idempotent and derives its work from the database, so
running several schedulers at once is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rq.cron import CronScheduler

from app import create_app
from app.ai.jobs import requeue_stuck_cases
from app.escalation.jobs import rules_sweep, sla_sweep
from app.execution.jobs import retry_due_executions, retry_due_notices
from app.jobs import redis_connection
from app.review.jobs import release_expired_claims

# (job, queue, the config key holding its interval in seconds)
PERIODIC_JOBS: list[tuple[Callable[[], object], str, str]] = [
    (requeue_stuck_cases, "default", "SWEEP_INTERVAL_SECONDS"),
    (sla_sweep, "default", "SLA_SWEEP_INTERVAL_SECONDS"),
    (rules_sweep, "default", "RULES_SWEEP_INTERVAL_SECONDS"),
    (release_expired_claims, "default", "SWEEP_INTERVAL_SECONDS"),
    (retry_due_executions, "execute", "SWEEP_INTERVAL_SECONDS"),
    (retry_due_notices, "execute", "SWEEP_INTERVAL_SECONDS"),
]


def build_scheduler() -> CronScheduler:
    app = create_app()
    with app.app_context():
        scheduler = CronScheduler(connection=redis_connection(), logging_level="INFO")
        for func, queue, interval_key in PERIODIC_JOBS:
            scheduler.register(func, queue_name=queue, interval=int(app.config[interval_key]))
    return scheduler


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(levelname)s %(name)s: %(message)s")
    build_scheduler().start()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
