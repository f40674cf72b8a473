"""Execution after approval: signed callbacks to a real local receiver, exactly-once delivery
despite retries and duplicate job runs, the backoff schedule, SSRF and redirect refusals, the
human-approval re-check, the admin's failures page, and upstream notifications."""

from __future__ import annotations

import html
import random
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue as RQQueue
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, update

from app import webhooks
from app.auth.services import create_api_token
from app.cases import policy
from app.cases.lifecycle import transition
from app.cases.models import Case, Decision, Execution, ExecutionAttempt, Queue, Recommendation, Status
from app.db import utcnow
from app.errors import Conflict, Forbidden, Invalid
from app.execution import services
from app.execution import upstream as upstream_notices
from app.execution.delivery import deliver_approval
from app.execution.jobs import (
    attempt_work,
    execute_case,
    execution_work,
    notice_work,
    notify_upstream,
    retry_due_executions,
    retry_due_notices,
)
from app.execution.models import UpstreamNotice
from app.execution.receiver import Receiver
from app.execution.services import State
from app.extensions import db
from app.intake.models import ApiClient
from app.jobs import enqueue
from app.review import services as review
from app.users import User
from app.webhooks import DeliveryResult
from tests.conftest import Upstream, sign_in
from tests.execution_helpers import (
    AI,
    RELEASE,
    FakeClock,
    FixedJitter,
    People,
    approved_case,
    events,
    execution_of,
    in_review,
    make_people,
    new_case,
    record_decision,
    reload,
)
from tests.review_helpers import command

S = Status


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 2.0}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(utcnow().replace(microsecond=0))
    monkeypatch.setattr(services, "clock", fake)
    return fake


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "jitter_source", FixedJitter(1.0))


@pytest.fixture
def people(queues: dict[str, Queue]) -> People:
    return make_people(list(queues.values()))


def work(redis_conn: Redis, *, with_scheduler: bool = False) -> None:
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True, with_scheduler=with_scheduler)


def key_of(case_id: int) -> str:
    return execution_of(case_id).idempotency_key


# --- delivery --------------------------------------------------------------------------------------


def test_an_approved_case_is_delivered_once_signed_with_the_clients_secret(upstream, people, receiver, redis_conn):
    case_id = approved_case(upstream, people, receiver.url + "/hooks")
    assert enqueue(execution_work(db.session, case_id))
    assert enqueue(execution_work(db.session, case_id))  # the same work: one job
    work(redis_conn)

    case, execution = reload(case_id), execution_of(case_id)
    assert case.status == S.EXECUTED
    assert (execution.status, execution.attempts, execution.last_status_code) == (State.DELIVERED, 1, 200)
    assert execution.delivered_at is not None and execution.next_attempt_at is None
    [delivery] = receiver.deliveries  # verified by the receiver with the client's secret, else a 401
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case_id)).one()
    assert (delivery.status, delivery.path, delivery.webhook_id) == (200, "/hooks", execution.idempotency_key)
    assert delivery.document == {
        "type": "case.approved",
        "case": {"id": case.id, "external_id": case.external_id, "domain": "finance", "case_type": "payment_release",
                 "title": case.title},
        "action": {"name": "release", "parameters": {}},
        "decision": {"kind": "edit", "reason_code": None, "reason": None,
                     "decided_at": decision.created_at.isoformat()},
        "approved_by": [people.reviewer.email],
        "execution": {"idempotency_key": execution.idempotency_key, "attempt": 1},
    }
    [executed] = events(case_id, "case.executed")
    assert executed.data["delivered"] == "callback" and executed.data["url"] == receiver.url + "/hooks"


def test_a_callback_is_signed_with_the_newest_active_secret_only(upstream, people, receiver):
    client = db.session.get(ApiClient, upstream.id)
    newest = webhooks.new_secret()
    client.signing_secrets = [{"secret": newest, "created_at": utcnow().isoformat(), "expires_at": None},
                              *client.signing_secrets]
    db.session.commit()
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "failed"  # the receiver only knows the previous secret
    assert [d.status for d in receiver.deliveries] == [401]
    assert execution_of(case_id).last_error == "HTTP 401"


def test_receiver_failing_twice_then_succeeding_processes_the_delivery_exactly_once(upstream, people, receiver, clock):
    receiver.fail = 2
    case_id = approved_case(upstream, people, receiver.url)

    assert execute_case(case_id) == "retrying"
    first_retry = execution_of(case_id).next_attempt_at
    assert first_retry == clock.now + timedelta(seconds=60)
    assert execute_case(case_id) == "skipped"  # a duplicate run before the retry is due sends nothing
    assert len(receiver.deliveries) == 1

    clock.to(first_retry)
    assert execute_case(case_id) == "retrying"
    clock.to(execution_of(case_id).next_attempt_at)
    assert execute_case(case_id) == "delivered"
    assert execute_case(case_id) == "skipped"  # duplicate runs after the success never send again
    assert execute_case(case_id) == "skipped"

    key = key_of(case_id)
    assert [d.webhook_id for d in receiver.deliveries] == [key, key, key]  # the same webhook-id every time
    assert [d.document["execution"]["attempt"] for d in receiver.deliveries] == [1, 2, 3]
    assert [d.status for d in receiver.deliveries] == [500, 500, 200]
    assert list(receiver.processed) == [key]
    assert reload(case_id).status == S.EXECUTED
    assert len(events(case_id, "execution.retry_scheduled")) == 2
    assert len(events(case_id, "case.executed")) == 1


def attempts_of(case_id: int) -> list[tuple[int, str | None, int | None]]:
    rows = db.session.scalars(select(ExecutionAttempt).where(ExecutionAttempt.execution_id == execution_of(case_id).id)
                              .order_by(ExecutionAttempt.id))
    return [(a.number, a.outcome, a.status_code) for a in rows]


