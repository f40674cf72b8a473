"""``POST /api/v1/cases/<id>/withdraw``: the upstream system takes its case back before it is
approved, signed and idempotent like intake. The case leaves the reviewers' inbox, any claim on
it ends, and the lifecycle audits the move."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.ai.jobs import analyze_case
from app.auth.services import create_api_token
from app.cases.models import Case, Queue, Status
from app.db import utcnow
from app.extensions import db
from app.intake.models import WebhookReceipt
from app.intake.schemas import CaseAccepted
from app.users import User
from tests.conftest import Upstream, assert_problem, make_upstream
from tests.execution_helpers import events, in_review, make_user, new_case, record_decision, reload

REASON = {"reason": "The customer cancelled the payment."}


@pytest.fixture
def reviewer(queues: dict[str, Queue]) -> User:
    user = make_user("reviewer", list(queues.values()))
    db.session.commit()
    return user


def claimed(upstream: Upstream, reviewer: User) -> Case:
    """A case in review, claimed by ``reviewer``."""
    case = in_review(new_case(upstream, None), reviewer)
    case.assignee_id, case.claim_expires_at = reviewer.id, utcnow() + timedelta(minutes=30)
    db.session.commit()
    return case


def post_withdraw(upstream: Upstream, case_id: int, body: dict[str, Any] | bytes, **options: Any) -> Any:
    return upstream.post_signed(f"/api/v1/cases/{case_id}/withdraw", body, **options)



def inbox_ids(http: FlaskClient, reviewer: User, status: str) -> list[int]:
    token = create_api_token(db.session, reviewer, "tests")[1]
    db.session.commit()
    answer = http.get(f"/api/v1/inbox?queue=finance&status={status}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_json()
    return [item["id"] for item in answer.get_json()["items"]]


def test_a_claimed_case_is_withdrawn_its_claim_ends_and_the_move_is_audited(client, upstream, reviewer):
    case = claimed(upstream, reviewer)
    version = case.version
    assert inbox_ids(client, reviewer, "open") == [case.id]

    response = post_withdraw(upstream, case.id, REASON, webhook_id="msg_withdraw_1")

    assert response.status_code == 202, response.get_json()
    url = f"http://localhost/api/v1/cases/{case.id}"
    assert CaseAccepted.model_validate(response.get_json()) == CaseAccepted(id=case.id, status="withdrawn", url=url)
    case = reload(case.id)
    assert (case.status, case.assignee_id, case.claim_expires_at, case.version) == (Status.WITHDRAWN, None, None,
                                                                                    version + 1)
    [withdrawn] = events(case.id, "case.withdrawn")
    assert withdrawn.actor == f"client:{upstream.id}"
    assert (withdrawn.data["from"], withdrawn.data["to"]) == ("in_review", "withdrawn")
    assert withdrawn.data["reason"] == REASON["reason"] and withdrawn.data["webhook_id"] == "msg_withdraw_1"
    assert withdrawn.data["assignee_id"] == reviewer.id
    assert upstream.get_case(case.id).get_json()["status"] == "withdrawn"
    assert inbox_ids(client, reviewer, "open") == []
    assert inbox_ids(client, reviewer, "withdrawn") == [case.id]


@pytest.mark.parametrize("status", ["received", "ai_failed", "needs_info", "awaiting_second_approval"])
def test_any_case_not_yet_approved_can_be_withdrawn(upstream, reviewer, status):
    case = new_case(upstream, None)
    if status == "ai_failed":  # back in the inbox
        in_review(case, reviewer)
        record_decision(case, reviewer, "released", "release", None)
    elif status == "needs_info":
        record_decision(in_review(case, reviewer), reviewer, "info_requested", "request_info", None, "Which invoice?")
    elif status == "awaiting_second_approval":
        record_decision(in_review(case, reviewer), reviewer, "first_approval", "approve")
    assert reload(case.id).status == status
    assert post_withdraw(upstream, case.id, REASON).status_code == 202
    assert reload(case.id).status == Status.WITHDRAWN


def test_a_withdrawn_case_is_not_analysed(upstream):
    case = new_case(upstream, None)
    assert post_withdraw(upstream, case.id, REASON).status_code == 202
    assert analyze_case(case.id) == "skipped"
    assert reload(case.id).status == Status.WITHDRAWN


def test_a_replayed_withdrawal_is_answered_again_without_a_second_effect(upstream, reviewer):
    case = claimed(upstream, reviewer)
    first = post_withdraw(upstream, case.id, REASON, webhook_id="msg_withdraw_2")
    version = reload(case.id).version
    again = post_withdraw(upstream, case.id, REASON, webhook_id="msg_withdraw_2")
    assert (again.status_code, again.get_json()) == (202, first.get_json())
    assert reload(case.id).version == version
    assert len(events(case.id, "case.withdrawn")) == 1
    assert db.session.query(WebhookReceipt).filter_by(webhook_id="msg_withdraw_2").count() == 1

    assert_problem(post_withdraw(upstream, case.id, {"reason": "changed"}, webhook_id="msg_withdraw_2"), 409,
            "idempotency-key-reused")
    body = assert_problem(post_withdraw(upstream, case.id, REASON), 409, "case-not-withdrawable")  # a new webhook-id
    assert body["detail"] == f"case {case.id} is withdrawn" and body["case_status"] == "withdrawn"


def test_another_clients_case_does_not_exist(client: FlaskClient, upstream, reviewer):
    case = claimed(upstream, reviewer)
    stranger = make_upstream(client, "contracts-system")
    assert_problem(post_withdraw(stranger, case.id, REASON), 404, "case-not-found")
    assert_problem(post_withdraw(upstream, case.id + 1000, REASON), 404, "case-not-found")
    assert reload(case.id).status == Status.IN_REVIEW


@pytest.mark.parametrize("event", ["approved", "rejected"])
def test_a_case_approved_or_decided_cannot_be_withdrawn(upstream, reviewer, event):
    case = claimed(upstream, reviewer)
    record_decision(case, reviewer, event, "edit" if event == "approved" else "reject",
                    reason=None if event == "approved" else "Not ours")
    version = reload(case.id).version
    body = assert_problem(post_withdraw(upstream, case.id, REASON), 409, "case-not-withdrawable")
    assert body["title"] == "The case can no longer be withdrawn"
    assert body["detail"] == f"case {case.id} is {event}: a case can be withdrawn only before it is approved"
    assert (reload(case.id).status, reload(case.id).version) == (event, version)
    assert events(case.id, "case.withdrawn") == []


@pytest.mark.parametrize(("raw", "status", "slug", "fields"), [
    (b"{}", 422, "validation-error", {"reason"}),
    (b'{"reason": "   "}', 422, "validation-error", {"reason"}),
    (json.dumps({"reason": "x" * 5001}).encode(), 422, "validation-error", {"reason"}),
    (b'{"reason": "Cancelled", "force": true}', 422, "validation-error", {"force"}),
    (b'["reason"]', 422, "validation-error", {""}),
    (b"{not json", 400, "malformed-json", None),
])
def test_a_malformed_withdrawal_is_refused(upstream, reviewer, raw, status, slug, fields):
    case = claimed(upstream, reviewer)
    body = assert_problem(post_withdraw(upstream, case.id, raw), status, slug)
    if fields is not None:
        assert {e["field"] for e in body["errors"]} == fields
    case = reload(case.id)
    assert (case.status, case.assignee_id) == (Status.IN_REVIEW, reviewer.id)
    assert db.session.query(WebhookReceipt).filter_by(case_id=case.id).count() == 1  # intake's only


def test_a_reason_of_5000_characters_is_accepted(upstream):
    case = new_case(upstream, None)
    assert post_withdraw(upstream, case.id, {"reason": "x" * 5000}).status_code == 202


def test_a_withdrawal_must_be_signed_by_the_client(upstream, reviewer):
    case = claimed(upstream, reviewer)
    assert_problem(post_withdraw(upstream, case.id, REASON, secret="whsec_" + "A" * 44), 401, "invalid-signature")
    raw = json.dumps(REASON).encode()
    unsigned = upstream.http.post(f"/api/v1/cases/{case.id}/withdraw", data=raw,
                                  headers={"Content-Type": "application/json", **upstream.sign(raw)})
    assert_problem(unsigned, 401, "unauthenticated")
    tokenless = upstream.http.post(f"/api/v1/cases/{case.id}/withdraw", data=raw,
                                   headers={"Authorization": f"Bearer {upstream.token}",
                                            "Content-Type": "application/json"})
    assert_problem(tokenless, 401, "invalid-signature")
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW
