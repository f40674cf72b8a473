"""The auditor's workspace: the audit page (search, paging, empty states, bad input, the log's
status), evidence packages checked by hand and by the outside verifier, and the CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from app.audit import chain, checkpoints
from app.audit.actions import AuditAction
from app.audit.models import AuditCheckpoint, AuditEvent
from app.auditor import status
from app.cases.models import Case
from app.execution.receiver import Receiver
from app.extensions import db
from tests.conftest import ROOT, Upstream, sign_in
from tests.review_helpers import People, claim, decide, make_case, make_user
from tools.verify_evidence import main as verify_evidence_main
from tools.verify_evidence import verify_package
from tools.verify_export import (
    VerificationError,
    leaf_hash,
    load_public_key,
    root_from_inclusion,
    verify_checkpoint,
)

pytest_plugins = ["tests.review_fixtures"]

# TestConfig's signing key is the 32 bytes 0, 1, …, 31; its public key, worked out on its own with
# Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key() (raw bytes, base64):
TEST_PUBLIC_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 2.0}


def record_at(monkeypatch: pytest.MonkeyPatch, when: datetime, action: AuditAction, actor: str, *,
              case_id: int | None = None, data: dict[str, Any] | None = None) -> int:
    """An event written as if at ``when``; its id."""
    monkeypatch.setattr(chain, "utcnow", lambda: when)
    event_id = chain.record(db.session, action, actor, case_id=case_id, data=data)
    db.session.commit()
    monkeypatch.undo()
    return event_id


def shown_events(html: str) -> list[int]:
    """The ids of the events the audit page lists, top to bottom."""
    return [int(found) for found in re.findall(r'<tr data-event="(\d+)"', html)]


def march(day: int, hour: int) -> datetime:
    return datetime(2020, 3, day, hour, tzinfo=UTC)


@pytest.fixture
def auditor_client(client, people: People):
    sign_in(client, people.auditor)
    return client


@pytest.fixture
def history(monkeypatch: pytest.MonkeyPatch, upstream: Upstream, people: People) -> dict[str, Any]:
    """Two cases through intake, and five events of March 2020 written by hand on top."""
    first, second = make_case(upstream), make_case(upstream)
    reviewer, senior = f"user:{people.reviewer.id}", f"user:{people.senior.id}"
    events = {
        "login": record_at(monkeypatch, march(1, 9), AuditAction.USER_LOGIN, reviewer, data={"user_id": 1}),
        "claimed": record_at(monkeypatch, march(1, 10), AuditAction.CASE_CLAIMED, reviewer, case_id=first.id,
                             data={"from": "pending_review", "to": "in_review"}),
        "approved": record_at(monkeypatch, march(2, 11), AuditAction.CASE_APPROVED, senior, case_id=first.id,
                              data={"kind": "approve", "action": "hold"}),
        "fired": record_at(monkeypatch, march(3, 23), AuditAction.RULE_FIRED, "system:rules", case_id=second.id,
                           data={"rule": "big-payments"}),
        "moved": record_at(monkeypatch, march(4, 0), AuditAction.RULE_MOVED, "system:rules",
                           data={"rule": "big-payments", "to": 1}),
    }
    return {"first": first.id, "second": second.id, **events}


# --- the audit page: who may see it ----------------------------------------------------------------------


def test_reviewers_are_refused_and_anonymous_callers_sent_to_sign_in(client, people):
    assert client.get("/audit").headers["Location"].startswith("/login?next=")
    for user in (people.reviewer, people.senior):
        sign_in(client, user)
        assert client.get("/audit").status_code == 403
        assert 'href="/audit"' not in client.get("/queues").get_data(as_text=True)


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_admins_and_auditors_find_the_page_from_every_page(client, people, role):
    sign_in(client, getattr(people, role))
    assert 'href="/audit">Audit</a>' in client.get("/queues").get_data(as_text=True)
    assert client.get("/audit").status_code == 200


# --- searching ---------------------------------------------------------------------------------------------


def test_the_newest_event_comes_first(auditor_client, history):
    shown = shown_events(auditor_client.get("/audit").get_data(as_text=True))
    assert shown[:5] == [history["moved"], history["fired"], history["approved"], history["claimed"],
                         history["login"]]


def test_filter_by_case(auditor_client, history):
    html = auditor_client.get(f"/audit?case={history['first']}").get_data(as_text=True)
    actions = re.findall(r'data-label="Action"><code>([a-z_.]+)</code>', html)
    # intake and analysis (make_case), then the two written by hand, newest first
    assert actions == ["case.approved", "case.claimed", "case.recommendation_stored", "case.analysis_started",
                       "case.received"]


def test_filter_by_a_users_email_in_any_case(auditor_client, history):
    html = auditor_client.get("/audit?actor=REVIEWER@example.com").get_data(as_text=True)
    assert shown_events(html) == [history["claimed"], history["login"]]
    assert "Reviewer &lt;reviewer@example.com&gt;" in html  # named as on the case timeline


def test_filter_by_a_raw_actor_and_an_action(auditor_client, history):
    assert shown_events(auditor_client.get("/audit?actor=system:rules").get_data(as_text=True)) == [
        history["moved"], history["fired"]]
    html = auditor_client.get("/audit?actor=system:rules&action=rule.fired").get_data(as_text=True)
    assert shown_events(html) == [history["fired"]]
    assert f'<a href="/cases/{history["second"]}">#{history["second"]}</a>' in html
    assert "rule: big-payments" in html  # the data summary


def test_filter_by_days_includes_both_ends(auditor_client, history):
    html = auditor_client.get("/audit?since=2020-03-02&until=2020-03-03").get_data(as_text=True)
    assert shown_events(html) == [history["fired"], history["approved"]]  # 3 March 23:00 in, 4 March 00:00 out
    assert shown_events(auditor_client.get("/audit?until=2020-03-01").get_data(as_text=True)) == [
        history["claimed"], history["login"]]


def test_every_filter_at_once(auditor_client, history, people):
    query = (f"case={history['first']}&actor=senior@example.com&action=case.approved"
             "&since=2020-03-01&until=2020-03-31")
    assert shown_events(auditor_client.get(f"/audit?{query}").get_data(as_text=True)) == [history["approved"]]


def test_unsealed_events_say_so_and_sealed_ones_show_their_place(auditor_client, history):
    html = auditor_client.get(f"/audit?case={history['second']}").get_data(as_text=True)
    assert html.count("not sealed yet") == 4  # received, analysis started, recommendation stored, the rule
    chain.seal(db.session)
    seq = db.session.scalar(select(AuditEvent.seq).where(AuditEvent.id == history["fired"]))
    html = auditor_client.get(f"/audit?case={history['second']}").get_data(as_text=True)
    assert "not sealed yet" not in html
    assert f'<tr data-event="{history["fired"]}">\n      <td class="num" data-label="Seq">{seq}</td>' in html


def test_pages_of_fifty_newest_first_back_and_forth(auditor_client, people):
    ids = [chain.record(db.session, AuditAction.USER_LOGIN, "system:bulk", data={"i": i}) for i in range(120)]
    db.session.commit()
    first = auditor_client.get("/audit?actor=system:bulk").get_data(as_text=True)
    assert shown_events(first) == ids[119:69:-1]  # i = 119 … 70
    assert "Newer" not in first
    older = re.search(r'href="(/audit\?[^"]*before=\d+[^"]*)" *>Older', first).group(1).replace("&amp;", "&")
    second = auditor_client.get(older).get_data(as_text=True)
    assert shown_events(second) == ids[69:19:-1]  # i = 69 … 20
    older = re.search(r'href="(/audit\?[^"]*before=\d+[^"]*)" *>Older', second).group(1).replace("&amp;", "&")
    third = auditor_client.get(older).get_data(as_text=True)
    assert shown_events(third) == ids[19::-1]  # i = 19 … 0
    assert "Older" not in third
    newer = re.search(r'href="(/audit\?[^"]*after=\d+[^"]*)"[^>]*>← Newer', third).group(1).replace("&amp;", "&")
    assert shown_events(auditor_client.get(newer).get_data(as_text=True)) == ids[69:19:-1]
    assert "actor=system:bulk" in newer  # the search goes along


def test_a_page_past_the_end_says_so(auditor_client, history):
    response = auditor_client.get(f"/audit?before={history['login']}&actor=system:rules")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert shown_events(html) == []
    assert "No more events this way" in html


# --- empty states and bad input ------------------------------------------------------------------------------


def test_an_empty_log(client, app):
    auditor = make_user("lonely-auditor", "auditor", [])
    db.session.commit()
    sign_in(client, auditor)
    html = client.get("/audit").get_data(as_text=True)
    assert "The audit log is empty" in html
    assert shown_events(html) == []


def test_a_search_that_matches_nothing(auditor_client, history):
    response = auditor_client.get("/audit?action=queue.updated")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No event matches this search" in html
    assert shown_events(html) == []


@pytest.mark.parametrize(("query", "field", "message"), [
    ("case=abc", "case", "Not a valid integer value."),
    ("case=0", "case", "Number must be between 1 and 2147483647."),
    ("case=99999999999999999999", "case", "Number must be between 1 and 2147483647."),
    ("actor=nobody@example.com", "actor", "No user has this email."),
    ("actor=root", "actor", "Give a user&#39;s email, or user:ID, client:ID or system:NAME."),
    ("actor=user:abc", "actor", "Give a user&#39;s email, or user:ID, client:ID or system:NAME."),
    ("action=case.deleted", "action", "Not a valid choice."),
    ("since=2020-02-30", "since", "Not a valid date value."),
    ("until=yesterday", "until", "Not a valid date value."),
    ("since=2020-03-05&until=2020-03-04", "until", "The end of the range comes before its start."),
])
def test_bad_input_is_a_form_error_never_a_crash(auditor_client, history, query, field, message):
    response = auditor_client.get(f"/audit?{query}")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    row = re.search(rf'<div class="form-row compact[^"]*has-error">\s*<label for="{field}">.*?</div>', html, re.S)
    assert row is not None, html
    assert re.findall(r'<p class="field-error" role="alert">(.*?)</p>', row.group(0)) == [message]
    assert "Check the search" in html
    assert shown_events(html) == []


def test_every_wrong_field_is_marked_at_once(auditor_client, history):
    response = auditor_client.get("/audit?case=abc&actor=nobody@example.com&until=someday")
    assert response.status_code == 400
    assert re.findall(r'<p class="field-error" role="alert">(.*?)</p>', response.get_data(as_text=True)) == [
        "Not a valid integer value.", "No user has this email.", "Not a valid date value."]


@pytest.mark.parametrize("query", ["before=x", "after=-1", "before=5&after=2", "before=99999999999999999999"])
def test_a_broken_page_link_is_a_message_never_a_crash(auditor_client, history, query):
    response = auditor_client.get(f"/audit?{query}")
    assert response.status_code == 400
    assert '<p class="flash flash-error" role="alert">' in response.get_data(as_text=True)


def test_the_largest_dates_are_fine(auditor_client, history):
    response = auditor_client.get("/audit?since=0001-01-01&until=9999-12-31")
    assert response.status_code == 200
    # the client's creation, three events of each case at intake and analysis, the five of March 2020
    assert len(shown_events(response.get_data(as_text=True))) == 1 + 2 * 3 + 5


# --- the log's status and its verification --------------------------------------------------------------


def test_the_status_shows_counts_the_latest_checkpoint_and_the_key(app, auditor_client, history):
    made = checkpoints.create(db.session, app.config)  # seals the twelve events, then signs
    chain.record(db.session, AuditAction.USER_LOGIN, "system:test", data={})
    chain.record(db.session, AuditAction.USER_LOGIN, "system:test", data={})
    db.session.commit()
    html = auditor_client.get("/audit").get_data(as_text=True)
    assert "<dd data-sealed>12</dd>" in html and "<dd data-unsealed>2</dd>" in html
    assert "<dd data-checkpoint-size>12 events, signed" in html
    assert f"<code class=\"hash\" data-root-hash>{made.root_hash}</code>" in html
    assert f"<code data-key-id>{made.key_id}</code>" in html
    assert f"<code class=\"hash\" data-signature>{made.signature}</code>" in html
    assert f"<code class=\"hash\" data-public-key>{TEST_PUBLIC_KEY}</code>" in html
    assert "flask --app wsgi audit public-key" in html
    assert f"<code>{app.config['AUDIT_CHECKPOINT_DIR']}</code>" in html
    assert "No audit signing key is configured" not in html
    chain.seal(db.session)
    assert "(2 sealed since)" in auditor_client.get("/audit").get_data(as_text=True)


def test_the_status_warns_without_a_signing_key_or_published_copies(app, auditor_client):
    app.config.update(AUDIT_SIGNING_KEY="", AUDIT_CHECKPOINT_DIR="")
    html = auditor_client.get("/audit").get_data(as_text=True)
    assert "No audit signing key is configured" in html
    assert "<dd>None signed yet</dd>" in html
    assert "Not configured: checkpoints live only in the database" in html


def test_a_signing_key_that_cannot_be_read_is_a_warning_not_an_error(app, auditor_client, tmp_path):
    app.config.update(AUDIT_SIGNING_KEY="", AUDIT_SIGNING_KEY_FILE=str(tmp_path / "missing.pem"))
    response = auditor_client.get("/audit")
    assert response.status_code == 200
    assert "The audit signing key cannot be used: AUDIT_SIGNING_KEY_FILE: the key file cannot be read" in (
        response.get_data(as_text=True))


def test_the_export_form_asks_audit_export_for_every_filter(auditor_client, history):
    html = auditor_client.get("/audit").get_data(as_text=True)
    form = re.search(r'<form method="get" action="/audit/export".*?</form>', html, re.S).group(0)
    assert set(re.findall(r'name="([a-z_]+)"', form)) == {
        "format", "since", "until", "domain", "queue", "case_type", "outcome", "reviewer", "redact"}
    assert '<option value="jsonl">' in form and '<option value="csv">' in form
    assert '<option value="finance-senior">' in form  # every queue
    assert 'name="csrf_token"' not in form  # a GET form
    outcomes = re.findall(r'<option value="([a-z_]+)">', re.search(r'name="outcome".*?</select>', form, re.S).group(0))
    assert outcomes == ["approved", "edited_and_approved", "rejected", "escalated", "info_requested"]
    for outcome in outcomes:  # each choice the form offers is one the export understands
        answer = auditor_client.get(f"/audit/export?format=csv&outcome={outcome}")
        assert answer.status_code == 200 and answer.mimetype == "application/zip", outcome


def test_verify_on_the_page(app, auditor_client, history):
    checkpoints.create(db.session, app.config)
    html = auditor_client.get("/audit/verify").get_data(as_text=True)
    assert 'data-verify="ok"' in html
    assert "12 events verified against 2 signed checkpoints" in html  # stored, and its published file


def test_verify_names_what_is_broken(app, auditor_client, history):
    checkpoints.create(db.session, app.config)
    [published] = (Path(app.config["AUDIT_CHECKPOINT_DIR"])).glob("checkpoint-*.json")
    document = json.loads(published.read_text())
    document["checkpoint"]["root_hash"] = "0" * 64
    published.write_text(json.dumps(document))
    html = auditor_client.get("/audit/verify").get_data(as_text=True)
    assert 'data-verify="broken"' in html
    assert f"checkpoint file {published.name} of 12 events: checkpoint signature does not verify" in html


def test_a_large_log_is_left_to_the_cli(monkeypatch, auditor_client, history):
    chain.seal(db.session)
    monkeypatch.setattr(status, "VERIFY_ON_PAGE_MAX", 11)
    assert "Verify the whole log now" not in auditor_client.get("/audit").get_data(as_text=True)
    html = auditor_client.get("/audit/verify").get_data(as_text=True)
    assert 'data-verify="too-large"' in html and "flask --app wsgi audit verify" in html


# --- evidence packages ---------------------------------------------------------------------------------------


@pytest.fixture
def executed_case(upstream: Upstream, people: People, receiver: Receiver, redis_conn) -> Case:
    """A payment through intake, the AI's recommendation, a claim, an approval and its delivery upstream."""
    case = make_case(upstream, callback_url=receiver.url + "/hooks", external_id="PAY-EVIDENCE-1")
    claim(people.reviewer, case)
    decide(people.reviewer, case, "approve")
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True)
    db.session.expire_all()
    executed = db.session.get_one(Case, case.id)
    assert executed.status == "executed"
    return executed


def evidence_of(http, case_id: int) -> dict[str, Any]:
    response = http.get(f"/cases/{case_id}/evidence.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Disposition"] == f'attachment; filename="case-{case_id}-evidence.json"'
    return response.get_json()


def test_the_package_tells_the_whole_story_of_the_case(auditor_client, executed_case):
    package = evidence_of(auditor_client, executed_case.id)
    assert package["format"] == "countersign-evidence/1"
    case = package["case"]
    assert {key: case[key] for key in ("id", "external_id", "domain", "case_type", "status", "queue", "client",
                                       "amount", "currency", "requires_dual_approval", "recommendation_id")} == {
        "id": executed_case.id, "external_id": "PAY-EVIDENCE-1", "domain": "finance", "case_type": "payment_release",
        "status": "executed", "queue": "finance", "client": "payments-engine", "amount": "48250.0000",
        "currency": "EUR", "requires_dual_approval": False, "recommendation_id": package["recommendations"][0]["id"]}
    assert case["data"]["payment_id"] == "PAY-2026-118734"  # the payload as posted (the type's example)
    assert case["data"]["beneficiary"]["name"] == "Baltic Freight Solutions UAB"

    [recommendation] = package["recommendations"]
    assert {key: recommendation[key] for key in (
        "action", "parameters", "confidence", "flags", "provider", "model", "template_version", "prompt_hash",
        "cost_usd", "case_version")} == {
        "action": "hold", "parameters": {"reason": "Possible sanctions match on the beneficiary"},
        "confidence": 0.8, "flags": ["new_beneficiary"], "provider": "local", "model": "rules-v1",
        "template_version": "v1", "prompt_hash": "0" * 64, "cost_usd": "0.00000000", "case_version": 2}

    [decision] = package["decisions"]
    assert {key: decision[key] for key in ("kind", "action", "parameters", "diff", "reason_code", "reason",
                                           "decided_by", "reviewer_name", "reviewer_role")} == {
        "kind": "approve", "action": "hold", "parameters": {"reason": "Possible sanctions match on the beneficiary"},
        "diff": {}, "reason_code": None, "reason": None, "decided_by": "reviewer@example.com",
        "reviewer_name": "Reviewer", "reviewer_role": "reviewer"}

    [execution] = package["executions"]
    assert (execution["status"], execution["decision_id"]) == ("delivered", decision["id"])
    assert [(a["number"], a["outcome"], a["status_code"]) for a in execution["attempts"]] == [(1, "delivered", 200)]

    audit = package["audit"]
    assert [json.loads(event["entry"])["action"] for event in audit["events"]] == [
        "case.received", "case.analysis_started", "case.recommendation_stored", "case.claimed", "case.approved",
        "case.execution_started", "case.executed"]
    # the API client's creation came first: the case's events are 2 … 8 of a log of 8
    assert [(event["seq"], event["leaf_index"]) for event in audit["events"]] == [(n, n - 1) for n in range(2, 9)]
    assert audit["checkpoint"]["tree_size"] == 8
    assert (audit["public_key"], audit["not_yet_provable"], audit["warnings"]) == (TEST_PUBLIC_KEY, [], [])


