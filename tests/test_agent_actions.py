# ruff: noqa: F811  (the imported pytest fixtures are redefined as test arguments)
"""AI agents' tool calls (agent_action): tool policies, schema-checked edits, the respond
decision, expiry (also racing an approval) and waiting for a decision."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.attributes import set_committed_value

from app.actors import Actor
from app.agents import tools
from app.agents.models import AgentTool
from app.audit.models import AuditEvent
from app.cases.models import Case, Decision, Status
from app.cases.types import get_case_type
from app.cases.types.agent_action.analyzer import analyze_with
from app.cases.types.agent_action.tool_policy import policy_for
from app.db import utcnow
from app.errors import Invalid
from app.execution import expiry, services
from app.execution.jobs import execute_case, expire_due_calls, notify_upstream
from app.execution.models import UpstreamNotice
from app.extensions import db
from tests.conftest import assert_problem
from tests.review_helpers import EXAMPLES, People, claim, decide, make_case
from tests.test_review_api import api, tokens  # noqa: F401 (fixtures)

pytest_plugins = ["tests.review_fixtures"]

REFUND = EXAMPLES["agent_action"]
CALL = ("execute", dict(REFUND["tool"]["arguments"]))
POLICY_YAML = """
- name: issue_refund
  queue: finance-agents
  two_approvals: false
  arguments:
    amount: {max: 100}
    notify_email: {allowed_domains: [example.com]}
- name: delete_account
  two_approvals: true
  arguments:
    reason_code: {allowed_values: [gdpr_request]}
"""


def bearer(upstream) -> dict[str, str]:
    return {"Authorization": f"Bearer {upstream.token}"}


@pytest.fixture
def config_overrides() -> dict[str, object]:
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 2.0}


def agent_case(upstream, *, recommendation=CALL, callback_url=None, **data) -> Case:
    body = {"callback_url": callback_url} if callback_url else {}
    return make_case(upstream, "agent_action", recommendation=recommendation, data=data, domain="finance", **body)


@pytest.fixture
def policies(queues):
    from app.cases.models import Queue

    db.session.add(Queue(name="finance-agents", domain="finance", sla_minutes=60))
    db.session.commit()
    outcomes = tools.load(db.session, tools.parse_yaml(POLICY_YAML), Actor.system("test"))
    db.session.commit()
    return outcomes


# --- the policy table --------------------------------------------------------------------------------------


def test_loading_policies_stores_them_audited_and_export_gives_the_same_back(policies):
    assert policies == {"issue_refund": "created", "delete_account": "created"}
    refund = db.session.scalar(select(AgentTool).where(AgentTool.name == "issue_refund"))
    assert refund.queue.name == "finance-agents"
    assert refund.arguments == {"amount": {"max": "100"}, "notify_email": {"allowed_domains": ["example.com"]}}
    by_name = sorted(tools.parse_yaml(POLICY_YAML), key=lambda spec: spec.name)
    assert tools.parse_yaml(tools.export_yaml(db.session)) == by_name
    again = tools.load(db.session, tools.parse_yaml(POLICY_YAML.replace("max: 100", "max: 250")), Actor.system("t"))
    db.session.commit()
    assert again == {"issue_refund": "updated", "delete_account": "unchanged"}
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "agent_tool.updated")).one()
    assert event.data["changes"] == {"arguments": [
        {"amount": {"max": "100"}, "notify_email": {"allowed_domains": ["example.com"]}},
        {"amount": {"max": "250"}, "notify_email": {"allowed_domains": ["example.com"]}}]}


@pytest.mark.parametrize(("document", "field"), [
    ("- name: issue_refund\n  arguments: {amount: {max: -5}}", "[0].arguments.amount.max"),
    ("- name: issue_refund\n  arguments: {amount: {}}", "[0].arguments"),
    ("- name: 9tool", "[0].name"),
    ("- name: a\n- name: a", "a"),
    ("name: a", "document"),
    ("- name: a\n  colour: red", "[0].colour"),
])
def test_a_bad_policy_document_is_refused_whole(app, document, field):
    with pytest.raises(Invalid) as raised:
        tools.parse_yaml(document)
    assert field in raised.value.by_field
    assert db.session.scalar(select(func.count(AgentTool.id))) == 0


def test_a_policy_naming_a_missing_queue_loads_nothing(queues):
    with pytest.raises(Invalid):
        tools.load(db.session, tools.parse_yaml("- name: t\n  queue: nowhere\n- name: u"), Actor.system("t"))
    db.session.rollback()
    assert db.session.scalar(select(func.count(AgentTool.id))) == 0


def test_the_analyzer_approves_clamps_or_rejects_by_the_stored_policy(policies):
    case_type = get_case_type("finance", "agent_action")
    data = case_type.validate_data(REFUND)
    clamped = case_type.analyze(data)  # the installed lookup reads the table
    assert (clamped.action, clamped.parameters["amount"]) == ("execute", 100)
    assert clamped.rationale.startswith("Edit:")
    within = case_type.validate_data({**REFUND, "tool": {**REFUND["tool"], "arguments": {
        **REFUND["tool"]["arguments"], "amount": 40}}})
    assert (case_type.analyze(within).action, case_type.analyze(within).parameters["amount"]) == ("execute", 40)
    outside = case_type.validate_data({**REFUND, "tool": {**REFUND["tool"], "arguments": {
        **REFUND["tool"]["arguments"], "notify_email": "x@attacker.test"}}})
    refused = case_type.analyze(outside)
    assert refused.action == "refuse"
    assert "x@attacker.test" in refused.parameters["reason"]
    assert analyze_with(data, None).action == "execute" and "no_tool_policy" in analyze_with(data, None).risk_flags
    assert policy_for("no_such_tool") is None


def test_intake_routes_by_the_policy_and_flags_two_approvals(upstream, policies):
    refund = agent_case(upstream)
    assert (refund.queue.name, refund.requires_dual_approval) == ("finance-agents", False)
    deletion = agent_case(upstream, tool={
        "name": "delete_account", "description": "Delete a customer account.",
        "arguments": {"account": "A-1", "reason_code": "gdpr_request"},
        "arguments_schema": {"type": "object", "properties": {"account": {"type": "string"},
                                                             "reason_code": {"type": "string"}}}})
    assert (deletion.queue.name, deletion.requires_dual_approval) == ("finance", True)
    assert refund.expires_at is not None and refund.expires_at.year == 2031


@pytest.mark.parametrize(("tool", "message"), [
    ({"arguments_schema": {"type": "object", "properties": {"amount": {"type": "nonsense"}}}},
     "not a valid JSON Schema"),
    ({"arguments_schema": {"type": "array"}}, "must describe an object"),
    ({"arguments": {"order_id": "ORD-1", "amount": "lots", "currency": "EUR"}}, "is not of type 'number'"),
])
def test_intake_refuses_a_bad_schema_or_arguments_outside_it(upstream, tool, message):
    from tests.conftest import case_body

    body = case_body("agent_action", domain="finance",
                     data={**REFUND, "tool": {**REFUND["tool"], **tool}})
    problem = assert_problem(upstream.post_case(body), 422, "validation-error")
    assert message in str(problem)
    assert db.session.scalar(select(func.count(Case.id))) == 0


# --- schema-checked edits -----------------------------------------------------------------------------------


def test_an_edit_outside_the_tools_schema_is_422_and_stores_nothing(api, upstream, people: People):
    case = agent_case(upstream)
    claim(people.reviewer, case)
    bad = {**CALL[1], "amount": -3, "currency": "JPY"}
    response = api.decide(people.reviewer, case, "edit", action="execute", parameters=bad,
                          reason_code="policy_breach", reason="Refund less.")
    problem = assert_problem(response, 422, "invalid")
    fields = {error["field"] for error in problem["errors"]}
    assert {"parameters.amount", "parameters.currency"} <= fields
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Decision.id))) == 0
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW


def test_a_valid_edit_is_approved_with_its_diff(upstream, people: People):
    case = agent_case(upstream)
    claim(people.reviewer, case)
    decision = decide(people.reviewer, case, "edit", action="execute", parameters={**CALL[1], "amount": 90})
    assert decision.diff == {"parameters": {"amount": [180.0, 90]}}
    assert db.session.get(Case, case.id).status == Status.APPROVED


# --- respond ------------------------------------------------------------------------------------------------


def test_respond_answers_the_agent_and_runs_nothing(upstream, people: People, receiver):
    case = agent_case(upstream, callback_url=receiver.url + "/hooks")
    claim(people.reviewer, case)
    decision = decide(people.reviewer, case, "respond", reason="Refund only the tank: 35 EUR, see the price list.")
    assert (decision.kind, decision.action) == ("respond", None)
    assert db.session.get(Case, case.id).status == Status.RESPONDED
    assert execute_case(case.id) == "refused"
    assert notify_upstream(case.id, "case.decided", decision.id) == "delivered"
    [delivery] = receiver.attempts_of(f"notify_{case.id}_{decision.id}")
    assert delivery.document["answer"] == "Refund only the tank: 35 EUR, see the price list."
    assert delivery.document["case"]["status"] == "responded"
    document = upstream.get_case(case.id).get_json()
    assert document["status"] == "responded"
    assert document["answer"] == "Refund only the tank: 35 EUR, see the price list."


def test_respond_needs_an_answer_and_an_agent_case(upstream, people: People):
    case = agent_case(upstream)
    claim(people.reviewer, case)
    with pytest.raises(Invalid, match="answer"):
        decide(people.reviewer, case, "respond", reason="  ")
    db.session.rollback()
    payment = make_case(upstream)
    claim(people.reviewer, payment)
    with pytest.raises(Invalid, match="cannot be answered"):
        decide(people.reviewer, payment, "respond", reason="Hello")


# --- expiry ----------------------------------------------------------------------------------------------


def test_the_sweep_expires_due_calls_tells_the_agent_and_they_never_run(upstream, people: People, receiver):
    due = agent_case(upstream, expires_at=(utcnow() + timedelta(minutes=5)).isoformat(),
                     callback_url=receiver.url + "/hooks")
    later = agent_case(upstream)
    claim(people.reviewer, due)
    services.clock = lambda: utcnow() + timedelta(minutes=6)
    try:
        assert expire_due_calls() == 1
    finally:
        services.clock = utcnow
    db.session.expire_all()
    assert db.session.get(Case, due.id).status == Status.EXPIRED
    assert db.session.get(Case, due.id).assignee_id is None
    assert db.session.get(Case, later.id).status == Status.PENDING_REVIEW
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == due.id,
                                                        AuditEvent.action == "case.expired")).one()
    assert event.actor == "system:expiry"
    assert notify_upstream(due.id, "case.expired", None) == "delivered"
    [delivery] = receiver.attempts_of(f"notify_{due.id}_expired")
    assert delivery.document["type"] == "case.expired"
    assert execute_case(due.id) == "refused"


def test_an_approval_that_races_the_expiry_is_never_executed(upstream, people: People):
    soon = utcnow() + timedelta(seconds=2)
    case = agent_case(upstream, expires_at=soon.isoformat())
    claim(people.reviewer, case)
    decide(people.reviewer, case, "approve")  # approved just before the deadline …
    assert db.session.get(Case, case.id).status == Status.APPROVED
    services.clock = lambda: soon + timedelta(milliseconds=1)  # … and the executor runs just after it
    try:
        assert execute_case(case.id) == "expired"
        assert expire_due_calls() == 0  # already expired: nothing left for the sweep
    finally:
        services.clock = utcnow
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.EXPIRED
    notices = select(func.count()).select_from(UpstreamNotice).where(UpstreamNotice.case_id == case.id,
                                                                      UpstreamNotice.event_type == "case.expired")
    assert db.session.scalar(notices) == 1
    assert execute_case(case.id) == "refused"


def test_a_call_changed_while_the_sweep_runs_is_left_to_the_next_sweep(upstream):
    case = agent_case(upstream, expires_at=(utcnow() - timedelta(minutes=1)).isoformat())
    loaded = db.session.get(Case, case.id)
    set_committed_value(loaded, "version", loaded.version - 1)  # another writer moved it since this copy was read
    assert expiry.expire_due(db.session) == []
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.PENDING_REVIEW
    assert [notice.case_id for notice in expiry.expire_due(db.session)] == [case.id]
    db.session.commit()
    assert db.session.get(Case, case.id).status == Status.EXPIRED


def test_a_decision_after_the_expiry_is_refused(api, upstream, people: People):
    case = agent_case(upstream, expires_at=(utcnow() + timedelta(minutes=5)).isoformat())
    claim(people.reviewer, case)
    version = db.session.get(Case, case.id).version
    services.clock = lambda: utcnow() + timedelta(minutes=6)
    try:
        assert expire_due_calls() == 1
    finally:
        services.clock = utcnow
    response = api.post(people.reviewer, f"/cases/{case.id}/decisions", {"kind": "approve", "case_version": version})
    assert response.status_code == 409
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.EXPIRED
    assert db.session.scalar(select(func.count(Decision.id))) == 0


def test_a_retry_after_the_expiry_delivers_nothing(upstream, people: People, receiver):
    soon = utcnow() + timedelta(minutes=2)
    case = agent_case(upstream, expires_at=soon.isoformat(), callback_url=receiver.url + "/hooks")
    claim(people.reviewer, case)
    decide(people.reviewer, case, "approve")
    receiver.fail = 1  # the first delivery, before the deadline, fails: a retry is due after a minute
    assert execute_case(case.id) == "retrying"
    services.clock = lambda: soon + timedelta(seconds=1)
    try:
        assert execute_case(case.id) == "refused"
    finally:
        services.clock = utcnow
    assert len(receiver.deliveries) == 1 and not receiver.processed
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.EXECUTION_FAILED


# --- waiting ---------------------------------------------------------------------------------------------


def test_wait_answers_within_a_second_of_the_decision(app, upstream, people: People):
    case = agent_case(upstream)
    claim(people.reviewer, case)
    answered: dict[str, object] = {}

    url, headers = f"/api/v1/cases/{case.id}?wait=30", bearer(upstream)

    def wait() -> None:
        with app.test_client() as http:
            answered.update(body=http.get(url, headers=headers).get_json(), at=time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.5)
    assert not answered  # still waiting: the case is in review
    decided_at = time.monotonic()
    decide(people.reviewer, case, "approve")
    waiter.join(10)
    assert answered["body"]["status"] == "approved"
    assert answered["at"] - decided_at < 1.0
    # answered with the case as it stands after the decision: the same as reading it now
    read = upstream.http.get(f"/api/v1/cases/{case.id}", headers=headers).get_json()
    assert answered["body"] == read
    assert [(d["kind"], d["decided_by"]) for d in read["decisions"]] == [("approve", people.reviewer.email)]


def test_a_move_inside_a_savepoint_is_published_once_the_transaction_commits(upstream, redis_conn):
    """The expiry sweep moves each case inside a savepoint: a waiter woken at the savepoint's release
    would read the case as it was, and wait on for a message that never comes again."""
    case = agent_case(upstream)
    subscription = redis_conn.pubsub()
    subscription.subscribe(f"countersign:case-decided:{case.id}")
    assert subscription.get_message(timeout=5)["type"] == "subscribe"
    with db.session.begin_nested():
        expiry.expire(db.session, case)
    assert subscription.get_message(timeout=0.5) is None  # released, not committed
    db.session.commit()
    assert subscription.get_message(timeout=5)["data"] == b"decided"
    subscription.close()


def test_wait_ends_with_the_case_as_it_is_when_nobody_decides(upstream):
    case = agent_case(upstream)
    started = time.monotonic()
    response = upstream.http.get(f"/api/v1/cases/{case.id}?wait=1", headers=bearer(upstream))
    assert response.status_code == 200 and response.get_json()["status"] == "pending_review"
    assert 1.0 <= time.monotonic() - started < 3


@pytest.mark.parametrize("wait", ["61", "-1", "1.5", "abc", "", "٣"])
def test_a_bad_wait_is_a_422_problem(upstream, wait):
    case = agent_case(upstream)
    response = upstream.http.get(f"/api/v1/cases/{case.id}?wait={wait}", headers=bearer(upstream))
    assert_problem(response, 422, "invalid")


def test_a_decided_case_is_answered_at_once(upstream, people: People):
    case = agent_case(upstream)
    claim(people.reviewer, case)
    decide(people.reviewer, case, "reject", reason="No refunds without a photo.")
    started = time.monotonic()
    response = upstream.http.get(f"/api/v1/cases/{case.id}?wait=60", headers=bearer(upstream))
    assert response.get_json()["status"] == "rejected"
    assert time.monotonic() - started < 1
