"""Redis flushed (FLUSHALL), then killed and started again empty, during a burst of signed intakes
over real HTTP, with a real worker running throughout.

Intake with Redis down for good is tests/test_intake_resilience.py; the scheduler outliving a
Redis outage is tests/test_scheduler_outage.py."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import func, select

from app.ai.jobs import requeue_stuck_cases
from app.cases.models import Case, Status
from app.extensions import db
from devtools import redis_server
from tests.conftest import Upstream, audit_log_intact, case_body
from tests.execution_helpers import events
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.faults

PHASES = 4  # Redis up; flushed; down; back empty
PER_PHASE = 15
INTAKES = PHASES * PER_PHASE
SENDERS = 3


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[redis_server.RedisServer]:
    """A Redis of this test's own, to flush and kill."""
    server = redis_server.start(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def config_overrides(own_redis) -> dict[str, Any]:
    return {"REDIS_URL": own_redis.url, "STUCK_CASE_SECONDS": 0, "AI_RETRY_INTERVALS": []}


class Burst:
    """Signed intakes over HTTP from a few threads, each answer's status and case id; intake
    number n waits until its phase (n // PER_PHASE) is opened, so every phase gets its share."""

    def __init__(self, base_url: str, upstream: Upstream) -> None:
        self.base_url, self.upstream = base_url, upstream
        self.answers: list[tuple[int, int | None]] = []
        self.phases = [threading.Event() for _ in range(PHASES)]
        self.phases[0].set()
        self._lock = threading.Lock()

    def open_phase(self, number: int) -> None:
        wait_for(lambda: self.count >= number * PER_PHASE, f"the intakes before phase {number}")
        self.phases[number].set()

    def post(self, number: int) -> None:
        assert self.phases[number // PER_PHASE].wait(timeout=60)
        raw = json.dumps(case_body("aml_alert")).encode()
        request = urllib.request.Request(f"{self.base_url}/api/v1/cases", data=raw, method="POST", headers={
            "Authorization": f"Bearer {self.upstream.token}", "Content-Type": "application/json",
            **self.upstream.sign(raw)})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = (response.status, json.load(response)["id"])
        except urllib.error.HTTPError as refused:
            answer = (refused.code, None)
        with self._lock:
            self.answers.append(answer)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.answers)


def test_redis_flushed_and_restarted_during_an_intake_burst(app, upstream, live_server, own_redis, processes,
                                                            tmp_path):
    """Pass: every intake of the burst is accepted (202; no 500s) although Redis is flushed, then
    down, then back empty; nothing accepted is lost: once the periodic sweep ran, every accepted
    case is analysed exactly once (one recommendation event each) by the worker that ran
    throughout (it outlives the outage); no case exists that was not accepted; the audit log
    verifies."""
    worker = processes.worker("--queues", "ai")
    burst = Burst(live_server, upstream)
    with ThreadPoolExecutor(SENDERS) as senders:
        sent = [senders.submit(burst.post, number) for number in range(INTAKES)]
        wait_for(lambda: burst.count >= PER_PHASE // 2, "the first intakes")
        Redis.from_url(own_redis.url).flushall()  # queued analyses vanish
        burst.open_phase(1)
        own_redis.process.kill()  # and Redis goes away
        own_redis.process.wait(timeout=5)
        burst.open_phase(2)
        restarted = redis_server.start(tmp_path / "redis-again", port=own_redis.port)  # back, empty
        burst.open_phase(3)
    for future in sent:
        future.result()  # a sender's own failure shows here
    try:
        assert sorted({status for status, _ in burst.answers}) == [202]
        accepted = {case_id for _, case_id in burst.answers}
        assert len(accepted) == INTAKES
        assert set(db.session.scalars(select(Case.id))) == accepted  # nothing stored but what was accepted

        assert requeue_stuck_cases() > 0  # the periodic sweep finds what Redis lost
        wait_for(lambda: analysed(accepted) == len(accepted), "every accepted case to be analysed", 60)
        assert worker.poll() is None, "the worker exited during the Redis outage"
        for case_id in accepted:
            assert len(events(case_id, "case.recommendation_stored")) == 1, case_id
        assert audit_log_intact()
    finally:
        restarted.stop()


def analysed(case_ids: set[int]) -> int:
    db.session.rollback()  # a fresh snapshot
    return db.session.scalar(select(func.count()).where(Case.id.in_(case_ids),
                                                        Case.status == Status.PENDING_REVIEW.value))