def test_every_proof_leads_to_the_signed_root(auditor_client, executed_case):
    audit = evidence_of(auditor_client, executed_case.id)["audit"]
    checkpoint = audit["checkpoint"]
    verify_checkpoint(checkpoint, load_public_key(TEST_PUBLIC_KEY))  # raises unless signed by the test key
    root = bytes.fromhex(checkpoint["root_hash"])
    for event in audit["events"]:
        leaf = leaf_hash(event["entry"].encode())
        assert leaf.hex() == event["leaf_hash"]
        path = [bytes.fromhex(node) for node in event["inclusion_path"]]
        assert root_from_inclusion(event["leaf_index"], checkpoint["tree_size"], leaf, path) == root
        assert json.loads(event["entry"])["case_id"] == executed_case.id
    stored = db.session.scalars(select(AuditCheckpoint)).one()
    assert (stored.tree_size, stored.root_hash, stored.signature) == (
        checkpoint["tree_size"], checkpoint["root_hash"], checkpoint["signature"])


def test_a_checkpoint_is_signed_only_when_the_case_needs_one(auditor_client, executed_case, upstream):
    evidence_of(auditor_client, executed_case.id)
    evidence_of(auditor_client, executed_case.id)  # nothing new: the same checkpoint
    assert db.session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 1
    make_case(upstream)  # events of another case only: still covered
    assert evidence_of(auditor_client, executed_case.id)["audit"]["checkpoint"]["tree_size"] == 8
    chain.record(db.session, AuditAction.CASE_SLA_WARNING, "system:sla", case_id=executed_case.id, data={"pct": 50})
    db.session.commit()
    audit = evidence_of(auditor_client, executed_case.id)["audit"]
    assert audit["checkpoint"]["tree_size"] == 8 + 3 + 1  # the other case's three events and the warning
    assert json.loads(audit["events"][-1]["entry"])["action"] == "case.sla_warning"
    assert db.session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 2


