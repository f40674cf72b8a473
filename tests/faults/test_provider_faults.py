"""Provider faults against a real worker process and the local OpenAI-compatible server
(devtools/fake_openai.py, the one the openai SDK tests use), routed ``openai`` then ``local``.
Each fault of the cloud provider ends in a recommendation: its own answer when a retry saves it,
the local provider's otherwise, flagged ``provider_fallback`` with the reason kept. The provider's
error mapping itself is unit-tested in tests/test_openai_provider.py and tests/test_ai_pipeline.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from app.cases.models import Case, Status
from app.extensions import db
from devtools.fake_openai import ECHO_VALID, Behaviour, FakeOpenAI, Hang, Refusal, Reply
from devtools.fake_openai import Status as HttpStatus
from tests.conftest import audit_log_intact, case_body
from tests.execution_helpers import events

pytestmark = pytest.mark.faults

ROUTING = {
    "providers": {"local": {"kind": "local", "private": True}, "openai": {"kind": "openai", "private": False}},
    "prices": {"rules-v1": {"input": 0, "output": 0}, "gpt-4o-mini": {"input": "0.00015", "output": "0.0006"}},
    "routes": [{"match": {}, "chain": ["openai:gpt-4o-mini", "local:rules-v1"]}],
}
SCHEMA_INVALID = {"action": "wire_it_all", "parameters": {}, "rationale": "x", "confidence": 0.9, "risk_flags": [],
                  "citations": []}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(default=Hang(30)) as server:  # a request beyond the script hangs: the count check fails
        yield server


@dataclass(frozen=True)
class Fault:
    name: str
    script: tuple[Behaviour, ...]  # what the provider answers to this case's requests, in order
    outcome: str  # the cloud attempt's outcome as recorded
    detail: str  # words of the recorded reason


# One SDK retry (OPENAI_MAX_RETRIES=1): a timeout or a server error is asked twice, an unusable
# answer once (retrying it is the fallback's job).
FALLBACK_FAULTS = [
    Fault("timeout", (Hang(30), Hang(30)), "transient", "timed out"),
    Fault("500 storm", (HttpStatus(500), HttpStatus(500)), "transient", "500"),
    Fault("malformed JSON", (Reply("{not json"),), "invalid_output", "not valid JSON"),
    Fault("schema-invalid", (Reply(SCHEMA_INVALID),), "invalid_output", "unknown action 'wire_it_all'"),
    Fault("refusal", (Refusal("I can't help with that."),), "invalid_output", "refused to answer"),
]
RATE_LIMITED = Fault("429 with Retry-After", (HttpStatus(429, headers={"retry-after": "1"}), ECHO_VALID), "", "")


def test_every_provider_fault_ends_in_review(upstream, processes, fake, tmp_path, redis_conn):
    """One real worker analyses a case per fault, in order, the provider scripted per request.

    Pass, for every fault: the case ends in review (never stuck in received or analyzing) with one
    recommendation, stored once; the audit log verifies. A timeout, a 500 storm, malformed JSON,
    a schema-invalid answer and a refusal → the local provider's recommendation, flagged
    ``provider_fallback``, the cloud attempt's outcome and reason kept in its details. A 429 with
    ``Retry-After: 1`` → the SDK asks again no sooner than 1 s later and the cloud answer is used,
    unflagged."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump(ROUTING))
    faults = [*FALLBACK_FAULTS, RATE_LIMITED]
    case_ids = {}
    for fault in faults:
        fake.push(*fault.script)
        case_ids[fault.name] = upstream.post_case(case_body("payment_release")).get_json()["id"]
    processes.burst("--queues", "ai", AI_PROVIDER="openai", OPENAI_BASE_URL=fake.base_url, OPENAI_API_KEY="sk-test",
                    OPENAI_TIMEOUT_SECONDS="1", OPENAI_MAX_RETRIES="1", AI_ROUTING_FILE=str(routing))
    db.session.expire_all()
    assert len(fake.chat_requests) == sum(len(fault.script) for fault in faults)  # the script was played out

    for fault in FALLBACK_FAULTS:
        case = db.session.get_one(Case, case_ids[fault.name])
        assert_in_review_once(case, fault.name)
        recommendation = case.recommendation
        assert (recommendation.provider, recommendation.fallback_used) == ("local", True), fault.name
        assert "provider_fallback" in recommendation.flags, fault.name
        [cloud] = recommendation.details["attempts"]  # the failed ones
        assert (cloud["target"], cloud["outcome"]) == ("openai:gpt-4o-mini", fault.outcome), fault.name
        assert fault.detail in cloud["detail"], fault.name

    case = db.session.get_one(Case, case_ids[RATE_LIMITED.name])
    assert_in_review_once(case, RATE_LIMITED.name)
    assert (case.recommendation.provider, case.recommendation.fallback_used) == ("openai", False)
    assert "provider_fallback" not in case.recommendation.flags
    limited, answered = fake.chat_requests[-2:]
    assert answered.received_at - limited.received_at >= 1.0
    assert audit_log_intact()


def assert_in_review_once(case: Case, fault: str) -> None:
    assert case.status == Status.PENDING_REVIEW.value, fault
    assert case.recommendation is not None, fault
    assert len(events(case.id, "case.recommendation_stored")) == 1, fault
    assert events(case.id, "case.analysis_failed") == [], fault