def test_each_attempt_is_a_row_with_its_outcome(upstream, people, receiver, clock):
    receiver.fail = 1
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    assert execute_case(case_id) == "skipped"  # not due: no attempt, no row
    clock.advance(seconds=60)
    assert execute_case(case_id) == "delivered"
    assert attempts_of(case_id) == [(1, "retrying", 500), (2, "delivered", 200)]
    first = db.session.scalars(select(ExecutionAttempt).order_by(ExecutionAttempt.id)).first()
    assert (first.started_at, first.finished_at, first.error) == (clock.now - timedelta(seconds=60),
                                                                  clock.now - timedelta(seconds=60), "HTTP 500")


def test_an_attempt_that_outlived_its_lease_is_recorded_as_superseded(upstream, people, receiver, clock):
    case_id = approved_case(upstream, people, receiver.url)
    lost = services.start_attempt(db.session, case_id)
    db.session.commit()
    assert attempts_of(case_id) == [(1, None, None)]  # under way
    clock.advance(seconds=2 * 2 + 61)
    assert execute_case(case_id) == "delivered"
    assert services.finish_attempt(db.session, lost, DeliveryResult("failed", 400, "late")) is None
    db.session.commit()
    assert attempts_of(case_id) == [(1, "superseded", 400), (2, "delivered", 200)]


def test_a_retry_is_scheduled_on_rq_at_next_attempt_at(upstream, people, receiver, clock, redis_conn):
    receiver.fail = 1
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    execution = execution_of(case_id)
    registry = ScheduledJobRegistry("execute", connection=redis_conn)
    job_id = attempt_work(case_id, execution.id, 2).job_id
    assert registry.get_job_ids() == [job_id]
    assert registry.get_scheduled_time(job_id) == execution.next_attempt_at == clock.now + timedelta(seconds=60)
    [scheduled] = events(case_id, "execution.retry_scheduled")
    assert scheduled.data["next_attempt_at"] == execution.next_attempt_at.isoformat()
    assert (scheduled.data["attempt"], scheduled.data["status_code"]) == (1, 500)


def test_the_real_worker_and_scheduler_retry_until_delivered(app, upstream, people, receiver, redis_conn):
    app.config["EXECUTION_RETRY_SCHEDULE"] = [1]
    receiver.fail = 2
    case_id = approved_case(upstream, people, receiver.url)
    enqueue(execution_work(db.session, case_id))
    deadline = time.monotonic() + 20
    while reload(case_id).status != S.EXECUTED and time.monotonic() < deadline:
        work(redis_conn, with_scheduler=True)  # moves due retries from the scheduled registry, then works
        time.sleep(0.25)
    assert reload(case_id).status == S.EXECUTED
    assert [d.status for d in receiver.deliveries] == [500, 500, 200]
    assert len({d.webhook_id for d in receiver.deliveries}) == 1 and len(receiver.processed) == 1


def test_the_backoff_schedule_is_followed_until_it_gives_up_after_three_days(upstream, people, receiver, clock):
    receiver.status = 503
    case_id = approved_case(upstream, people, receiver.url)
    opened = clock.now
    waits = []
    while execute_case(case_id) == "retrying":
        execution = execution_of(case_id)
        waits.append(int((execution.next_attempt_at - clock.now).total_seconds()))
        clock.to(execution.next_attempt_at)

    assert waits == [60, 300, 1800, 7200, 21600, 43200, 43200, 43200, 43200, 43200]
    assert sum(waits) <= 3 * 86400 < sum(waits) + 43200
    execution = execution_of(case_id)
    assert (execution.status, execution.attempts, execution.last_status_code) == (State.FAILED, 11, 503)
    assert clock.now - opened <= timedelta(days=3)
    assert reload(case_id).status == S.EXECUTION_FAILED
    [failed] = events(case_id, "case.execution_failed")
    assert failed.data["gave_up"] is True and failed.data["attempt"] == 11
    assert len(receiver.deliveries) == 11 and not receiver.processed


def test_the_jitter_stays_within_ten_percent(app, monkeypatch):
    monkeypatch.setattr(services, "jitter_source", random.Random(7))
    now = utcnow().replace(microsecond=0)
    for failures, base in ((1, 60), (2, 300), (6, 43200), (20, 43200)):
        at = services.next_attempt_time(failures, now, now)
        assert base * 0.9 - 1 <= (at - now).total_seconds() <= base * 1.1
        assert at.microsecond == 0  # whole seconds: RQ schedules to the second


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_timeouts_too_many_requests_and_server_errors_are_retried(upstream, people, receiver, clock, status):
    receiver.status = status
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    execution = execution_of(case_id)
    assert (execution.status, execution.last_status_code) == (State.RETRYING, status)
    assert reload(case_id).status == S.EXECUTING


@pytest.mark.parametrize(("status", "retry_after", "wait"), [
    (429, "600", 600),  # longer than the schedule's 60 s: the receiver's wait wins
    (503, "7", 60),  # shorter: the schedule's wait stands
    (429, "Sun, 06 Nov 1994 08:49:37 GMT", 60),  # a date in the past asks for no wait
    (429, "soon", 60),  # unreadable: ignored
])
def test_a_retry_after_header_is_honoured(upstream, people, receiver, clock, status, retry_after, wait):
    receiver.fail, receiver.status, receiver.retry_after = 1, status, retry_after
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    assert execution_of(case_id).next_attempt_at == clock.now + timedelta(seconds=wait)
    clock.advance(seconds=wait - 1)
    assert execute_case(case_id) == "skipped"  # not before Retry-After
    clock.advance(seconds=1)
    assert execute_case(case_id) == "delivered"


def test_a_retry_after_given_as_a_date_is_honoured(upstream, people, receiver, clock):
    receiver.fail, receiver.status = 1, 429
    receiver.retry_after = format_datetime(datetime.now(UTC) + timedelta(minutes=30), usegmt=True)
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    wait = execution_of(case_id).next_attempt_at - clock.now  # the clock started at the real time
    assert timedelta(minutes=29) < wait <= timedelta(minutes=30, seconds=1)


