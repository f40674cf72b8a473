"""The decision log export: its rows against a hand-checked world of decisions, filters, redaction,
streaming in flat memory, the manifest's proof, the standalone verifier (in-process and as a clean
subprocess), the CLI and the ZIP download; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import csv
import functools
import gc
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import current_app

from app.audit import chain, checkpoints
from app.audit.models import AuditCheckpoint, AuditEvent
from app.auditor import export, export_sql
from app.cases.models import Case, Decision
from app.db import utcnow
from app.errors import Invalid
from app.execution.jobs import notify_upstream
from app.extensions import db
from tests.conftest import ROOT, sign_in
from tests.export_world import NAMES, World, build, seal_everything
from tests.review_helpers import decide
from tools.verify_export import VerificationError, verify_export

pytest_plugins = ["tests.review_fixtures"]

VERIFIER = ROOT / "tools" / "verify_export.py"
OTHER_KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="  # a private key that is not the app's


@pytest.fixture
def world(upstream, people, redis_conn) -> World:
    return build(upstream, people)


@pytest.fixture
def public_key(app) -> str:
    return checkpoints.public_key(app.config)


def export_to(folder: Path, fmt: str = "jsonl", *, redact: bool = False, **filters: Any) -> tuple[Path, dict]:
    path = folder / f"decisions.{fmt}"
    result = export.write_export(db.session, current_app.config, path, fmt=fmt, redact=redact,
                                 filters=export.ExportFilters(**filters))
    return path, result.manifest


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def listed_events(path: Path) -> list[list[dict[str, Any]]]:
    """The audit events of each row, JSON Lines or CSV."""
    if path.suffix == ".jsonl":
        return [row["audit_events"] for row in jsonl_rows(path)]
    with path.open(encoding="utf-8", newline="") as text:
        return [json.loads(row["audit_events"]) for row in csv.DictReader(text)]


def entries(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(event["entry"]) for event in row["audit_events"]]


# --- the rows, checked by hand ------------------------------------------------------------------------------


def expected_rows(w: World) -> list[tuple[Case, dict[str, Any], list[str]]]:
    """Each row as it must read (timestamps, the prompt hash and the events apart), and its events' actions."""
    credit_rec = {"action": "approve", "parameters": {"limit": "12000.00"}, "confidence": 0.72, "provider": "local",
                  "model": "rules-v1", "template_version": "v1"}
    big_rec = {**credit_rec, "parameters": {"limit": "90000.00"}, "confidence": 0.56}
    delivered = {"status": "delivered", "attempts": 1, "last_status_code": None, "last_error": None}
    ana = {"email": "reviewer@example.com", "name": "Ana Lindqvist", "role": "reviewer"}
    grace = {"email": "senior@example.com", "name": "Grace Okafor", "role": "senior_reviewer"}
    tomas = {"email": "reviewer2@example.com", "name": "Tomás Ferreira", "role": "reviewer"}
    finance = {"case_type": "credit_limit_change", "domain": "finance", "queue": "finance"}
    nothing_final = {"final_action": None, "final_parameters": {}, "edited": False, "diff": {}, "execution": None}
    start = ["case.received", "case.analysis_started", "case.recommendation_stored", "case.claimed"]
    executed = ["case.execution_started", "case.executed"]
    return [
        (w.breached, {"external_id": "EXT-KYC-1", "case_type": "kyc_review", "domain": "compliance",
                      "queue": "compliance", "outcome": "rejected",
                      "recommendation": {"action": "request_documents",
                                         "parameters": {"documents": ["proof_of_address"]}, "confidence": 0.9,
                                         "provider": "local", "model": "rules-v1", "template_version": "v1"},
                      **nothing_final, "reviewers": [{**ana, "decision": "reject"}],
                      "reason_code": "insufficient_evidence", "reason": "The proof of address is a screenshot.",
                      "sla": "breached"},
         [*start[:3], "case.sla_breached", "case.claimed", "case.rejected"]),
        (w.approved, {"external_id": "EXT-CREDIT-A", **finance, "outcome": "approved", "recommendation": credit_rec,
                      "final_action": "approve", "final_parameters": {"limit": "12000.00"}, "edited": False,
                      "diff": {}, "reviewers": [{**ana, "decision": "approve"}], "reason_code": None, "reason": None,
                      "sla": "met", "execution": delivered},
         [*start, "case.approved", *executed]),
        (w.edited, {"external_id": "EXT-CREDIT-B", **finance, "outcome": "edited_and_approved",
                    "recommendation": credit_rec, "final_action": "counter_offer",
                    "final_parameters": {"limit": "9000.00"}, "edited": True,
                    "diff": {"action": ["approve", "counter_offer"], "parameters": {"limit": ["12000.00", "9000.00"]}},
                    "reviewers": [{**tomas, "decision": "edit"}], "reason_code": "customer_risk",
                    "reason": "Income supports GBP 9,000 at most.", "sla": "met", "execution": delivered},
         [*start, "case.approved", *executed]),
        (w.dual, {"external_id": "EXT-CREDIT-C", **finance, "outcome": "approved", "recommendation": big_rec,
                  "final_action": "approve", "final_parameters": {"limit": "90000.00"}, "edited": False, "diff": {},
                  "reviewers": [{**ana, "decision": "approve"}, {**grace, "decision": "second_approval"}],
                  "reason_code": None, "reason": None, "sla": "met", "execution": delivered},
         [*start, "case.first_approval", "case.second_approval", *executed]),
        (w.dual_rejected, {"external_id": "EXT-CREDIT-E", **finance, "outcome": "rejected", "recommendation": big_rec,
                           **nothing_final,
                           "reviewers": [{**ana, "decision": "approve"}, {**grace, "decision": "reject"}],
                           "reason_code": "policy_breach", "reason": "Exposure above the customer's band.",
                           "sla": "met"},
         [*start, "case.first_approval", "case.rejected"]),
        (w.escalated, {"external_id": "EXT-CREDIT-F", **finance, "queue": "finance-senior", "outcome": "escalated",
                       "recommendation": credit_rec, **nothing_final, "reviewers": [{**ana, "decision": "escalate"}],
                       "reason_code": "other", "reason": "Needs a senior look.", "sla": "met"},
         [*start, "case.escalated"]),
        (w.escalated, {"external_id": "EXT-CREDIT-F", **finance, "queue": "finance-senior",
                       "outcome": "info_requested", "recommendation": credit_rec, **nothing_final,
                       "reviewers": [{**grace, "decision": "request_info"}], "reason_code": "needs_more_information",
                       "reason": "Send the last three payslips.", "sla": "met"},
         [*start, "case.escalated", "case.claimed", "case.info_requested"]),
    ]


