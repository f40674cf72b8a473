"""The reviewer API: personal-token auth, inbox, claims, assignment and decisions, with problem details."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth.services import create_api_token, revoke_api_token
from app.cases import policy
from app.cases.models import Case, Status
from app.db import utcnow
from app.extensions import db
from app.notifications.models import InAppNotification
from app.review.schemas import CaseSummary
from app.users import ApiToken, User
from tests.conftest import assert_problem
from tests.review_helpers import PRECEDENTS, People, claim, decide, last_event, make_case

pytest_plugins = ["tests.review_fixtures"]

BIG_PAYMENT = {"amount": "150000.00"}


@pytest.fixture
def tokens(people: People) -> dict[int, str]:
    """A live personal token for every person, by user id."""
    made = {user.id: create_api_token(db.session, user, "tests")[1] for user in vars(people).values()}
    db.session.commit()
    return made


class Api:
    def __init__(self, http: FlaskClient, tokens: dict[int, str]) -> None:
        self.http, self.tokens = http, tokens

    def headers(self, user: User | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user.id]}"} if user is not None else {}

    def get(self, user: User | None, path: str):
        return self.http.get(f"/api/v1{path}", headers=self.headers(user))

    def post(self, user: User | None, path: str, body: dict | None = None):
        return self.http.post(f"/api/v1{path}", json=body, headers=self.headers(user))

    def decide(self, user: User, case: Case, kind: str = "approve", **fields):
        return self.post(user, f"/cases/{case.id}/decisions", {"kind": kind, "case_version": case.version, **fields})


@pytest.fixture
def api(client: FlaskClient, tokens: dict[int, str]) -> Api:
    return Api(client, tokens)



# --- authentication ----------------------------------------------------------------------------------


def test_requests_without_a_live_token_are_401(api, client, people, tokens):
    headers = [{}, {"Authorization": "Bearer cst_not-a-token"}, {"Authorization": "Bearer"},
               {"Authorization": f"Basic {tokens[people.reviewer.id]}"}]
    for sent in headers:
        response = client.get("/api/v1/inbox?queue=finance", headers=sent)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_and_inactive_user_are_401(api, people):
    token = db.session.query(ApiToken).filter_by(user_id=people.reviewer.id).one()
    assert api.get(people.reviewer, "/inbox?queue=finance").status_code == 200
    revoke_api_token(db.session, people.reviewer, token.id)
    db.session.commit()
    assert_problem(api.get(people.reviewer, "/inbox?queue=finance"), 401, "unauthorized")
    people.senior.active = False
    db.session.commit()
    assert_problem(api.get(people.senior, "/inbox?queue=finance"), 401, "unauthorized")


def test_token_use_is_noted(api, people):
    token = db.session.query(ApiToken).filter_by(user_id=people.reviewer.id).one()
    assert token.last_used_at is None
    api.get(people.reviewer, "/inbox?queue=finance")
    db.session.refresh(token)
    assert token.last_used_at > utcnow() - timedelta(minutes=1)


def test_the_upstream_case_api_is_not_shadowed(api, upstream, people):
    case = make_case(upstream)
    assert upstream.get_case(case.id).get_json()["id"] == case.id
    assert api.get(people.reviewer, f"/cases/{case.id}").status_code == 401  # clients' API, not reviewers'
    assert api.get(people.reviewer, f"/cases/{case.id}/claim").status_code == 405


# --- inbox ---------------------------------------------------------------------------------------------


def test_inbox_pages_through_a_queue(api, upstream, people):
    urgent = make_case(upstream, priority="urgent")
    others = [make_case(upstream) for _ in range(4)]
    first = api.get(people.reviewer, "/inbox?queue=finance&per_page=2").get_json()
    assert (first["queue"], first["page"], first["per_page"], first["total"]) == ("finance", 1, 2, 5)
    item = first["items"][0]
    assert item == {
        "id": urgent.id, "external_id": urgent.external_id, "case_type": "payment_release", "title": urgent.title,
        "status": "pending_review", "priority": "urgent", "sla_due_at": urgent.sla_due_at.isoformat(),
        "assignee": None, "amount": "48250.0000", "currency": "EUR", "confidence": 0.8, "flags": ["new_beneficiary"],
    }
    third = api.get(people.reviewer, "/inbox?queue=finance&per_page=2&page=3").get_json()
    assert [i["id"] for i in third["items"]] == [others[-1].id]
    assert third["total"] == 5


def test_inbox_filters_by_status_and_caps_per_page(api, upstream, people):
    claimed = claim(people.reviewer, make_case(upstream))
    make_case(upstream)
    answer = api.get(people.reviewer, "/inbox?queue=finance&status=in_review&per_page=500").get_json()
    assert [i["id"] for i in answer["items"]] == [claimed.id]
    assert answer["items"][0]["assignee"] == "Reviewer"
    assert answer["per_page"] == 100


@pytest.mark.parametrize(("query", "status", "field"), [
    ("queue=finance&status=bogus", 422, "status"),
    ("queue=finance&page=abc", 422, "page"),
    ("queue=finance&per_page=-1", 422, "per_page"),
    ("queue=finance&page=99999999999999999999999", 422, "page"),
    ("queue=finance&page=%C2%B2", 422, "page"),  # a superscript two: a digit to str.isdigit, not a number
    ("queue=finance&page=0", 422, "page"),
    ("queue=finance&page=%D9%A1", 422, "page"),  # an Arabic-Indic one
    ("queue=fin%00ance", 400, None),
])
def test_inbox_arguments_are_validated(api, people, query, status, field):
    body = assert_problem(api.get(people.reviewer, f"/inbox?{query}"), status, "invalid" if field else "nul-character")
    assert [e["field"] for e in body.get("errors", [])][:1] == ([field] if field else [])


@pytest.mark.parametrize(("raw", "status", "slug"), [
    (b'{"kind": "approve", "case_version": 1, "reason": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400,
     "malformed-json"),
    (b'{"kind": "reject", "case_version": 1, "reason_code": "other", "reason": "no\\u0000"}', 422,
     "validation-error"),
])
def test_hostile_decision_bodies_are_refused_and_change_nothing(api, upstream, people, raw, status, slug):
    case = claim(people.reviewer, make_case(upstream))
    version = case.version
    answer = api.http.post(f"/api/v1/cases/{case.id}/decisions", data=raw, headers={
        **api.headers(people.reviewer), "Content-Type": "application/json"})
    assert_problem(answer, status, slug)
    db.session.expire_all()
    assert db.session.get(Case, case.id).version == version


@pytest.mark.parametrize("query", ["queue=nowhere", "", "queue=finance-senior"])
def test_unknown_or_invisible_queue_is_404(api, people, query):
    assert_problem(api.get(people.reviewer, f"/inbox?{query}"), 404, "not-found")


def test_outsider_cannot_see_another_queue(api, people):
    assert_problem(api.get(people.outsider, "/inbox?queue=finance"), 404, "not-found")
    assert api.get(people.outsider, "/inbox?queue=legal").status_code == 200


def test_inbox_of_a_blind_queue_hides_the_ai_view(api, upstream, people, queues):
    queues["finance"].blind_review = True
    db.session.commit()
    make_case(upstream)
    item = api.get(people.reviewer, "/inbox?queue=finance").get_json()["items"][0]
    assert (item["confidence"], item["flags"]) == (None, [])


# --- claims --------------------------------------------------------------------------------------------


def test_claim_and_release(api, upstream, people):
    case = make_case(upstream)
    claimed = api.post(people.reviewer, f"/cases/{case.id}/claim")
    assert claimed.status_code == 200
    body = claimed.get_json()
    assert (body["id"], body["status"], body["assignee"], body["queue"]) == (case.id, "in_review",
                                                                             "reviewer@example.com", "finance")
    assert body["claim_expires_at"] is not None
    assert_problem(api.post(people.reviewer2, f"/cases/{case.id}/claim"), 409, "already-claimed")
    assert_problem(api.post(people.reviewer2, f"/cases/{case.id}/release"), 403, "forbidden")
    released = api.post(people.reviewer, f"/cases/{case.id}/release")
    assert (released.status_code, released.get_json()["status"]) == (200, "pending_review")
    assert_problem(api.post(people.reviewer, f"/cases/{case.id}/release"), 409, "illegal-transition")


def test_claim_of_a_case_in_another_queue_is_404(api, upstream, people):
    case = make_case(upstream)
    assert_problem(api.post(people.outsider, f"/cases/{case.id}/claim"), 404, "not-found")
    assert_problem(api.post(people.reviewer, "/cases/999999/claim"), 404, "not-found")


# --- assignment ----------------------------------------------------------------------------------------


def test_a_senior_assigns_a_case_to_a_reviewer_of_its_queue(api, upstream, people):
    case = make_case(upstream)
    response = api.post(people.senior, f"/cases/{case.id}/assign",
                        {"assignee": " Reviewer2@Example.com ", "reason": "  Speaks Lithuanian  "})
    assert response.status_code == 200, response.get_json()
    summary = CaseSummary.model_validate(response.get_json())
    assert (summary.id, summary.status, summary.assignee) == (case.id, "in_review", "reviewer2@example.com")
    assert summary.claim_expires_at is not None
    event = last_event(case)
    assert (event.action, event.actor) == ("case.assigned", f"user:{people.senior.id}")
    assert (event.data["assignee_id"], event.data["reason"], event.data["previous_assignee_id"]) == (
        people.reviewer2.id, "Speaks Lithuanian", None)
    [note] = db.session.scalars(select(InAppNotification).where(InAppNotification.user_id == people.reviewer2.id))
    assert (note.kind, note.case_id) == ("assignment", case.id) and "Speaks Lithuanian" in note.message

    again = api.post(people.admin, f"/cases/{case.id}/assign", {"assignee": "senior@example.com",
                                                                "reason": "Rebalancing the queue"})
    assert (again.status_code, again.get_json()["assignee"]) == (200, "senior@example.com")
    assert last_event(case).data["previous_assignee_id"] == people.reviewer2.id


def test_only_seniors_and_admins_assign(api, upstream, people):
    case = make_case(upstream)
    body = {"assignee": "reviewer2@example.com", "reason": "Please take it"}
    for user in (people.reviewer, people.auditor, people.outsider):
        status, slug = (404, "not-found") if user is people.outsider else (403, "forbidden")
        assert_problem(api.post(user, f"/cases/{case.id}/assign", body), status, slug)
    db.session.refresh(case)
    assert (case.status, case.assignee_id) == (Status.PENDING_REVIEW, None)


@pytest.mark.parametrize("assignee", ["nobody@example.com", "outsider@example.com", "auditor@example.com",
                                      "admin@example.com"])
def test_assigning_to_someone_who_cannot_work_the_case_is_422(api, upstream, people, assignee):
    case = make_case(upstream)
    answer = api.post(people.senior, f"/cases/{case.id}/assign", {"assignee": assignee, "reason": "Why not"})
    body = assert_problem(answer, 422, "invalid")
    assert [e["field"] for e in body["errors"]] == ["assignee"]
    db.session.refresh(case)
    assert case.assignee_id is None


@pytest.mark.parametrize(("body", "status", "slug", "fields"), [
    ({"assignee": "reviewer2@example.com"}, 422, "validation-error", {"reason"}),
    ({"assignee": "reviewer2@example.com", "reason": "   "}, 422, "validation-error", {"reason"}),
    ({"assignee": "reviewer2@example.com", "reason": "x" * 5001}, 422, "validation-error", {"reason"}),
    ({"assignee_id": 3, "reason": "Why"}, 422, "validation-error", {"assignee", "assignee_id"}),
    (None, 400, "invalid-json", None),
])
def test_malformed_assignments(api, upstream, people, body, status, slug, fields):
    case = make_case(upstream)
    answer = assert_problem(api.post(people.senior, f"/cases/{case.id}/assign", body), status, slug)
    if fields is not None:
        assert {e["field"] for e in answer["errors"]} == fields


def test_a_decided_case_cannot_be_assigned(api, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "approve")
    assert_problem(api.post(people.senior, f"/cases/{case.id}/assign", {"assignee": "reviewer2@example.com",
                                                                 "reason": "Have another look"}),
            409, "illegal-transition")


# --- decisions -----------------------------------------------------------------------------------------


def test_approve_binds_by_version_without_a_view_hash(api, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    seen = case.version
    response = api.decide(people.reviewer, case, reason_code="other", reason="Checked the invoice.")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["case"] == {"id": case.id, "status": "approved", "version": seen + 1}
    decision = body["decision"]
    assert (decision["kind"], decision["action"], decision["decided_by"]) == ("approve", "hold",
                                                                              "reviewer@example.com")
    assert decision["action_hash"] == policy.action_hash("hold", decision["parameters"])


def test_stale_version_is_409(api, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    response = api.post(people.reviewer, f"/cases/{case.id}/decisions",
                        {"kind": "approve", "case_version": case.version - 1})
    body = assert_problem(response, 409, "stale-version")
    assert body["detail"] == "the case changed while you were looking at it: reload"


def test_invalid_edit_is_422_with_field_errors(api, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    response = api.decide(people.reviewer, case, "edit", action="hold", parameters={"reason": ""},
                          reason_code="policy_breach", reason="Hold it.")
    body = assert_problem(response, 422, "invalid")
    assert body["errors"] == [{"field": "parameters.reason", "message": "String should have at least 1 character"}]
    body = assert_problem(api.decide(people.reviewer, case, "reject"), 422, "invalid")
    assert {e["field"] for e in body["errors"]} == {"reason_code", "reason"}


@pytest.mark.parametrize(("body", "status", "slug"), [
    ({"kind": "approve"}, 422, "validation-error"),
    ({"kind": "approve", "case_version": 1, "sneaky": True}, 422, "validation-error"),
    ({"kind": "wave_through", "case_version": 1}, 422, "validation-error"),
    (None, 400, "invalid-json"),
])
def test_malformed_decision_bodies(api, upstream, people, body, status, slug):
    case = claim(people.reviewer, make_case(upstream))
    assert_problem(api.post(people.reviewer, f"/cases/{case.id}/decisions", body), status, slug)


def test_auditor_and_admin_tokens_cannot_decide(api, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    assert_problem(api.decide(people.auditor, case), 403, "forbidden")
    assert_problem(api.decide(people.admin, case), 403, "forbidden")
    assert_problem(api.decide(people.reviewer2, case), 403, "forbidden")
    assert policy.decisions_of(db.session, case) == []


def test_dual_approval_over_the_api_by_two_users(api, upstream, people):
    case = make_case(upstream, data=BIG_PAYMENT, recommendation=("release", {}))
    api.post(people.reviewer, f"/cases/{case.id}/claim")
    db.session.refresh(case)
    first = api.decide(people.reviewer, case)
    assert first.get_json()["case"]["status"] == "awaiting_second_approval"
    db.session.refresh(case)
    assert_problem(api.decide(people.reviewer, case), 403, "forbidden")  # a reviewer is not a second approver
    second = api.decide(people.senior, case)
    assert second.status_code == 201
    assert second.get_json()["case"]["status"] == "approved"
    assert second.get_json()["decision"]["kind"] == "second_approval"
    db.session.refresh(case)
    assert case.status == Status.APPROVED


def test_self_second_approval_over_the_api_is_409(api, upstream, people):
    case = claim(people.senior, make_case(upstream, data=BIG_PAYMENT, recommendation=("release", {})))
    api.decide(people.senior, case)
    db.session.refresh(case)
    body = assert_problem(api.decide(people.senior, case), 409, "separation-of-duties")
    assert "first approver" in body["detail"]


# --- the case as the reviewer sees it ---------------------------------------------------------------------


def test_review_document(api, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    doc = api.get(people.reviewer, f"/review/cases/{case.id}").get_json()
    assert (doc["id"], doc["status"], doc["version"], doc["assignee"]) == (case.id, "in_review", case.version,
                                                                           "reviewer@example.com")
    assert doc["data"]["payment_id"] == "PAY-2026-118734"
    assert doc["recommendation"]["action"] == "hold"
    assert doc["recommendation"]["details"]["precedents"] == PRECEDENTS
    assert doc["recommendation"]["flags"] == ["new_beneficiary"]
    assert doc["actions"] == ["release", "hold", "reject"]
    assert doc["dual_approval"] == {"required": False, "role": None}
    assert {"code": "policy_breach", "label": "Policy breach",
            "kinds": ["approve", "edit", "reject", "escalate", "request_info", "blind"]} in doc["reason_codes"]
    assert doc["decisions"] == [] and doc["recommendation_hidden"] is False
    assert_problem(api.decide(people.reviewer, case, view_hash="f" * 64), 409, "view-changed")
    approved = api.decide(people.reviewer, case, view_hash=doc["view_hash"])
    assert approved.status_code == 201
    doc = api.get(people.auditor, f"/review/cases/{case.id}").get_json()
    assert [d["kind"] for d in doc["decisions"]] == ["approve"]


def test_review_document_of_a_blind_queue_hides_the_recommendation(api, upstream, people, queues):
    queues["finance"].blind_review = True
    db.session.commit()
    case = claim(people.reviewer, make_case(upstream))
    doc = api.get(people.reviewer, f"/review/cases/{case.id}").get_json()
    assert (doc["recommendation_hidden"], doc["recommendation"], doc["view_hash"]) == (True, None, None)
    assert_problem(api.decide(people.reviewer, case), 409, "blind-assessment-required")
    blind = api.decide(people.reviewer, case, "blind", action="release")
    assert blind.status_code == 201 and blind.get_json()["decision"]["kind"] == "blind_assessment"
    doc = api.get(people.reviewer, f"/review/cases/{case.id}").get_json()
    assert doc["recommendation"]["action"] == "hold"
    assert api.decide(people.reviewer, case, view_hash=doc["view_hash"]).status_code == 201


def test_review_document_is_404_outside_ones_queues(api, upstream, people):
    case = make_case(upstream)
    assert_problem(api.get(people.outsider, f"/review/cases/{case.id}"), 404, "not-found")


# --- role by endpoint --------------------------------------------------------------------------------------

ROLES = ("reviewer", "senior_reviewer", "admin", "auditor", "anonymous")
EXPECTED = {
    "inbox": {"reviewer": 200, "senior_reviewer": 200, "admin": 200, "auditor": 200},
    "review": {"reviewer": 200, "senior_reviewer": 200, "admin": 200, "auditor": 200},
    "claim": {"reviewer": 200, "senior_reviewer": 200, "admin": 403, "auditor": 403},
    "release": {"reviewer": 403, "senior_reviewer": 200, "admin": 200, "auditor": 403},  # another's claim
    "decide": {"reviewer": 201, "senior_reviewer": 201, "admin": 403, "auditor": 403},  # own claim where possible
    "assign": {"reviewer": 403, "senior_reviewer": 200, "admin": 200, "auditor": 403},
}


@pytest.mark.parametrize("endpoint", list(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_role_endpoint_matrix(api, upstream, people, role, endpoint):
    user = None if role == "anonymous" else people.by_role(role)
    case = make_case(upstream)
    if endpoint == "release":
        claim(people.reviewer2, case)
    if endpoint == "decide":
        claim(user if role in ("reviewer", "senior_reviewer") else people.reviewer2, case)
    response = {
        "inbox": lambda: api.get(user, "/inbox?queue=finance"),
        "review": lambda: api.get(user, f"/review/cases/{case.id}"),
        "claim": lambda: api.post(user, f"/cases/{case.id}/claim"),
        "release": lambda: api.post(user, f"/cases/{case.id}/release"),
        "decide": lambda: api.post(user, f"/cases/{case.id}/decisions", {"kind": "approve",
                                                                          "case_version": case.version}),
        "assign": lambda: api.post(user, f"/cases/{case.id}/assign", {"assignee": "reviewer2@example.com",
                                                                       "reason": "Workload"}),
    }[endpoint]()
    assert response.status_code == (401 if user is None else EXPECTED[endpoint][role]), response.get_json()