def test_a_notification_honours_retry_after(upstream, people, receiver, clock):
    receiver.fail, receiver.status, receiver.retry_after = 1, 429, "900"
    decision = _decided(upstream, people, receiver.url, "rejected", "reject", "No.")
    assert notify_upstream(decision.case_id, "case.decided", decision.id) == "retrying"
    [failed] = events(decision.case_id, "upstream.notify_failed")
    assert failed.data["next_attempt_at"] == (clock.now + timedelta(seconds=900)).isoformat()


def test_a_retry_after_past_the_give_up_time_fails_the_execution(upstream, people, receiver, clock):
    receiver.status, receiver.retry_after = 429, str(10 * 365 * 86400)
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "failed"
    assert reload(case_id).status == S.EXECUTION_FAILED
    [failed] = events(case_id, "case.execution_failed")
    assert failed.data["gave_up"] is True


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_other_client_errors_fail_at_once(upstream, people, receiver, clock, status):
    receiver.status = status
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "failed"
    execution = execution_of(case_id)
    assert (execution.status, execution.attempts, execution.last_status_code) == (State.FAILED, 1, status)
    assert execution.next_attempt_at is None
    assert reload(case_id).status == S.EXECUTION_FAILED
    [failed] = events(case_id, "case.execution_failed")
    assert failed.data["gave_up"] is False and failed.data["status_code"] == status


def test_a_receiver_that_hangs_past_the_timeout_is_retried(app, upstream, people, receiver, clock):
    app.config["CALLBACK_TIMEOUT_SECONDS"] = 0.5
    receiver.fail, receiver.hang = 1, 1.5
    case_id = approved_case(upstream, people, receiver.url)
    started = time.monotonic()
    assert execute_case(case_id) == "retrying"
    assert time.monotonic() - started < 1.4
    execution = execution_of(case_id)
    assert execution.last_error == "no answer within 0.5 s" and execution.last_status_code is None
    clock.to(execution.next_attempt_at)
    assert execute_case(case_id) == "delivered"


def test_an_unreachable_receiver_is_retried(upstream, people, clock):
    case_id = approved_case(upstream, people, "http://127.0.0.1:9/hooks")  # the discard port: refused
    assert execute_case(case_id) == "retrying"
    assert execution_of(case_id).last_error.startswith("connection failed")


