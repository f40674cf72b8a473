"""Every JSON document the application sends is declared once as a pydantic model: the upstream
API's answers (`app.intake.schemas`), the reviewer API's (`app.review.schemas`) and the signed
callbacks and notifications (`app.execution.schemas`), built on the shapes they share
(`app.cases.schemas`). What goes out is exactly its model: nothing missing, nothing more."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from app.auth.services import create_api_token
from app.cases import schemas as case_schemas
from app.cases.models import Decision, Execution
from app.db import canonical_json
from app.execution import delivery
from app.execution import schemas as execution_schemas
from app.execution.upstream import prepare_notification
from app.extensions import db
from app.intake import schemas as intake_schemas
from app.review import schemas as review_schemas
from app.schemas import Document
from tests.conftest import Upstream, case_body
from tests.review_helpers import People, claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]

SCHEMA_MODULES = (case_schemas, intake_schemas, review_schemas, execution_schemas)
DOCUMENTS = sorted({model for module in SCHEMA_MODULES for _, model in inspect.getmembers(module, inspect.isclass)
                    if issubclass(model, Document) and model is not Document}, key=lambda m: m.__name__)


def conforms(model: type[BaseModel], body: Any) -> BaseModel:
    """``body`` (JSON as sent) is exactly a ``model`` document: it validates with no member
    unknown (``extra="forbid"``), every member of the model's JSON schema is there, and written
    back it is the same JSON."""
    parsed = model.model_validate(body)
    assert parsed.model_dump(mode="json") == body
    assert set(model.model_json_schema(mode="serialization")["properties"]) == set(body)
    return parsed


class Reviewers:
    """The reviewer API with each person's personal token."""

    def __init__(self, http: FlaskClient, people: People) -> None:
        self.http = http
        self.tokens = {user.id: create_api_token(db.session, user, "tests")[1] for user in vars(people).values()}
        db.session.commit()

    def call(self, method: str, user: Any, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.open(f"/api/v1{path}", method=method, json=body,
                                  headers={"Authorization": f"Bearer {self.tokens[user.id]}"})
        assert response.status_code < 300, response.get_json()
        return response.get_json()


@pytest.fixture
def reviewers(client: FlaskClient, people: People) -> Reviewers:
    return Reviewers(client, people)


def test_the_upstream_apis_answers_are_their_documents(upstream: Upstream, people: People):
    accepted = upstream.post_case(case_body())
    conforms(intake_schemas.CaseAccepted, accepted.get_json())
    received = conforms(intake_schemas.UpstreamCase, upstream.get_case(accepted.get_json()["id"]).get_json())
    assert received.recommendation is None and received.execution is None

    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "approve")
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    db.session.add(Execution(case_id=case.id, decision_id=decision.id, idempotency_key=f"exec_{case.id}",
                             status="delivered", attempts=1, last_status_code=200, delivered_at=datetime.now(UTC)))
    db.session.commit()
    document = conforms(intake_schemas.UpstreamCase, upstream.get_case(case.id).get_json())
    assert [d.decided_by for d in document.decisions] == [people.reviewer.email]
    assert document.recommendation.action == "hold" and document.execution.status == "delivered"


def test_the_reviewer_apis_answers_are_their_documents(reviewers: Reviewers, upstream: Upstream, people: People):
    case = make_case(upstream)
    make_case(upstream, recommendation=None)
    page = conforms(review_schemas.InboxPage, reviewers.call("GET", people.reviewer, "/inbox?queue=finance"))
    assert len(page.items) == 2
    claimed = conforms(review_schemas.CaseSummary, reviewers.call("POST", people.reviewer, f"/cases/{case.id}/claim"))
    assert claimed.assignee == people.reviewer.email
    seen = conforms(review_schemas.ReviewDocument,
                    reviewers.call("GET", people.reviewer, f"/review/cases/{case.id}"))
    answer = reviewers.call("POST", people.reviewer, f"/cases/{case.id}/decisions",
                            {"kind": "approve", "case_version": seen.version, "view_hash": seen.view_hash})
    conforms(review_schemas.DecisionAnswer, answer)
    after = conforms(review_schemas.ReviewDocument, reviewers.call("GET", people.auditor, f"/review/cases/{case.id}"))
    assert [d.kind for d in after.decisions] == ["approve"]


def test_a_blind_review_document_is_its_document_too(reviewers: Reviewers, upstream: Upstream, people: People,
                                                     queues):
    queues["finance"].blind_review = True
    db.session.commit()
    case = claim(people.reviewer, make_case(upstream))
    hidden = conforms(review_schemas.ReviewDocument, reviewers.call("GET", people.reviewer, f"/review/cases/{case.id}"))
    assert (hidden.recommendation, hidden.proposed_action, hidden.view_hash) == (None, None, None)


def test_callbacks_and_notifications_are_their_documents(upstream: Upstream, people: People):
    case = claim(people.reviewer, make_case(upstream, callback_url="https://hooks.example.com/countersign"))
    decide(people.reviewer, case, "approve")
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    execution = Execution(case_id=case.id, decision_id=decision.id, idempotency_key=f"exec_{case.id}",
                          status="pending", attempts=1)
    sent = json.loads(canonical_json(
        delivery.callback_document(case, decision, execution, [people.reviewer.email]).model_dump(mode="json")))
    callback = conforms(execution_schemas.ApprovedCallback, sent)
    assert (callback.type, callback.action.name, callback.approved_by) == ("case.approved", "hold",
                                                                         [people.reviewer.email])

    for kind, event_type, model in (("reject", "case.decided", execution_schemas.DecidedNotice),
                                    ("request_info", "case.needs_info", execution_schemas.NeedsInfoNotice)):
        case = claim(people.reviewer, make_case(upstream))
        decided = decide(people.reviewer, case, kind)
        notice = prepare_notification(db.session, case.id, event_type, decided.id, 1)
        document = conforms(model, json.loads(canonical_json(notice.document)))
        assert document.type == event_type and document.decision.decided_by == people.reviewer.email
    assert "question" not in execution_schemas.DecidedNotice.model_json_schema()["properties"]


def test_times_are_written_as_isoformat_with_the_utc_offset(upstream: Upstream):
    case = make_case(upstream)
    document = upstream.get_case(case.id).get_json()
    assert document["created_at"] == case.created_at.isoformat() and document["created_at"].endswith("+00:00")


@pytest.mark.parametrize("model", DOCUMENTS, ids=lambda model: model.__name__)
def test_every_document_has_a_json_schema_that_forbids_unknown_members(model: type[Document]):
    for mode in ("validation", "serialization"):
        schema = model.model_json_schema(mode=mode)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["properties"]) == set(model.model_fields)  # the public names, never an ORM attribute's
    with pytest.raises(ValidationError):
        model.model_validate({"surely_not_a_member": 1})


def test_the_shared_shapes_are_shared():
    assert issubclass(intake_schemas.UpstreamCase, case_schemas.CaseHead)
    assert issubclass(review_schemas.CaseSummary, case_schemas.CaseHead)
    assert issubclass(execution_schemas.CaseWithStatus, case_schemas.CaseRef)
    assert issubclass(review_schemas.ReviewDecision, case_schemas.DecisionRecord)
    assert issubclass(case_schemas.DecisionRecord, case_schemas.DecisionNotice)
    assert issubclass(review_schemas.ReviewRecommendation, case_schemas.RecommendationBrief)