def test_without_a_signing_key_the_package_says_nothing_is_proven(app, auditor_client, executed_case):
    app.config["AUDIT_SIGNING_KEY"] = ""
    audit = evidence_of(auditor_client, executed_case.id)["audit"]
    assert (audit["checkpoint"], audit["public_key"], audit["events"]) == (None, None, [])
    assert [(event["action"], event["why"]) for event in audit["not_yet_provable"]] == [
        ("case.received", "not sealed yet"), ("case.analysis_started", "not sealed yet"),
        ("case.recommendation_stored", "not sealed yet"), ("case.claimed", "not sealed yet"),
        ("case.approved", "not sealed yet"), ("case.execution_started", "not sealed yet"),
        ("case.executed", "not sealed yet")]
    assert audit["warnings"] == [
        "no audit signing key is configured: no checkpoint could be signed for this package",
        "7 event(s) of this case are not under a signed checkpoint yet: they are listed without proofs"]
    with pytest.raises(VerificationError, match="no signed checkpoint"):
        verify_package(evidence_of(auditor_client, executed_case.id), load_public_key(TEST_PUBLIC_KEY))


def test_the_outside_verifier_accepts_the_package_and_catches_any_change(auditor_client, executed_case, tmp_path,
                                                                         capsys):
    package = evidence_of(auditor_client, executed_case.id)
    key = load_public_key(TEST_PUBLIC_KEY)
    assert verify_package(package, key) == [2, 3, 4, 5, 6, 7, 8]
    path = tmp_path / "package.json"
    path.write_text(json.dumps(package))
    assert verify_evidence_main([str(path), "--public-key", TEST_PUBLIC_KEY]) == 0
    assert f"case {executed_case.id}: 7 audit events proven in it" in capsys.readouterr().out

    def changed(change) -> dict[str, Any]:
        copy = json.loads(json.dumps(package))
        change(copy["audit"])
        return copy

    def entry_of_another_case(audit: dict[str, Any]) -> None:
        event = audit["events"][0]
        event["entry"] = event["entry"].replace(f'"case_id":{executed_case.id}', '"case_id":99')
        event["leaf_hash"] = leaf_hash(event["entry"].encode()).hex()

    for change, message in [
        (lambda a: a["events"][3].update(entry=a["events"][3]["entry"].replace("user:", "user:9")), "leaf hash"),
        (lambda a: a["events"][1]["inclusion_path"].reverse(), "does not lead to the checkpoint's root"),
        (lambda a: a["events"][2].update(leaf_index=0), "is not event 4"),
        (entry_of_another_case, "is not event 2 of case"),
        (lambda a: a["checkpoint"].update(tree_size=9), "signature does not verify"),
    ]:
        with pytest.raises(VerificationError, match=message):
            verify_package(changed(change), key)
    other_key = base64.b64encode(bytes(32)).decode()
    assert verify_evidence_main([str(path), "--public-key", other_key]) == 1
    assert "NOT VERIFIED: checkpoint was signed by key" in capsys.readouterr().err