def without_moments(row: dict[str, Any]) -> dict[str, Any]:
    """The row without what the clock and the prompt text decide, and without its events."""
    kept = {key: value for key, value in row.items() if key not in
            ("decision_id", "case_id", "received_at", "recommended_at", "decided_at", "executed_at", "audit_events")}
    kept["recommendation"] = {k: v for k, v in row["recommendation"].items() if k != "prompt_hash"}
    kept["reviewers"] = [{k: v for k, v in r.items() if k != "decided_at"} for r in row["reviewers"]]
    return kept


def test_one_row_per_decision_as_checked_by_hand(app, world, tmp_path):
    path, manifest = export_to(tmp_path)
    rows = jsonl_rows(path)
    expected = expected_rows(world)
    assert [row["case_id"] for row in rows] == [case.id for case, _, _ in expected]  # the waiting case has no row
    for row, (case, fields, actions) in zip(rows, expected, strict=True):
        assert without_moments(row) == {key: fields[key] for key in without_moments(row)}, case.external_id
        assert set(fields) == set(without_moments(row))
        assert re.fullmatch(r"[0-9a-f]{64}", row["recommendation"]["prompt_hash"])
        assert [entry["action"] for entry in entries(row)] == actions, case.external_id
        assert all(entry["case_id"] == case.id for entry in entries(row))
        assert [event["leaf_index"] for event in row["audit_events"]] == [entry["seq"] - 1 for entry in entries(row)]
        assert row["decided_at"] == row["reviewers"][-1]["decided_at"]
        moments = [row["received_at"], row["recommended_at"], row["decided_at"], row["executed_at"]]
        assert sorted(m for m in moments if m) == [m for m in moments if m]
    assert (manifest["rows"], manifest["rows_left_out"], manifest["file"]) == (7, 0, "decisions.jsonl")


