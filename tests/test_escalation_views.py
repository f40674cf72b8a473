"""The escalation-rule admin pages: admins edit, auditors read, everyone else gets 403."""

from __future__ import annotations

import html
import re

import pytest

from app.escalation import services
from app.extensions import db
from tests.escalation_helpers import add_rule
from tests.test_auth import csrf_of, login

pytest_plugins = ["tests.escalation_fixtures"]

RULE = """name: large-payments
conditions:
  domain: finance
  amount_gte: 250000
  currency: EUR
actions:
  - require_dual_approval: {role: senior_reviewer}
  - set_priority: {priority: urgent}
"""


def post(client, path: str, data: dict, page: str = "/admin/rules") -> object:
    return client.post(path, data={**data, "csrf_token": csrf_of(client, page)})


def errors(response) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="field-error" role="alert">([^<]*)</p>',
                                                 response.get_data(as_text=True))]


@pytest.fixture
def rule(queues, senior_queue):
    return add_rule("existing", {"domain": "finance"}, [{"set_priority": {"priority": "high"}}])


EDITING = [("get", "/admin/rules/new"), ("post", "/admin/rules/new"), ("get", "/admin/rules/{id}/edit"),
           ("post", "/admin/rules/{id}/edit"), ("post", "/admin/rules/{id}/enabled"),
           ("post", "/admin/rules/{id}/move")]
FORM = {"text": "name: x", "enabled": "0", "direction": "up"}


def attempt(client, method: str, path: str) -> int:
    if method == "get":
        return client.get(path).status_code
    return client.post(path, data={**FORM, "csrf_token": csrf_of(client, "/settings/tokens")}).status_code


@pytest.mark.parametrize("role", ["reviewer", "senior_reviewer"])
@pytest.mark.parametrize(("method", "path"), [("get", "/admin/rules"), *EDITING])
def test_only_admins_and_auditors_may_see_the_rules(client, people, rule, role, method, path):
    login(client, people.by_role(role).email)
    assert attempt(client, method, path.format(id=rule.id)) == 403


@pytest.mark.parametrize(("method", "path"), EDITING)
def test_auditors_only_read(client, people, rule, method, path):
    login(client, people.auditor.email)
    page = client.get("/admin/rules")
    assert page.status_code == 200 and "existing" in page.get_data(as_text=True)
    assert "New rule" not in page.get_data(as_text=True)
    assert attempt(client, method, path.format(id=rule.id)) == 403
    assert services.ordered_rules(db.session)[0].version == 1


def test_anonymous_visitors_are_sent_to_sign_in(client):
    answer = client.get("/admin/rules")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_an_admin_creates_a_rule_from_yaml(client, people, queues):
    login(client, people.admin.email)
    answer = post(client, "/admin/rules/new", {"text": RULE}, "/admin/rules/new")
    assert answer.status_code == 302
    [created] = services.ordered_rules(db.session)
    assert created.conditions == {"domain": "finance", "amount_gte": "250000", "currency": "EUR"}
    page = client.get("/admin/rules").get_data(as_text=True)
    assert "large-payments" in page and "<div>require_dual_approval: role: senior_reviewer</div>" in page


def test_invalid_rules_come_back_with_precise_errors(client, people, queues):
    login(client, people.admin.email)
    bad = RULE.replace("urgent", "critical").replace("currency: EUR", "colour: EUR")
    answer = post(client, "/admin/rules/new", {"text": bad}, "/admin/rules/new")
    assert answer.status_code == 422
    assert errors(answer) == [
        "conditions.colour: unknown key (allowed: domain, case_type, amount_gte, currency, risk_gte, confidence_lt, "
        "calibrated_agreement_below, flags_any, ai_failed, status_in, age_minutes_gte, sla_fraction_gte, "
        "reopen_count_gte)",
        "actions[1].set_priority.priority: Input should be 'low', 'normal', 'high' or 'urgent'",
    ]
    assert "colour: EUR" in answer.get_data(as_text=True)  # the text is kept for correcting
    broken = post(client, "/admin/rules/new", {"text": "name: [unclosed"}, "/admin/rules/new")
    assert errors(broken) == ["not valid YAML or JSON: line 1, column 16: expected ',' or ']', but got '<stream end>'"]
    assert services.ordered_rules(db.session) == []


def test_a_json_edit_bumps_the_version(client, people, rule):
    login(client, people.admin.email)
    form = client.get(f"/admin/rules/{rule.id}/edit").get_data(as_text=True)
    assert "name: existing" in html.unescape(form)
    text = ('{"name": "existing", "conditions": {"domain": "finance"}, '
            '"actions": [{"set_priority": {"priority": "urgent"}}]}')
    answer = post(client, f"/admin/rules/{rule.id}/edit", {"text": text}, f"/admin/rules/{rule.id}/edit")
    assert answer.status_code == 302
    db.session.refresh(rule)
    assert rule.version == 2 and rule.actions == [{"set_priority": {"priority": "urgent"}}]


def test_a_rule_name_is_unique(client, people, rule):
    login(client, people.admin.email)
    answer = post(client, "/admin/rules/new", {"text": RULE.replace("large-payments", "existing")}, "/admin/rules/new")
    assert errors(answer) == ["name: a rule named 'existing' already exists"]


def test_enable_disable_and_reorder(client, people, rule):
    second = add_rule("second", {"domain": "legal"}, [{"set_priority": {"priority": "high"}}])
    login(client, people.admin.email)
    post(client, f"/admin/rules/{rule.id}/enabled", {"enabled": "0"})
    db.session.refresh(rule)
    assert not rule.enabled and rule.version == 1
    post(client, f"/admin/rules/{second.id}/move", {"direction": "up"})
    assert [r.name for r in services.ordered_rules(db.session)] == ["second", "existing"]
    assert post(client, f"/admin/rules/{rule.id}/move", {"direction": "sideways"}).status_code == 400
