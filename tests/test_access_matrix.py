"""Every route and every kind of caller, with the answer each must get, written out by hand.

Callers: anonymous; a reviewer of the case's queue; a reviewer of another queue (``outsider``);
a senior reviewer; an admin; an auditor; an upstream API client of another tenant (``client``).
Answers: ``login`` (sent to the sign-in page), ``signed out`` (sent there after signing out), 401,
403, 404, or ``ok`` — allowed past the access
checks: any answer but 401/403/404, a sign-in redirect or a 5xx (a refusal on the merits, such
as 409 for a case in the wrong state, is ``ok`` here: access is what this file tests).
Forms are posted with a valid CSRF token, so CSRF is not what answers.
A test also checks that the table covers every route the app has.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth.services import create_api_token
from app.cases.models import Queue
from app.escalation import rules, services
from app.extensions import db
from app.oversight.models import QaReview
from app.review import reason_codes
from app.users import User
from tests.conftest import make_upstream, sign_in
from tests.review_helpers import People, claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]

CALLERS = ("anonymous", "reviewer", "outsider", "senior", "admin", "auditor", "client")
L, OK = "login", "ok"
# (method, path, expected for each caller in CALLERS order). {case}, {rule}, {token}, {queue} are filled in.
BROWSER: list[tuple[str, str, tuple[Any, ...]]] = [
    ("GET", "/queues", (L, OK, OK, OK, OK, OK, L)),
    ("GET", "/queues/finance", (L, OK, 404, OK, OK, OK, L)),
    ("GET", "/cases/{case}", (L, OK, 404, OK, OK, OK, L)),
    ("POST", "/queues/finance/next", (L, OK, 404, OK, 403, 403, L)),
    ("POST", "/cases/{case}/claim", (L, OK, 404, OK, 403, 403, L)),
    ("POST", "/cases/{case}/release", (L, OK, 404, OK, OK, 403, L)),
    ("POST", "/cases/{case}/retry", (L, OK, 404, OK, OK, 403, L)),
    ("POST", "/cases/{case}/decide/reject", (L, OK, 404, OK, 403, 403, L)),
    ("POST", "/cases/{case}/assign", (L, 403, 404, OK, OK, 403, L)),
    ("POST", "/cases/{case}/undo", (L, OK, 404, OK, 403, 403, L)),
    ("POST", "/preferences/auto-next", (L, OK, OK, OK, 403, 403, L)),
    ("GET", "/admin/executions", (L, 403, 403, 403, OK, OK, L)),
    ("POST", "/admin/executions/{case}/retry", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/executions/{case}/handled", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/rules", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/controls", (L, 403, 403, OK, OK, OK, L)),
    ("POST", "/admin/controls/pause", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/controls/resume", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/queues", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/queues/new", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/queues/new", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/queues/{queue}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/queues/{queue}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/queues/{queue}/archive", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/queues/{queue}/unarchive", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/audit", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/audit/verify", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/cases/{case}/evidence", (L, 403, 404, 403, OK, OK, L)),
    ("GET", "/cases/{case}/evidence.json", (L, 403, 404, 403, OK, OK, L)),
    ("GET", "/admin/rules/new", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/rules/new", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/rules/{rule}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/rules/{rule}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/rules/{rule}/enabled", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/rules/{rule}/move", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/audit/export?domain=legal", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/notifications", (L, OK, OK, OK, OK, OK, L)),
    ("POST", "/notifications/read", (L, OK, OK, OK, OK, OK, L)),
    ("GET", "/admin/users", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/users/new", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/users/new", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/users/{user}", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/users/{user}", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/users/{user}/deactivate", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/users/{user}/reactivate", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/users/{user}/reset-password", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/users/{user}/sign-out", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/clients", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/clients/new", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/clients/new", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/clients/{api_client}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/clients/{api_client}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/clients/{api_client}/rotate-secret", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/clients/{api_client}/revoke", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/reason-codes", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/reason-codes/new", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/reason-codes/new", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/admin/reason-codes/{reason_code}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/reason-codes/{reason_code}/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/reason-codes/{reason_code}/active", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/dashboards", (L, 403, 403, OK, OK, OK, L)),
    ("GET", "/dashboards/oversight", (L, 403, 403, OK, OK, OK, L)),
    ("GET", "/dashboards/ai", (L, 403, 403, OK, OK, OK, L)),
    ("GET", "/dashboards/cases?view=queues&measure=decided", (L, 403, 403, OK, OK, OK, L)),
    ("GET", "/oversight/calibration", (L, 403, 403, OK, OK, OK, L)),
    ("GET", "/oversight/qa", (L, 403, 403, OK, OK, OK, L)),
    ("POST", "/oversight/qa/{qa}/verdict", (L, 403, 403, OK, 403, 403, L)),  # seniors of its queue only
    ("GET", "/admin/agent-tools", (L, 403, 403, 403, OK, OK, L)),
    ("GET", "/admin/agent-tools/edit", (L, 403, 403, 403, OK, 403, L)),
    ("POST", "/admin/agent-tools/edit", (L, 403, 403, 403, OK, 403, L)),
    ("GET", "/settings/password", (L, OK, OK, OK, OK, OK, L)),
    ("POST", "/settings/password", (L, OK, OK, OK, OK, OK, L)),
    ("GET", "/settings/tokens", (L, OK, OK, OK, OK, OK, L)),
    ("POST", "/settings/tokens", (L, OK, OK, OK, OK, OK, L)),
    ("POST", "/settings/tokens/{token}/revoke", (L, OK, 404, 404, 404, 404, L)),  # the reviewer's token
    ("POST", "/settings/sessions/end", (L, "signed out", "signed out", "signed out", "signed out", "signed out", L)),
    ("POST", "/logout", (L, "signed out", "signed out", "signed out", "signed out", "signed out", L)),
]
# The reviewer API (personal tokens) and the upstream API (API client tokens).
API: list[tuple[str, str, tuple[Any, ...]]] = [
    ("GET", "/api/v1/inbox?queue=finance", (401, OK, 404, OK, OK, OK, 401)),
    ("GET", "/api/v1/review/cases/{case}", (401, OK, 404, OK, OK, OK, 401)),
    ("POST", "/api/v1/cases/{case}/claim", (401, OK, 404, OK, 403, 403, 401)),
    ("POST", "/api/v1/cases/{case}/release", (401, OK, 404, OK, OK, 403, 401)),
    ("POST", "/api/v1/cases/{case}/decisions", (401, OK, 404, OK, 403, 403, 401)),
    ("POST", "/api/v1/cases/{case}/assign", (401, 403, 404, OK, OK, 403, 401)),
    ("GET", "/api/v1/cases/{case}", (401, 401, 401, 401, 401, 401, 404)),  # another tenant's case
    ("GET", "/api/v1/cases/{case}?wait=1", (401, 401, 401, 401, 401, 401, 404)),  # waiting: refused first
    ("POST", "/api/v1/cases/{case}/info", (401, 401, 401, 401, 401, 401, 404)),
    ("POST", "/api/v1/cases/{case}/withdraw", (401, 401, 401, 401, 401, 401, 404)),
]
# Reachable by anyone: the API's description is its public contract.
OPEN = [("GET", "/login"), ("GET", "/healthz"), ("POST", "/login"), ("GET", "/"), ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/reference")]
NOT_IN_TABLE = {"static", "ops.metrics", "ops.readyz", "intake.create_case"}  # tested in their own files
BODIES = {  # a JSON body or form fields that get past parsing, so that access is what answers
    "/decisions": {"kind": "reject", "case_version": 1, "reason_code": "other", "reason": "Matrix"},
    "/assign": {"assignee": "reviewer2@example.com", "reason": "Matrix"},
    "/info": {"data": {"purpose": "Matrix"}},
    "/withdraw": {"reason": "Matrix"},
}


def caller_table(table: list[tuple[str, str, tuple[Any, ...]]]) -> list[Any]:
    return [pytest.param(method, path, caller, expected[i], id=f"{method} {path} {caller}")
            for method, path, expected in table for i, caller in enumerate(CALLERS)]


@pytest.fixture
def world(client: FlaskClient, upstream, people: People) -> dict[str, Any]:
    case = make_case(upstream)
    document = {"name": "matrix", "conditions": {"domain": "finance"},
                "actions": [{"set_priority": {"priority": "high"}}]}
    rule = services.create_rule(db.session, rules.validate(document, services.catalog(db.session)),
                                services.RULES_ACTOR)
    token, _ = create_api_token(db.session, people.reviewer, "matrix")
    qa_sample = sampled_approval(upstream, people)
    other_tenant = make_upstream(client, "another-tenant")
    db.session.commit()
    queue = db.session.scalars(select(Queue).where(Queue.name == "finance-senior")).one()
    return {"case": case.id, "rule": rule.id, "token": token.id, "queue": queue.id, "client": other_tenant,
            "user": people.reviewer2.id, "api_client": other_tenant.id,
            "reason_code": reason_codes.code_named(db.session, "other").id, "qa": qa_sample.id}


def sampled_approval(upstream, people: People) -> QaReview:
    """A case of the finance queue approved by the reviewer and drawn for QA (every approval of theirs is)."""
    people.reviewer.qa_all = True
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "approve")
    people.reviewer.qa_all = False
    return db.session.scalars(select(QaReview).where(QaReview.case_id == case.id)).one()


def user_of(people: People, caller: str) -> User | None:
    return getattr(people, caller, None) if caller not in ("anonymous", "client") else None


def csrf_for(http: FlaskClient, signed_in: bool) -> str:
    g.pop("csrf_token", None)
    page = http.get("/settings/tokens" if signed_in else "/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    return found.group(1) if found else ""


def classify(response: Any) -> Any:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code in (401, 403, 404):
        return response.status_code
    location = response.headers.get("Location", "") if response.status_code == 302 else ""
    if location.startswith("/login?next="):
        return L
    return "signed out" if location == "/login" else OK


@pytest.mark.parametrize(("method", "path", "caller", "expected"), caller_table(BROWSER))
def test_browser_routes(client, people, world, method, path, caller, expected):
    user = user_of(people, caller)
    sign_in(client, user)
    token = csrf_for(client, user is not None)
    g.pop("_login_user", None)
    url = path.format(**world)
    response = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": token})
    assert classify(response) == expected


@pytest.mark.parametrize(("method", "path", "caller", "expected"), caller_table(API))
def test_api_routes(client, people, world, method, path, caller, expected):
    user = user_of(people, caller)
    headers = {}
    if user is not None:
        headers["Authorization"] = f"Bearer {create_api_token(db.session, user, 'matrix')[1]}"
        db.session.commit()
    elif caller == "client":
        headers["Authorization"] = f"Bearer {world['client'].token}"
    url = path.format(**world)
    body = next((b for suffix, b in BODIES.items() if url.endswith(suffix)), {})
    if method == "GET":
        response = client.get(url, headers=headers)
    elif caller == "client":
        response = world["client"].post_signed(url, body, headers={"Authorization": headers["Authorization"]})
    else:
        response = client.post(url, json=body, headers=headers)
    assert classify(response) == expected


def test_the_table_covers_every_route(app):
    urls = app.url_map.bind("localhost")
    sample = {"case": 1, "rule": 1, "token": 1, "queue": 1, "user": 1, "api_client": 1, "reason_code": 1, "qa": 1}
    tested = {(method, urls.match(path.format(**sample).split("?")[0], method)[0])
              for method, path, _ in BROWSER + API} | {(method, urls.match(path, method)[0]) for method, path in OPEN}
    routes = {(method, rule.endpoint) for rule in app.url_map.iter_rules() if rule.endpoint not in NOT_IN_TABLE
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes - tested == set()


@pytest.mark.parametrize(("path",), [pytest.param(path, id=path) for method, path, _ in BROWSER if method == "POST"])
def test_every_form_refuses_a_post_without_its_csrf_token(client, people, world, path):
    """Signed in as the one caller every form admits (or the token's owner): still 400 without the token."""
    sign_in(client, people.admin if path.startswith("/admin") else people.reviewer)
    g.pop("_login_user", None)
    response = client.post(path.format(**world), data={"reason": "no token"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


# --- the auditor reads everything and changes nothing ---------------------------------------------------

# What an auditor may change: their own sign-in, API tokens and notifications.
OWN_ACCOUNT = {"auth.login", "auth.logout", "auth.sign_out_everywhere", "auth.tokens", "auth.change_password",
               "notifications.read_all"}
AUDITOR_REFUSED_OTHERWISE = {
    "auth.revoke_token": 404,  # the reviewer's token: another user's tokens do not exist for them
    "intake.create_case": 401, "intake.answer_info": 401, "intake.withdraw": 401,  # API clients only
}
URL_VALUES = {"case_id": "case", "rule_id": "rule", "token_id": "token", "queue_id": "queue", "user_id": "user",
              "client_id": "api_client", "code_id": "reason_code", "review_id": "qa"}  # filled in from the world
FIXED_VALUES = {"name": "finance", "kind": "reject"}
BOOKKEEPING = {("user_sessions", "last_seen_at"), ("api_tokens", "last_used_at")}  # noted on every request


def state_changing_routes(app: Flask) -> list[tuple[str, str, list[str]]]:
    """(method, endpoint, arguments) of every route but a GET's."""
    return sorted((method, rule.endpoint, sorted(rule.arguments)) for rule in app.url_map.iter_rules()
                  for method in rule.methods - {"GET", "HEAD", "OPTIONS"})


def database_rows() -> dict[str, list[str]]:
    """Every row of every table (but the session bookkeeping), as text, in a stable order."""
    db.session.expire_all()
    rows = {}
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if (table.name, c.name) not in BOOKKEEPING]
        rows[table.name] = sorted(repr(tuple(row)) for row in db.session.execute(select(*columns)))
    return rows


def test_an_auditor_changes_nothing(app, client, people, world):
    """Signed in with a valid CSRF token (or their personal API token), an auditor tries every route
    that could change something: each refuses, and not a row of the database changes."""
    _, auditor_token = create_api_token(db.session, people.auditor, "audit")
    sign_in(client, people.auditor)
    csrf = csrf_for(client, signed_in=True)
    urls = app.url_map.bind("localhost")
    before = database_rows()
    answers, expected = {}, {}
    for method, endpoint, arguments in state_changing_routes(app):
        if endpoint in OWN_ACCOUNT:
            continue
        values = {name: world[URL_VALUES[name]] if name in URL_VALUES else FIXED_VALUES[name] for name in arguments}
        url = urls.build(endpoint, values, method=method)
        body = next((b for suffix, b in BODIES.items() if url.endswith(suffix)), {})
        g.pop("_login_user", None)
        if url.startswith("/api/"):
            response = client.open(url, method=method, json=body, headers={"Authorization": f"Bearer {auditor_token}"})
        else:
            response = client.open(url, method=method, data={"csrf_token": csrf, **body})
        answers[method, endpoint] = response.status_code
        expected[method, endpoint] = AUDITOR_REFUSED_OTHERWISE.get(endpoint, 403)
    assert answers == expected
    assert database_rows() == before
    assert len(answers) >= 18  # every route of the reviewer UI, the admin pages and both APIs
