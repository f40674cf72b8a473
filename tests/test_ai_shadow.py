"""Shadow models: the local analyzer answers (primary), then a separate RQ job asks the shadow (an
OpenAI-compatible model behind real HTTP) about the same case and stores its answer apart, with full
provenance, within its own budget. Reviewers never see it, execution never uses it, and
`flask ai compare-shadow` sets both against the reviewers' decisions."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
import yaml
from rq import SimpleWorker
from sqlalchemy import select

from app.actors import Actor
from app.ai import jobs
from app.ai.models import ShadowRecommendation
from app.ai.routing import RoutingConfig, RoutingFileError, load_routing
from app.auth.services import create_api_token
from app.cases.models import Case, Decision, Status
from app.execution import services as execution
from app.extensions import db
from app.kill_switch import services as controls
from devtools.fake_openai import FakeOpenAI, Reply
from devtools.fake_openai import Status as HttpStatus
from tests.conftest import case_body, sign_in
from tests.review_helpers import claim, decide

pytest_plugins = ["tests.review_fixtures"]

MARKER = "SHADOW-ONLY-RATIONALE-7f3a"
# The payment example carries a possible sanctions match: the local analyzer holds it; the shadow rejects.
REJECT = {"action": "reject", "parameters": {"reason": "possible sanctions match"}, "rationale": MARKER,
          "confidence": 0.7, "risk_flags": ["possible_sanctions_hit"],
          "citations": ["screening.sanctions_hits[0].score"]}


def routing(shadow_budget: str | None = None) -> dict[str, Any]:
    return {
        "providers": {"local": {"kind": "local", "private": True}, "openai": {"kind": "openai", "private": False}},
        "prices": {"rules-v1": {"input": 0, "output": 0}, "gpt-4o-mini": {"input": "0.15", "output": "0.6"}},
        "routes": [{"name": "everything", "match": {}, "chain": ["local:rules-v1"], "shadow": "openai:gpt-4o-mini"}],
        "budgets": {"shadow_monthly_usd": shadow_budget} if shadow_budget is not None else {},
    }


@pytest.fixture
def fake():
    with FakeOpenAI(default=Reply(REJECT)) as server:
        yield server


@pytest.fixture
def shadow_budget() -> str | None:
    return None


@pytest.fixture
def config_overrides(fake, tmp_path, shadow_budget):
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(routing(shadow_budget)))
    return {"AI_PROVIDER": "openai", "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test-secret",
            "OPENAI_TIMEOUT_SECONDS": 5.0, "OPENAI_MAX_RETRIES": 0, "AI_ROUTING_FILE": str(path),
            "AI_RETRY_INTERVALS": []}


def analysed(upstream, redis_conn, **data: Any) -> Case:
    body = case_body("payment_release")
    body["data"].update(data)
    case_id = upstream.post_case(body).get_json()["id"]
    SimpleWorker(["ai"], connection=redis_conn).work(burst=True)  # the analysis, then the shadow it enqueued
    db.session.expire_all()
    return db.session.get(Case, case_id)


def shadows() -> list[ShadowRecommendation]:
    return list(db.session.scalars(select(ShadowRecommendation).order_by(ShadowRecommendation.id)))


def test_the_shadow_answers_apart_with_full_provenance(upstream, redis_conn, fake):
    case = analysed(upstream, redis_conn)

    rec = case.recommendation
    assert (case.status, rec.provider, rec.action) == (Status.PENDING_REVIEW, "local", "hold")
    [shadow] = shadows()
    assert (shadow.case_id, shadow.case_version, shadow.recommendation_id) == (case.id, rec.case_version, rec.id)
    assert (shadow.provider, shadow.model, shadow.template_version) == ("openai", "test-model", "v1")
    assert (shadow.action, shadow.rationale, shadow.error) == ("reject", MARKER, None)
    assert shadow.input_hash == rec.input_hash and len(shadow.prompt_hash) == 64
    assert shadow.hard_flags == ["possible_sanctions_hit"]
    assert (shadow.tokens_in, shadow.tokens_out) == (123, 45)
    assert shadow.cost_usd == Decimal("0.04545")  # 123 * 0.15 / 1000 + 45 * 0.6 / 1000
    assert len(fake.chat_requests) == 1


def test_the_reviewer_never_sees_the_shadow_and_execution_ignores_it(app, upstream, redis_conn, people):
    case = analysed(upstream, redis_conn)
    assert shadows()[0].action == "reject"
    token = create_api_token(db.session, people.reviewer, "tests")[1]
    db.session.commit()
    http = app.test_client()

    api = http.get(f"/api/v1/review/cases/{case.id}", headers={"Authorization": f"Bearer {token}"})
    sign_in(http, people.reviewer)
    page = http.get(f"/cases/{case.id}")

    assert api.status_code == 200 and page.status_code == 200
    for shown in (json.dumps(api.get_json()), page.get_data(as_text=True)):
        assert MARKER not in shown and "test-model" not in shown and "shadow" not in shown.lower()
    decide(people.reviewer, claim(people.reviewer, case), "approve")
    assert case.status == Status.APPROVED
    attempt = execution.start_attempt(db.session, case.id)
    assert (attempt.decision.action, attempt.decision.recommendation_id) == ("hold", case.recommendation_id)


@pytest.mark.parametrize("shadow_budget", ["0"])
def test_a_spent_shadow_budget_skips_a_paid_shadow(upstream, redis_conn, fake):
    case = analysed(upstream, redis_conn)

    [shadow] = shadows()
    assert case.recommendation.action == "hold"  # the primary is not concerned
    assert shadow.action is None and "shadow budget spent: USD 0.00 of 0.00 this month" in shadow.error
    assert fake.chat_requests == []


def test_a_failing_shadow_is_stored_as_a_failure_and_leaves_the_case_alone(upstream, redis_conn, fake):
    fake.set_default(HttpStatus(400))

    case = analysed(upstream, redis_conn)

    [shadow] = shadows()
    assert shadow.action is None and "openai:gpt-4o-mini: error" in shadow.error
    assert case.status == Status.PENDING_REVIEW and case.recommendation.provider == "local"


def test_compare_shadow_sets_primary_and_shadow_against_the_reviewers(upstream, redis_conn, people, runner,
                                                                        client):
    kept = analysed(upstream, redis_conn)  # the reviewer keeps the primary's hold
    decide(people.reviewer, claim(people.reviewer, kept), "approve")
    rejected = analysed(upstream, redis_conn)  # the reviewer changes it to the shadow's reject
    decide(people.reviewer, claim(people.reviewer, rejected), "edit", action="reject",
           parameters={"reason": "possible sanctions match"}, reason_code="policy_breach")
    analysed(upstream, redis_conn)  # still open: not compared
    assert db.session.scalar(select(Decision.action).where(Decision.case_id == rejected.id)) == "reject"

    result = runner.invoke(args=["ai", "compare-shadow"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "shadow openai:test-model: 2 decided case(s) compared, 1 undecided, 0 shadow failure(s)",
        "  primary agrees with the reviewers  1/2 (50.0%)",
        "  shadow agrees with the reviewers   1/2 (50.0%)",
        "  both agree                         0/2",
    ]
    later = runner.invoke(args=["ai", "compare-shadow", "--since", "2999-01-01"])
    assert later.output.strip() == "no shadow answers since 2999-01-01"

    sign_in(client, people.auditor)  # the AI dashboard shows the same numbers
    page = client.get("/dashboards/ai").get_data(as_text=True)
    row = re.search(r'<tr data-shadow="openai:test-model">(.*?)</tr>', page, re.S).group(1)
    assert [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>.*?</t[hd]>", row, re.S)] == [
        "openai:test-model", "2", "1 (50%)", "1 (50%)", "0", "1", "0"]


def test_a_route_without_a_shadow_enqueues_none(app, upstream, redis_conn, fake, tmp_path):
    config = routing()
    del config["routes"][0]["shadow"]
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(config))
    app.config["AI_ROUTING_FILE"] = str(path)

    case = analysed(upstream, redis_conn)

    assert case.recommendation.action == "hold"
    assert shadows() == [] and fake.chat_requests == []


@pytest.mark.parametrize(("change", "message"), [
    ({"shadow": "nowhere:gpt-4o-mini"}, "route names unknown provider 'nowhere'"),
    ({"shadow": "openai:gpt-5"}, "no price for model 'gpt-5'"),
    ({"shadow": "gpt-4o-mini"}, "is not 'provider:model'"),
])
def test_the_routing_file_checks_the_shadow(tmp_path, change, message):
    config = routing()
    config["routes"][0].update(change)
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(config))

    with pytest.raises(RoutingFileError, match=message):
        load_routing(str(path))


def test_a_negative_shadow_budget_is_refused():
    with pytest.raises(ValueError, match="shadow_monthly_usd"):
        RoutingConfig.model_validate(routing("-1"))


def test_the_kill_switch_stops_the_shadow_too(app, upstream, redis_conn, fake, tmp_path):
    config = routing()
    plain = {**config, "routes": [{**config["routes"][0], "shadow": None}]}
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(plain))
    shadowed = app.config["AI_ROUTING_FILE"]
    app.config["AI_ROUTING_FILE"] = str(path)
    case = analysed(upstream, redis_conn)  # the primary answers while no route has a shadow
    app.config["AI_ROUTING_FILE"] = shadowed
    controls.pause(db.session, "ai", None, "Provider incident", Actor.system("cli"))
    db.session.commit()

    assert jobs.shadow_case(case.recommendation_id) == "paused"
    assert shadows() == [] and fake.chat_requests == []
