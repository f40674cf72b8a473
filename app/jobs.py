"""Enqueueing background work on RQ. Jobs take ids, and their ids are derived from
the work, so enqueueing the same work twice is harmless."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import ParamSpec, TypeVar

from flask import Flask, current_app, has_app_context
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)

QUEUE_NAMES = ("ai", "execute", "default")
PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}

P = ParamSpec("P")
R = TypeVar("R")
_worker_app: Flask | None = None


def set_worker_app(app: Flask) -> None:
    """The app that jobs run in when a worker process executes them."""
    global _worker_app
    _worker_app = app


def job(func: Callable[P, R]) -> Callable[P, R]:
    """Run an RQ job inside an app context, with a fresh database session per job.

    Called where an app context already exists (tests, the web), it just runs.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if has_app_context():
            return func(*args, **kwargs)
        global _worker_app
        if _worker_app is None:
            from app import create_app

            _worker_app = create_app()
        from app.extensions import db

        with _worker_app.app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper


def redis_connection() -> Redis:
    return Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)


def enqueue_once(queue_name: str, func: str, job_id: str, *args: object, at: datetime | None = None,
                 **job_options: object) -> bool:
    """Enqueue ``func(*args)`` as ``job_id`` unless that job is already waiting or running; with
    ``at``, RQ's scheduler enqueues it then (workers run ``--with-scheduler``).

    Returns False (and logs) when Redis cannot be reached: the caller's work is
    already committed and the periodic sweep will enqueue it later.
    """
    connection = redis_connection()
    try:
        try:
            if Job.fetch(job_id, connection=connection).get_status() in PENDING:
                return True
        except (NoSuchJobError, InvalidJobOperation):
            pass  # no job, or a half-expired one: enqueue afresh
        queue = Queue(queue_name, connection=connection)
        options = {"job_id": job_id, "result_ttl": 3600, "failure_ttl": 7 * 86400, **job_options}
        if at is None:
            queue.enqueue(func, *args, **options)
        else:
            queue.enqueue_at(at, func, *args, **options)
        return True
    except RedisError as exc:
        log.warning("could not enqueue %s (%s); the sweep will retry", job_id, exc.__class__.__name__)
        return False
    finally:
        connection.close()


def enqueue_analysis(case_id: int, version: int) -> bool:
    intervals = current_app.config["AI_RETRY_INTERVALS"]
    return enqueue_once("ai", "app.ai.jobs.analyze_case", f"analyze-{case_id}-{version}", case_id,
                        job_timeout=current_app.config["AI_JOB_TIMEOUT"],
                        retry=Retry(max=len(intervals), interval=intervals) if intervals else None)
