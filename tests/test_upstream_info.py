"""``POST /api/v1/cases/<id>/info``: the upstream system answers a request for information,
signed and idempotent like intake; the merged data is validated, the SLA pause ends and the
case goes back to analysis."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue as RQQueue

from app.ai.jobs import analyze_case
from app.cases.models import Case, Queue, Status
from app.db import utcnow
from app.escalation import sla
from app.extensions import db
from app.intake.models import WebhookReceipt
from app.users import User
from tests.conftest import Upstream, assert_problem, make_upstream
from tests.escalation_helpers import add_rule
from tests.execution_helpers import events, in_review, make_user, new_case, record_decision, reload

QUESTION = "Which invoice does this payment settle?"
ANSWER = {"data": {"purpose": "Invoice INV-2026-0931 and INV-2026-0932: road freight, October 2026",
                   "amount": "52000.00"},
          "note": "Two invoices, paid together."}


@pytest.fixture
def reviewer(queues: dict[str, Queue]) -> User:
    user = make_user("reviewer", list(queues.values()))
    db.session.commit()
    return user


def needs_info_case(upstream: Upstream, reviewer: User, *, paused_for: timedelta = timedelta(minutes=10)) -> Case:
    case = in_review(new_case(upstream, None), reviewer)
    case.sla_paused_at = utcnow() - paused_for  # as the reviewer's request for information did
    record_decision(case, reviewer, "info_requested", "request_info", None, QUESTION)
    return reload(case.id)


def post_info(upstream: Upstream, case_id: int, body: dict[str, Any] | bytes, **options: Any) -> Any:
    return upstream.post_signed(f"/api/v1/cases/{case_id}/info", body, **options)


def test_an_answer_merges_the_data_ends_the_sla_pause_and_sends_the_case_back_to_analysis(
        upstream, reviewer, redis_conn: Redis):
    case = needs_info_case(upstream, reviewer)
    due_before, payload_before = case.sla_due_at, dict(case.payload)

    response = post_info(upstream, case.id, ANSWER, webhook_id="msg_answer_1")

    assert response.status_code == 202, response.get_json()
    url = f"http://localhost/api/v1/cases/{case.id}"
    assert response.get_json() == {"id": case.id, "status": "analyzing", "url": url}
    assert response.headers["Location"] == url
    case = reload(case.id)
    assert case.status == Status.ANALYZING
    assert case.payload == {**payload_before, **ANSWER["data"]}
    assert (case.amount, case.currency) == (Decimal("52000.00"), "EUR")
    assert case.sla_paused_at is None
    assert timedelta(minutes=10) <= case.sla_due_at - due_before < timedelta(minutes=11)
    assert case.sla_next_at == sla.next_step_at(case) is not None  # the steps run again with the clock
    [received] = events(case.id, "case.info_received")
    assert received.actor == f"client:{upstream.id}"
    assert received.data["fields"] == ["amount", "purpose"] and received.data["note"] == ANSWER["note"]
    assert received.data["webhook_id"] == "msg_answer_1" and received.data["sla_paused_seconds"] >= 600
    intake_job = f"analyze-{case.id}-1"
    assert RQQueue("ai", connection=redis_conn).job_ids == [intake_job, f"analyze-{case.id}-{case.version}"]


def test_an_answer_reopens_the_case_and_rules_on_reopened_cases_fire_on_its_new_recommendation(upstream, reviewer):
    add_rule("reopened", {"reopen_count_gte": 1}, [{"set_priority": {"priority": "urgent"}}])
    case = needs_info_case(upstream, reviewer)
    assert case.reopen_count == 0
    assert post_info(upstream, case.id, ANSWER).status_code == 202
    assert reload(case.id).reopen_count == 1
    assert analyze_case(case.id) == "stored"
    case = reload(case.id)
    assert (case.status, case.priority_label) == (Status.PENDING_REVIEW, "urgent")
    [fired] = events(case.id, "rule.fired")
    assert (fired.data["rule"], fired.data["trigger"]) == ("reopened", "recommendation")


def test_a_replayed_answer_is_answered_again_without_a_second_effect(upstream, reviewer, redis_conn):
    case = needs_info_case(upstream, reviewer)
    first = post_info(upstream, case.id, ANSWER, webhook_id="msg_answer_2")
    version = reload(case.id).version
    again = post_info(upstream, case.id, ANSWER, webhook_id="msg_answer_2")
    assert (again.status_code, again.get_json()) == (202, first.get_json())
    assert reload(case.id).version == version
    assert len(events(case.id, "case.info_received")) == 1
    assert db.session.query(WebhookReceipt).filter_by(webhook_id="msg_answer_2").count() == 1
    assert RQQueue("ai", connection=redis_conn).job_ids == [f"analyze-{case.id}-1", f"analyze-{case.id}-{version}"]

    other_body = {**ANSWER, "note": "changed"}
    assert_problem(post_info(upstream, case.id, other_body, webhook_id="msg_answer_2"), 409, "idempotency-key-reused")


def test_an_answer_for_a_case_not_waiting_for_information_is_409(upstream, reviewer):
    case = in_review(new_case(upstream, None), reviewer)
    version = case.version
    body = assert_problem(post_info(upstream, case.id, ANSWER), 409, "case-not-waiting-for-info")
    assert "is in_review" in body["detail"]
    assert (reload(case.id).status, reload(case.id).version) == (Status.IN_REVIEW, version)


def test_another_clients_case_does_not_exist(client: FlaskClient, upstream, reviewer):
    case = needs_info_case(upstream, reviewer)
    stranger = make_upstream(client, "contracts-system")
    assert_problem(post_info(stranger, case.id, ANSWER), 404, "case-not-found")
    assert_problem(post_info(upstream, case.id + 1000, ANSWER), 404, "case-not-found")
    assert reload(case.id).status == Status.NEEDS_INFO


def test_merged_data_that_breaks_the_case_type_schema_is_422_with_every_invalid_field(upstream, reviewer):
    case = needs_info_case(upstream, reviewer)
    answer = {"data": {"amount": "-5", "currency": "euro", "unknown_field": 1}, "note": "x" * 5001}
    body = assert_problem(post_info(upstream, case.id, answer), 422, "validation-error")
    assert {e["field"] for e in body["errors"]} == {"note", "data.amount", "data.currency", "data.unknown_field"}
    case = reload(case.id)
    assert case.status == Status.NEEDS_INFO and case.payload["currency"] == "EUR"


@pytest.mark.parametrize(("raw", "status", "slug"), [
    (b"{not json", 400, "malformed-json"),
    (b'["data"]', 422, "validation-error"),
    (b'{"data": "more text", "extra": 1}', 422, "validation-error"),
])
def test_a_malformed_answer_is_refused(upstream, reviewer, raw, status, slug):
    case = needs_info_case(upstream, reviewer)
    assert_problem(post_info(upstream, case.id, raw), status, slug)
    assert reload(case.id).status == Status.NEEDS_INFO


def test_an_answer_must_be_signed_by_the_client(upstream, reviewer):
    case = needs_info_case(upstream, reviewer)
    assert_problem(post_info(upstream, case.id, ANSWER, secret="whsec_" + "A" * 44), 401, "invalid-signature")
    raw = json.dumps(ANSWER).encode()
    unsigned = upstream.http.post(f"/api/v1/cases/{case.id}/info", data=raw,
                                  headers={"Content-Type": "application/json", **upstream.sign(raw)})
    assert_problem(unsigned, 401, "unauthenticated")
    assert reload(case.id).status == Status.NEEDS_INFO
