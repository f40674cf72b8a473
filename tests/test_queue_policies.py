"""What a queue's own settings do to deciding: the role it requires (web UI, reviewer API and
services alike), its dual-approval threshold, and an archived queue's open cases."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from flask import g

from app.actors import Actor
from app.auth.services import create_api_token
from app.cases import policy
from app.cases.models import Case, Queue, Status
from app.cases.queues import archive_queue, update_queue
from app.errors import Conflict, Forbidden
from app.escalation import rules
from app.escalation import services as escalation
from app.extensions import db
from app.review import services
from tests.conftest import sign_in
from tests.review_helpers import claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]

ADMIN = Actor.system("test")


def seniors_only(queue: Queue) -> None:
    update_queue(db.session, queue, {"required_role": "senior_reviewer"}, ADMIN)
    db.session.commit()


def csrf(http, path: str) -> str:
    g.pop("csrf_token", None)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', http.get(path).get_data(as_text=True)).group(1)


# --- the required role -------------------------------------------------------------------------------------


def test_a_seniors_only_queue_refuses_a_reviewer_in_the_services(upstream, people, queues):
    case = make_case(upstream)
    seniors_only(queues["finance"])
    with pytest.raises(Forbidden, match="queue 'finance' requires the role senior_reviewer to claim its cases"):
        services.claim(db.session, people.reviewer, case.id)
    with pytest.raises(Forbidden, match="requires the role senior_reviewer to claim"):
        services.claim_next(db.session, people.reviewer, queues["finance"].id)
    db.session.rollback()
    assert db.session.get(Case, case.id).assignee_id is None
    assert claim(people.senior, case).assignee_id == people.senior.id
    assert [u.email for u in services.assignees(db.session, case)] == ["senior@example.com", "senior2@example.com"]


def test_a_reviewer_who_claimed_before_the_change_can_no_longer_decide(upstream, people, queues):
    case = claim(people.reviewer, make_case(upstream))
    seniors_only(queues["finance"])
    with pytest.raises(Forbidden, match="requires the role senior_reviewer to decide"):
        decide(people.reviewer, case, "reject")
    db.session.rollback()
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW


def test_the_web_ui_and_the_reviewer_api_refuse_a_reviewer_too(client, upstream, people, queues):
    case = make_case(upstream)
    seniors_only(queues["finance"])
    sign_in(client, people.reviewer)
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert f'action="/cases/{case.id}/claim"' not in page  # no claim button for them
    assert 'action="/queues/finance/next"' not in client.get("/queues/finance").get_data(as_text=True)
    response = client.post(f"/cases/{case.id}/claim", data={"csrf_token": csrf(client, "/settings/tokens")})
    assert response.status_code == 403
    token = create_api_token(db.session, people.reviewer, "test")[1]
    db.session.commit()
    answer = client.post(f"/api/v1/cases/{case.id}/claim", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert answer.get_json()["detail"] == "queue 'finance' requires the role senior_reviewer to claim its cases"
    db.session.expire_all()
    assert db.session.get(Case, case.id).assignee_id is None

    sign_in(client, people.senior)  # the same pages offer a senior reviewer what they refused the reviewer
    assert f'action="/cases/{case.id}/claim"' in client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'action="/queues/finance/next"' in client.get("/queues/finance").get_data(as_text=True)
    senior_token = create_api_token(db.session, people.senior, "test")[1]
    db.session.commit()
    assert client.post(f"/api/v1/cases/{case.id}/claim",
                       headers={"Authorization": f"Bearer {senior_token}"}).status_code == 200


# --- the dual-approval threshold --------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "needed"), [
    (None, (False, None)),  # the example payment (EUR 48,250) is below the global EUR 100,000
    (Decimal("48250.00"), (True, "senior_reviewer")),  # at the queue's own threshold
    (Decimal(40000), (True, "senior_reviewer")),
    (Decimal("48250.01"), (False, None)),
])
def test_the_queues_threshold_replaces_the_global_one(upstream, people, queues, threshold, needed):
    case = make_case(upstream)
    update_queue(db.session, queues["finance"], {"dual_approval_threshold": threshold}, ADMIN)
    db.session.commit()
    assert policy.dual_approval_required(case, "release", {}) == needed


def test_a_high_queue_threshold_lifts_the_global_one(upstream, people, queues, app):
    case = make_case(upstream)
    app.config["DUAL_APPROVAL_THRESHOLDS"] = {"default": Decimal(1000)}
    assert policy.dual_approval_required(case, "release", {}) == (True, "senior_reviewer")
    update_queue(db.session, queues["finance"], {"dual_approval_threshold": "1000000"}, ADMIN)
    db.session.commit()
    assert policy.dual_approval_required(case, "release", {}) == (False, None)


def test_an_approval_at_the_queues_threshold_waits_for_a_second_one(upstream, people, queues):
    update_queue(db.session, queues["finance"], {"dual_approval_threshold": "10000"}, ADMIN)
    db.session.commit()
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "approve")
    assert db.session.get(Case, case.id).status == Status.AWAITING_SECOND_APPROVAL


# --- archive ----------------------------------------------------------------------------------------------


def test_the_open_cases_of_an_archived_queue_stay_workable(upstream, people, queues, senior_queue):
    case = make_case(upstream)
    case.queue = senior_queue
    senior_queue.members.append(people.senior)
    with pytest.raises(Conflict, match="queue 'finance-senior' cannot be archived while finance escalate"):
        archive_queue(db.session, senior_queue, ADMIN)
    update_queue(db.session, queues["finance"], {"escalation_target": None}, ADMIN)
    archive_queue(db.session, senior_queue, ADMIN)
    db.session.commit()
    claimed = claim(people.senior, case)
    decide(people.senior, claimed, "reject")
    assert db.session.get(Case, case.id).status == Status.REJECTED


def test_an_escalation_rule_does_not_route_into_an_archived_queue(upstream, people, queues, senior_queue):
    update_queue(db.session, queues["finance"], {"escalation_target": None}, ADMIN)
    archive_queue(db.session, senior_queue, ADMIN)
    document = {"name": "to-senior", "conditions": {"domain": "finance"},
                "actions": [{"route_to_queue": {"queue": "finance-senior"}}]}
    escalation.create_rule(db.session, rules.validate(document, escalation.catalog(db.session)), escalation.RULES_ACTOR)
    db.session.commit()
    case = make_case(upstream)
    assert db.session.get(Case, case.id).queue.name == "finance"
