"""Callback faults against a real worker process (``python -m workers --with-scheduler``, so its
retries go through RQ's scheduler as in production) and a real local receiver. The same rules
are unit-tested with a fake clock in tests/test_execution.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
def delivering(upstream, people, processes, redis_conn, receiver) -> Callable[..., int]:
    """``deliver()``: approve a case with the receiver as its callback, enqueue its delivery on a
    running worker and wait until the case settles; its id."""
    processes.worker("--with-scheduler", "--queues", "execute", CALLBACK_TIMEOUT_SECONDS="1")

    def deliver(timeout: float = PROCESS_START_SECONDS) -> int:
        case_id = approved_case(upstream, people, receiver.url)
        assert enqueue(execution_work(db.session, case_id))
        db.session.rollback()
        wait_for(lambda: reload(case_id).status in SETTLED, "the case to settle", timeout)
        return case_id

    return deliver


def attempts(case_id: int) -> list[tuple[int, str | None, int | None]]:
    rows = db.session.scalars(select(ExecutionAttempt).where(ExecutionAttempt.execution_id == execution_of(case_id).id)
                              .order_by(ExecutionAttempt.number))
    return [(row.number, row.outcome, row.status_code) for row in rows]


def test_five_server_errors_then_success(receiver, delivering):
    """Pass: five HTTP 500 answers, then 200 → retried with the same webhook-id until delivered; settled
    exactly once (one ``case.executed``), the receiver processed it once, audit verifies."""
    receiver.fail = 5
    case_id = delivering(PROCESS_START_SECONDS + 20)
    assert reload(case_id).status == Status.EXECUTED
    key = execution_of(case_id).idempotency_key
    assert [(d.webhook_id, d.status) for d in receiver.deliveries] == [(key, 500)] * 5 + [(key, 200)]
    assert list(receiver.processed) == [key]
    assert attempts(case_id) == [(n, "retrying", 500) for n in range(1, 6)] + [(6, "delivered", 200)]
    assert len(events(case_id, "execution.retry_scheduled")) == 5
    assert len(events(case_id, "case.executed")) == 1
    assert audit_log_intact()


def test_a_hanging_receiver_times_out_and_is_retried(receiver, delivering):
    """Pass: a receiver that does not answer within the callback timeout (1 s) costs one attempt,
    not the worker: the next attempt is delivered; settled exactly once, processed once, audit
    verifies."""
    receiver.fail, receiver.hang = 1, 4.0
    case_id = delivering()
    assert reload(case_id).status == Status.EXECUTED
    assert attempts(case_id) == [(1, "retrying", None), (2, "delivered", 200)]
    assert execution_of(case_id).last_error is None
    [retry] = events(case_id, "execution.retry_scheduled")
    assert retry.data["error"] == "no answer within 1 s"
    assert len(receiver.processed) == 1 and len(events(case_id, "case.executed")) == 1
    assert audit_log_intact()


def test_retry_after_is_honoured(receiver, delivering):
    """Pass: a 429 with ``Retry-After: 3`` (the schedule alone would wait 1 s) → the next attempt
    comes no sooner than 3 s later; settled exactly once, processed once, audit verifies."""
    receiver.fail, receiver.status, receiver.retry_after = 1, 429, "3"
    case_id = delivering()
    assert reload(case_id).status == Status.EXECUTED
    first, second = receiver.deliveries
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 3.0
    assert len(receiver.processed) == 1 and len(events(case_id, "case.executed")) == 1
    assert audit_log_intact()


@pytest.fixture
def elsewhere(upstream) -> Iterator[Receiver]:
    running = Receiver(upstream.secret).start()
    yield running
    running.stop()


@pytest.mark.parametrize("fault", ["410 Gone", "redirect"])
def test_permanent_failures_fail_at_once(receiver, elsewhere, delivering, redis_conn, fault):
    """Pass: a 410 (the receiver says the resource is gone for good) or a redirect (never followed:
    the redirect target receives nothing) fails the execution at the first attempt, with no retry
    scheduled and nothing left for the sweep; the audit log verifies."""
    if fault == "redirect":
        receiver.redirect = elsewhere.url + "/elsewhere"
    else:
        receiver.status = 410
    case_id = delivering()
    assert reload(case_id).status == Status.EXECUTION_FAILED
    assert [d.status for d in receiver.deliveries] == [302 if fault == "redirect" else 410]
    assert elsewhere.deliveries == []
    assert len(attempts(case_id)) == 1 and events(case_id, "execution.retry_scheduled") == []
    assert ScheduledJobRegistry("execute", connection=redis_conn).get_job_ids() == []
    assert retry_due_executions() == 0
    [failed] = events(case_id, "case.execution_failed")
    assert failed.data["gave_up"] is False
    assert not receiver.processed
    assert audit_log_intact()
