"""A worker killed mid-job (SIGKILL) loses nothing: the sweep re-enqueues the case. Part of the
fault suite (`pytest -m faults`, see tests/faults/)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from app.ai.jobs import requeue_stuck_cases
from app.cases.models import Case, Status
from app.extensions import db
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
