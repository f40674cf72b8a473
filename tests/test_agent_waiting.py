"""Waiting for a decision under load, on the web server set-up the docs prescribe: gunicorn with
2 workers of 100 threads (docs/agent-approvals.md). 100 agents wait at once (GET ?wait=) while 10
reviewers claim and approve calls through the reviewer API: every waiter of a decided call is
answered within a second of the decision, the waiters block on Redis subscriptions (not on the
database), and the reviewers' 95th-percentile latency stays near a run without waiters."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.services import create_api_token
from app.extensions import db
from benchmarks.waiting import WAITERS, Waiters, gunicorn, run_reviewers, until_subscribed
from tests.conftest import TestConfig
from tests.review_helpers import EXAMPLES, make_case, make_user

pytest_plugins = ["tests.review_fixtures"]

REVIEWERS = 10
CASES_PER_REVIEWER = 3
WAIT_SECONDS = 20
CALL = ("execute", dict(EXAMPLES["agent_action"]["tool"]["arguments"]))


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"INTAKE_RATE_LIMIT": "100000 per minute"}


def test_a_hundred_waiting_agents_do_not_slow_the_reviewers(database, redis_url, upstream, queues, tmp_path):
    reviewers = [make_user(f"reviewer{n}", "reviewer", [queues["finance"]]) for n in range(REVIEWERS)]
    db.session.commit()
    tokens = [create_api_token(db.session, user, "load")[1] for user in reviewers]
    db.session.commit()
    per_phase = REVIEWERS * CASES_PER_REVIEWER
    cases = [make_case(upstream, "agent_action", recommendation=CALL, domain="finance").id
             for _ in range(REVIEWERS + per_phase + WAITERS)]
    warm_up, before, waited = cases[:REVIEWERS], cases[REVIEWERS:REVIEWERS + per_phase], cases[REVIEWERS + per_phase:]
    during, only_waited = waited[:per_phase], waited[per_phase:]
    # 100 waiting agents: 30 of their calls are decided while they wait, 70 never
    env = {"DATABASE_URL": database.url, "REDIS_URL": redis_url, "SECRET_KEY": "waiting-test",
           "COUNTERSIGN_ENV": "development", "AI_PROVIDER": "local", "OPENAI_API_KEY": "",
           "AUDIT_SIGNING_KEY": TestConfig.AUDIT_SIGNING_KEY, "AUDIT_SIGNING_KEY_FILE": "", "AUDIT_CHECKPOINT_DIR": ""}
    with gunicorn(env, tmp_path / "gunicorn.log") as port:
        run_reviewers(port, tokens, warm_up)  # both workers warmed up, outside the measurement
        baseline = run_reviewers(port, tokens, before)
        waiters = Waiters(port, upstream.token, waited, WAIT_SECONDS).start()
        until_subscribed(redis_url, waited)  # blocked on Redis, not polling the database
        loaded = run_reviewers(port, tokens, during)
        waiters.join(WAIT_SECONDS + 30)

    answers = waiters.answers
    assert len(answers) == WAITERS
    for case_id in during:
        answered_at, status, case_status = answers[case_id]
        assert (status, case_status) == (200, "approved")
        assert answered_at - loaded.decided_at[case_id] < 1.0, f"case {case_id} answered late"
    assert {answers[c][1:] for c in only_waited} == {(200, "pending_review")}
    print(f"reviewer p95 without waiters {baseline.p95 * 1000:.0f} ms, with {WAITERS} waiters "
          f"{loaded.p95 * 1000:.0f} ms")
    # benchmarks/waiting.py measures the 20 % target with more samples. Here, on a shared test machine,
    # the bound is loose, yet far below what waits holding the request workers would cost (seconds).
    assert loaded.p95 <= max(2 * baseline.p95, baseline.p95 + 0.5)
