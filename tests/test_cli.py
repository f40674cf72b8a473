"""flask --app wsgi users|clients …: clear errors and non-zero exits on bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.extensions import db
from app.intake.models import ApiClient
from app.intake.services import hash_token
from app.users import User


def test_users_create(runner, queues):
    result = runner.invoke(args=["users", "create", "--email", "Ana@Example.com", "--password", "correct-horse-1",
                                 "--role", "reviewer", "--queues", "finance,legal"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User))
    assert (user.email, user.role) == ("ana@example.com", "reviewer")
    assert sorted(q.name for q in user.queues) == ["finance", "legal"]
    assert user.password_hash.startswith("scrypt:")
    assert user.check_password("correct-horse-1") and not user.check_password("wrong")
    assert db.session.scalar(select(AuditEvent.action).order_by(AuditEvent.id.desc())) == "user.created"


def test_users_create_duplicate_email_fails(runner):
    args = ["users", "create", "--email", "a@example.com", "--password", "long-enough-1", "--role", "auditor"]
    assert runner.invoke(args=args).exit_code == 0
    result = runner.invoke(args=args)
    assert result.exit_code == 2
    assert "a user with email a@example.com already exists" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_users_create_unknown_role_fails(runner):
    result = runner.invoke(args=["users", "create", "--email", "a@example.com", "--password", "long-enough-1",
                                 "--role", "superuser"])
    assert result.exit_code == 2
    assert "'superuser' is not one of" in result.output


@pytest.mark.parametrize(("email", "reason"), [
    ("ana", "An email address must have an @-sign."),
    ("ana@", "There must be something after the @-sign."),
    ("@example.com", "There must be something before the @-sign."),
    ("ana@localhost", "The part after the @-sign is not valid. It should have a period."),
    ("ana smith@example.com", "invalid characters before the @-sign: SPACE."),
    ("ana..b@example.com", "An email address cannot have two periods in a row."),
    ("ana@bank.test", "special-use or reserved name"),
])
def test_users_create_refuses_a_malformed_email(runner, email, reason):
    result = runner.invoke(args=["users", "create", "--email", email, "--password", "long-enough-1",
                                 "--role", "auditor"])
    assert result.exit_code == 2
    assert f"{email!r} is not an email address: " in result.output and reason in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_users_create_stores_the_normalized_address_in_lowercase(runner):
    result = runner.invoke(args=["users", "create", "--email", "  Bea.Boss@Example.COM ", "--password",
                                 "long-enough-1", "--role", "admin"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(User.email)) == "bea.boss@example.com"


def test_users_create_refuses_short_password_and_unknown_queue(runner, queues):
    short = runner.invoke(args=["users", "create", "--email", "a@example.com", "--password", "short",
                                "--role", "reviewer"])
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    unknown = runner.invoke(args=["users", "create", "--email", "a@example.com", "--password", "long-enough-1",
                                  "--role", "reviewer", "--queues", "finance,nowhere"])
    assert unknown.exit_code == 2 and "unknown queue(s): nowhere" in unknown.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_clients_create_json_prints_credentials_once(runner):
    result = runner.invoke(args=["clients", "create", "--name", "payments-engine", "--domains", "finance,compliance",
                                 "--callback-host", "Hooks.Example.com", "--json"])
    assert result.exit_code == 0, result.output
    creds = json.loads(result.output)
    client = db.session.get(ApiClient, creds["client_id"])
    assert client.token_hash == hash_token(creds["token"])
    assert creds["token"] not in json.dumps(client.signing_secrets)
    assert client.active_secrets() == [creds["signing_secret"]]
    assert client.allowed_domains == ["compliance", "finance"]
    assert client.callback_hosts == ["hooks.example.com"]


def test_clients_create_refuses_unknown_domain_and_duplicate_name(runner):
    bad = runner.invoke(args=["clients", "create", "--name", "x", "--domains", "finance,hr"])
    assert bad.exit_code == 2 and "domains must be a non-empty subset" in bad.output
    assert runner.invoke(args=["clients", "create", "--name", "x", "--domains", "legal"]).exit_code == 0
    dup = runner.invoke(args=["clients", "create", "--name", "x", "--domains", "legal"])
    assert dup.exit_code == 2 and "already exists" in dup.output


def test_clients_rotate_secret_keeps_old_one_for_grace(runner):
    creds = json.loads(runner.invoke(args=["clients", "create", "--name", "crm", "--domains", "legal",
                                           "--json"]).output)
    result = runner.invoke(args=["clients", "rotate-secret", "--name", "crm", "--json"])
    assert result.exit_code == 0, result.output
    new = json.loads(result.output)["signing_secret"]
    client = db.session.get(ApiClient, creds["client_id"])
    db.session.refresh(client)
    assert client.active_secrets() == [new, creds["signing_secret"]]
    missing = runner.invoke(args=["clients", "rotate-secret", "--name", "nobody"])
    assert missing.exit_code == 2 and "no API client named 'nobody'" in missing.output
