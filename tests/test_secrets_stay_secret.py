"""Secrets never leave where they belong: not in logs, audit events, answers or error pages.

A day of work is driven through the app (intake with good and bad signatures, a sign-in with a
right and a wrong password, a personal token, a decision, an execution whose callback fails)
while every log record is captured; then every known secret is looked for everywhere."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.services import create_api_token
from app.execution.jobs import execute_case
from app.extensions import db
from tests.conftest import case_body
from tests.execution_helpers import approved_case
from tests.review_helpers import PASSWORD, People

pytest_plugins = ["tests.review_fixtures"]


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 1.0}


def test_no_secret_reaches_a_log_an_audit_event_or_an_answer(app, client, upstream, people: People, caplog):
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    token, raw_token = create_api_token(db.session, people.reviewer, "bot")
    db.session.commit()

    answers.append(upstream.post_case(case_body()).get_data(as_text=True))
    forged = upstream.post_case(case_body(), headers={"webhook-signature": "v1,AAAA"})
    answers.append(forged.get_data(as_text=True))
    answers.append(client.get("/api/v1/inbox?queue=finance", headers={
        "Authorization": f"Bearer {raw_token}"}).get_data(as_text=True))
    answers.append(client.get("/api/v1/inbox?queue=finance", headers={
        "Authorization": f"Bearer {raw_token}x"}).get_data(as_text=True))
    for password in (PASSWORD, "wrong-password-1"):
        page = client.get("/login").get_data(as_text=True)
        csrf = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
        answers.append(client.post("/login", data={"email": "reviewer@example.com", "password": password,
                                                   "csrf_token": csrf}).get_data(as_text=True))
    case_id = approved_case(upstream, people, "http://127.0.0.1:9/hooks")  # nothing listens: the delivery fails
    execute_case(case_id)

    secrets = {"API token": upstream.token, "signing secret": upstream.secret,
               "signing key": upstream.secret.removeprefix("whsec_"), "personal token": raw_token,
               "password": PASSWORD, "SECRET_KEY": app.config["SECRET_KEY"]}
    logs = "\n".join(record.getMessage() + " " + str(record.args) for record in caplog.records)
    audit = json.dumps([event.data for event in db.session.scalars(select(AuditEvent))])
    for name, secret in secrets.items():
        assert secret not in logs, f"the {name} is in the logs"
        assert secret not in audit, f"the {name} is in an audit event"
        assert not [answer for answer in answers if secret in answer], f"the {name} is in an answer"
    assert token.token_prefix in audit  # what is recorded is the public prefix, not the token