def test_the_settling_decision_names_the_row_and_its_audited_reviewer(app, world, people, tmp_path):
    rows = {row["decision_id"]: row for row in jsonl_rows(export_to(tmp_path)[0])}
    second = db.session.scalars(sa.select(Decision).where(Decision.case_id == world.dual.id,
                                                          Decision.kind == "second_approval")).one()
    [approval] = [e for e in entries(rows[second.id]) if e["action"] == "case.second_approval"]
    assert approval["actor"] == f"user:{people.senior.id}"
    assert approval["data"]["first_decision_id"] == second.id - 1


def test_csv_has_a_flat_column_per_field_and_json_for_nested_values(app, world, tmp_path):
    path, _ = export_to(tmp_path, "csv")
    with path.open(encoding="utf-8", newline="") as text:
        reader = csv.DictReader(text)
        rows = list(reader)
    assert reader.fieldnames == [
        "decision_id", "case_id", "external_id", "case_type", "domain", "queue", "outcome", "recommendation.action",
        "recommendation.parameters", "recommendation.confidence", "recommendation.provider", "recommendation.model",
        "recommendation.template_version", "recommendation.prompt_hash", "final_action", "final_parameters", "edited",
        "diff", "reviewers", "reason_code", "reason", "received_at", "recommended_at", "decided_at", "executed_at",
        "sla", "execution.status", "execution.attempts", "execution.last_status_code", "execution.last_error",
        "audit_events"]
    edited = next(row for row in rows if row["external_id"] == "EXT-CREDIT-B")
    assert (edited["outcome"], edited["final_action"], edited["edited"]) == ("edited_and_approved", "counter_offer",
                                                                             "true")
    assert json.loads(edited["diff"]) == {"action": ["approve", "counter_offer"],
                                          "parameters": {"limit": ["12000.00", "9000.00"]}}
    assert json.loads(edited["final_parameters"]) == {"limit": "9000.00"}
    assert (edited["execution.status"], edited["execution.attempts"], edited["execution.last_error"]) == (
        "delivered", "1", "")
    assert [r["email"] for r in json.loads(edited["reviewers"])] == ["reviewer2@example.com"]
    rejected = next(row for row in rows if row["external_id"] == "EXT-KYC-1")
    assert (rejected["final_action"], rejected["execution.status"], rejected["sla"]) == ("", "", "breached")
    assert [json.loads(e["entry"])["action"] for e in json.loads(rejected["audit_events"])][-1] == "case.rejected"


@pytest.mark.parametrize("given", [{}, {"outcome": "rejected"}, {"reviewer": "senior@example.com"},
                                   {"queue": "finance-senior", "since": "2000-01-01"}, {"domain": "compliance"}],
                         ids=json.dumps)
