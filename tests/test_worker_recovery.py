"""A worker killed mid-job (SIGKILL) loses nothing: the sweep re-enqueues the case, and a job the
dead worker left marked as running is enqueued again once its timeout has passed. Part of the
fault suite (`pytest -m faults`, see tests/faults/)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from rq import Queue as RQQueue
from rq.job import Job, JobStatus

from app.ai.jobs import requeue_stuck_cases
from app.cases.models import Case, Status
from app.execution.jobs import attempt_work, notice_work
from app.extensions import db
from app.jobs import Work, enqueue
from devtools.fake_openai import ECHO_VALID, FakeOpenAI, Hang
from tests.conftest import ROOT, audit_log_intact, case_body
from tests.execution_helpers import events

pytestmark = pytest.mark.faults

ROUTING = {
    "providers": {"local": {"kind": "local", "private": True}, "openai": {"kind": "openai"}},
    "prices": {"rules-v1": {"input": 0, "output": 0}, "gpt-4o-mini": {"input": 0.00015, "output": 0.0006}},
    "routes": [{"match": {}, "chain": ["openai:gpt-4o-mini"]}],
}


@pytest.fixture
def fake():
    with FakeOpenAI(default=Hang(60)) as server:
        yield server


@pytest.fixture
def ai_env(tmp_path, fake) -> dict[str, str]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump(ROUTING))
    return {"AI_PROVIDER": "openai", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test",
            "OPENAI_TIMEOUT_SECONDS": "120", "OPENAI_MAX_RETRIES": "0", "AI_ROUTING_FILE": str(routing),
            "AI_RETRY_INTERVALS": ""}


@pytest.fixture
def config_overrides(ai_env):
    return {**ai_env, "OPENAI_TIMEOUT_SECONDS": 120.0, "OPENAI_MAX_RETRIES": 0, "AI_RETRY_INTERVALS": [],
            "STUCK_CASE_SECONDS": 0}


def start_worker(database, redis_url, ai_env, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **ai_env, "DATABASE_URL": database.url, "REDIS_URL": redis_url}
    return subprocess.Popen([sys.executable, "-m", "workers", "--burst", "--queues", "ai", *extra], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_killed_worker_loses_nothing(database, redis_url, upstream, fake, ai_env, redis_conn):
    """Pass: a worker SIGKILLed while the provider holds its call open leaves the case analyzing
    (not lost); after the sweep and a new worker it settles exactly once (one recommendation
    stored, one audit event of it) and the audit log verifies."""
    case_id = upstream.post_case(case_body("payment_release")).get_json()["id"]
    worker = start_worker(database, redis_url, ai_env)
    try:
        wait_for(lambda: len(fake.chat_requests) == 1)  # the job is inside the provider call
        db.session.expire_all()
        assert db.session.get(Case, case_id).status == Status.ANALYZING.value
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse, mid-job
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)

    db.session.expire_all()
    assert db.session.get(Case, case_id).status == Status.ANALYZING.value  # stuck, not lost
    fake.set_default(ECHO_VALID)
    assert requeue_stuck_cases() == 1

    rerun = start_worker(database, redis_url, ai_env)
    output, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, output.decode()
    db.session.expire_all()
    case = db.session.get(Case, case_id)
    assert case.status == Status.PENDING_REVIEW.value
    assert case.recommendation.provider == "openai"
    assert len(fake.chat_requests) == 2
    assert len(events(case_id, "case.recommendation_stored")) == 1
    assert audit_log_intact()


@pytest.mark.parametrize(("started_seconds_ago", "enqueued_again"), [(25, False), (35, True)])
def test_a_job_a_dead_worker_left_marked_running_is_enqueued_again_after_its_timeout(
        app, redis_conn, started_seconds_ago, enqueued_again):
    work = Work(requeue_stuck_cases, "probe-1", (), "default", {"job_timeout": 30})
    enqueue(work)
    queue = RQQueue("default", connection=redis_conn)
    job = Job.fetch("probe-1", connection=redis_conn)
    queue.remove(job)  # a worker took it, marked it running, and was killed (nothing ever finishes it)
    job.set_status(JobStatus.STARTED)
    job.started_at = datetime.now(UTC) - timedelta(seconds=started_seconds_ago)
    job.save()

    enqueue(work)

    assert queue.job_ids == (["probe-1"] if enqueued_again else [])
    assert Job.fetch("probe-1", connection=redis_conn).get_status() == (
        JobStatus.QUEUED if enqueued_again else JobStatus.STARTED)


def test_a_delivery_job_stops_when_its_attempt_lease_ends(app):
    """So a delivery job a dead worker left marked running is enqueued again once another run may
    take its attempt over: twice the callback timeout and a minute."""
    app.config["CALLBACK_TIMEOUT_SECONDS"] = 10
    assert attempt_work(7, 3, 2).options["job_timeout"] == 80
    assert notice_work(7, "case.decided", 12).options["job_timeout"] == 80