def test_the_two_scripts_handed_to_an_auditor_run_on_their_own(auditor_client, executed_case, tmp_path):
    """Copied out of the repository into an empty folder, run by a plain Python that can import
    nothing of the app: what an outside auditor does."""
    for script in ("verify_export.py", "verify_evidence.py"):
        shutil.copy(ROOT / "tools" / script, tmp_path / script)
    (tmp_path / "package.json").write_text(json.dumps(evidence_of(auditor_client, executed_case.id)))
    run = subprocess.run([sys.executable, "verify_evidence.py", "package.json", "--public-key", TEST_PUBLIC_KEY],
                         cwd=tmp_path, capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, check=False)
    assert run.returncode == 0, run.stderr
    assert f"case {executed_case.id}: 7 audit events proven in it" in run.stdout


def test_the_printable_page(auditor_client, executed_case):
    response = auditor_client.get(f"/cases/{executed_case.id}/evidence")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    package = evidence_of(auditor_client, executed_case.id)
    assert f"<h1>Case #{executed_case.id}: Test payment release</h1>" in html
    assert '<link rel="stylesheet" href="/static/evidence.css">' in html and "<style" not in html  # CSP: no inline
    for heading in ("The case", "AI recommendations", "Decisions", "Execution", "Audit events and their proofs",
                    "How to check this package"):
        assert f">{heading}</h2>" in html
    assert package["audit"]["checkpoint"]["root_hash"] in html
    for event in package["audit"]["events"]:
        assert event["leaf_hash"] in html and all(node in html for node in event["inclusion_path"])
    assert "Reviewer &lt;reviewer@example.com&gt;, reviewer" in html  # the decision's reviewer
    assert f'href="/cases/{executed_case.id}/evidence.json"' in html