def test_postgresql_writes_the_lines_python_writes_byte_for_byte(app, world, given):
    """The JSON Lines PostgreSQL builds (the export's path there) against DecisionRows' (SQLite's, CSV's, the
    redacted ones'), which the tests above check by hand."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the PostgreSQL pass of the suite runs it")
    filters = export.parse_filters(db.session, given)
    size = checkpoints.create(db.session, app.config).tree_size
    python = list(export.EncodedRows(export.DecisionRows(db.session, filters, size), "jsonl"))
    postgres = export_sql.PostgresLines(db.session.connection().connection.driver_connection, filters, size,
                                         export.OUTCOMES)
    assert list(postgres) == python
    assert python and postgres.left_out == 0


# --- filters --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "external_ids"), [
    ({"domain": "compliance"}, ["EXT-KYC-1"]),
    ({"case_type": "kyc_review"}, ["EXT-KYC-1"]),
    ({"queue": "finance-senior"}, ["EXT-CREDIT-F", "EXT-CREDIT-F"]),
    ({"outcome": "rejected"}, ["EXT-KYC-1", "EXT-CREDIT-E"]),
    ({"outcome": "edited_and_approved"}, ["EXT-CREDIT-B"]),
    ({"reviewer": "senior@example.com"}, ["EXT-CREDIT-C", "EXT-CREDIT-E", "EXT-CREDIT-F"]),
    ({"reviewer": "SENIOR@example.com", "outcome": "info_requested"}, ["EXT-CREDIT-F"]),
    ({"domain": "legal"}, []),
], ids=lambda value: json.dumps(value) if isinstance(value, dict) else None)
def test_filters_choose_rows(app, world, tmp_path, given, external_ids):
    filters = export.parse_filters(db.session, given)
    path = tmp_path / "decisions.jsonl"
    result = export.write_export(db.session, app.config, path, fmt="jsonl", filters=filters)
    assert [row["external_id"] for row in jsonl_rows(path)] == external_ids
    assert result.manifest["filters"] == {**dict.fromkeys(export.FILTERS), **filters.document()}
    assert verify_export(path, checkpoints.public_key(app.config)).checked


def test_since_and_until_bound_the_decision_time(app, world, tmp_path):
    since = export.parse_filters(db.session, {"since": world.between.isoformat()})
    until = export.parse_filters(db.session, {"until": world.between.isoformat()})
    for filters, expected in ((since, ["EXT-CREDIT-B", "EXT-CREDIT-C", "EXT-KYC-1", "EXT-CREDIT-E", "EXT-CREDIT-F",
                                       "EXT-CREDIT-F"]), (until, ["EXT-CREDIT-A"])):
        path = tmp_path / "decisions.jsonl"
        export.write_export(db.session, app.config, path, fmt="jsonl", filters=filters)
        assert sorted(row["external_id"] for row in jsonl_rows(path)) == sorted(expected)
    today = world.between.date().isoformat()
    whole_day = export.parse_filters(db.session, {"since": today, "until": today})
    assert whole_day.since == datetime.fromisoformat(f"{today}T00:00:00+00:00")
    assert whole_day.until == datetime.fromisoformat(f"{today}T23:59:59.999999+00:00")


@pytest.mark.parametrize(("given", "field", "message"), [
    ({"since": "yesterday"}, "since", "'yesterday' is not a date (YYYY-MM-DD) or an ISO 8601 date and time"),
    ({"until": "2026-13-01"}, "until", "'2026-13-01' is not a date"),
    ({"since": "2026-03-02", "until": "2026-03-01"}, "until", "is before since"),
    ({"domain": "sales"}, "domain", "unknown domain 'sales'; one of finance, legal, compliance"),
    ({"queue": "nope"}, "queue", "no queue named 'nope'"),
    ({"case_type": "loan"}, "case_type", "unknown case type 'loan'; one of payment_release"),
    ({"case_type": "kyc_review", "domain": "finance"}, "case_type", "case type 'kyc_review' belongs to domain"),
    ({"outcome": "approve"}, "outcome", "unknown outcome 'approve'; one of approved, edited_and_approved"),
    ({"reviewer": "ghost@example.com"}, "reviewer", "no user with email 'ghost@example.com'"),
])
def test_bad_filters_are_named(app, people, given, field, message):
    with pytest.raises(Invalid) as refused:
        export.parse_filters(db.session, given)
    assert message in refused.value.by_field[field]
    assert refused.value.message.startswith(f"{field}: ")


def test_no_filter_given_is_no_filter(app, people):
    assert export.parse_filters(db.session, {"since": "", "domain": "  ", "queue": None}) == export.ExportFilters()


# --- redaction -------------------------------------------------------------------------------------------------


PERSONAL = [*NAMES.values(), "reviewer@example.com", "reviewer2@example.com", "senior@example.com", "EXT-KYC-1",
            "EXT-CREDIT-A", "EXT-CREDIT-B", "EXT-CREDIT-C", "EXT-CREDIT-E", "EXT-CREDIT-F",
            "The proof of address is a screenshot.", "Income supports GBP 9,000 at most.",
            "Exposure above the customer's band.", "Needs a senior look.", "Send the last three payslips.",
            "12000.00", "9000.00", "90000.00", "proof_of_address", "Priya Raman", "CUST-208871", "Tomás", "Ferreira"]


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_redaction_hides_every_personal_value_and_still_verifies(app, world, tmp_path, public_key, fmt):
    path, manifest = export_to(tmp_path, fmt, redact=True)
    text = path.read_text(encoding="utf-8")
    assert [value for value in PERSONAL if value in text] == []
    assert "entry" not in text and manifest["redacted"] is True
    report = verify_export(path, public_key)
    assert "leaf hashes given (redacted)" in report.checked[-1]


def test_redaction_keeps_one_pseudonym_per_person_within_an_export_only(app, world, tmp_path):
    rows = jsonl_rows(export_to(tmp_path, redact=True)[0])
    by_case = {row["case_id"]: row for row in rows}
    ana = by_case[world.approved.id]["reviewers"][0]
    assert re.fullmatch(r"person-[0-9a-f]{16}", ana["email"]) and ana["name"] == ana["email"]
    assert by_case[world.dual.id]["reviewers"][0]["email"] == ana["email"]
    assert by_case[world.dual.id]["reviewers"][1]["email"] not in (ana["email"], None)
    assert by_case[world.edited.id]["diff"]["action"] == ["approve", "counter_offer"]  # actions are not personal
    old, new = by_case[world.edited.id]["diff"]["parameters"]["limit"]
    assert new == by_case[world.edited.id]["final_parameters"]["limit"] != old
    assert old == by_case[world.approved.id]["recommendation"]["parameters"]["limit"]
    assert by_case[world.breached.id]["reason_code"] == "insufficient_evidence"
    assert {"leaf_index", "leaf_hash"} == set(by_case[world.breached.id]["audit_events"][0])
    (tmp_path / "again").mkdir()
    again = jsonl_rows(export_to(tmp_path / "again", redact=True)[0])
    assert {row["case_id"]: row for row in again}[world.approved.id]["reviewers"][0]["email"] != ana["email"]


# --- the manifest and the verifier ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_the_manifest_proves_every_listed_event_against_a_checkpoint_signed_at_export(app, world, tmp_path,
                                                                                      public_key, fmt):
    path, manifest = export_to(tmp_path, fmt)
    assert json.loads(export.manifest_path(path).read_text()) == manifest
    stored = db.session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())).first()
    assert manifest["checkpoint"] == stored.document()
    assert manifest["checkpoint"]["tree_size"] == manifest["proof"]["tree_size"] == chain.sealed_count(db.session)
    assert manifest["public_key"] == public_key and manifest["file_format"] == fmt
    report = verify_export(path, public_key)
    assert report.warnings == []
    assert report.checked[0].startswith(f"decisions.{fmt}: SHA-256 {manifest['file_sha256']}")
    assert "the signature is valid under the public key given" in report.checked[1]
    listed = {event["leaf_index"] for row in listed_events(path) for event in row}
    assert f"7 rows list {len(listed)} audit events, all in the signed log" in report.checked[2]


def test_without_a_key_the_manifests_key_is_used_and_the_auditor_warned(app, world, tmp_path):
    report = verify_export(export_to(tmp_path)[0])
    assert "under the public key in the manifest" in report.checked[1]
    assert report.warnings == [
        "the public key was taken from the manifest itself: that shows the export is intact and consistent, not "
        "that Countersign made it; pass the key your Countersign installation published (--public-key) to check "
        "where it came from"]


def test_another_key_fails(app, world, tmp_path):
    other = checkpoints.public_key({"AUDIT_SIGNING_KEY": OTHER_KEY})
    with pytest.raises(VerificationError, match="checkpoint was signed by key"):
        verify_export(export_to(tmp_path)[0], other)


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_one_changed_byte_fails(app, world, tmp_path, public_key, fmt):
    path, _ = export_to(tmp_path, fmt)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="its SHA-256 differs"):
        verify_export(path, public_key)


def rewrite(path: Path, change: Any) -> None:
    """Change the file with ``change(text)`` and fix the manifest's SHA-256, as a careful forger would."""
    text = change(path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    manifest_file = export.manifest_path(path)
    manifest = json.loads(manifest_file.read_text())
    manifest["file_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))


def test_a_rewritten_event_fails_even_with_the_files_hash_fixed(app, world, people, tmp_path, public_key):
    path, _ = export_to(tmp_path)
    actor = f'\\"actor\\":\\"user:{people.reviewer.id}\\"'
    rewrite(path, lambda text: text.replace(actor, f'\\"actor\\":\\"user:{people.senior2.id}\\"', 1))
    with pytest.raises(VerificationError, match="do not give the checkpoint's root hash"):
        verify_export(path, public_key)


def test_an_event_moved_to_another_case_fails(app, world, tmp_path, public_key):
    path, _ = export_to(tmp_path)
    rows = jsonl_rows(path)
    rows[0]["audit_events"][0] = rows[1]["audit_events"][0]
    rewrite(path, lambda _text: "".join(json.dumps(row) + "\n" for row in rows))
    case_id = rows[0]["case_id"]
    with pytest.raises(VerificationError, match=f"row 1: the event at leaf .* is not event .* of case {case_id}"):
        verify_export(path, public_key)


def test_a_tampered_or_missing_proof_node_fails(app, world, tmp_path, public_key):
    path, manifest = export_to(tmp_path)
    manifest_file = export.manifest_path(path)
    assert manifest["proof"]["nodes"], "the waiting case's events are outside every row"
    start, size, node = manifest["proof"]["nodes"][0]
    manifest["proof"]["nodes"][0] = [start, size, ("0" if node[0] != "0" else "1") + node[1:]]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(VerificationError, match="do not give the checkpoint's root hash"):
        verify_export(path, public_key)
    del manifest["proof"]["nodes"][0]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(VerificationError, match=f"lacks the hash of leaves \\[{start}, {start + size}\\)"):
        verify_export(path, public_key)


def test_a_tampered_leaf_hash_of_a_redacted_export_fails(app, world, tmp_path, public_key):
    path, _ = export_to(tmp_path, redact=True)
    first = jsonl_rows(path)[0]["audit_events"][0]["leaf_hash"]
    rewrite(path, lambda text: text.replace(first, ("0" if first[0] != "0" else "1") + first[1:]))
    with pytest.raises(VerificationError, match="do not give the checkpoint's root hash"):
        verify_export(path, public_key)


def test_a_row_removed_fails(app, world, tmp_path, public_key):
    path, _ = export_to(tmp_path)
    rewrite(path, lambda text: "".join(text.splitlines(keepends=True)[1:]))
    with pytest.raises(VerificationError, match="the file holds 6 rows, the manifest says 7"):
        verify_export(path, public_key)


def run_verifier(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """tools/verify_export.py alone: copied into a folder of its own and run there, with no PYTHONPATH."""
    folder = tmp_path / "auditor"
    folder.mkdir(exist_ok=True)
    shutil.copy(VERIFIER, folder / "verify_export.py")
    return subprocess.run([sys.executable, "verify_export.py", *args], cwd=folder, capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")}, timeout=60, check=False)


def test_the_standalone_verifier_passes_and_fails_as_a_clean_subprocess(app, world, tmp_path, public_key):
    (tmp_path / "export").mkdir()
    path, manifest = export_to(tmp_path / "export")
    key_file = tmp_path / "countersign.pub"
    key_file.write_text(public_key + "\n")
    passed = run_verifier(tmp_path, str(path), "--public-key", str(key_file))
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines()[-1] == f"{path}: verified"
    assert f"ok: checkpoint of {manifest['checkpoint']['tree_size']} events signed" in passed.stdout
    assert "warning" not in passed.stdout
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x20
    path.write_bytes(bytes(data))
    failed = run_verifier(tmp_path, str(path), "--public-key", public_key)
    assert failed.returncode == 1
    assert failed.stderr.strip() == ("FAILED: decisions.jsonl is not the file the manifest describes: its SHA-256 "
                                     "differs")


def test_the_standalone_verifier_without_a_key_warns(app, world, tmp_path):
    path, _ = export_to(tmp_path)
    result = run_verifier(tmp_path, str(path))
    assert result.returncode == 0, result.stderr
    assert "warning: the public key was taken from the manifest itself" in result.stdout


# --- what an export covers ----------------------------------------------------------------------------------


def test_a_decision_made_after_the_checkpoint_is_left_out_and_counted(app, world, people, tmp_path, monkeypatch):
    signed = checkpoints.create

    def signed_then_decided(session, config):
        made = signed(session, config)
        decide(people.senior2, world.waiting, "approve")  # the second approval, after the checkpoint
        seal_everything()
        return made

    monkeypatch.setattr(checkpoints, "create", signed_then_decided)
    path, manifest = export_to(tmp_path)
    assert (manifest["rows"], manifest["rows_left_out"]) == (7, 1)
    assert world.waiting.id not in {row["case_id"] for row in jsonl_rows(path)}
    monkeypatch.undo()
    path, manifest = export_to(tmp_path)
    assert (manifest["rows"], manifest["rows_left_out"]) == (8, 0)
    assert jsonl_rows(path)[-1]["reviewers"][1]["email"] == "senior2@example.com"


def test_a_rejections_row_ends_at_the_rejection_an_approvals_at_its_execution(app, world, tmp_path):
    rejection = db.session.scalars(sa.select(Decision).where(Decision.case_id == world.breached.id)).one()
    assert notify_upstream(world.breached.id, "case.decided", rejection.id) == "delivered"
    after = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.case_id == world.breached.id)
                               .order_by(AuditEvent.id.desc()).limit(1)).one()
    assert after == "upstream.notified"
    rows = {row["case_id"]: row for row in jsonl_rows(export_to(tmp_path)[0])}
    assert entries(rows[world.breached.id])[-1]["action"] == "case.rejected"
    assert entries(rows[world.approved.id])[-1]["action"] == "case.executed"


# --- streaming --------------------------------------------------------------------------------------------------


class Discard:
    """An output that keeps nothing."""

    def write(self, data: bytes) -> int:
        return len(data)


def add_decided_cases(count: int, client_id: int, reviewer_id: int, queue_id: int) -> None:
    """``count`` rejected cases, each with its decision and three audit events, inserted in bulk and sealed."""
    now = utcnow()
    first = (db.session.scalar(sa.select(sa.func.max(Case.id))) or 0) + 1
    ids = range(first, first + count)
    db.session.execute(sa.insert(Case), [
        {"id": i, "client_id": client_id, "external_id": f"BULK-{i}", "domain": "finance",
         "case_type": "payment_release", "title": f"Bulk {i}", "payload": {}, "status": "rejected", "priority": 1,
         "queue_id": queue_id, "created_at": now, "updated_at": now} for i in ids])
    db.session.execute(sa.insert(Decision), [
        {"case_id": i, "reviewer_id": reviewer_id, "kind": "reject", "case_version": 3, "parameters": {},
         "diff": {}, "reason_code": "other", "reason": f"Bulk reason {i}", "created_at": now} for i in ids])
    db.session.execute(sa.insert(AuditEvent), [
        {"case_id": i, "time": now - timedelta(seconds=3 - step), "actor": f"user:{reviewer_id}", "action": action,
         "data": {"bulk": i}} for i in ids
        for step, action in enumerate(("case.received", "case.claimed", "case.rejected"))])
    db.session.commit()
    chain.seal(db.session)


def export_peak(app, redact: bool) -> int:
    export.export(db.session, app.config, Discard(), fmt="jsonl", filters=export.ExportFilters(), file_name="x",
                  redact=redact)
    gc.collect()
    tracemalloc.start()
    try:
        export.export(db.session, app.config, Discard(), fmt="jsonl", filters=export.ExportFilters(), file_name="x",
                      redact=redact)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("redact", [False, True], ids=["rows by PostgreSQL", "rows by DecisionRows"])
def test_memory_stays_flat_from_200_to_2000_decisions(app, upstream, people, queues, monkeypatch, redact):
    """Pages of 20 cases and of 100 leaf hashes, so that 200 decisions already fill many: the peak must then
    hardly grow with the log (a list of every row would add some 2 MB to about 0.25 MB). The collector runs
    before each page, so that what is measured is what the export holds, not the database driver's cursors
    waiting for it. Both ways of making rows: streamed from PostgreSQL's COPY (a plain export) and paged
    through DecisionRows (a redacted one). PostgreSQL only (the production database; the export's paging is
    the same on both, and the 2,000 decisions cost a minute and a half a pass)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the PostgreSQL pass of the suite runs it")
    monkeypatch.setattr(export, "CASE_PAGE", 20)
    monkeypatch.setattr(chain, "leaf_hash_pages", functools.partial(chain.leaf_hash_pages, batch_size=100))
    run = export.DecisionRows._run

    def collected_at_each_page(rows: export.DecisionRows, query: Any, after: int) -> Any:
        if query is rows._queries.cases:
            gc.collect()
        return run(rows, query, after)

    monkeypatch.setattr(export.DecisionRows, "_run", collected_at_each_page)
    add_decided_cases(200, upstream.id, people.reviewer.id, queues["finance"].id)
    small = export_peak(app, redact)
    add_decided_cases(1800, upstream.id, people.reviewer.id, queues["finance"].id)
    large = export_peak(app, redact)
    assert large < small * 1.25, (small, large)


# --- the CLI -------------------------------------------------------------------------------------------------


def test_cli_exports_with_progress_and_verifies(app, world, runner, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "PROGRESS_EVERY", 3)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "log.csv"
    result = runner.invoke(args=["audit", "export", "--format", "csv", "--out", str(out), "--domain", "finance"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["  3 rows written", "  6 rows written"]
    assert result.stdout.startswith(f"6 rows written to {out}, manifest {out}.manifest.json; checkpoint of ")
    assert sorted(p.name for p in out.parent.iterdir()) == ["log.csv", "log.csv.manifest.json"]
    verified = runner.invoke(args=["audit", "verify-export", str(out)])
    assert verified.exit_code == 0, verified.output
    assert "signature is valid under the public key given" in verified.stdout
    assert verified.stdout.splitlines()[-1] == f"{out}: verified"
    out.write_text(out.read_text().replace("finance-senior", "finance-junior", 1))
    refused = runner.invoke(args=["audit", "verify-export", str(out)])
    assert refused.exit_code == 1
    assert "FAILED: log.csv is not the file the manifest describes" in refused.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "Error: since: 'yesterday' is not a date"),
    (["--until", "2026-02-30"], "Error: until: '2026-02-30' is not a date"),
    (["--domain", "sales"], "Error: domain: unknown domain 'sales'"),
    (["--queue", "nope"], "Error: queue: no queue named 'nope'"),
    (["--case-type", "loan"], "Error: case_type: unknown case type 'loan'"),
    (["--outcome", "approve"], "Error: outcome: unknown outcome 'approve'"),
    (["--reviewer", "ghost@example.com"], "Error: reviewer: no user with email 'ghost@example.com'"),
    (["--domain", "sales", "--outcome", "x"], "Error: domain: unknown domain 'sales'; one of finance, legal, "
                                              "compliance; outcome: unknown outcome 'x'"),
])
def test_cli_refuses_bad_filters_and_writes_nothing(app, people, runner, tmp_path, args, message):
    result = runner.invoke(args=["audit", "export", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert list(tmp_path.iterdir()) == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditCheckpoint)) == 0


def test_cli_refuses_an_unknown_format_and_an_unwritable_place(app, people, runner, tmp_path):
    result = runner.invoke(args=["audit", "export", "--format", "xml", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "'xml' is not one of 'jsonl', 'csv'" in result.output
    result = runner.invoke(args=["audit", "export", "--format", "csv", "--out", str(tmp_path / "none" / "x.csv")])
    assert result.exit_code == 2 and "Error: " in result.stderr and "No such file or directory" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- the download ----------------------------------------------------------------------------------------------


def test_auditors_download_a_zip_of_the_file_and_its_manifest(app, client, world, people, tmp_path, public_key):
    sign_in(client, people.auditor)
    response = client.get("/audit/export?format=csv&domain=finance&outcome=approved&redact=1")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/zip"
    assert re.fullmatch(r'attachment; filename=decision-log-\d{8}T\d{6}Z\.zip',
                        response.headers["Content-Disposition"])
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    [data] = [name for name in names if name.endswith(".csv")]
    assert names == [data, f"{data}.manifest.json"]
    manifest = json.loads((tmp_path / f"{data}.manifest.json").read_text())
    assert (manifest["rows"], manifest["redacted"], manifest["filters"]["outcome"]) == (2, True, "approved")
    assert verify_export(tmp_path / data, public_key).checked


@pytest.mark.parametrize(("query", "message"), [
    ("since=tomorrow", "Since: &#39;tomorrow&#39; is not a date"),
    ("format=xml", "Format: &#39;xml&#39; is not one of jsonl, csv."),
    ("redact=maybe", "Redact: &#39;maybe&#39; is not 1 or 0."),
    ("queue=nope&reviewer=ghost%40example.com", "Queue: no queue named &#39;nope&#39;; reviewer: no user with"),
    ("format=..%2F..%2Fevil", "is not one of jsonl, csv"),
])
def test_bad_parameters_are_a_400_saying_why(app, client, people, query, message):
    sign_in(client, people.auditor)
    response = client.get(f"/audit/export?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditCheckpoint)) == 0


def test_reviewers_may_not_export_and_strangers_sign_in_first(app, client, people):
    sign_in(client, people.reviewer)
    assert client.get("/audit/export").status_code == 403
    sign_in(client, None)
    response = client.get("/audit/export")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
