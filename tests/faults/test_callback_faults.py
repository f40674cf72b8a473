"""Callback faults against a real worker process (``python -m workers --with-scheduler``, so its
retries go through RQ's scheduler as in production) and a real local receiver. The same rules
are unit-tested with a fake clock in tests/test_execution.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from app.cases.models import ExecutionAttempt, Status
from app.execution.jobs import execution_work, retry_due_executions
from app.execution.receiver import Receiver
from app.extensions import db
from app.jobs import enqueue
from tests.conftest import audit_log_intact
from tests.execution_helpers import approved_case, events, execution_of, reload
from tests.faults.conftest import PROCESS_START_SECONDS, wait_for

pytestmark = pytest.mark.faults

SETTLED = (Status.EXECUTED, Status.EXECUTION_FAILED)


@pytest.fixture
def receivers(upstream) -> Iterator[dict[str, Receiver]]:
    """One receiver per fault, and where the redirecting one points."""
    made = {
        "five 500s": Receiver(upstream.secret, fail=5),
        "hang": Receiver(upstream.secret, fail=1, hang=4.0),
        "429 Retry-After": Receiver(upstream.secret, fail=1, status=429, retry_after="3"),
        "410": Receiver(upstream.secret, status=410),
        "elsewhere": Receiver(upstream.secret),
    }
    made["redirect"] = Receiver(upstream.secret)
    for receiver in made.values():
        receiver.start()
    made["redirect"].redirect = made["elsewhere"].url + "/elsewhere"
    yield made
    for receiver in made.values():
        receiver.stop()


@pytest.fixture
def delivered(upstream, people, processes, redis_conn, receivers) -> dict[str, int]:
    """A case per fault, approved with that receiver as its callback, delivered by one real worker
    (a 1 s callback timeout, retries after 1 s) until every case settled: fault → case id."""
    processes.worker("--with-scheduler", "--queues", "execute", CALLBACK_TIMEOUT_SECONDS="1")
    case_ids = {fault: approved_case(upstream, people, receiver.url)
                for fault, receiver in receivers.items() if fault != "elsewhere"}
    for case_id in case_ids.values():
        assert enqueue(execution_work(db.session, case_id))
        db.session.rollback()
    wait_for(lambda: all(reload(case_id).status in SETTLED for case_id in case_ids.values()),
             "every case to settle", PROCESS_START_SECONDS + 20)
    return case_ids


def attempts(case_id: int) -> list[tuple[int, str | None, int | None]]:
    rows = db.session.scalars(select(ExecutionAttempt).where(ExecutionAttempt.execution_id == execution_of(case_id).id)
                              .order_by(ExecutionAttempt.number))
    return [(row.number, row.outcome, row.status_code) for row in rows]


def assert_settled_once(case_id: int, receiver: Receiver) -> None:
    """Executed, once (one ``case.executed``); the receiver processed its webhook-id once."""
    assert reload(case_id).status == Status.EXECUTED
    key = execution_of(case_id).idempotency_key
    assert {d.webhook_id for d in receiver.deliveries} == {key}
    assert list(receiver.processed) == [key]
    assert len(events(case_id, "case.executed")) == 1


def test_callback_faults(receivers, delivered, redis_conn):
    """Each fault, its pass criterion; and for all of them, the audit log verifies.

    - five HTTP 500s, then 200: retried with the same webhook-id until delivered; settled exactly
      once, the receiver processed it once.
    - a receiver that does not answer within the callback timeout (1 s): costs one attempt, not the
      worker; the next attempt is delivered; settled exactly once, processed once.
    - 429 with ``Retry-After: 3`` (the schedule alone would wait 1 s): the next attempt comes no
      sooner than 3 s later; settled exactly once, processed once.
    - 410 (gone for good) and a redirect (never followed: its target receives nothing): the
      execution fails at the first attempt, no retry scheduled, nothing left for the sweep.
    """
    flaky = receivers["five 500s"]
    assert_settled_once(delivered["five 500s"], flaky)
    assert [d.status for d in flaky.deliveries] == [500] * 5 + [200]
    assert attempts(delivered["five 500s"]) == [(n, "retrying", 500) for n in range(1, 6)] + [(6, "delivered", 200)]
    assert len(events(delivered["five 500s"], "execution.retry_scheduled")) == 5

    assert_settled_once(delivered["hang"], receivers["hang"])
    assert attempts(delivered["hang"]) == [(1, "retrying", None), (2, "delivered", 200)]
    [timed_out] = events(delivered["hang"], "execution.retry_scheduled")
    assert timed_out.data["error"] == "no answer within 1 s"

    limited = receivers["429 Retry-After"]
    assert_settled_once(delivered["429 Retry-After"], limited)
    first, second = limited.deliveries
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 3.0

    for fault, status in (("410", 410), ("redirect", 302)):
        case_id = delivered[fault]
        assert reload(case_id).status == Status.EXECUTION_FAILED, fault
        assert [d.status for d in receivers[fault].deliveries] == [status], fault
        assert len(attempts(case_id)) == 1 and events(case_id, "execution.retry_scheduled") == [], fault
        [failed] = events(case_id, "case.execution_failed")
        assert failed.data["gave_up"] is False, fault
        assert not receivers[fault].processed, fault
    assert receivers["elsewhere"].deliveries == []
    assert ScheduledJobRegistry("execute", connection=redis_conn).get_job_ids() == []
    assert retry_due_executions() == 0
    assert audit_log_intact()
