"""Intake over a real socket, and nothing lost when Redis is down."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from rq import Queue as RQQueue
from sqlalchemy import select

from app import webhooks
from app.ai.jobs import requeue_stuck_cases
from app.cases.models import Case, Status
from app.extensions import db
from tests.conftest import case_body

DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_signed_intake_over_a_real_socket(live_server, upstream, redis_conn):
    raw = json.dumps(case_body("kyc_review")).encode()
    request = urllib.request.Request(f"{live_server}/api/v1/cases", data=raw, method="POST", headers={
        "Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json",
        **webhooks.headers(upstream.secret, "msg_socket", raw)})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        answer = json.load(response)
    assert answer["url"].startswith(live_server)
    assert db.session.get(Case, answer["id"]).status == Status.RECEIVED.value
    assert RQQueue("ai", connection=redis_conn).job_ids == [f"analyze-{answer['id']}-1"]

    bad = urllib.request.Request(f"{live_server}/api/v1/cases", data=raw, method="POST", headers={
        "Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["Content-Type"] == "application/problem+json"


class TestRedisDown:
    @pytest.fixture
    def config_overrides(self):
        return {"REDIS_URL": DEAD_REDIS}

    def test_case_is_accepted_and_swept_later(self, app, upstream, redis_url, redis_conn):
        response = upstream.post_case(case_body("aml_alert"))
        assert response.status_code == 202, response.get_json()
        case_id = response.get_json()["id"]
        assert db.session.get(Case, case_id).status == Status.RECEIVED.value
        assert RQQueue("ai", connection=redis_conn).count == 0

        # While Redis is still down the sweep enqueues nothing and fails nothing.
        assert requeue_stuck_cases() == 0

        app.config["REDIS_URL"] = redis_url  # Redis is back
        assert requeue_stuck_cases() == 1
        assert requeue_stuck_cases() == 1  # idempotent: the job already waits, nothing is duplicated
        assert RQQueue("ai", connection=redis_conn).job_ids == [f"analyze-{case_id}-1"]
        assert db.session.scalar(select(Case.status).where(Case.id == case_id)) == Status.RECEIVED.value
