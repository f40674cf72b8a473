"""flask --app wsgi users|clients|reason-codes: the administration commands scripts use."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.services import create_api_token, user_for_token
from app.extensions import db
from app.intake.models import ApiClient
from app.review.models import ReasonCode
from app.users import User
from tests.conftest import case_body, make_upstream, sign_in

pytest_plugins = ["tests.review_fixtures"]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def last_action() -> str:
    return db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc()))


def test_users_list_as_json(runner, people):
    result = runner.invoke(args=["users", "list", "--json"])
    assert result.exit_code == 0, result.output
    found = {u["email"]: u for u in json.loads(result.output)}
    assert found["outsider@example.com"] == {"email": "outsider@example.com", "name": "Outsider", "role": "reviewer",
                                             "queues": ["legal"], "active": True, "qa_all": False,
                                             "must_change_password": False, "last_sign_in": None}
    table = runner.invoke(args=["users", "list"]).output
    assert table.splitlines()[0].split() == ["EMAIL", "NAME", "ROLE", "QUEUES", "ACTIVE", "LAST", "SIGN-IN"]


def test_users_update_role_and_queues(runner, people):
    result = runner.invoke(args=["users", "update", "Outsider@example.com", "--role", "senior_reviewer",
                                 "--queues", "finance,legal"])
    assert result.exit_code == 0, result.output
    assert "role: reviewer -> senior_reviewer" in result.output and "queues: legal -> finance, legal" in result.output
    db.session.refresh(people.outsider)
    assert (people.outsider.role, sorted(q.name for q in people.outsider.queues)) == ("senior_reviewer",
                                                                                       ["finance", "legal"])
    assert last_action() == "user.updated"


def test_users_update_refuses_an_unknown_queue_and_changes_nothing(runner, people):
    result = runner.invoke(args=["users", "update", "outsider@example.com", "--role", "admin", "--queues", "nowhere"])
    assert result.exit_code == 2 and "unknown queue(s): nowhere" in result.output
    db.session.expire_all()
    assert people.outsider.role == "reviewer"


def test_users_deactivate_and_reactivate(runner, client, people):
    sign_in(client, people.reviewer)
    _, token = create_api_token(db.session, people.reviewer, "bot")
    db.session.commit()
    result = runner.invoke(args=["users", "deactivate", "reviewer@example.com"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "reviewer@example.com deactivated: 1 session(s) ended, 1 API token(s) revoked"
    assert user_for_token(db.session, token) is None
    assert runner.invoke(args=["users", "deactivate", "reviewer@example.com"]).exit_code == 2  # already
    assert runner.invoke(args=["users", "reactivate", "reviewer@example.com"]).exit_code == 0
    db.session.refresh(people.reviewer)
    assert people.reviewer.active is True and last_action() == "user.reactivated"


def test_the_last_admin_cannot_be_deactivated_from_the_cli_either(runner, people):
    result = runner.invoke(args=["users", "deactivate", "admin@example.com"])
    assert result.exit_code == 2
    assert "they are the last active admin" in result.output
    assert runner.invoke(args=["users", "update", "admin@example.com", "--role", "auditor"]).exit_code == 2
    db.session.expire_all()
    assert (people.admin.active, people.admin.role) == (True, "admin")


def test_users_reset_password_prints_a_one_time_password(runner, people):
    result = runner.invoke(args=["users", "reset-password", "auditor@example.com"])
    assert result.exit_code == 0, result.output
    password = result.stdout.strip()
    db.session.refresh(people.auditor)
    assert people.auditor.check_password(password) and people.auditor.must_change_password
    assert runner.invoke(args=["users", "reset-password", "nobody@example.com"]).exit_code == 2


def test_clients_list_update_and_revoke(runner, client, queues):
    upstream = make_upstream(client)
    listed = json.loads(runner.invoke(args=["clients", "list", "--json"]).output)
    assert listed == [{"name": "payments-engine", "token_prefix": upstream.token[:10],
                       "domains": ["compliance", "finance", "legal"],
                       "callback_hosts": ["127.0.0.1", "hooks.example.com"], "active": True, "signing_secrets": 1}]
    result = runner.invoke(args=["clients", "update", "payments-engine", "--domains", "finance",
                                 "--callback-hosts", "cb.example.org"])
    assert result.exit_code == 0, result.output
    client_row = db.session.get(ApiClient, upstream.id)
    db.session.refresh(client_row)
    assert (client_row.allowed_domains, client_row.callback_hosts) == (["finance"], ["cb.example.org"])
    bad = runner.invoke(args=["clients", "update", "payments-engine", "--callback-hosts", "https://x.example.org"])
    assert bad.exit_code == 2 and "not a host name: https://x.example.org" in bad.output
    assert runner.invoke(args=["clients", "update", "payments-engine", "--domains", ""]).exit_code == 2
    assert runner.invoke(args=["clients", "revoke", "payments-engine"]).exit_code == 0
    assert upstream.post_case(case_body()).status_code == 401
    assert runner.invoke(args=["clients", "revoke", "nobody"]).exit_code == 2


def test_clients_create_refuses_a_callback_host_with_a_scheme(runner):
    result = runner.invoke(args=["clients", "create", "--name", "x", "--domains", "finance",
                                 "--callback-host", "http://hooks.example.com"])
    assert result.exit_code == 2 and "not a host name" in result.output
    assert count(ApiClient) == 0


def test_reason_codes_add_update_deactivate_and_list(runner, app):
    added = runner.invoke(args=["reason-codes", "add", "duplicate_payment", "--label", "Duplicate payment",
                                "--kinds", "reject,request_info"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(args=["reason-codes", "add", "duplicate_payment", "--label", "Again"]).exit_code == 2
    assert runner.invoke(args=["reason-codes", "add", "x", "--label", "X", "--kinds", "decide"]).exit_code == 2
    updated = runner.invoke(args=["reason-codes", "update", "duplicate_payment", "--label", "Paid twice"])
    assert "label: Duplicate payment -> Paid twice" in updated.output
    assert runner.invoke(args=["reason-codes", "deactivate", "other"]).exit_code == 0
    listed = {c["code"]: c for c in json.loads(runner.invoke(args=["reason-codes", "list", "--json"]).output)}
    assert listed["duplicate_payment"] == {"code": "duplicate_payment", "label": "Paid twice",
                                           "kinds": ["reject", "request_info"], "active": True}
    assert listed["other"]["active"] is False
    assert count(ReasonCode) == 11  # 8 configured + 2 of the respond decision (migration 0015) + the one added
    assert last_action() == "reason_code.updated"


def test_nothing_to_change_is_an_error(runner, people):
    assert runner.invoke(args=["users", "update", "reviewer@example.com"]).exit_code == 2
    assert runner.invoke(args=["reason-codes", "update", "other"]).exit_code == 2
    assert count(User) == 7
