"""Waiting for a decision under load, on the web server set-up the docs prescribe: gunicorn with
2 workers of 100 threads (docs/agent-approvals.md). 100 agents wait at once (GET ?wait=) while 10
reviewers claim and approve calls through the reviewer API: every waiter of a decided call is
answered within a second of the decision, the waiters block on Redis subscriptions (not on the
database), and the reviewers' 95th-percentile latency stays near a run without waiters."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from app.agents.waiting import channel
from app.auth.services import create_api_token
from app.extensions import db
from tests.conftest import ROOT, TestConfig
from tests.review_helpers import EXAMPLES, make_case, make_user

pytest_plugins = ["tests.review_fixtures"]

HOST = "127.0.0.1"
REVIEWERS = 10
CASES_PER_REVIEWER = 3
WAITERS = 100
WAIT_SECONDS = 20
CALL = ("execute", dict(EXAMPLES["agent_action"]["tool"]["arguments"]))
GUNICORN = ["--workers", "2", "--threads", "100", "--timeout", "90", "--no-control-socket"]


def call(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None,
         timeout: float = 90) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        raw = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Connection": "close",
                   **({"Content-Type": "application/json"} if raw else {})}
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(database_url: str, redis_url: str, log: Path) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "waiting-test",
           "COUNTERSIGN_ENV": "development", "AI_PROVIDER": "local", "OPENAI_API_KEY": "",
           "AUDIT_SIGNING_KEY": TestConfig.AUDIT_SIGNING_KEY, "AUDIT_SIGNING_KEY_FILE": "",
           "AUDIT_CHECKPOINT_DIR": "", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"{HOST}:{port}",  # noqa: S603
                                    *GUNICORN], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with suppress(OSError, http.client.HTTPException):
                if call(port, "GET", "/healthz", "", timeout=2)[0] == 200:
                    break
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Reviewing:
    latencies: list[float] = field(default_factory=list)
    decided_at: dict[int, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def review(port: int, token: str, case_ids: list[int], into: Reviewing) -> None:
    """Claim and approve each case, timing every request."""
    for case_id in case_ids:
        started = time.monotonic()
        status, claimed = call(port, "POST", f"/api/v1/cases/{case_id}/claim", token)
        claimed_at = time.monotonic()
        decided, answer = call(port, "POST", f"/api/v1/cases/{case_id}/decisions", token,
                               {"kind": "approve", "case_version": (claimed or {}).get("version")})
        done = time.monotonic()
        with into.lock:
            into.latencies += [claimed_at - started, done - claimed_at]
            into.decided_at[case_id] = done
            if (status, decided) != (200, 201):
                into.failures.append(f"case {case_id}: claim {status}, decision {decided} {answer}")


def run_reviewers(port: int, tokens: list[str], cases: list[int]) -> Reviewing:
    reviewing = Reviewing()
    threads = [threading.Thread(target=review, args=(port, token, cases[n::REVIEWERS], reviewing))
               for n, token in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not reviewing.failures, reviewing.failures
    return reviewing


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"INTAKE_RATE_LIMIT": "100000 per minute"}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def test_a_hundred_waiting_agents_do_not_slow_the_reviewers(database, redis_url, upstream, queues, tmp_path):
    reviewers = [make_user(f"reviewer{n}", "reviewer", [queues["finance"]]) for n in range(REVIEWERS)]
    db.session.commit()
    tokens = [create_api_token(db.session, user, "load")[1] for user in reviewers]
    db.session.commit()
    per_phase = REVIEWERS * CASES_PER_REVIEWER
    cases = [make_case(upstream, "agent_action", recommendation=CALL, domain="finance").id
             for _ in range(REVIEWERS + per_phase + WAITERS)]
    warm_up, before, waited = cases[:REVIEWERS], cases[REVIEWERS:REVIEWERS + per_phase], cases[REVIEWERS + per_phase:]
    during, only_waited = waited[:per_phase], waited[per_phase:]
    # 100 waiting agents: 30 of their calls are decided while they wait, 70 never
    answers: dict[int, tuple[float, int, str]] = {}

    def wait(case_id: int) -> None:
        status, document = call(port, "GET", f"/api/v1/cases/{case_id}?wait={WAIT_SECONDS}", upstream.token)
        answers[case_id] = (time.monotonic(), status, (document or {}).get("status", ""))

    with gunicorn(database.url, redis_url, tmp_path / "gunicorn.log") as port:
        run_reviewers(port, tokens, warm_up)  # warm both workers up, outside the measurement
        baseline = run_reviewers(port, tokens, before)
        waiters = [threading.Thread(target=wait, args=(case_id,)) for case_id in waited]
        for thread in waiters:
            thread.start()
        redis = Redis.from_url(redis_url)
        try:
            deadline = time.monotonic() + 30
            while sum(n for _, n in redis.pubsub_numsub(*(channel(c) for c in waited))) < WAITERS:
                assert time.monotonic() < deadline, "the waiters did not all subscribe"
                time.sleep(0.1)
        finally:
            redis.close()
        loaded = run_reviewers(port, tokens, during)
        for thread in waiters:
            thread.join(WAIT_SECONDS + 30)

    assert len(answers) == WAITERS
    for case_id in during:
        answered_at, status, case_status = answers[case_id]
        assert (status, case_status) == (200, "approved")
        assert answered_at - loaded.decided_at[case_id] < 1.0, f"case {case_id} answered late"
    assert {answers[c][1:] for c in only_waited} == {(200, "pending_review")}
    base, under_load = p95(baseline.latencies), p95(loaded.latencies)
    print(f"reviewer p95 without waiters {base * 1000:.0f} ms, with {WAITERS} waiters {under_load * 1000:.0f} ms")
    # 20 % is the target (benchmarks/waiting.py measures it with more samples); on a shared
    # test machine the bound is looser, yet still fails when waits hold request workers.
    assert under_load <= max(1.5 * base, base + 0.3)
