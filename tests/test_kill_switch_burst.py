"""The kill switch under load, with real RQ worker processes: AI analysis and executions paused during a
burst of 200 new cases and 50 approvals; nothing is analysed or delivered while paused; after the
resume every case is analysed exactly once and every approved action delivered exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rq import Queue as RQQueue
from rq.job import Job
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from app.ai.jobs import requeue_stuck_cases
from app.audit.models import AuditEvent
from app.cases.models import Case, Execution, Recommendation, Status
from app.execution.jobs import retry_due_executions
from app.extensions import db
from app.jobs import QUEUE_NAMES
from tests.conftest import ROOT, audit_log_intact, case_body
from tests.review_helpers import claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]

NEW_CASES, APPROVALS, WORKERS = 200, 50, 2


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # STUCK_CASE_SECONDS 0 (this process only): the sweeps would take every waiting case, were it not paused
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 10.0,
            "STUCK_CASE_SECONDS": 0, "INTAKE_RATE_LIMIT": "1000 per minute"}


@pytest.fixture
def workers(database, redis_url, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """Starts real worker processes (every queue) when called; stops them at the end."""
    started: list[subprocess.Popen] = []
    env = {**os.environ, "DATABASE_URL": database.url, "REDIS_URL": redis_url, "AI_PROVIDER": "local",
           "OPENAI_API_KEY": "", "INSECURE_CALLBACK_HOSTS": "127.0.0.1", "CALLBACK_TIMEOUT_SECONDS": "10"}

    def start() -> None:
        for number in range(WORKERS):
            log = (tmp_path / f"worker-{number}.log").open("wb")
            started.append(subprocess.Popen([sys.executable, "-m", "workers", "--name", f"burst-{number}"], cwd=ROOT,
                                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    yield start
    for worker in started:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in started:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()  # read what the workers committed since
        if condition():
            return
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.25)


def queues_idle(redis_conn) -> bool:
    return all(RQQueue(name, connection=redis_conn).count == 0
               and StartedJobRegistry(name, connection=redis_conn).count == 0 for name in QUEUE_NAMES)


def finished_ids(redis_conn) -> list[str]:
    return [job_id for name in ("ai", "execute")
            for job_id in FinishedJobRegistry(name, connection=redis_conn).get_job_ids()]


def statuses(case_ids: list[int]) -> Counter[str]:
    return Counter(db.session.scalars(select(Case.status).where(Case.id.in_(case_ids))))


def events_per_case(action: str, case_ids: list[int]) -> Counter[int]:
    return Counter(db.session.scalars(select(AuditEvent.case_id).where(AuditEvent.action == action,
                                                                      AuditEvent.case_id.in_(case_ids))))


def test_a_pause_during_a_burst_holds_everything_and_the_resume_runs_each_piece_once(
        runner, upstream, people, receiver, redis_conn, workers):
    callback = f"{receiver.url}/hooks"
    ready = [make_case(upstream, "credit_limit_change", callback_url=callback).id for _ in range(APPROVALS)]
    for what in ("ai", "executions"):
        paused = runner.invoke(args=["control", "pause", "--what", what, "--reason", "Burst test"])
        assert paused.exit_code == 0, paused.output
    workers()

    new: list[int] = []
    for number in range(NEW_CASES):
        answer = upstream.post_case(case_body("payment_release"))
        assert answer.status_code == 202, answer.get_json()
        new.append(answer.get_json()["id"])
        if number % (NEW_CASES // APPROVALS) == 0:
            case = db.session.get_one(Case, ready[number // (NEW_CASES // APPROVALS)])
            decide(people.reviewer, claim(people.reviewer, case), "approve")

    # The workers took every job and left each case where it was. (A job a worker has just taken off its
    # queue is in neither the queue nor the started registry for a moment: idle alone is not done.)
    expected = NEW_CASES + APPROVALS + APPROVALS
    wait_for(lambda: queues_idle(redis_conn) and len(finished_ids(redis_conn)) >= expected, timeout=120)
    finished = {job_id: Job.fetch(job_id, connection=redis_conn).return_value()
                for job_id in finished_ids(redis_conn)}
    # an analysis of every case posted (the approved ones' too, analysed before the pause), a delivery of each approval
    assert len(finished) == expected
    assert set(finished.values()) == {"paused"}
    assert statuses(new) == {Status.RECEIVED: NEW_CASES}
    assert statuses(ready) == {Status.APPROVED: APPROVALS}
    assert events_per_case("case.analysis_started", new) == Counter()
    assert events_per_case("case.execution_started", ready) == Counter()
    assert receiver.deliveries == []
    assert (requeue_stuck_cases(), retry_due_executions()) == (0, 0)  # the sweeps leave paused work alone

    for what in ("ai", "executions"):
        resumed = runner.invoke(args=["control", "resume", "--what", what])
        assert resumed.exit_code == 0, resumed.output
    wait_for(lambda: statuses(new) == {Status.PENDING_REVIEW: NEW_CASES}
             and statuses(ready) == {Status.EXECUTED: APPROVALS}, timeout=300)
    # The sweeps find nothing left; whatever they or the release jobs enqueued twice runs to "skipped".
    assert (requeue_stuck_cases(), retry_due_executions()) == (0, 0)
    wait_for(lambda: queues_idle(redis_conn), timeout=60)

    once_each = Counter(new)
    assert events_per_case("case.analysis_started", new) == once_each
    assert events_per_case("case.recommendation_stored", new) == once_each
    assert Counter(db.session.scalars(select(Recommendation.case_id).where(Recommendation.case_id.in_(new)))) \
        == once_each
    approvals = Counter(ready)
    assert events_per_case("case.execution_started", ready) == approvals
    assert events_per_case("case.executed", ready) == approvals
    assert db.session.scalar(select(func.sum(Execution.attempts)).where(Execution.case_id.in_(ready))) == APPROVALS
    assert len(receiver.deliveries) == APPROVALS  # every request the receiver got: no repeat of any delivery
    assert sorted(d.document["case"]["id"] for d in receiver.deliveries) == sorted(ready)
    assert audit_log_intact()
