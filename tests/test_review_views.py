"""The reviewer web UI through the Flask test client: queues, the queue page, the case page,
decisions, and who may see and do what."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import g, request_started
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.ai.jobs import analyze_case
from app.audit.models import AuditEvent
from app.auth.services import create_user
from app.cases.models import Case, Decision, Queue, Recommendation, Status
from app.db import utcnow
from app.escalation import sla
from app.extensions import db
from app.notifications.models import InAppNotification
from app.review import services
from app.users import User
from tests.conftest import DOMAIN_OF, case_body, sign_in

PASSWORD = "correct-horse-battery"
EN_DASH = "\u2013"
CASE_TYPES = list(DOMAIN_OF)  # every registered case type


# --- helpers -------------------------------------------------------------------------------------


def make_user(email: str, role: str, queues: list[str]) -> User:
    user = create_user(db.session, email, PASSWORD, role, queues=queues)
    db.session.commit()
    return user


def login(client: FlaskClient, user: User) -> None:
    sign_in(client, user)


def token_of(page: str, prefix: str = "") -> str:
    name = f"{prefix}-csrf_token" if prefix else "csrf_token"
    found = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]+)"', page) or re.search(
        rf'value="([^"]+)"[^>]*name="{re.escape(name)}"', page)
    assert found, f"no {name} on the page"
    return html.unescape(found.group(1))


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', page)
    assert found, f"no hidden {name}"
    return html.unescape(found.group(1))


def text_of(page: str) -> str:
    """The page's visible text, tags stripped and whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def post_case(upstream, case_type: str = "payment_release", *, analyze: bool = True, **overrides: Any) -> Case:
    response = upstream.post_case(case_body(case_type, **overrides))
    assert response.status_code == 202, response.get_json()
    case_id = response.get_json()["id"]
    if analyze:
        analyze_case(case_id)
    db.session.expire_all()
    return db.session.get(Case, case_id)


def give_recommendation(case: Case, **fields: Any) -> Recommendation:
    """Attach a stored recommendation to ``case`` directly (for flags the local analyzer never raises)."""
    values = {"provider": "local", "model": "rules-v1", "template_version": "v1", "prompt_hash": "p" * 64,
              "input_hash": "i" * 64, "action": "hold", "parameters": {"reason": "Check the beneficiary."},
              "rationale": "Possible sanctions match.", "confidence": 0.72, "flags": [], "citations": ["amount"],
              "details": {}, **fields}
    rec = Recommendation(case_id=case.id, case_version=case.version, **values)
    db.session.add(rec)
    db.session.flush()
    case.recommendation_id = rec.id
    db.session.commit()
    return rec


@pytest.fixture(autouse=True)
def _user_loaded_per_request(app) -> Iterator[None]:
    """Test requests share the test's app context, so its ``g``: load the signed-in user (and the
    CSRF token) afresh on each request, as a real server does, or two clients would mix them up.
    (A signal, not a before_request hook: the app is shared and already served requests.)"""

    def _forget_user(sender, **extra) -> None:
        g.pop("_login_user", None)
        g.pop("csrf_token", None)

    with request_started.connected_to(_forget_user, app):
        yield


@pytest.fixture
def reviewer(queues: dict[str, Queue]) -> User:
    return make_user("rita.reviewer@example.com", "reviewer", ["finance", "legal", "compliance"])


@pytest.fixture
def senior(queues: dict[str, Queue]) -> User:
    return make_user("sam.senior@example.com", "senior_reviewer", ["finance", "legal", "compliance"])


@pytest.fixture
def auditor(queues: dict[str, Queue]) -> User:
    return make_user("alex.auditor@example.com", "auditor", [])


@pytest.fixture
def legal_only(queues: dict[str, Queue]) -> User:
    return make_user("lee.legal@example.com", "reviewer", ["legal"])


@pytest.fixture
def http(app, upstream) -> FlaskClient:
    """A browser-like client of its own (``upstream`` keeps the API client)."""
    return app.test_client()


def claim(http: FlaskClient, case: Case) -> None:
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    response = http.post(f"/cases/{case.id}/claim", data={"csrf_token": token_of(page)})
    assert response.status_code == 302


def shown_after_refusal(http: FlaskClient, response: Any, case_id: int, panel: str) -> str:
    """A refused form answers with a redirect to the case page (Post/Redirect/Get), which shows
    the form as it was typed, with its errors; that page, once."""
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"] == f"/cases/{case_id}#panel-{panel}"
    return http.get(f"/cases/{case_id}").get_data(as_text=True)


def decide(http: FlaskClient, case_id: int, kind: str, fields: dict[str, Any] | None = None,
           page: str | None = None) -> Any:
    page = page or http.get(f"/cases/{case_id}").get_data(as_text=True)
    data = {f"{kind}-csrf_token": token_of(page, kind), f"{kind}-case_version": hidden(page, f"{kind}-case_version"),
            f"{kind}-view_hash": hidden(page, f"{kind}-view_hash"), **(fields or {})}
    return http.post(f"/cases/{case_id}/decide/{kind}", data=data)


# --- access ----------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(http):
    for path in ("/", "/queues", "/queues/finance", "/cases/1"):
        response = http.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_home_redirects_to_my_queues(http, reviewer):
    login(http, reviewer)
    response = http.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/queues")


def test_a_reviewer_typing_another_queues_case_url_gets_404(http, upstream, legal_only):
    case = post_case(upstream, "payment_release")
    login(http, legal_only)
    assert http.get(f"/cases/{case.id}").status_code == 404
    assert http.get("/queues/finance").status_code == 404
    assert http.get("/cases/999999").status_code == 404


def test_auditor_sees_everything_read_only_and_decision_posts_are_forbidden(http, upstream, auditor, reviewer):
    case = post_case(upstream, "payment_release")
    login(http, auditor)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Baltic Freight Solutions UAB" in page
    assert "/decide/" not in page and "/claim" not in page and "Next case" not in page
    token = token_of(page)
    for path in (f"/cases/{case.id}/claim", f"/cases/{case.id}/release", f"/cases/{case.id}/decide/approve",
                 f"/cases/{case.id}/decide/reject", "/queues/finance/next"):
        assert http.post(path, data={"csrf_token": token}).status_code == 403, path
    assert db.session.get(Case, case.id).status == Status.PENDING_REVIEW


def test_decision_posts_without_a_csrf_token_are_refused(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    for path in (f"/cases/{case.id}/claim", f"/cases/{case.id}/decide/approve", "/queues/finance/next"):
        assert http.post(path, data={}).status_code == 400, path
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.PENDING_REVIEW


# --- My queues -------------------------------------------------------------------------------------


def count_in(page: str, queue: str, what: str) -> int:
    row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', page, re.S).group(1)
    return int(re.search(rf'data-count="{what}">([\d,]+)<', row).group(1).replace(",", ""))


def test_my_queues_counts_open_mine_overdue_and_at_risk(http, upstream, reviewer):
    cases = [post_case(upstream, "payment_release", analyze=True) for _ in range(4)]
    post_case(upstream, "contract_review", analyze=False)  # still "received": not open
    now = utcnow()
    # The queue's window is 60 minutes: the first warning (50 %) is due 30 minutes before the due time.
    cases[0].created_at, cases[0].sla_due_at = now - timedelta(hours=2), now - timedelta(minutes=5)  # overdue
    cases[1].created_at, cases[1].sla_due_at = now - timedelta(minutes=80), now + timedelta(minutes=20)  # warned
    cases[2].created_at, cases[2].sla_due_at = now - timedelta(minutes=10), now + timedelta(minutes=90)  # on time
    for case in cases[:3]:
        sla.refresh(case)
    db.session.commit()
    login(http, reviewer)
    claim(http, cases[3])
    page = http.get("/queues").get_data(as_text=True)
    assert [count_in(page, "finance", k) for k in ("open", "mine", "overdue", "at_risk")] == [4, 1, 1, 1]
    assert count_in(page, "legal", "open") == 0
    assert 'href="/queues/finance?sla=overdue"' in page


def test_my_queues_empty_state(http, queues):
    login(http, make_user("new.hire@example.com", "reviewer", []))
    page = http.get("/queues").get_data(as_text=True)
    assert "You are not a member of any review queue" in page


# --- the queue page ----------------------------------------------------------------------------------


def test_queue_page_lists_cases_by_priority_with_sla_badges(http, upstream, reviewer):
    low = post_case(upstream, priority="low", title="Low one")
    urgent = post_case(upstream, priority="urgent", title="Urgent one")
    normal = post_case(upstream, title="Normal one")
    db.session.get(Case, urgent.id).sla_due_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    login(http, reviewer)
    page = http.get("/queues/finance").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'data-case-id="(\d+)"', page)]
    assert ids == [urgent.id, normal.id, low.id]
    assert "sla-overdue" in page and "sla-on_time" in page
    assert f"Showing 1{EN_DASH}3 of 3" in text_of(page)


