"""Background work on RQ, and the one way to start it.

A feature describes a piece of work as a `Work` (a job function, an id derived from the work,
its arguments and queue). Services call `after_commit(session, work)` inside their transaction:
the intent is kept with the session and enqueued only once the transaction commits (a rollback
drops it). Sweeps and retries call `enqueue(work)` directly. Enqueueing the same work twice is
harmless: a job whose id is already waiting or running is not enqueued again; a job marked running
for longer than its timeout is not running (RQ would have stopped it: its worker died mid-job, a
SIGKILL or a lost machine) and is enqueued again.

Redis down never loses work: the state that needs the job (a received case, an approved case,
a due execution, an undelivered notification) is in the database, and the periodic sweeps
enqueue it again.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, has_app_context
from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from rq import Queue, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from sqlalchemy.orm import Session

from app.db import on_outer_commit
from app.metrics import measured_job

log = logging.getLogger(__name__)

# In the order a worker takes them: the short jobs first (deliveries of approved actions, the
# sweeps, audit sealing), so a backlog of analyses never starves them; analyses run in between.
QUEUE_NAMES = ("execute", "default", "ai")
PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
_INTENTS = "countersign.jobs.after_commit"  # session.info key

P = ParamSpec("P")
R = TypeVar("R")
_worker_app: Flask | None = None


def set_worker_app(app: Flask) -> None:
    """The app that jobs run in when a worker process executes them."""
    global _worker_app
    _worker_app = app


def job(func: Callable[P, R]) -> Callable[P, R]:
    """Run an RQ job inside an app context, with a fresh database session per job.

    Called where an app context already exists (tests, the web), it just runs. Run by RQ, its
    duration and failure are measured by queue (app/metrics.py).
    """
    name = f"{func.__module__}.{func.__qualname__}"

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        current = get_current_job()
        if current is None or current.func_name != name:  # not run by RQ, or called by another job
            return _in_app_context(func, *args, **kwargs)
        with measured_job(current.origin, name):
            return _in_app_context(func, *args, **kwargs)

    return wrapper


def _in_app_context(func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
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


def redis_connection() -> Redis:
    """The app's Redis client: one connection pool per app and process."""
    clients: dict[tuple[int, str], Redis] = current_app.extensions.setdefault("countersign.redis", {})
    key = (os.getpid(), current_app.config["REDIS_URL"])
    if key not in clients:
        clients.clear()  # a forked child must not share its parent's sockets
        clients[key] = Redis.from_url(key[1], socket_connect_timeout=2, socket_timeout=5)
    return clients[key]


@dataclass(frozen=True)
class Work:
    """``func(*args)`` as the RQ job ``job_id`` on ``queue``; ``options`` go to RQ's enqueue."""

    func: Callable[..., Any]
    job_id: str
    args: tuple[Any, ...] = ()
    queue: str = "default"
    options: dict[str, Any] = field(default_factory=dict)


def enqueue(work: Work, *, at: datetime | None = None, overdue: bool = False) -> bool:
    """Enqueue ``work`` now unless its job is already waiting or running; with ``at``, RQ's
    scheduler enqueues it then. A job still waiting for RQ's scheduler past its time (none runs, or
    the one holding its lock died), or ``overdue`` by the caller's own clock, goes to its queue now.
    False (logged) when Redis cannot be reached: the sweeps find the work again."""
    connection = redis_connection()
    options = {"job_id": work.job_id, "result_ttl": 3600, "failure_ttl": 7 * 86400, **work.options}
    try:
        queue = Queue(work.queue, connection=connection)
        if at is None and _enqueued_if_new(queue, work, options):
            return True
        status = connection.hget(Job.key_for(work.job_id), "status")  # no job, or a half-expired one: None
        scheduled = ScheduledJobRegistry(queue=queue)
        if (at is None and status is not None and status.decode() == JobStatus.SCHEDULED
                and (overdue or _past_its_time(scheduled, work.job_id))):
            scheduled.remove(work.job_id)
            queue.enqueue_job(Job.fetch(work.job_id, connection=connection))
            log.info("moved %s, overdue, from the scheduled jobs to its queue", work.job_id)
            return True
        if status is not None and status.decode() in PENDING and not (
                status.decode() == JobStatus.STARTED and _abandoned(connection, work.job_id)):
            return True
        if at is None:
            queue.enqueue(work.func, *work.args, **options)
        else:
            queue.enqueue_at(at, work.func, *work.args, **options)
        return True
    except RedisError as exc:
        log.warning("could not enqueue %s (%s); the sweep will retry", work.job_id, exc.__class__.__name__)
        return False


def _enqueued_if_new(queue: Queue, work: Work, options: dict[str, Any]) -> bool:
    """Enqueue ``work`` if Redis holds no job of its id, checked and saved in one atomic step (one
    round trip, where asking for the status first takes another): fresh work, such as a new case's
    analysis, is the usual case. False when a job of that id exists, in whatever state: the caller
    then decides by its status."""
    try:
        queue.enqueue(work.func, *work.args, unique=True, **options)
    except DuplicateJobError:
        return False
    return True


def _abandoned(connection: Redis, job_id: str) -> bool:
    """Whether the job, marked started, was started longer ago than its timeout: whoever ran it is gone."""
    try:
        found = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    if found.started_at is None:
        return False
    timeout = found.timeout or Queue.DEFAULT_TIMEOUT
    if found.started_at + timedelta(seconds=timeout) > datetime.now(UTC):
        return False
    log.warning("%s was started at %s and never finished (its worker died): enqueued again", job_id,
                found.started_at.isoformat())
    return True


def _past_its_time(scheduled: ScheduledJobRegistry, job_id: str) -> bool:
    try:
        return scheduled.get_scheduled_time(job_id) <= datetime.now(UTC)
    except NoSuchJobError:
        return True  # marked scheduled, yet in no registry: nothing would ever run it


def after_commit(session: Session, work: Work, *, at: datetime | None = None) -> None:
    """Enqueue ``work`` (at ``at``, see `enqueue`) once the session's transaction commits; forget it
    if it rolls back."""
    session.info.setdefault(_INTENTS, {})[work.job_id] = (work, at)


def _enqueue_intents(session: Session, intents: dict[str, tuple[Work, datetime | None]]) -> None:
    if not has_app_context():
        log.warning("jobs %s committed outside an app context: left for the sweeps", sorted(intents))
        return
    for work, at in intents.values():
        enqueue(work, at=at)


on_outer_commit(_INTENTS, _enqueue_intents)


# --- one run at a time: the periodic sweeps -------------------------------------------------------

SWEEP_LOCK_PREFIX = "countersign:escalation:lock"  # the key the sweeps have always locked under


def run_exclusive(name: str, sweep: Callable[[Redis], Any]) -> dict[str, Any]:
    """Run ``sweep(redis)`` unless another run holds the lock; its report, or ``{"skipped": ...}``."""
    redis = redis_connection()
    ttl = current_app.config["SWEEP_LOCK_SECONDS"]
    # Not thread-local: the thread that renews the lock must know its token.
    lock = redis.lock(f"{SWEEP_LOCK_PREFIX}:{name}", timeout=ttl, blocking=False, thread_local=False)
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