def test_who_may_have_a_package(client, people, executed_case):
    for path in (f"/cases/{executed_case.id}/evidence", f"/cases/{executed_case.id}/evidence.json"):
        sign_in(client, None)
        assert client.get(path).headers["Location"].startswith("/login?next=")
        for user, refusal in ((people.reviewer, 403), (people.senior, 403), (people.outsider, 404)):
            sign_in(client, user)
            assert client.get(path).status_code == refusal
        for user in (people.admin, people.auditor):
            sign_in(client, user)
            assert client.get(path).status_code == 200
            assert client.get(path.replace(f"/cases/{executed_case.id}/", "/cases/999/")).status_code == 404


def test_the_case_page_links_to_its_package_for_auditors_only(client, people, executed_case):
    link = f'href="/cases/{executed_case.id}/evidence"'
    sign_in(client, people.auditor)
    assert link in client.get(f"/cases/{executed_case.id}").get_data(as_text=True)
    sign_in(client, people.reviewer)
    assert link not in client.get(f"/cases/{executed_case.id}").get_data(as_text=True)


# --- the CLI ------------------------------------------------------------------------------------------------


def test_cli_writes_the_package_and_its_page(runner, executed_case, tmp_path):
    out = tmp_path / "evidence.json"
    result = runner.invoke(args=["audit", "evidence", "--case", str(executed_case.id), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"case {executed_case.id}: 7 audit events proven; written to {out}" in result.output
    package = json.loads(out.read_text())
    assert verify_package(package, load_public_key(TEST_PUBLIC_KEY)) == [2, 3, 4, 5, 6, 7, 8]

    page = tmp_path / "evidence.html"
    result = runner.invoke(args=["audit", "evidence", "--case", str(executed_case.id), "--out", str(page), "--html"])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "<style>" in html and "@media print" in html  # readable offline: the stylesheet is inline
    assert package["audit"]["checkpoint"]["root_hash"] in html
    assert "/cases/" not in html  # no links into the app


def test_cli_refuses_an_unknown_case(runner, app, tmp_path):
    out = tmp_path / "evidence.json"
    result = runner.invoke(args=["audit", "evidence", "--case", "999", "--out", str(out)])
    assert result.exit_code == 2
    assert "Error: case 999 not found" in result.output
    assert not out.exists()


def test_cli_prints_the_public_key(runner, app):
    result = runner.invoke(args=["audit", "public-key"])
    assert (result.exit_code, result.output) == (0, TEST_PUBLIC_KEY + "\n")
    app.config["AUDIT_SIGNING_KEY"] = ""
    result = runner.invoke(args=["audit", "public-key"])
    assert result.exit_code == 2
    assert "Error: no audit signing key is configured" in result.output