@pytest.mark.parametrize(("sort", "expected"), [
    ("amount", ["big", "mid", "small"]),
    ("age", ["small", "mid", "big"]),
    ("sla", ["mid", "big", "small"]),
])
def test_queue_page_sorts(http, upstream, reviewer, sort, expected):
    made = {}
    for index, (name, amount) in enumerate((("small", "100.00"), ("mid", "5000.00"), ("big", "90000.00"))):
        body = case_body("payment_release", title=name)
        body["data"]["amount"] = amount
        response = upstream.post_case(body)
        made[name] = response.get_json()["id"]
        analyze_case(made[name])
        case = db.session.get(Case, made[name])
        case.created_at = utcnow() - timedelta(minutes=30 - index)
    db.session.get(Case, made["mid"]).sla_due_at = utcnow() + timedelta(minutes=5)
    db.session.get(Case, made["big"]).sla_due_at = utcnow() + timedelta(minutes=10)
    db.session.get(Case, made["small"]).sla_due_at = utcnow() + timedelta(minutes=50)
    db.session.commit()
    login(http, reviewer)
    page = http.get(f"/queues/finance?sort={sort}").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'data-case-id="(\d+)"', page)]
    assert ids == [made[name] for name in expected]
    reversed_page = http.get(f"/queues/finance?sort={sort}&dir={'asc' if sort == 'amount' else 'desc'}")
    assert [int(i) for i in re.findall(r'data-case-id="(\d+)"', reversed_page.get_data(as_text=True))] == ids[::-1]


def test_queue_page_filters_and_search(http, upstream, reviewer):
    a = post_case(upstream, title="Invoice Alpha", external_id="PAY-ALPHA")
    b = post_case(upstream, title="Invoice Beta")
    c = post_case(upstream, "credit_limit_change", title="Limit for Gamma")
    give_recommendation(db.session.get(Case, b.id), flags=["prompt_injection"])
    login(http, reviewer)

    def listed(query: str) -> list[int]:
        return [int(i) for i in re.findall(r'data-case-id="(\d+)"', http.get(f"/queues/finance?{query}").get_data(
            as_text=True))]

    assert set(listed("")) == {a.id, b.id, c.id}
    assert listed("case_type=credit_limit_change") == [c.id]
    assert listed("flag=prompt_injection") == [b.id]
    assert listed("q=PAY-ALPHA") == [a.id]
    assert set(listed("q=invoice")) == {a.id, b.id}
    assert listed("q=100%25") == []  # LIKE wildcards are literal
    claim(http, a)
    assert listed("assignee=me") == [a.id]
    assert set(listed("assignee=unassigned")) == {b.id, c.id}
    assert listed("status=in_review") == [a.id]
    assert set(listed("status=bogus&sort=bogus&per_page=100000")) == {a.id, b.id, c.id}  # bad values: defaults


