"""``python -m workers [--burst] [--with-scheduler] [--fork] [--queues execute,default,ai]``

An RQ worker over the app's queues. Every job runs in a Flask app context (see
``app.jobs.job``). By default jobs run in the worker process itself, which keeps
connection pools, compiled SQL and the AI clients warm across jobs; ``--fork``
runs each job in a forked work horse instead (isolation at ~50 ms per job).
"""

from __future__ import annotations

import argparse
import logging
import os

from rq import SimpleWorker, Worker

from app import create_app
from app.ai.services import warm_up
from app.extensions import db
from app.jobs import QUEUE_NAMES, redis_connection, set_worker_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="drain the queues, then exit")
    parser.add_argument("--with-scheduler", action="store_true",
                        help="also move delayed jobs (retries with backoff) to their queues when due")
    parser.add_argument("--queues", default=",".join(QUEUE_NAMES), help="comma-separated, in priority order")
    parser.add_argument("--name", default=None, help="worker name (default: host.pid)")
    parser.add_argument("--fork", action="store_true", help="run each job in a forked work horse")
    args = parser.parse_args(argv)

    app = create_app()
    set_worker_app(app)
    with app.app_context():
        engine = db.engine
        connection = redis_connection()
        warm_up()
    # A forked work horse must not reuse the parent's pooled connections.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    worker_class = Worker if args.fork else SimpleWorker
    worker = worker_class([q for q in args.queues.split(",") if q], connection=connection, name=args.name)
    worker.work(burst=args.burst, with_scheduler=args.with_scheduler, logging_level="INFO")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
