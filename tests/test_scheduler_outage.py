"""The scheduler outlives a Redis outage: it logs, waits with backoff, and enqueues the periodic
jobs again once Redis is back (a real scheduler process against a real redis-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from redis import Redis

from devtools import redis_server
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def periodic_jobs_waiting(url: str) -> int:
    try:
        return Redis.from_url(url).llen("rq:queue:default")
    except OSError:
        return 0


def test_the_scheduler_reconnects_after_redis_went_away(database, tmp_path):
    server = redis_server.start(tmp_path / "redis")
    port = server.port
    env = {**os.environ, "DATABASE_URL": database.url, "REDIS_URL": server.url, "SWEEP_INTERVAL_SECONDS": "1",
           "SLA_SWEEP_INTERVAL_SECONDS": "1", "RULES_SWEEP_INTERVAL_SECONDS": "1"}
    scheduler = subprocess.Popen([sys.executable, "-m", "workers.scheduler"], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: periodic_jobs_waiting(server.url) > 0)
        server.process.kill()  # Redis goes away (and, with no persistence, comes back empty)
        server.process.wait(timeout=5)
        time.sleep(3)
        assert scheduler.poll() is None, "the scheduler exited when Redis went away"
        server = redis_server.start(tmp_path / "redis-again", port=port)
        wait_for(lambda: periodic_jobs_waiting(server.url) > 0)
        assert scheduler.poll() is None
    finally:
        os.killpg(scheduler.pid, signal.SIGTERM)
        output = scheduler.communicate(timeout=15)[0].decode(errors="replace")
        server.stop()
    assert "Redis unreachable (ConnectionError): the scheduler starts again in" in output
