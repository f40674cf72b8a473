"""OpenAIProvider through the real ``openai`` SDK against a local fake OpenAI-compatible server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.ai.providers.base import InvalidOutput, ProviderError, ProviderRequest, TransientProviderError
from app.ai.providers.openai_provider import OpenAIProvider
from app.ai.schemas import parse_recommendation, response_schema
from app.cases.types import REGISTRY, get_case_type
from devtools.fake_openai import FakeOpenAI, Hang, Refusal, Reply, Status

API_KEY = "sk-test-SECRET-0123456789abcdef"
PAYMENT = get_case_type("finance", "payment_release")
HOLD = {
    "action": "hold",
    "parameters": {"reason": "new beneficiary in a high-risk country"},
    "rationale": "first payment to this beneficiary",
    "confidence": 0.8,
    "risk_flags": ["new_beneficiary"],
    "citations": ["beneficiary.is_new"],
}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def make_provider(server: FakeOpenAI, **overrides: Any) -> OpenAIProvider:
    options: dict[str, Any] = {"api_key": API_KEY, "base_url": server.base_url, "timeout": 5.0, "max_retries": 2}
    options.update(overrides)
    return OpenAIProvider(**options)


def make_request(case_type: Any = PAYMENT, model: str = "gpt-test") -> ProviderRequest:
    return ProviderRequest(
        case_type=case_type,
        model=model,
        system_prompt="You review held payments.",
        user_prompt="Payment P-1: 12,000 EUR to a new beneficiary.",
        data={"payment_id": "P-1"},
        response_schema=response_schema(case_type),
    )


def test_valid_answer_is_parsed_with_model_and_tokens(server: FakeOpenAI) -> None:
    server.push(Reply(HOLD, model="gpt-test-2025-01-01", prompt_tokens=321, completion_tokens=54))

    response = make_provider(server).complete(make_request())

    assert response.output == HOLD
    assert response.model == "gpt-test-2025-01-01"
    assert (response.tokens_in, response.tokens_out) == (321, 54)
    assert response.raw["finish_reason"] == "stop"
    assert response.raw["id"].startswith("chatcmpl-")


def test_request_carries_model_messages_and_strict_json_schema(server: FakeOpenAI) -> None:
    request = make_request(model="gpt-review")
    make_provider(server).complete(request)

    (sent,) = server.chat_requests
    body = sent.body
    assert body["model"] == "gpt-review"
    assert body["messages"] == [
        {"role": "system", "content": request.system_prompt},
        {"role": "user", "content": request.user_prompt},
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "recommendation", "schema": request.response_schema, "strict": True},
    }
    assert body["temperature"] == 0
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


def test_empty_api_key_sends_a_placeholder(server: FakeOpenAI) -> None:
    make_provider(server, api_key="").complete(make_request())

    assert server.chat_requests[0].headers["authorization"] == "Bearer not-needed"


def test_missing_usage_counts_zero_tokens(server: FakeOpenAI) -> None:
    server.push(Reply(HOLD, usage=False))

    response = make_provider(server).complete(make_request())

    assert (response.tokens_in, response.tokens_out) == (0, 0)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Reply("{not json"), "not valid JSON"),
        (Reply(""), "empty answer"),
        (Reply('{"action": "ho', finish_reason="length"), "token limit"),
        (Reply("{}", finish_reason="content_filter"), "content filter"),
        (Refusal("I can't help with that."), "refused to answer: I can't help with that."),
    ],
    ids=["bad-json", "empty", "truncated", "content-filter", "refusal"],
)
def test_unusable_answer_is_invalid_output(server: FakeOpenAI, behaviour: Any, message: str) -> None:
    server.push(behaviour)

    with pytest.raises(InvalidOutput, match=message):
        make_provider(server).complete(make_request())
    assert len(server.chat_requests) == 1  # an answer is not retried


def test_rate_limit_then_success_is_retried_by_the_sdk(server: FakeOpenAI) -> None:
    server.push(Status(429), Reply(HOLD))

    response = make_provider(server).complete(make_request())

    assert response.output == HOLD
    assert len(server.chat_requests) == 2


def test_server_error_storm_is_transient_after_every_attempt(server: FakeOpenAI) -> None:
    server.set_default(Status(500))

    with pytest.raises(TransientProviderError, match="HTTP 500") as caught:
        make_provider(server, max_retries=2).complete(make_request())
    assert len(server.chat_requests) == 3
    assert "3 attempt(s)" in str(caught.value)


def test_rate_limit_exhausted_is_transient(server: FakeOpenAI) -> None:
    server.set_default(Status(429))

    with pytest.raises(TransientProviderError, match="rate limited HTTP 429"):
        make_provider(server, max_retries=1).complete(make_request())
    assert len(server.chat_requests) == 2


def test_authentication_failure_is_not_transient_and_hides_the_key(server: FakeOpenAI) -> None:
    # Servers echo (part of) the key back; it must not reach our message.
    server.push(Status(401, body={"error": {
        "message": f"Incorrect API key provided: {API_KEY}. Also sk-other-key-abcdef.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
    }}))
    provider = make_provider(server)

    with pytest.raises(ProviderError) as caught:
        provider.complete(make_request())

    assert not isinstance(caught.value, TransientProviderError)
    assert "HTTP 401" in str(caught.value)
    assert "invalid_api_key" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(provider)):
        assert API_KEY not in text
        assert "SECRET" not in text
        assert "sk-other-key" not in text
    assert len(server.chat_requests) == 1  # 4xx is not retried


@pytest.mark.parametrize("code", [400, 404])
def test_other_client_errors_are_not_transient(server: FakeOpenAI, code: int) -> None:
    server.push(Status(code))

    with pytest.raises(ProviderError, match=f"HTTP {code}") as caught:
        make_provider(server).complete(make_request())
    assert not isinstance(caught.value, TransientProviderError)


def test_hang_past_the_timeout_is_transient(server: FakeOpenAI) -> None:
    server.push(Hang(3))
    started = time.monotonic()

    with pytest.raises(TransientProviderError, match="timed out"):
        make_provider(server, timeout=0.5, max_retries=0).complete(make_request())
    assert time.monotonic() - started < 2


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIProvider(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1", timeout=2, max_retries=0)

    with pytest.raises(TransientProviderError, match="cannot connect"):
        provider.complete(make_request())


def test_answer_validates_against_the_case_type(server: FakeOpenAI) -> None:
    provider = make_provider(server)
    server.push(Reply(HOLD))

    recommendation = parse_recommendation(PAYMENT, provider.complete(make_request()).output)

    assert recommendation.action == "hold"
    assert recommendation.parameters == {"reason": HOLD["parameters"]["reason"]}

    server.push(Reply({**HOLD, "action": "wire_to_offshore"}))
    output = provider.complete(make_request()).output
    with pytest.raises(InvalidOutput, match="unknown action 'wire_to_offshore'"):
        parse_recommendation(PAYMENT, output)


@pytest.mark.parametrize("case_type", list(REGISTRY.values()), ids=lambda c: c.name)
def test_fake_server_default_echoes_a_valid_answer(server: FakeOpenAI, case_type: Any) -> None:
    response = make_provider(server).complete(make_request(case_type))

    recommendation = parse_recommendation(case_type, response.output)
    assert recommendation.action == case_type.action_names[0]