def test_queue_page_paginates_with_a_bounded_page_size(http, upstream, reviewer):
    made = [post_case(upstream, title=f"Case {i}").id for i in range(5)]
    login(http, reviewer)
    first = http.get("/queues/finance?per_page=2").get_data(as_text=True)
    second = http.get("/queues/finance?per_page=2&page=2").get_data(as_text=True)
    third = http.get("/queues/finance?per_page=2&page=3").get_data(as_text=True)
    pages = [[int(i) for i in re.findall(r'data-case-id="(\d+)"', p)] for p in (first, second, third)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(i for page in pages for i in page) == sorted(made)
    assert f"Showing 1{EN_DASH}2 of 5" in text_of(first)
    assert 'rel="next"' in first and 'rel="prev"' not in first
    assert 'rel="prev"' in third and 'rel="next"' not in third
    assert "No more cases" in http.get("/queues/finance?per_page=2&page=9").get_data(as_text=True)


def test_queue_page_counts_are_capped(app, http, upstream, reviewer, monkeypatch):
    from app.review import inbox

    monkeypatch.setattr(inbox, "COUNT_CAP", 3)
    for i in range(5):
        post_case(upstream, title=f"Case {i}")
    login(http, reviewer)
    assert "of 3+" in text_of(http.get("/queues/finance?per_page=2").get_data(as_text=True))


@pytest.mark.parametrize(("query", "message"), [
    ("", "Inbox zero: no open cases"),
    ("status=awaiting_second_approval", "No case is waiting for a second approval"),
    ("assignee=me", "No case in this queue is assigned to you."),
    ("sla=overdue", "No case is overdue."),
    ("q=nothing-like-this", "No case matches “nothing-like-this”"),
])
def test_queue_page_empty_states_per_filter(http, reviewer, query, message):
    login(http, reviewer)
    page = http.get(f"/queues/legal?{query}").get_data(as_text=True)
    assert message in text_of(page)


def test_next_case_claims_the_most_urgent_case(http, upstream, reviewer):
    post_case(upstream, priority="low")
    urgent = post_case(upstream, priority="urgent")
    login(http, reviewer)
    page = http.get("/queues/finance").get_data(as_text=True)
    response = http.post("/queues/finance/next", data={"csrf_token": token_of(page)})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/cases/{urgent.id}")
    db.session.expire_all()
    claimed = db.session.get(Case, urgent.id)
    assert (claimed.status, claimed.assignee_id) == (Status.IN_REVIEW, reviewer.id)


def test_next_case_in_an_empty_queue_says_so(http, reviewer):
    login(http, reviewer)
    page = http.get("/queues/legal").get_data(as_text=True)
    response = http.post("/queues/legal/next", data={"csrf_token": token_of(page)}, follow_redirects=True)
    assert "No unclaimed case in this queue" in response.get_data(as_text=True)


# --- the case page -------------------------------------------------------------------------------------

KEY_DATA = {
    "payment_release": ["EUR 48,250.00", "Baltic Freight Solutions UAB", "Hartmann Logistik GmbH", "EU Consolidated",
                        "Sanctions screening"],
    "credit_limit_change": ["GBP 12,000.00", "GBP 5,000.00", "Priya Raman", "82%", "+GBP 7,000.00 (+140%)"],
    "contract_review": ["GBP 360,000.00", "Northwind Analytics Ltd", "Limitation of Liability", "Payment Terms",
                        "Clauses"],
    "aml_alert": ["Marco Bellini", "STRUCT-01", "TX-88305", "USD 21,000.00", "Golden Crescent Trading FZE"],
    "kyc_review": ["Sofia Andersson", "AA1234567", "Proof of address", "Missing", "Sofie Andersen"],
    "agent_action": ["issue_refund", "Support agent 2.3.1", "cracked water tank", "ORD-58213", "Conversation"],
}


@pytest.mark.parametrize("case_type", CASE_TYPES)
def test_case_page_renders_every_case_type_readably_and_escaped(http, upstream, reviewer, case_type):
    case = post_case(upstream, case_type, title='<script>alert("x")</script> & co')
    login(http, reviewer)
    response = http.get(f"/cases/{case.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page
    visible = text_of(page)
    for expected in KEY_DATA[case_type]:
        assert expected in visible, expected
    assert 'id="raw-json"' in page and "&#34;" in page.split('id="raw-json"')[1]  # the payload as escaped JSON
    assert "Timeline" in page and "case.received" in page
    assert "<script src=" in page and "onclick" not in page and "style=" not in page


def test_payload_text_is_escaped_everywhere(http, upstream, reviewer):
    body = case_body("contract_review")
    body["data"]["clauses"][0]["text"] = '<img src=x onerror="alert(1)"> clause'
    response = upstream.post_case(body)
    analyze_case(response.get_json()["id"])
    login(http, reviewer)
    page = http.get(f"/cases/{response.get_json()['id']}").get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; clause" in page


def test_case_page_shows_the_recommendation_with_flags_citations_and_provenance(http, upstream, reviewer):
    case = post_case(upstream, analyze=False)
    give_recommendation(case, flags=["prompt_injection", "unverified_citation", "disagreement", "budget_fallback",
                                     "provider_fallback", "new_beneficiary"],
                        citations=["beneficiary.name", "screening.sanctions_hits[0].score", "invoice.number"],
                        details={"injection": [{"path": "data.purpose", "part": "value",
                                                "pattern": "ignore_instructions", "start": 11, "end": 26,
                                                "text": "ignore previous", "before": "Invoice 77.", "after": " instr"}],
                                 "unverified_citations": ["invoice.number"],
                                 "disagreement": {"target": "openai:gpt-4o-mini", "action": "release",
                                                  "confidence": 0.9, "rationale": "Looks routine."},
                                 "budget": "monthly budget of finance exhausted",
                                 "attempts": [{"target": "openai:gpt-4o", "error": "timeout"}],
                                 "precedents": [{"case_id": case.id, "score": 0.83, "outcome": "approved (approve)"}]},
                        cost_usd=Decimal("0.0123"), latency_ms=840, cache_hit=True)
    login(http, reviewer)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    visible = text_of(page)
    for flag in ("prompt_injection", "unverified_citation", "disagreement", "budget_fallback", "provider_fallback"):
        assert f'data-flag="{flag}"' in page
    assert '<button type="button" class="chip" data-cite="purpose">data.purpose</button>' in page
    assert "Invoice 77.<mark>ignore previous</mark> instr" in page
    assert "Cited but not in the data: invoice.number" in visible
    assert "recommends “Release”" in visible and "Looks routine." in visible
    assert "monthly budget of finance exhausted" in visible and "openai:gpt-4o: timeout" in visible
    assert "New beneficiary" in visible  # a risk signal, as a badge
    assert re.search(r'class="field[^"]*cited"\s+data-path="beneficiary.name"', page)
    assert re.search(r'data-path="screening.sanctions_hits\[0\]" class="[^"]*cited', page)
    assert 'data-cite="invoice.number"' in page and "chip-bad" in page
    assert f'href="/cases/{case.id}">#{case.id}</a>' in page and "approved (approve)" in visible  # precedent
    assert "USD 0.0123" in visible and "840 ms" in visible and "rules-v1" in visible
    assert "72% confidence" in visible


def test_ai_failed_case_shows_the_failure_reason_and_retry(http, upstream, reviewer, monkeypatch):
    from app.ai import jobs
    from app.ai.runtime import AllProvidersFailed

    def fail(*args: Any, **kwargs: Any):
        raise AllProvidersFailed("no provider gave a valid recommendation (local: boom)", [], transient=False)

    monkeypatch.setattr(jobs, "analyze", fail)
    case = post_case(upstream)
    assert case.status == Status.AI_FAILED
    login(http, reviewer)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "No AI recommendation" in page and "(local: boom)" in page
    assert f'action="/cases/{case.id}/retry"' in page
    assert "Approve as recommended" not in page
    response = http.post(f"/cases/{case.id}/retry", data={"csrf_token": token_of(page)})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.ANALYZING


def test_blind_review_hides_the_recommendation_until_the_reviewer_assessed(http, upstream, reviewer, queues):
    queues["finance"].blind_review = True
    db.session.commit()
    case = post_case(upstream)
    login(http, reviewer)
    assert "Hold" not in text_of(http.get("/queues/finance").get_data(as_text=True))
    claim(http, case)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Blind review" in page and "data-rec-action" not in page and "Approve as recommended" not in page
    response = decide(http, case.id, "blind", {"blind-action": "release"}, page)
    assert response.status_code == 302
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'data-rec-action="hold"' in page and "Approve as recommended" in page


def test_timeline_lists_events_newest_first_with_moves_and_reasons(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    decide(http, case.id, "reject", {"reject-reason_code": "policy_breach",
                                     "reject-reason": "Beneficiary is <b>odd</b>"})
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    timeline = page.split('id="timeline"')[1]
    actions = re.findall(r'class="event" data-action="([^"]+)"', timeline)
    assert actions[:3] == ["case.rejected", "case.claimed", "case.recommendation_stored"]
    assert actions[-1] == "case.received"
    visible = text_of(timeline)
    assert "Rita Reviewer <rita.reviewer@example.com>" in visible
    assert "In review → Rejected" in visible
    assert "Beneficiary is &lt;b&gt;odd&lt;/b&gt;" in timeline


# --- decisions ----------------------------------------------------------------------------------------


def test_claim_then_approve_as_recommended(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "approve", {"approve-confirmed": "1"})  # it has a hard flag: confirmed
    assert response.status_code == 302
    db.session.expire_all()
    decided = db.session.get(Case, case.id)
    assert decided.status == Status.APPROVED
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    assert (decision.kind, decision.action) == ("approve", "hold")
    assert "Decision recorded" in http.get(f"/cases/{case.id}").get_data(as_text=True)


def test_edit_form_is_generated_from_the_action_schemas(http, upstream, reviewer):
    cases = {t: post_case(upstream, t) for t in ("credit_limit_change", "contract_review", "kyc_review")}
    login(http, reviewer)
    for case in cases.values():
        claim(http, case)
    credit = http.get(f"/cases/{cases['credit_limit_change'].id}").get_data(as_text=True)
    assert 'name="p.counter_offer.limit"' in credit and 'inputmode="decimal"' in credit
    assert re.search(r'<textarea name="p.decline.reason"', credit)
    contract = http.get(f"/cases/{cases['contract_review'].id}").get_data(as_text=True)
    for column in ("clause_id", "issue", "proposed_text"):
        assert f'name="p.request_changes.redlines.{column}"' in contract
    kyc = http.get(f"/cases/{cases['kyc_review'].id}").get_data(as_text=True)
    assert 'name="p.request_documents.documents"' in kyc
    assert 'name="edit-reason_code"' in kyc and "Policy breach" in kyc


def test_edit_with_redlines_records_the_edited_action(http, upstream, reviewer):
    case = post_case(upstream, "contract_review")
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "edit", {
        "edit-action": "request_changes", "edit-reason_code": "incorrect_ai_parameters", "edit-reason": "Cap it",
        "p.request_changes.redlines.clause_id": ["7.2", ""], "p.request_changes.redlines.issue": ["Cap too low", ""],
        "p.request_changes.redlines.proposed_text": ["Liability capped at 12 months of fees.", ""],
    })
    assert response.status_code == 302, text_of(response.get_data(as_text=True))[:2000]
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    assert decision.kind == "edit"
    assert decision.parameters == {"redlines": [{"clause_id": "7.2", "issue": "Cap too low",
                                                 "proposed_text": "Liability capped at 12 months of fees."}]}


def test_edit_with_invalid_parameters_shows_the_field_error(http, upstream, reviewer):
    case = post_case(upstream, "credit_limit_change")
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "edit", {"edit-action": "counter_offer", "edit-reason_code": "customer_risk",
                                              "edit-reason": "Lower limit", "p.counter_offer.limit": "-5"})
    page = shown_after_refusal(http, response, case.id, "edit")
    assert re.search(r'has-error[^>]*>\s*<label>Limit <span[^>]*>\(GBP\)</span>\s*<span class="input-unit">'
                     r'<span[^>]*>GBP</span><input[^>]*value="-5"', page)  # with its currency
    assert "Input should be greater than 0" in page
    assert "The parameters of counter_offer are invalid." in page
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW


def test_reject_without_a_reason_shows_the_field_errors(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "reject", {"reject-reason_code": "", "reject-reason": ""})
    page = shown_after_refusal(http, response, case.id, "reject")
    assert 'data-panel="reject" open' in page
    assert "Explain the decision in a few words." in page
    assert "Choose one of:" in page


def test_nul_characters_in_paths_queries_and_forms_are_400_and_change_nothing(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    version = db.session.get(Case, case.id).version
    for path in ("/queues/fin%00ance", "/queues/finance?q=pay%00ment"):
        response = http.get(path)
        assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
    response = decide(http, case.id, "reject", {"reject-reason_code": "other", "reject-reason": "No\x00 way"})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Case, case.id).version == version


def test_a_stale_version_shows_the_conflict_and_reloads(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    # Someone else changes the case meanwhile (here: release and claim again bumps the version twice).
    services.release(db.session, reviewer, case.id)
    services.claim(db.session, reviewer, case.id)
    db.session.commit()
    response = decide(http, case.id, "approve", page=page)
    assert response.status_code == 302
    reloaded = http.get(response.headers["Location"]).get_data(as_text=True)
    assert "The case changed while you were looking at it: reload." in reloaded
    assert f'value="{db.session.get(Case, case.id).version}"' in reloaded  # the new state
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW


def test_escalate_moves_the_case_to_the_chosen_queue(http, upstream, reviewer, queues):
    senior_queue = Queue(name="finance-senior", domain="finance", sla_minutes=30)
    db.session.add(senior_queue)
    db.session.commit()
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    assert '<option value="finance-senior">finance-senior</option>' in page
    response = decide(http, case.id, "escalate", {"escalate-target_queue": "finance-senior",
                                                  "escalate-reason_code": "sanctions_concern",
                                                  "escalate-reason": "Needs a senior look"}, page)
    assert response.status_code == 302
    db.session.expire_all()
    moved = db.session.get(Case, case.id)
    assert (moved.status, moved.queue.name) == (Status.PENDING_REVIEW, "finance-senior")


def test_request_information(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "request_info", {"request_info-reason_code": "needs_more_information",
                                                      "request_info-reason": "Send the invoice"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.NEEDS_INFO


def test_dual_approval_shows_the_first_approver_and_second_controls_to_qualified_users(
        app, http, upstream, reviewer, senior):
    body = case_body("payment_release")
    body["data"]["amount"] = "250000.00"
    response = upstream.post_case(body)
    case_id = response.get_json()["id"]
    analyze_case(case_id)
    login(http, reviewer)
    claim(http, db.session.get(Case, case_id))
    assert decide(http, case_id, "approve", {"approve-confirmed": "1"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case_id).status == Status.AWAITING_SECOND_APPROVAL
    first_view = http.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Rita Reviewer" in text_of(first_view) and "Waiting for a second approval" in text_of(first_view)
    assert "Give second approval" not in first_view  # never the first approver

    second = app.test_client()
    login(second, senior)
    page = second.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "First approval" in page and "Give second approval" in page
    assert decide(second, case_id, "approve", {"approve-confirmed": "1"}, page=page).status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case_id).status == Status.APPROVED
    kinds = [d.kind for d in db.session.scalars(select(Decision).where(Decision.case_id == case_id)
                                                 .order_by(Decision.id))]
    assert kinds == ["approve", "second_approval"]
    events = db.session.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case_id)).all()
    assert "case.second_approval" in events


# --- assignment ---------------------------------------------------------------------------------------


def assign(http: FlaskClient, case_id: int, fields: dict[str, Any], page: str | None = None) -> Any:
    page = page or http.get(f"/cases/{case_id}").get_data(as_text=True)
    return http.post(f"/cases/{case_id}/assign", data={"assign-csrf_token": token_of(page, "assign"), **fields})


def test_a_senior_assigns_a_case_from_its_page(http, upstream, reviewer, senior, legal_only, auditor):
    case = post_case(upstream)
    login(http, senior)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    options = dict(re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', page))
    assert options == {str(reviewer.id): "Rita Reviewer (reviewer)", str(senior.id): "Sam Senior (senior reviewer)"}
    response = assign(http, case.id, {"assign-assignee": str(reviewer.id), "assign-reason": "Knows this supplier"},
                      page)
    assert (response.status_code, response.headers["Location"]) == (302, f"/cases/{case.id}")
    db.session.expire_all()
    assigned = db.session.get(Case, case.id)
    assert (assigned.status, assigned.assignee_id) == (Status.IN_REVIEW, reviewer.id)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == case.id)
                               .order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.action, event.data["reason"], event.data["assignee_id"]) == ("case.assigned",
                                                                              "Knows this supplier", reviewer.id)
    note = db.session.scalars(select(InAppNotification).where(InAppNotification.user_id == reviewer.id)).one()
    assert (note.kind, note.case_id) == ("assignment", case.id)
    after = text_of(http.get(f"/cases/{case.id}").get_data(as_text=True))
    assert "Case assigned to Rita Reviewer." in after and "Reassign" in after

    login(http, reviewer)  # the assignee may decide it straight away
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "/assign" not in page and 'data-panel="approve"' in page


def test_an_assignment_without_reason_or_assignee_shows_the_field_error(http, upstream, reviewer, senior):
    case = post_case(upstream)
    login(http, senior)
    response = assign(http, case.id, {"assign-assignee": str(reviewer.id), "assign-reason": "  "})
    page = shown_after_refusal(http, response, case.id, "assign")
    assert 'data-panel="assign" open' in page and "Required." in text_of(page)
    assert re.search(rf'<option selected value="{reviewer.id}"|<option value="{reviewer.id}" selected', page)
    response = assign(http, case.id, {"assign-assignee": "", "assign-reason": "Somebody please"})
    assert "Not an active reviewer of this queue." in text_of(shown_after_refusal(http, response, case.id, "assign"))
    db.session.expire_all()
    assert db.session.get(Case, case.id).assignee_id is None


def test_reviewers_and_auditors_cannot_assign(http, upstream, reviewer, senior, auditor):
    case = post_case(upstream)
    for user in (reviewer, auditor):
        login(http, user)
        page = http.get(f"/cases/{case.id}").get_data(as_text=True)
        assert "/assign" not in page
        response = http.post(f"/cases/{case.id}/assign", data={"csrf_token": token_of(page),
                                                               "assign-assignee": str(senior.id),
                                                               "assign-reason": "Mine now"})
        assert response.status_code == 403
    login(http, senior)
    assert http.post(f"/cases/{case.id}/assign", data={"assign-assignee": str(reviewer.id),
                                                       "assign-reason": "No token"}).status_code == 400
    db.session.expire_all()
    assert db.session.get(Case, case.id).assignee_id is None


# --- the case page, second pass: confirmation, amounts, plain words ---------------------------------------


def test_a_risky_approval_without_confirmation_executes_nothing_and_asks_to_confirm(http, upstream, reviewer):
    case = post_case(upstream)  # the example payment: a possible sanctions match, a hard flag
    login(http, reviewer)
    claim(http, case)
    response = decide(http, case.id, "approve")
    page = shown_after_refusal(http, response, case.id, "approve")
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.IN_REVIEW
    assert db.session.scalars(select(Decision).where(Decision.case_id == case.id)).all() == []
    confirm = text_of(page.split('data-confirm="approve"', 1)[1].split("</div>", 1)[0])
    assert "The pre-screen raised hard flags: possible sanctions list match" in confirm
    assert "Approve as recommended" not in page  # the one key is not offered again: Confirm is
    assert decide(http, case.id, "approve", {"approve-confirmed": "1"}, page=page).status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == Status.APPROVED


def test_an_amount_with_thousands_separators_is_accepted(http, upstream, reviewer):
    case = post_case(upstream, "credit_limit_change")
    login(http, reviewer)
    claim(http, case)
    fields = {"edit-action": "counter_offer", "edit-reason_code": "customer_risk", "edit-reason": "Smaller step",
              "p.counter_offer.limit": "1,250,000.00", "edit-confirmed": "1"}
    assert decide(http, case.id, "edit", fields).status_code == 302
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    assert decision.parameters == {"limit": "1250000.00"}


def test_a_misgrouped_amount_is_refused_not_guessed(http, upstream, reviewer):
    case = post_case(upstream, "credit_limit_change")
    login(http, reviewer)
    claim(http, case)
    fields = {"edit-action": "counter_offer", "edit-reason_code": "customer_risk", "edit-reason": "Smaller step",
              "p.counter_offer.limit": "1,25"}
    page = shown_after_refusal(http, decide(http, case.id, "edit", fields), case.id, "edit")
    assert re.search(r'has-error.*?value="1,25"', page, re.S)
    assert db.session.scalars(select(Decision).where(Decision.case_id == case.id)).all() == []


def test_refusals_and_labels_read_in_plain_words(http, upstream, reviewer):
    case = post_case(upstream)
    login(http, reviewer)
    claim(http, case)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    visible = text_of(page)
    assert "Unclaim" in visible and "Release back" not in visible
    assert "Reject recommendation" in visible
    http.post(f"/cases/{case.id}/release", data={"csrf_token": token_of(page)})
    db.session.execute(update(Case).where(Case.id == case.id).values(status=Status.REJECTED.value))
    db.session.commit()
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    response = http.post(f"/cases/{case.id}/claim", data={"csrf_token": token_of(page)}, follow_redirects=True)
    shown = text_of(response.get_data(as_text=True))
    assert "This case is rejected: it cannot be claimed" in shown


def test_the_inbox_row_and_case_page_say_why_two_approvals_are_needed(http, upstream, reviewer):
    case = post_case(upstream, data={**case_body("payment_release")["data"], "amount": "250000.00"})
    login(http, reviewer)
    needed = "Needs 2 approvals: this amount is over EUR 100,000"
    row = http.get("/queues/finance").get_data(as_text=True).split(f'data-case-id="{case.id}"', 1)[1].split("</tr>")[0]
    assert needed in text_of(row)
    assert needed in text_of(http.get(f"/cases/{case.id}").get_data(as_text=True))


def test_signals_tell_good_from_bad(http, upstream, reviewer):
    data = case_body("kyc_review")["data"]
    data["documents"][0]["expires_on"] = "2020-01-31"  # the only identity document, expired
    case = post_case(upstream, "kyc_review", data=data)
    login(http, reviewer)
    page = http.get(f"/cases/{case.id}").get_data(as_text=True)
    identity = re.search(r'<div class="field tone-(\w+)"[^>]*>\s*<dt>Identity document</dt>\s*<dd>([^<]+)</dd>', page)
    assert identity and identity.groups() == ("bad", "Provided, but expired")
    assert "Identity document expired" in text_of(page)  # the signal, in words

    credit = post_case(upstream, "credit_limit_change")
    credit.recommendation.flags = ["long_tenure", "high_utilization"]
    db.session.commit()
    risks = http.get(f"/cases/{credit.id}").get_data(as_text=True).split("data-top-risks", 1)[1].split("</ul>")[0]
    assert '<li class="risk tone-good" data-risk="long_tenure">Long-standing customer</li>' in risks
    assert '<li class="risk tone-warn" data-risk="high_utilization">Credit line heavily used</li>' in risks