def test_a_callback_host_removed_from_the_allow_list_is_refused_without_a_request(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    db.session.get(ApiClient, upstream.id).callback_hosts = ["hooks.example.com"]
    db.session.commit()
    assert execute_case(case_id) == "failed"
    assert receiver.deliveries == []
    assert execution_of(case_id).last_error.startswith("refused before sending: host '127.0.0.1' is not on")
    assert reload(case_id).status == S.EXECUTION_FAILED


def test_a_stored_callback_url_with_control_characters_fails_at_once_without_a_request(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    db.session.get(Case, case_id).callback_url = receiver.url + "\r\nX-Injected: 1"  # stored before intake refused it
    db.session.commit()
    assert execute_case(case_id) == "failed"
    assert receiver.deliveries == []
    assert execution_of(case_id).last_error == ("refused before sending: callback_url must not contain spaces or "
                                                "control characters")
    assert reload(case_id).status == S.EXECUTION_FAILED


def test_plain_http_is_refused_at_delivery_unless_the_host_is_allow_listed_for_testing(app, upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    app.config["INSECURE_CALLBACK_HOSTS"] = frozenset()
    assert execute_case(case_id) == "failed"
    assert receiver.deliveries == []
    assert "must use https" in execution_of(case_id).last_error


def test_redirects_are_not_followed(upstream, people, receiver):
    elsewhere = Receiver(upstream.secret).start()
    try:
        receiver.redirect = elsewhere.url + "/stolen"
        case_id = approved_case(upstream, people, receiver.url)
        assert execute_case(case_id) == "failed"
        assert elsewhere.deliveries == []
    finally:
        elsewhere.stop()
    execution = execution_of(case_id)
    assert execution.last_status_code == 302
    assert execution.last_error == f"HTTP 302 redirect to {elsewhere.url}/stolen: redirects are not followed"


def test_a_case_without_a_callback_url_executes_with_a_note(upstream, people):
    case_id = approved_case(upstream, people, None)
    assert execute_case(case_id) == "delivered"
    assert reload(case_id).status == S.EXECUTED
    [executed] = events(case_id, "case.executed")
    assert executed.data["delivered"] == "no callback_url"
    assert execution_of(case_id).status == State.DELIVERED


def test_dual_approval_names_both_approvers_in_order(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url, dual=True)
    assert execute_case(case_id) == "delivered"
    [delivery] = receiver.deliveries
    assert delivery.document["approved_by"] == [people.reviewer.email, people.senior.email]
    assert delivery.document["decision"]["kind"] == "second_approval"


# --- exactly once under concurrency ------------------------------------------------------------------


def test_a_run_while_another_attempt_is_in_flight_sends_nothing(upstream, people, receiver, clock):
    case_id = approved_case(upstream, people, receiver.url)
    attempt = services.start_attempt(db.session, case_id)
    db.session.commit()
    assert execute_case(case_id) == "skipped"  # the first run holds the attempt
    result = deliver_approval(services.sender(), attempt.case, attempt.decision, attempt.execution,
                              attempt.approved_by)
    services.finish_attempt(db.session, attempt, result)
    db.session.commit()
    assert len(receiver.deliveries) == 1 and reload(case_id).status == S.EXECUTED


def test_an_attempt_that_outlived_its_lease_is_taken_over_and_its_outcome_ignored(upstream, people, receiver, clock):
    case_id = approved_case(upstream, people, receiver.url)
    lost = services.start_attempt(db.session, case_id)  # its worker "dies" before reporting
    db.session.commit()
    clock.advance(seconds=2 * 2 + 61)
    assert services.due_for_execution(db.session, clock.now) == [case_id]
    assert execute_case(case_id) == "delivered"
    assert services.finish_attempt(db.session, lost, DeliveryResult("failed", 400, "late")) is None
    db.session.commit()
    assert execution_of(case_id).status == State.DELIVERED and execution_of(case_id).attempts == 2
    assert len(events(case_id, "case.executed")) == 1 and not events(case_id, "case.execution_failed")


def test_one_execution_per_approving_decision(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "delivered"
    db.session.execute(update(Case).where(Case.id == case_id).values(status=S.APPROVED.value))  # tampered back
    db.session.commit()
    assert execute_case(case_id) == "refused"
    assert len(receiver.deliveries) == 1
    [refused] = events(case_id, "case.execution_refused")
    assert "was executed already" in refused.data["reason"]


# --- no execution without a human decision ----------------------------------------------------------


def _pending_review(upstream: Upstream) -> Case:
    case = new_case(upstream, None)
    transition(db.session, case, "analysis_started", AI)
    rec = Recommendation(case_id=case.id, case_version=case.version, provider="local", model="rules-v1",
                         template_version="v1", prompt_hash="0" * 64, input_hash="0" * 64, action="release",
                         parameters={}, rationale="Clean.", confidence=0.99, flags=[], citations=[])
    db.session.add(rec)
    db.session.flush()
    case.recommendation_id = rec.id
    transition(db.session, case, "recommendation_stored", AI)
    db.session.commit()
    return case


def assert_refused(case_id: int, receiver: Receiver, reason: str, status: str = S.APPROVED) -> None:
    case = reload(case_id)
    assert case.status == status
    [refused] = events(case_id, "case.execution_refused")
    assert reason in refused.data["reason"], refused.data
    assert refused.actor == "system:executor"
    assert receiver.deliveries == []
    assert db.session.scalars(select(Execution).where(Execution.case_id == case_id)).all() == []


def test_an_execute_job_for_a_pending_review_case_is_refused(upstream, receiver, redis_conn):
    case = _pending_review(upstream)
    version = case.version
    job = RQQueue("execute", connection=redis_conn).enqueue("app.execution.jobs.execute_case", case.id)
    work(redis_conn)
    assert Job.fetch(job.id, connection=redis_conn).return_value() == "refused"
    assert_refused(case.id, receiver, "is pending_review, not approved", S.PENDING_REVIEW)
    assert reload(case.id).version == version  # the case is unchanged


def test_an_approved_status_without_any_decision_is_refused(upstream, receiver):
    case = _pending_review(upstream)
    db.session.execute(update(Case).where(Case.id == case.id).values(status=S.APPROVED.value))
    db.session.commit()
    assert execute_case(case.id) == "refused"
    assert_refused(case.id, receiver, "no human decision is recorded")


def test_a_tampered_action_hash_is_refused(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    db.session.execute(update(Decision).where(Decision.case_id == case_id)
                       .values(action="reject", parameters={"reason": "swapped after approval"}))
    db.session.commit()
    assert execute_case(case_id) == "refused"
    assert_refused(case_id, receiver, "action_hash does not match")


def test_a_forged_decision_missing_from_the_audit_trail_is_refused(upstream, people, receiver):
    case = in_review(new_case(upstream, receiver.url), people.reviewer)
    db.session.execute(update(Case).where(Case.id == case.id).values(status=S.APPROVED.value))
    name, parameters = RELEASE
    db.session.add(Decision(case_id=case.id, reviewer_id=people.reviewer.id, kind="approve", case_version=1,
                            action=name, parameters=parameters, action_hash=policy.action_hash(name, parameters)))
    db.session.commit()
    assert execute_case(case.id) == "refused"
    assert_refused(case.id, receiver, "no matching approval in the audit trail")


def test_an_auditors_decision_cannot_authorise_execution(upstream, people, receiver):
    case = in_review(new_case(upstream, receiver.url), people.reviewer)
    db.session.execute(update(Case).where(Case.id == case.id).values(status=S.APPROVED.value))
    name, parameters = RELEASE
    db.session.add(Decision(case_id=case.id, reviewer_id=people.auditor.id, kind="approve", case_version=1,
                            action=name, parameters=parameters, action_hash=policy.action_hash(name, parameters)))
    db.session.commit()
    assert execute_case(case.id) == "refused"
    assert_refused(case.id, receiver, "was made by a user with role 'auditor'")


def test_a_later_rejection_or_request_is_not_an_approval(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    db.session.add(Decision(case_id=case_id, reviewer_id=people.reviewer.id, kind="reject", case_version=1,
                            reason="no"))
    db.session.commit()
    assert execute_case(case_id) == "refused"
    assert_refused(case_id, receiver, "the latest human decision is 'reject'")


def test_a_missing_second_approval_is_refused(upstream, people, receiver):
    case = in_review(new_case(upstream, receiver.url), people.reviewer)
    case.requires_dual_approval = True
    record_decision(case, people.reviewer, "approved", "approve")  # one approval where two are required
    assert execute_case(case.id) == "refused"
    assert_refused(case.id, receiver, "requires a second approval")


def test_a_second_approval_by_the_first_approver_is_refused(upstream, people, receiver):
    case = in_review(new_case(upstream, receiver.url), people.senior)
    record_decision(case, people.senior, "first_approval", "approve")
    record_decision(case, people.senior, "second_approval", "second_approval")
    assert execute_case(case.id) == "refused"
    assert_refused(case.id, receiver, "the first approver may not give the second approval")


def test_a_second_approval_of_another_action_is_refused(upstream, people, receiver):
    case = in_review(new_case(upstream, receiver.url), people.reviewer)
    record_decision(case, people.reviewer, "first_approval", "approve", ("hold", {"reason": "check"}))
    record_decision(case, people.senior, "second_approval", "second_approval")
    assert execute_case(case.id) == "refused"
    assert_refused(case.id, receiver, "another action than the first")


def test_a_refused_approved_case_is_not_swept_again(upstream, receiver, clock):
    case = _pending_review(upstream)
    db.session.execute(update(Case).where(Case.id == case.id).values(status=S.APPROVED.value))
    db.session.commit()
    clock.advance(hours=1)
    assert services.due_for_execution(db.session, clock.now) == [case.id]  # an approved case left behind
    assert execute_case(case.id) == "refused"
    refused = reload(case.id)
    assert refused.execution_refused_at is not None and refused.execution_refused_at >= refused.updated_at
    assert services.due_for_execution(db.session, clock.now) == []
    db.session.execute(update(Case).where(Case.id == case.id).values(updated_at=utcnow()))  # changed since
    db.session.commit()
    assert services.due_for_execution(db.session, clock.now + timedelta(hours=1)) == [case.id]


def test_a_refused_retry_round_is_recorded_as_a_refused_attempt(upstream, people, receiver, clock):
    receiver.fail = 1
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    db.session.execute(update(Decision).where(Decision.case_id == case_id).values(action_hash="0" * 64))
    db.session.commit()
    clock.advance(seconds=60)
    assert execute_case(case_id) == "refused"
    assert attempts_of(case_id)[-1][:2] == (2, "refused")
    assert reload(case_id).status == S.EXECUTION_FAILED


def _reviewer_api(user: User) -> dict[str, str]:
    _, raw = create_api_token(db.session, user, "bot")
    db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


def test_through_the_api_only_a_reviewers_approval_leads_to_execution(client, upstream, people, receiver, redis_conn):
    case = _pending_review(upstream)
    case.callback_url = receiver.url
    db.session.commit()
    auditor, reviewer = _reviewer_api(people.auditor), _reviewer_api(people.reviewer)

    assert client.post(f"/api/v1/cases/{case.id}/execute", headers=reviewer).status_code in (404, 405)
    assert client.post(f"/api/v1/cases/{case.id}/claim", headers=auditor).status_code == 403
    auditor_approval = {"kind": "approve", "case_version": case.version}
    assert client.post(f"/api/v1/cases/{case.id}/decisions", json=auditor_approval, headers=auditor).status_code == 403
    assert enqueue(execution_work(db.session, case.id))
    work(redis_conn)
    assert reload(case.id).status == S.PENDING_REVIEW and receiver.deliveries == []

    claimed = client.post(f"/api/v1/cases/{case.id}/claim", headers=reviewer)
    assert claimed.status_code == 200, claimed.get_json()
    approval = {"kind": "approve", "case_version": reload(case.id).version}
    decided = client.post(f"/api/v1/cases/{case.id}/decisions", json=approval, headers=reviewer)
    assert decided.status_code == 201, decided.get_json()
    assert enqueue(execution_work(db.session, case.id))  # what the decision's caller does after its commit
    work(redis_conn)
    assert reload(case.id).status == S.EXECUTED
    assert [d.document["approved_by"] for d in receiver.deliveries] == [[people.reviewer.email]]


def test_a_dual_approval_through_the_review_service_executes(upstream, people, receiver, queues):
    case = _pending_review(upstream)
    case.callback_url, case.requires_dual_approval = receiver.url, True
    db.session.commit()
    review.claim(db.session, people.reviewer, case.id)
    db.session.commit()
    case = reload(case.id)
    command = review.DecisionCommand(kind="approve", case_version=case.version)
    review.decide(db.session, people.reviewer, case.id, command, bind_by_version=True)
    db.session.commit()
    assert execute_case(case.id) == "refused"  # awaiting the second approval: not executable
    case = reload(case.id)
    review.decide(db.session, people.senior, case.id, review.DecisionCommand(kind="approve", case_version=case.version),
                  bind_by_version=True)
    db.session.commit()
    assert reload(case.id).status == S.APPROVED
    assert execute_case(case.id) == "delivered"
    assert receiver.deliveries[0].document["approved_by"] == [people.reviewer.email, people.senior.email]


# --- the sweep ---------------------------------------------------------------------------------------------


def test_the_sweep_re_enqueues_due_retries_that_redis_lost(upstream, people, receiver, clock, redis_conn):
    receiver.fail = 1
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    redis_conn.flushdb()  # Redis lost the scheduled retry
    assert retry_due_executions() == 0  # not due yet
    clock.to(execution_of(case_id).next_attempt_at)
    assert retry_due_executions() == 1
    job_id = attempt_work(case_id, execution_of(case_id).id, 2).job_id
    assert RQQueue("execute", connection=redis_conn).job_ids == [job_id]
    work(redis_conn)
    assert reload(case_id).status == S.EXECUTED and len(receiver.processed) == 1


def test_the_sweep_runs_a_due_retry_that_no_scheduler_moved(upstream, people, receiver, clock, redis_conn):
    """No worker runs RQ's scheduler (or the one holding its lock died): the retry waits in the
    scheduled registry past its time. The sweep sees it due in the database and queues it."""
    receiver.fail = 1
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "retrying"
    job_id = attempt_work(case_id, execution_of(case_id).id, 2).job_id
    assert job_id in ScheduledJobRegistry("execute", connection=redis_conn).get_job_ids()
    assert retry_due_executions() == 0  # not due yet: it stays where it is
    assert RQQueue("execute", connection=redis_conn).job_ids == []
    clock.to(execution_of(case_id).next_attempt_at)
    assert retry_due_executions() == 1
    assert RQQueue("execute", connection=redis_conn).job_ids == [job_id]
    assert job_id not in ScheduledJobRegistry("execute", connection=redis_conn).get_job_ids()
    work(redis_conn)
    assert reload(case_id).status == S.EXECUTED and len(receiver.processed) == 1


# --- the admin's failures page -------------------------------------------------------------------------


def login(http: FlaskClient, user: User | None) -> None:
    sign_in(http, user)


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


@pytest.fixture
def failed_case(upstream: Upstream, people: People, receiver: Receiver) -> int:
    receiver.status = 410
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "failed"
    receiver.status = None
    return case_id


def test_the_failures_page_lists_failed_executions_for_an_admin(client, people, failed_case):
    login(client, people.admin)
    page = client.get("/admin/executions")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    row = re.search(rf'<tr class="tone-bad" data-case="{failed_case}">(.*?)</tr>', text, re.S).group(1)
    assert "HTTP 410" in row and ">1<" in row and "Retry" in row and "Mark handled" in row
    assert 'id="deliveries"' in text


def test_an_auditor_sees_the_failures_page_read_only(client, people, failed_case):
    login(client, people.auditor)
    page = client.get("/admin/executions")
    assert page.status_code == 200
    assert "HTTP 410" in page.get_data(as_text=True) and "Mark handled" not in page.get_data(as_text=True)


def test_only_admins_and_auditors_see_the_page_and_only_admins_act(client, people, failed_case):
    assert client.get("/admin/executions").status_code == 302  # to the sign-in page
    login(client, people.admin)
    token = csrf_token(client.get("/admin/executions").get_data(as_text=True))
    for user in (people.reviewer, people.senior, people.auditor):
        login(client, user)
        if user is not people.auditor:
            assert client.get("/admin/executions").status_code == 403
        for action in ("retry", "handled"):
            response = client.post(f"/admin/executions/{failed_case}/{action}",
                                   data={"csrf_token": token, "reason": "x"})
            assert response.status_code == 403, (user.role, action)
    assert reload(failed_case).status == S.EXECUTION_FAILED


def test_an_admin_retries_a_failed_execution(client, people, failed_case, receiver, redis_conn):
    login(client, people.admin)
    token = csrf_token(client.get("/admin/executions").get_data(as_text=True))
    assert client.post(f"/admin/executions/{failed_case}/retry").status_code == 400  # no CSRF token
    response = client.post(f"/admin/executions/{failed_case}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    assert reload(failed_case).status == S.EXECUTING
    execution = execution_of(failed_case)
    assert (execution.status, execution.attempts) == (State.PENDING, 0)
    [retried] = events(failed_case, "case.execution_retried")
    assert retried.actor == f"user:{people.admin.id}" and retried.data["previous_attempts"] == 1
    work(redis_conn)  # the retry was enqueued after the commit
    assert reload(failed_case).status == S.EXECUTED
    assert [d.status for d in receiver.deliveries] == [410, 200]
    assert len({d.webhook_id for d in receiver.deliveries}) == 1  # the same idempotency key


def test_retries_after_an_admin_retry_count_from_round_started_at(upstream, people, receiver, clock):
    receiver.status = 410
    case_id = approved_case(upstream, people, receiver.url)
    assert execute_case(case_id) == "failed"
    opened = execution_of(case_id).round_started_at
    assert opened == clock.now
    clock.advance(days=2, hours=12)  # most of the first round's three days are gone
    services.retry_execution(db.session, people.admin, case_id)
    db.session.commit()
    assert execution_of(case_id).round_started_at == clock.now  # a new round
    receiver.status = 503
    waits = []
    while execute_case(case_id) == "retrying":
        execution = execution_of(case_id)
        waits.append(int((execution.next_attempt_at - clock.now).total_seconds()))
        clock.to(execution.next_attempt_at)
    # the whole schedule again: three days from the retry, not the half day left from the opening
    assert waits == [60, 300, 1800, 7200, 21600, 43200, 43200, 43200, 43200, 43200]
    assert execution_of(case_id).attempts == 11 and reload(case_id).status == S.EXECUTION_FAILED


def test_an_admin_marks_a_failure_handled_with_a_reason(client, people, failed_case):
    login(client, people.admin)
    token = csrf_token(client.get("/admin/executions").get_data(as_text=True))
    refused = client.post(f"/admin/executions/{failed_case}/handled", data={"csrf_token": token, "reason": " "},
                          follow_redirects=True)
    assert "Say how the failure was handled." in refused.get_data(as_text=True)
    assert execution_of(failed_case).status == State.FAILED

    done = client.post(f"/admin/executions/{failed_case}/handled",
                       data={"csrf_token": token, "reason": "Released by phone with the payments desk"},
                       follow_redirects=True)
    assert done.status_code == 200
    assert f'data-case="{failed_case}"' not in done.get_data(as_text=True).split('id="deliveries"')[0]
    assert execution_of(failed_case).status == State.HANDLED
    assert reload(failed_case).status == S.EXECUTION_FAILED  # the case itself stays failed
    [handled] = events(failed_case, "execution.marked_handled")
    assert handled.data["reason"] == "Released by phone with the payments desk"
    assert handled.data["by"] == people.admin.email and handled.actor == f"user:{people.admin.id}"


def test_retry_and_mark_handled_are_admin_only_in_the_services(people, failed_case):
    with pytest.raises(Forbidden):
        services.retry_execution(db.session, people.senior, failed_case)
    with pytest.raises(Forbidden):
        services.mark_handled(db.session, people.auditor, failed_case, "done")
    with pytest.raises(Invalid):
        services.mark_handled(db.session, people.admin, failed_case, "")


def test_only_failed_executions_can_be_retried(upstream, people, receiver):
    case_id = approved_case(upstream, people, receiver.url)
    with pytest.raises(Conflict):
        services.retry_execution(db.session, people.admin, case_id)


# --- upstream notifications ----------------------------------------------------------------------------


def _decided(upstream: Upstream, people: People, url: str, event: str, kind: str, reason: str) -> Decision:
    case = in_review(new_case(upstream, url), people.reviewer)
    return record_decision(case, people.reviewer, event, kind, None, reason)


@pytest.mark.parametrize(("event", "kind", "event_type", "status"), [
    ("rejected", "reject", "case.decided", S.REJECTED),
    ("info_requested", "request_info", "case.needs_info", S.NEEDS_INFO),
])
def test_decisions_other_than_approval_are_notified_signed(upstream, people, receiver, redis_conn, event, kind,
                                                           event_type, status):
    decision = _decided(upstream, people, receiver.url, event, kind, "Please send the signed invoice.")
    version = reload(decision.case_id).version
    assert enqueue(notice_work(decision.case_id, event_type, decision.id))
    work(redis_conn)
    [delivery] = receiver.deliveries
    assert delivery.status == 200  # the receiver verified the signature with the client's secret
    assert delivery.webhook_id == f"notify_{decision.case_id}_{decision.id}"
    document = delivery.document
    assert document["type"] == event_type and document["case"]["status"] == status
    assert document["decision"]["kind"] == kind and document["decision"]["decided_by"] == people.reviewer.email
    assert document["decision"]["reason"] == "Please send the signed invoice."
    assert ("question" in document) == (event_type == "case.needs_info")
    case = reload(decision.case_id)
    assert (case.status, case.version) == (status, version)  # notifications never change the case
    [notified] = events(case.id, "upstream.notified")
    assert notified.data["webhook_id"] == delivery.webhook_id and notified.data["status_code"] == 200
    assert notify_upstream(case.id, event_type, decision.id) == "skipped"  # delivered already: not twice


def test_a_failed_notification_is_retried_on_the_schedule_with_the_same_webhook_id(upstream, people, receiver,
                                                                                    clock, redis_conn):
    receiver.fail = 1
    decision = _decided(upstream, people, receiver.url, "rejected", "reject", "Counterparty is sanctioned.")
    assert notify_upstream(decision.case_id, "case.decided", decision.id) == "retrying"
    [failed] = events(decision.case_id, "upstream.notify_failed")
    retry_at = clock.now + timedelta(seconds=60)
    assert failed.data["next_attempt_at"] == retry_at.isoformat() and failed.data["gave_up"] is False
    registry = ScheduledJobRegistry("execute", connection=redis_conn)
    assert registry.get_scheduled_time(f"notify-{decision.id}-2") == retry_at
    assert notify_upstream(decision.case_id, "case.decided", decision.id, 2) == "delivered"
    assert [d.status for d in receiver.deliveries] == [500, 200]
    assert len({d.webhook_id for d in receiver.deliveries}) == 1 and len(receiver.processed) == 1
    assert reload(decision.case_id).status == S.REJECTED


def test_a_notification_rejected_with_a_client_error_gives_up_at_once(upstream, people, receiver):
    receiver.status = 400
    decision = _decided(upstream, people, receiver.url, "rejected", "reject", "No.")
    assert notify_upstream(decision.case_id, "case.decided", decision.id) == "failed"
    [failed] = events(decision.case_id, "upstream.notify_failed")
    assert failed.data["gave_up"] is True and failed.data["next_attempt_at"] is None


def test_a_notification_for_the_wrong_kind_of_decision_is_a_programming_error(upstream, people):
    decision = _decided(upstream, people, None, "rejected", "reject", "No.")
    with pytest.raises(ValueError, match=r"no 'case\.needs_info' notification"):
        notify_upstream(decision.case_id, "case.needs_info", decision.id)


def test_a_notification_without_a_callback_url_is_recorded_as_such(upstream, people):
    decision = _decided(upstream, people, None, "rejected", "reject", "No.")
    assert notify_upstream(decision.case_id, "case.decided", decision.id) == "delivered"
    [notified] = events(decision.case_id, "upstream.notified")
    assert notified.data["delivered"] == "no callback_url" and notified.data["url"] is None


# --- the outbox of upstream notifications -------------------------------------------------------------


def _rejected_through_review(upstream: Upstream, people: People, url: str | None) -> Decision:
    case = in_review(new_case(upstream, url), people.reviewer)
    case.assignee_id = people.reviewer.id
    db.session.commit()
    command = review.DecisionCommand(kind="reject", reason_code="other", reason="Counterparty is sanctioned.",
                                     case_version=case.version)
    decision = review.decide(db.session, people.reviewer, case.id, command, bind_by_version=True)
    db.session.commit()  # the notice's job is enqueued now
    return decision


def notice_of(decision: Decision) -> UpstreamNotice:
    db.session.expire_all()
    return db.session.scalars(select(UpstreamNotice).where(UpstreamNotice.decision_id == decision.id)).one()


def test_a_decision_writes_its_notice_in_its_own_transaction(upstream, people, receiver, clock, redis_conn):
    decision = _rejected_through_review(upstream, people, receiver.url)
    notice = notice_of(decision)
    assert (notice.status, notice.attempts, notice.event_type) == ("pending", 0, "case.decided")
    assert notice.webhook_id == f"notify_{decision.case_id}_{decision.id}"
    assert RQQueue("execute", connection=redis_conn).job_ids == [notice_work(decision.case_id, "case.decided",
                                                                             decision.id).job_id]
    work(redis_conn)
    notice = notice_of(decision)
    assert (notice.status, notice.attempts, notice.delivered_at) == ("delivered", 1, clock.now)
    assert len(receiver.processed) == 1


def test_the_notice_sweep_re_enqueues_a_notice_whose_job_redis_lost(upstream, people, receiver, clock, redis_conn):
    decision = _rejected_through_review(upstream, people, receiver.url)
    redis_conn.flushdb()  # Redis lost the job
    assert retry_due_notices() == 1
    assert retry_due_notices() == 1  # enqueued again is the same job: still one in the queue
    assert len(RQQueue("execute", connection=redis_conn).job_ids) == 1
    work(redis_conn)
    assert retry_due_notices() == 0
    work(redis_conn)
    assert notify_upstream(decision.case_id, "case.decided", decision.id) == "skipped"
    assert [d.status for d in receiver.deliveries] == [200]  # the receiver got it exactly once
    assert len(receiver.processed) == 1 and notice_of(decision).status == "delivered"
    assert len(events(decision.case_id, "upstream.notified")) == 1


def test_a_lost_retry_of_a_notice_is_sent_when_it_is_due(upstream, people, receiver, clock, redis_conn):
    receiver.fail = 1
    decision = _rejected_through_review(upstream, people, receiver.url)
    work(redis_conn)
    notice = notice_of(decision)
    assert (notice.status, notice.attempts, notice.next_attempt_at) == ("pending", 1,
                                                                        clock.now + timedelta(seconds=60))
    assert notice.last_error == "HTTP 500"
    redis_conn.flushdb()  # the scheduled retry is lost
    assert retry_due_notices() == 0  # not due yet
    clock.advance(seconds=60)
    assert retry_due_notices() == 1
    work(redis_conn)
    assert [d.status for d in receiver.deliveries] == [500, 200] and len(receiver.processed) == 1
    assert (notice_of(decision).status, notice_of(decision).attempts) == ("delivered", 2)


def test_a_notice_whose_worker_died_mid_attempt_is_taken_over_after_its_lease(upstream, people, receiver, clock,
                                                                              redis_conn):
    decision = _rejected_through_review(upstream, people, receiver.url)
    redis_conn.flushdb()
    assert upstream_notices.prepare_notification(db.session, decision.case_id, "case.decided", decision.id, 1)
    db.session.commit()  # claimed; then the worker dies
    assert notify_upstream(decision.case_id, "case.decided", decision.id, 1) == "skipped"  # that attempt is taken
    assert retry_due_notices() == 0  # its lease runs
    clock.advance(seconds=2 * 2 + 61)
    assert retry_due_notices() == 1
    work(redis_conn)
    assert receiver.deliveries[0].document["notification"]["attempt"] == 2
    assert notice_of(decision).status == "delivered" and len(receiver.processed) == 1


def test_a_notification_job_from_before_the_outbox_opens_its_row(upstream, people, receiver):
    decision = _decided(upstream, people, receiver.url, "rejected", "reject", "No.")  # no outbox row
    assert notify_upstream(decision.case_id, "case.decided", decision.id, 3) == "delivered"
    assert (notice_of(decision).status, notice_of(decision).attempts) == ("delivered", 3)


def test_the_scheduler_runs_the_notice_sweep():
    from workers.scheduler import PERIODIC_JOBS

    assert (retry_due_notices, "execute", "SWEEP_INTERVAL_SECONDS") in PERIODIC_JOBS


# --- the undo window: an approval waits REVIEW_UNDO_SECONDS before anything is executed ----------------


def approved_through_the_review_service(upstream: Upstream, people: People, callback_url: str) -> Decision:
    case = in_review(new_case(upstream, callback_url), people.reviewer)
    case.assignee_id = people.reviewer.id  # claimed through the lifecycle alone: made the assignee here
    db.session.commit()
    decision = review.decide(db.session, people.reviewer, case.id,
                             command(case, "edit", action="release", parameters={}))
    db.session.commit()
    return decision


def test_an_approval_undone_within_its_window_is_never_executed(app, upstream, people, receiver, redis_conn,
                                                                monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 10)
    decision = approved_through_the_review_service(upstream, people, receiver.url)
    case_id = decision.case_id
    job_id = f"execute-{case_id}-decision-{decision.id}"
    scheduled = ScheduledJobRegistry(queue=RQQueue(services.QUEUE, connection=redis_conn))
    assert job_id in scheduled.get_job_ids()  # enqueued for later, not now
    due = scheduled.get_scheduled_time(job_id)
    assert abs((due - decision.created_at).total_seconds() - 10) < 1
    assert execute_case(case_id) == "waiting"  # run early (a lost scheduler's catch-up): it waits
    assert services.due_for_execution(db.session, utcnow()) == []

    review.undo_approval(db.session, people.reviewer, case_id)
    db.session.commit()

    case = reload(case_id)
    assert (case.status, case.assignee_id) == (S.IN_REVIEW, people.reviewer.id)
    [undone] = events(case_id, "decision.undone")
    assert undone.actor == f"user:{people.reviewer.id}" and undone.data["decision_id"] == decision.id
    assert len(events(case_id, "case.approval_undone")) == 1
    assert execute_case(case_id) == "refused"  # the job, when its time comes: the case is in review again
    assert receiver.deliveries == [] and reload(case_id).status == S.IN_REVIEW
    assert db.session.scalars(select(Execution).where(Execution.case_id == case_id)).all() == []


def test_after_the_window_undo_is_refused_and_the_approval_executes_once(app, upstream, people, receiver,
                                                                         monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 1)
    decision = approved_through_the_review_service(upstream, people, receiver.url)
    time.sleep(1.1)
    with pytest.raises(Conflict, match="time to undo this approval is over"):
        review.undo_approval(db.session, people.reviewer, decision.case_id)
    db.session.rollback()
    assert events(decision.case_id, "decision.undone") == []
    assert execute_case(decision.case_id) == "delivered"
    assert execute_case(decision.case_id) == "skipped"
    assert len(receiver.deliveries) == 1 and reload(decision.case_id).status == S.EXECUTED


def test_the_sweep_leaves_an_approval_alone_until_its_window_closes(app, upstream, people, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 30)
    monkeypatch.setitem(app.config, "STUCK_CASE_SECONDS", 0)  # only the undo window holds it back
    decision = approved_through_the_review_service(upstream, people, receiver.url)
    assert services.due_for_execution(db.session, utcnow() + timedelta(seconds=20)) == []
    assert services.released_executions(db.session, None) == []
    assert services.due_for_execution(db.session, utcnow() + timedelta(seconds=31)) == [decision.case_id]


def test_only_the_approver_may_undo(app, upstream, people, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 10)
    decision = approved_through_the_review_service(upstream, people, receiver.url)
    with pytest.raises(Forbidden, match="only the reviewer who approved the case may undo"):
        review.undo_approval(db.session, people.senior, decision.case_id)
    db.session.rollback()
    assert reload(decision.case_id).status == S.APPROVED
