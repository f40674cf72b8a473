"""A worker SIGKILLed during a callback delivery, with the receiver holding the request open.

The kill during a provider call is tests/test_worker_recovery.py (also in this suite)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.cases.models import Execution, Status
from app.execution.jobs import execution_work, retry_due_executions
from app.execution.receiver import Receiver
from app.extensions import db
from app.jobs import enqueue
from tests.conftest import audit_log_intact
from tests.execution_helpers import approved_case, events, execution_of, reload
from tests.faults.conftest import PROCESS_START_SECONDS, wait_for

pytestmark = pytest.mark.faults


class HoldingReceiver(Receiver):
    """Processes the first delivery, then holds its answer back until ``release`` is set: the
    sender dies knowing nothing of the upstream system having acted."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.holding = threading.Event()
        self.release = threading.Event()

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str]]:
        answer = super().handle(path, headers, body)
        if not self.holding.is_set():
            self.holding.set()
            self.release.wait(timeout=60)
        return answer


@pytest.fixture
def holding(upstream):
    running = HoldingReceiver(upstream.secret).start()
    yield running
    running.release.set()
    running.stop()


def test_a_worker_killed_during_a_callback_delivery(upstream, people, holding, processes, redis_conn):
    """Pass: after the worker is SIGKILLed mid-delivery and a new worker takes over once the
    attempt's lease ran out, the case settles exactly once (one ``case.executed``), the receiver
    saw the same webhook-id twice and processed it at most once, and the audit log verifies."""
    case_id = approved_case(upstream, people, holding.url)
    worker = processes.worker("--queues", "execute", CALLBACK_TIMEOUT_SECONDS="60")
    assert enqueue(execution_work(db.session, case_id))
    db.session.rollback()
    wait_for(holding.holding.is_set, "the delivery to reach the receiver", PROCESS_START_SECONDS)
    processes.kill(worker)
    holding.release.set()

    assert reload(case_id).status == Status.EXECUTING  # stuck mid-attempt, not lost, not settled
    execution = execution_of(case_id)
    assert (execution.status, execution.attempts) == ("delivering", 1)
    # The lease (twice the callback timeout + 60 s) runs out: move its end rather than wait for it.
    db.session.execute(update(Execution).where(Execution.id == execution.id)
                       .values(next_attempt_at=execution.next_attempt_at - timedelta(hours=1)))
    db.session.commit()

    assert retry_due_executions() == 1  # the periodic sweep hands the attempt to a new run
    processes.burst("--queues", "execute")

    assert reload(case_id).status == Status.EXECUTED
    key = execution_of(case_id).idempotency_key
    assert [(d.webhook_id, d.status) for d in holding.deliveries] == [(key, 200), (key, 200)]
    assert list(holding.processed) == [key]  # the second delivery was a recognised duplicate
    assert len(events(case_id, "case.executed")) == 1
    assert execution_of(case_id).attempts == 2
    assert audit_log_intact()
