# ruff: noqa: F811  (the imported pytest fixtures are redefined as test arguments)
"""The agent_action case page and the agent-tools admin page, through the browser."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.agents.models import AgentTool
from app.audit.models import AuditEvent
from app.cases.models import Case, Decision, Queue, Status
from app.extensions import db
from tests.review_helpers import make_user
from tests.test_review_views import (  # noqa: F401 (fixtures)
    _user_loaded_per_request,
    claim,
    decide,
    http,
    login,
    post_case,
    reviewer,
    shown_after_refusal,
    text_of,
    token_of,
)

EDIT = {"edit-action": "execute", "edit-reason_code": "incorrect_ai_parameters", "edit-reason": "Refund the tank only"}


def refund_case(upstream) -> Case:
    return post_case(upstream, "agent_action", domain="finance")


def test_the_case_page_shows_the_conversation_and_a_form_built_from_the_schema(http, upstream, reviewer):
    case = refund_case(upstream)
    login(http, reviewer)
    claim(http, case)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    text = text_of(page)
    assert "Conversation" in text
    assert "My espresso machine arrived with a cracked water tank." in text
    assert "the carrier confirmed the damage" in text
    assert re.search(r'name="p\.execute\.amount" value="180\.0"', page)
    assert re.search(r'<select name="p\.execute\.currency">.*<option value="EUR" selected>EUR</option>'
                     r'<option value="USD">USD</option>', page)
    assert re.search(r'<input type="text" name="p\.execute\.order_id" value="ORD-58213">', page)
    assert 'data-panel="respond"' in page and "Answer the agent instead" in text


def test_an_edit_in_the_browser_is_checked_by_the_schema_and_stored_with_its_diff(http, upstream, reviewer):
    case = refund_case(upstream)
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "edit", {**EDIT, "p.execute.order_id": "ORD-58213", "p.execute.amount": "35",
                                              "p.execute.currency": "EUR",
                                              "p.execute.notify_email": "anna.berg@example.com"})
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:1000]
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    assert (decision.kind, decision.action) == ("edit", "execute")
    assert decision.parameters == {"order_id": "ORD-58213", "amount": 35.0, "currency": "EUR",
                                   "notify_email": "anna.berg@example.com"}
    assert decision.diff == {"parameters": {"amount": [180.0, 35.0]}}
    shown = text_of(http.get(f"/cases/{case.id}").get_data(as_text=True))
    assert "AI proposed Your decision Amount 180.00 35.00" in shown  # the edit shows as a diff


def test_a_browser_edit_outside_the_schema_is_a_form_error_and_stores_nothing(http, upstream, reviewer):
    case = refund_case(upstream)
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "edit", {**EDIT, "p.execute.order_id": "58213", "p.execute.amount": "lots",
                                              "p.execute.currency": "EUR"})
    page = shown_after_refusal(http, response, case.id, "edit")
    assert "&#39;lots&#39; is not of type &#39;number&#39;" in page
    assert "does not match" in text_of(page)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Decision.id))) == 0
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW


def test_answering_in_the_browser_responds_and_runs_nothing(http, upstream, reviewer):
    case = refund_case(upstream)
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "respond", {"respond-reason": "Ask for the photo first."})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.RESPONDED
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    assert (decision.kind, decision.reason, decision.action) == ("respond", "Ask for the photo first.", None)


def test_admins_edit_the_tool_policies_as_yaml(http, queues):
    admin = make_user("ada", "admin", [])
    db.session.add(Queue(name="finance-agents", domain="finance", sla_minutes=60))
    db.session.commit()
    login(http, admin)
    page = http.get("/admin/agent-tools/edit").get_data(as_text=True)
    document = "- name: issue_refund\n  queue: finance-agents\n  arguments:\n    amount: {max: 150}\n"
    response = http.post("/admin/agent-tools/edit", data={"csrf_token": token_of(page), "document": document})
    assert response.status_code == 302
    listing = text_of(http.get("/admin/agent-tools").get_data(as_text=True))
    assert "issue_refund" in listing and "at most 150" in listing and "finance-agents" in listing
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "agent_tool.created")) == 1
    bad = http.post("/admin/agent-tools/edit", data={"csrf_token": token_of(page),
                                                     "document": "- name: other\n  queue: nowhere\n"})
    assert bad.status_code == 422
    assert "No queue named nowhere." in text_of(bad.get_data(as_text=True))
    assert db.session.scalars(select(AgentTool.name)).all() == ["issue_refund"]
