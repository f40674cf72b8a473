"""The sealer in production shape: the scheduler process seals every AUDIT_SEAL_SECONDS in a thread
of its own, so an event committed by anyone is sealed within seconds without anybody asking, no
worker needed and Redis not even reachable (SQLite, and PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from app.audit import chain
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.extensions import db
from config import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_default_seal_interval_keeps_events_unsealed_for_at_most_five_seconds():
    assert Settings.model_fields["AUDIT_SEAL_SECONDS"].default <= 5


def test_the_scheduler_seals_what_is_committed_even_without_redis(app):
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there: no worker could run a job
           "AUDIT_SEAL_SECONDS": "1", "AUDIT_SIGNING_KEY": "", "AUDIT_CHECKPOINT_DIR": ""}
    processes = [subprocess.Popen([sys.executable, "-m", "workers.scheduler"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        chain.record(db.session, AuditAction.USER_LOGIN, "system:test", data={"n": 1})
        db.session.commit()
        deadline = time.monotonic() + 60  # process start-up included; the sealing itself takes a second
        while db.session.scalar(select(AuditEvent.seq)) is None:
            assert time.monotonic() < deadline, "nothing sealed the event"
            assert all(p.poll() is None for p in processes), "a process exited"
            time.sleep(0.2)
            db.session.rollback()  # a fresh snapshot for the next look
        assert db.session.scalar(select(AuditEvent.seq)) == 1
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=15)
