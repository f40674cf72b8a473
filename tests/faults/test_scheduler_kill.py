"""The scheduler SIGKILLed: a second scheduler process, running beside it as operations run them
(the periodic jobs are idempotent, so two schedulers are safe), carries on alone.

A scheduler outliving a Redis outage is tests/test_scheduler_outage.py; a retry that no RQ
scheduler moves, run by the sweep, is tests/test_execution.py
(test_the_sweep_runs_a_due_retry_that_no_scheduler_moved)."""

from __future__ import annotations

import time

import pytest
from rq import cron_scheduler_registry

from app.cases.models import Status
from tests.conftest import audit_log_intact
from tests.execution_helpers import approved_case, events, execution_of, reload
from tests.faults.conftest import PROCESS_START_SECONDS, wait_for

pytestmark = pytest.mark.faults

SWEEP_SECONDS = 3
SLACK_SECONDS = 4  # a job's way through Redis and a worker on a busy machine


def test_another_scheduler_takes_over_within_a_sweep_period(upstream, people, receiver, processes, redis_conn):
    """Pass: with one of two schedulers SIGKILLed, an approved case whose job was lost is delivered
    within one sweep period (plus slack) of its approval, and its retry, which no RQ scheduler
    moves (no worker runs one), within one more; settled exactly once, the receiver processed it
    once, the audit log verifies."""
    sweeping = {"SWEEP_INTERVAL_SECONDS": str(SWEEP_SECONDS)}
    doomed, survivor = processes.scheduler(**sweeping), processes.scheduler(**sweeping)
    processes.worker("--queues", "execute")  # without --with-scheduler: nothing moves scheduled retries
    wait_for(lambda: len(cron_scheduler_registry.get_keys(redis_conn)) == 2, "both schedulers to start",
             PROCESS_START_SECONDS)
    processes.kill(doomed)

    receiver.fail = 1
    case_id = approved_case(upstream, people, receiver.url)  # approved, its job never enqueued (lost)
    approved_at = time.monotonic()
    wait_for(lambda: receiver.deliveries, "the first delivery", SWEEP_SECONDS + SLACK_SECONDS)
    first = receiver.deliveries[0]
    assert first.received_at - approved_at <= SWEEP_SECONDS + SLACK_SECONDS
    wait_for(lambda: reload(case_id).status == Status.EXECUTED, "the retry to be delivered",
             1 + SWEEP_SECONDS + SLACK_SECONDS)

    assert survivor.poll() is None
    key = execution_of(case_id).idempotency_key
    assert [(d.webhook_id, d.status) for d in receiver.deliveries] == [(key, 500), (key, 200)]
    assert list(receiver.processed) == [key]
    assert len(events(case_id, "case.executed")) == 1
    assert audit_log_intact()
