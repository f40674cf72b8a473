"""POST /api/v1/cases and GET /api/v1/cases/<id>: signed, idempotent, validated intake."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from rq import Queue as RQQueue
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import Case, Status
from app.extensions import db
from app.intake import services as intake
from app.intake.models import WebhookReceipt
from tests.conftest import DOMAIN_OF, assert_problem, case_body, make_upstream

PROBLEM = "urn:countersign:problem:"


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))



def test_signed_case_is_stored_audited_and_enqueued(upstream, redis_conn):
    body = case_body("payment_release", priority="high", callback_url="https://hooks.example.com/countersign")
    response = upstream.post_case(body, webhook_id="msg_first")
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["status"] == "received"
    assert answer["url"].endswith(f"/api/v1/cases/{answer['id']}")
    assert response.headers["Location"] == answer["url"]

    case = db.session.get(Case, answer["id"])
    assert (case.external_id, case.domain, case.case_type, case.status) == (
        body["external_id"],
        "finance",
        "payment_release",
        Status.RECEIVED.value,
    )
    assert case.priority_label == "high"
    assert case.queue.name == "finance"
    assert case.amount is not None and str(case.amount) == "48250.0000"
    assert case.currency == "EUR"
    assert case.sla_due_at > case.created_at
    assert case.created_at.tzinfo is not None
    receipt = db.session.scalar(select(WebhookReceipt))
    assert (receipt.webhook_id, receipt.case_id) == ("msg_first", case.id)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.case_id == case.id))
    assert event.action == "case.received"
    assert event.actor == f"client:{upstream.id}"

    jobs = RQQueue("ai", connection=redis_conn).jobs
    assert [(j.id, j.func_name, j.args) for j in jobs] == [
        (f"analyze-{case.id}-1", "app.ai.jobs.analyze_case", (case.id,))
    ]


def test_amounts_as_numbers_are_decimals(upstream):
    body = case_body("payment_release")
    body["data"]["amount"] = 1250.1
    response = upstream.post_case(body)
    assert response.status_code == 202
    assert str(db.session.get(Case, response.get_json()["id"]).amount) == "1250.1000"


@pytest.mark.parametrize("case_type", list(DOMAIN_OF))  # every registered case type
def test_every_case_type_is_accepted(upstream, case_type):
    response = upstream.post_case(case_body(case_type))
    assert response.status_code == 202, response.get_json()
    assert db.session.get(Case, response.get_json()["id"]).case_type == case_type


# --- signatures -------------------------------------------------------------


def test_signature_with_wrong_secret_is_refused(upstream):
    raw = json.dumps(case_body()).encode()
    other = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    headers = upstream.sign(raw, secret=other)
    response = upstream.http.post(
        "/api/v1/cases",
        data=raw,
        headers={"Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json", **headers},
    )
    body = assert_problem(response, 401, "invalid-signature")
    assert "no signature matches" in body["detail"]
    assert count(Case) == 0


def test_tampered_body_is_refused(upstream):
    raw = json.dumps(case_body()).encode()
    headers = upstream.sign(raw)
    tampered = raw.replace(b'"48250.00"', b'"98250.00"')
    assert tampered != raw
    response = upstream.http.post(
        "/api/v1/cases",
        data=tampered,
        headers={"Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json", **headers},
    )
    assert_problem(response, 401, "invalid-signature")
    assert count(Case) == 0


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_outside_tolerance_is_refused(upstream, offset):
    response = upstream.post_case(case_body(), timestamp=int(time.time()) + offset)
    body = assert_problem(response, 401, "invalid-signature")
    assert "tolerance is 300 s" in body["detail"]


def test_timestamp_within_tolerance_is_accepted(upstream):
    assert upstream.post_case(case_body(), timestamp=int(time.time()) - 290).status_code == 202


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_header_is_refused(upstream, missing):
    raw = json.dumps(case_body()).encode()
    headers = {k: v for k, v in upstream.sign(raw).items() if k != missing}
    response = upstream.http.post(
        "/api/v1/cases",
        data=raw,
        headers={"Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json", **headers},
    )
    body = assert_problem(response, 401, "invalid-signature")
    assert missing in body["detail"]


def test_several_signatures_accepted_when_one_matches(upstream):
    raw = json.dumps(case_body()).encode()
    good = upstream.sign(raw, webhook_id="msg_multi", timestamp=int(time.time()))
    bogus = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    headers = {**good, "webhook-signature": f"{bogus} {good['webhook-signature']}"}
    response = upstream.http.post(
        "/api/v1/cases",
        data=raw,
        headers={"Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json", **headers},
    )
    assert response.status_code == 202


def test_rotated_secret_old_and_new_both_valid_during_grace(upstream):
    client = db.session.get(intake.ApiClient, upstream.id)
    old_secret = upstream.secret
    new_secret = intake.rotate_secret(db.session, client)
    db.session.commit()
    for secret in (old_secret, new_secret):
        upstream.secret = secret
        assert upstream.post_case(case_body()).status_code == 202


def test_rotated_secret_old_one_refused_after_grace(upstream):
    from datetime import timedelta

    client = db.session.get(intake.ApiClient, upstream.id)
    old_secret = upstream.secret
    upstream.secret = intake.rotate_secret(db.session, client, grace=timedelta(0))
    db.session.commit()
    assert upstream.post_case(case_body()).status_code == 202
    upstream.secret = old_secret
    assert_problem(upstream.post_case(case_body()), 401, "invalid-signature")


# --- authentication ---------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic abc", "Bearer cs_not-a-real-token"])
def test_missing_or_bad_token_is_refused(upstream, authorization):
    raw = json.dumps(case_body()).encode()
    headers = {"Content-Type": "application/json", **upstream.sign(raw)}
    if authorization:
        headers["Authorization"] = authorization
    response = upstream.http.post("/api/v1/cases", data=raw, headers=headers)
    assert_problem(response, 401, "unauthenticated")


def test_revoked_client_is_refused(upstream):
    db.session.get(intake.ApiClient, upstream.id).active = False
    db.session.commit()
    assert_problem(upstream.post_case(case_body()), 401, "unauthenticated")


def test_tokens_are_stored_hashed(upstream):
    client = db.session.get(intake.ApiClient, upstream.id)
    assert upstream.token not in (client.token_hash, client.token_prefix)
    assert client.token_hash == intake.hash_token(upstream.token)


# --- idempotency and conflicts ----------------------------------------------


def test_replay_of_same_webhook_returns_same_case(upstream, redis_conn):
    body = case_body()
    first = upstream.post_case(body, webhook_id="msg_replay")
    second = upstream.post_case(body, webhook_id="msg_replay")
    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json()
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count(Case) == 1
    assert count(WebhookReceipt) == 1
    assert len(RQQueue("ai", connection=redis_conn).jobs) == 1


def test_same_webhook_id_with_other_body_conflicts(upstream):
    first = upstream.post_case(case_body(), webhook_id="msg_dup")
    response = upstream.post_case(case_body(), webhook_id="msg_dup")
    body = assert_problem(response, 409, "idempotency-key-reused")
    assert body["case_id"] == first.get_json()["id"]
    assert count(Case) == 1


def test_new_webhook_with_used_external_id_conflicts(upstream):
    body = case_body()
    first = upstream.post_case(body)
    response = upstream.post_case({**body, "title": "Again"})
    problem = assert_problem(response, 409, "duplicate-external-id")
    assert problem["case_id"] == first.get_json()["id"]
    assert str(first.get_json()["id"]) in problem["detail"]
    assert count(Case) == 1


def test_external_ids_are_unique_per_client_only(upstream, client):
    other = make_upstream(client, "crm")
    body = case_body()
    assert upstream.post_case(body).status_code == 202
    assert other.post_case(body).status_code == 202
    assert count(Case) == 2


# --- malformed and invalid bodies -------------------------------------------


def test_malformed_json_is_400(upstream):
    response = upstream.post_case(b'{"external_id": "x", ')
    assert_problem(response, 400, "malformed-json")
    assert count(Case) == 0


def test_json_that_is_not_an_object_is_400(upstream):
    assert_problem(upstream.post_case(b"[1, 2]"), 400, "malformed-json")


def test_wrong_content_type_is_415(upstream):
    response = upstream.post_case(case_body(), content_type="text/plain")
    body = assert_problem(response, 415, "unsupported-media-type")
    assert "text/plain" in body["detail"]


def test_body_over_limit_is_413(upstream):
    body = case_body()
    body["data"]["purpose"] = "x" * (1024 * 1024)
    response = upstream.post_case(body)
    assert_problem(response, 413, "request-entity-too-large")
    assert count(Case) == 0


def test_domain_not_allowed_is_403(client, queues):
    legal_only = make_upstream(client, "clm", domains=("legal",))
    response = legal_only.post_case(case_body("payment_release"))
    body = assert_problem(response, 403, "domain-not-allowed")
    assert "'finance'" in body["detail"]
    assert count(Case) == 0


def test_schema_errors_list_every_invalid_field(upstream):
    body = case_body("payment_release", title="", priority="asap")
    body["data"]["amount"] = "-5"
    body["data"]["currency"] = "euro"
    body["data"]["beneficiary"]["surprise"] = True
    del body["data"]["payment_id"]
    response = upstream.post_case(body)
    problem = assert_problem(response, 422, "validation-error")
    fields = {e["field"] for e in problem["errors"]}
    assert {
        "title",
        "priority",
        "data.amount",
        "data.currency",
        "data.beneficiary.surprise",
        "data.payment_id",
    } <= fields
    assert all(e["message"] for e in problem["errors"])
    assert count(Case) == 0 and count(WebhookReceipt) == 0 and count(AuditEvent) == 1  # client.created only


def test_case_type_in_wrong_domain_is_422(upstream):
    response = upstream.post_case(case_body("payment_release", domain="legal"))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == "case_type"
    assert "belongs to domain 'finance'" in problem["errors"][0]["message"]


def test_unknown_top_level_field_is_422(upstream):
    problem = assert_problem(upstream.post_case(case_body(urgent=True)), 422, "validation-error")
    assert problem["errors"][0]["field"] == "urgent"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://evil.example.net/hook", "not on this client's callback allow-list"),
        ("http://hooks.example.com/hook", "must use https"),
        ("ftp://hooks.example.com/hook", "absolute https URL"),
        ("https://user:pw@hooks.example.com/hook", "credentials"),
        ("https://hooks.example.com/hook\r\nX-Injected: 1", "control characters"),
        ("https://hooks.example.com/ho ok", "spaces"),
        ("https://hooks.example.com/hook\u0085", "control characters"),
    ],
)
def test_callback_url_must_be_allowed(upstream, url, message):
    problem = assert_problem(upstream.post_case(case_body(callback_url=url)), 422, "validation-error")
    assert problem["errors"][0]["field"] == "callback_url"
    assert message in problem["errors"][0]["message"]


class TestInsecureCallbackHosts:
    @pytest.fixture
    def config_overrides(self):
        return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"})}

    def test_http_allowed_for_allow_listed_test_host(self, upstream):
        response = upstream.post_case(case_body(callback_url="http://127.0.0.1:9999/hook"))
        assert response.status_code == 202


class TestRateLimit:
    @pytest.fixture
    def config_overrides(self):
        return {"INTAKE_RATE_LIMIT": "3 per minute"}

    def test_fourth_request_in_a_minute_is_429_per_client(self, upstream, client):
        for _ in range(3):
            assert upstream.post_case(case_body()).status_code == 202
        assert_problem(upstream.post_case(case_body()), 429, "too-many-requests")
        other = make_upstream(client, "other-system")
        assert other.post_case(case_body()).status_code == 202


# --- reading a case ---------------------------------------------------------


def test_client_reads_its_own_case(upstream):
    body = case_body("aml_alert")
    case_id = upstream.post_case(body).get_json()["id"]
    response = upstream.get_case(case_id)
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["id"] == case_id
    assert doc["external_id"] == body["external_id"]
    assert (doc["domain"], doc["case_type"], doc["status"], doc["version"]) == (
        "compliance",
        "aml_alert",
        "received",
        1,
    )
    assert doc["queue"] == "compliance"
    assert doc["recommendation"] is None and doc["decisions"] == [] and doc["execution"] is None


def test_another_clients_case_is_404(upstream, client):
    case_id = upstream.post_case(case_body()).get_json()["id"]
    other = make_upstream(client, "nosy")
    assert_problem(other.get_case(case_id), 404, "case-not-found")
    assert_problem(upstream.get_case(case_id + 1000), 404, "case-not-found")


def test_reading_without_token_is_401(upstream):
    case_id = upstream.post_case(case_body()).get_json()["id"]
    assert_problem(upstream.http.get(f"/api/v1/cases/{case_id}"), 401, "unauthenticated")


# --- bodies that used to end in a 500 ----------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_deeply_nested_json_is_refused_and_nothing_is_stored(upstream, depth):
    raw = b'{"external_id": "deep", "data": ' + b"[" * depth + b"]" * depth + b"}"
    problem = assert_problem(upstream.post_case(raw), 400, "malformed-json")
    assert "nests arrays and objects more than 64 deep" in problem["detail"]
    assert count(Case) == count(WebhookReceipt) == 0


@pytest.mark.parametrize(("where", "field"), [("title", "title"), ("purpose", "data.purpose"),
                                              ("key", "data.'pur\\x00pose'")])
def test_a_nul_character_anywhere_is_a_422_naming_the_field_and_nothing_is_stored(upstream, where, field):
    body = case_body()
    if where == "title":
        body["title"] = "Pay\u0000ment"
    elif where == "purpose":
        body["data"]["purpose"] = "Invoice\u0000 42"
    else:
        body["data"]["pur\u0000pose"] = "x"
    problem = assert_problem(upstream.post_case(body), 422, "validation-error")
    assert problem["errors"] == [{"field": field, "message": "must not contain the NUL character",
                                  "code": "nul_character"}]
    assert count(Case) == count(WebhookReceipt) == 0


# --- loose input is refused, not guessed at ------------------------------------------------------------


def test_a_repeated_key_is_refused_rather_than_the_last_one_winning(upstream):
    body = json.dumps(case_body()).replace('"amount": "48250.00"', '"amount": "1.00", "amount": "48250000.00"')
    assert '"amount": "1.00", "amount"' in body
    problem = assert_problem(upstream.post_case(body.encode()), 400, "malformed-json")
    assert "repeats the key 'amount'" in problem["detail"]
    assert count(Case) == 0


@pytest.mark.parametrize(("amount", "stored"), [("48250.00", "48250.0000"), (48250.5, "48250.5000"),
                                                ("0.10", "0.1000")])
def test_amounts_as_decimal_strings_or_json_numbers_are_read_exactly(upstream, amount, stored):
    body = case_body()
    body["data"]["amount"] = amount
    response = upstream.post_case(body)
    assert response.status_code == 202, response.get_json()
    assert str(db.session.get(Case, response.get_json()["id"]).amount) == stored


def test_a_json_number_amount_never_goes_through_a_binary_float(upstream):
    body = json.dumps(case_body()).replace('"amount": "48250.00"', '"amount": 0.1000000000000000055511151231257827')
    response = upstream.post_case(body.encode())
    assert response.status_code == 422  # a float would have read 0.1 and accepted it
    assert response.get_json()["errors"][0]["field"] == "data.amount"


@pytest.mark.parametrize(("field", "value"), [
    ("amount", "1e5"), ("amount", "\u0661\u0660\u0660"), ("amount", " 100"), ("amount", True), ("amount", "1,000.00"),
    ("payment_id", "PAY-\u202e1"), ("payment_id", "PAY\u200b1"), ("payment_id", "PAY\n1"),
])
def test_loose_values_in_the_data_are_refused(upstream, field, value):
    body = case_body()
    body["data"][field] = value
    problem = assert_problem(upstream.post_case(body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [f"data.{field}"]
    assert count(Case) == 0


@pytest.mark.parametrize(("field", "value"), [("confidential", "yes"), ("confidential", 1),
                                              ("external_id", "ext\u202e-1"), ("external_id", "ext\x07")])
def test_loose_values_in_the_envelope_are_refused(upstream, field, value):
    problem = assert_problem(upstream.post_case(case_body(**{field: value})), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert count(Case) == 0


def test_a_score_given_as_text_is_refused(upstream):
    body = case_body()
    body["data"]["screening"]["sanctions_hits"][0]["score"] = "0.62"
    problem = assert_problem(upstream.post_case(body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["data.screening.sanctions_hits[0].score"]


def chunked(upstream, raw: bytes, token: str | None = None) -> Any:
    """POST ``raw`` as a server passes a chunked body on: no Content-Length, the stream terminated."""
    headers = {"Authorization": f"Bearer {token or upstream.token}", "Content-Type": "application/json",
               "Transfer-Encoding": "chunked", **upstream.sign(raw)}
    return upstream.http.post("/api/v1/cases", input_stream=io.BytesIO(raw), headers=headers,
                              environ_overrides={"wsgi.input_terminated": True})


@pytest.mark.parametrize("config_overrides", [{"MAX_CONTENT_LENGTH": 4000}])
def test_a_chunked_body_over_the_limit_is_413_whoever_sends_it(upstream, config_overrides):
    small = json.dumps(case_body()).encode()
    big = json.dumps(case_body(title="x" * 100, data={**case_body()["data"], "purpose": "y" * 4000})).encode()
    assert len(small) < 4000 < len(big)
    assert_problem(chunked(upstream, big), 413, "request-entity-too-large")
    assert_problem(chunked(upstream, big, token="cs_not-a-token"), 413, "request-entity-too-large")
    assert count(Case) == 0
    response = chunked(upstream, small)
    assert response.status_code == 202, response.get_json()
