"""The demo: seed data (through the audited services, idempotent) and the launcher's embedded Redis."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis
from rq import Queue as RqQueue
from rq import SimpleWorker
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import Case, Decision, Priority, Queue, Status
from app.cases.queues import create_queue
from app.cases.types import REGISTRY, get_case_type
from app.db import utcnow
from app.demo import seed as demo_seed
from app.errors import Conflict, Invalid
from app.escalation import sla
from app.escalation.models import EscalationRule
from app.extensions import db
from app.intake.models import ApiClient, WebhookReceipt
from app.intake.services import hash_token
from app.review import services as review
from app.users import User
from tests.conftest import ROOT, audit_log_intact
from tests.review_helpers import claim, decide
from workers import demo as launcher


def run_seed(tmp_path: Path) -> list[str]:
    lines: list[str] = []
    demo_seed.seed_demo_data(db.session, echo=lines.append, credentials_path=tmp_path / "demo-client.json")
    return lines


def row_counts() -> dict[str, int]:
    return {model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Queue, User, ApiClient, Case, WebhookReceipt, AuditEvent)}


def test_seed_creates_queues_users_client_and_cases(app: Flask, redis_conn: Redis, tmp_path: Path) -> None:
    output = "\n".join(run_seed(tmp_path))

    queues = {q.name: q for q in db.session.scalars(select(Queue))}
    assert set(queues) == {"payments", "credit", "finance-senior", "legal", "compliance", "compliance-senior"}
    assert {q.domain: q.name for q in queues.values() if q.is_default} == {
        "finance": "payments", "legal": "legal", "compliance": "compliance"}
    assert {name: q.sla_minutes for name, q in queues.items()} == {
        "payments": 240, "credit": 1440, "finance-senior": 120, "legal": 2880, "compliance": 1440,
        "compliance-senior": 480}
    assert queues["payments"].escalation_target is queues["finance-senior"]
    assert queues["credit"].escalation_target is queues["finance-senior"]
    assert queues["compliance"].escalation_target is queues["compliance-senior"]
    rules = db.session.scalars(select(EscalationRule).order_by(EscalationRule.position)).all()
    assert rules[0].name == "large-payments-dual-approval" and len(rules) >= 5
    assert "escalation rule(s)" in output

    users = {u.email: u for u in db.session.scalars(select(User))}
    assert {email: u.role for email, u in users.items()} == {
        "reviewer@countersign.demo": "reviewer", "senior@countersign.demo": "senior_reviewer",
        "admin@countersign.demo": "admin", "auditor@countersign.demo": "auditor"}
    assert {q.name for q in users["reviewer@countersign.demo"].queues} == {"payments", "credit", "legal", "compliance"}
    assert {q.name for q in users["senior@countersign.demo"].queues} == set(queues)
    for spec in demo_seed.USERS:
        assert users[spec.email].check_password(spec.password)
        assert spec.email in output and spec.password in output

    (client,) = db.session.scalars(select(ApiClient)).all()
    assert client.name == "demo-upstream"
    assert client.allowed_domains == ["compliance", "finance", "legal"]
    assert client.callback_hosts == ["127.0.0.1", "localhost"]
    credentials_file = tmp_path / "demo-client.json"
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600
    credentials = json.loads(credentials_file.read_text())
    assert credentials["client_id"] == client.id and hash_token(credentials["token"]) == client.token_hash
    assert str(credentials_file) in output and credentials["token"] in output

    cases = db.session.scalars(select(Case)).all()
    assert len(cases) >= 12
    per_type = Counter(case.case_type for case in cases)
    assert set(per_type) == {name for _, name in REGISTRY}
    assert min(per_type.values()) >= 2
    received = Counter(db.session.scalars(select(AuditEvent.case_id).where(AuditEvent.action == "case.received")))
    for case in cases:
        get_case_type(case.domain, case.case_type).validate_data(case.payload)
        assert received[case.id] == 1
        expected = "credit" if case.case_type == "credit_limit_change" else None  # routed; the rest: the default
        assert case.queue is not None and case.queue.domain == case.domain
        assert case.queue.name == expected if expected else case.queue.is_default

    almost_late = [c for c in cases if c.sla_due_at and c.sla_due_at < utcnow() + timedelta(minutes=5)]
    assert [(c.case_type, c.priority) for c in almost_late] == [("payment_release", Priority.HIGH)]

    decided = {c.external_id: c.status for c in cases if c.status in ("approved", "rejected")}
    assert decided == {"PAY-2026-118802": "approved", "CLR-2026-00927": "rejected"}
    deciders = db.session.execute(select(Decision.kind, User.email).join(User, User.id == Decision.reviewer_id)).all()
    assert sorted(deciders) == [("approve", "reviewer@countersign.demo"), ("reject", "reviewer@countersign.demo")]
    # the approved payment goes to the executor; the upstream system is told of the rejection
    assert RqQueue("execute", connection=redis_conn).count == 2

    assert audit_log_intact()
    assert RqQueue("ai", connection=redis_conn).count == len(cases)


def test_seeding_twice_adds_nothing(app: Flask, tmp_path: Path) -> None:
    run_seed(tmp_path)
    before = row_counts()

    output = run_seed(tmp_path)

    assert row_counts() == before
    assert "Demo data already present: nothing added." in output
    token = json.loads((tmp_path / "demo-client.json").read_text())["token"]
    assert any(token in line for line in output)
    assert audit_log_intact()


def test_create_queue_records_an_audit_event(app: Flask) -> None:
    target = create_queue(db.session, "finance-senior", "finance", 120)
    queue = create_queue(db.session, "payments", "finance", 240, is_default=True, escalation_target=target)

    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event is not None and event.action == "queue.created" and event.actor == "system:seed"
    assert event.data["name"] == "payments" and event.data["escalation_target"] == "finance-senior"
    assert queue.escalation_target is target


def test_create_queue_refuses_unknown_domain(app: Flask) -> None:
    with pytest.raises(Invalid, match="unknown domain 'hr': choose one of finance, legal, compliance"):
        create_queue(db.session, "people", "hr", 60)


def test_create_queue_refuses_a_duplicate_name(app: Flask) -> None:
    create_queue(db.session, "legal", "legal", 2880)
    with pytest.raises(Conflict, match="a queue named 'legal' already exists"):
        create_queue(db.session, "legal", "legal", 60)


@pytest.mark.parametrize("sla", [0, -5])
def test_create_queue_refuses_a_non_positive_sla(app: Flask, sla: int) -> None:
    with pytest.raises(Invalid, match="sla_minutes must be a positive"):
        create_queue(db.session, "legal", "legal", sla)


def test_create_queue_refuses_a_second_default_in_a_domain(app: Flask) -> None:
    create_queue(db.session, "legal", "legal", 2880, is_default=True)
    with pytest.raises(Conflict, match="domain 'legal' already has a default queue"):
        create_queue(db.session, "legal-2", "legal", 60, is_default=True)


def test_create_queue_refuses_an_escalation_target_in_another_domain(app: Flask) -> None:
    legal = create_queue(db.session, "legal", "legal", 2880)
    with pytest.raises(Invalid, match="escalation target 'legal' is in domain 'legal', not 'finance'"):
        create_queue(db.session, "payments", "finance", 240, escalation_target=legal)


def test_embedded_redis_starts_answers_ping_and_stops(tmp_path: Path) -> None:
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not on PATH")
    redis = launcher.start_redis(executable, tmp_path)
    connection = Redis.from_url(redis.url)
    try:
        assert connection.ping()
    finally:
        connection.close()
        launcher.stop([redis.process])

    assert redis.process.popen.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(redis.process.pid, 0)


def test_the_readme_walkthrough_leaves_the_sla_case_for_its_breach(app: Flask, redis_conn: Redis, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The README's demo steps name their cases; none of them claims the case seeded to breach its SLA."""
    run_seed(tmp_path)
    SimpleWorker(["ai"], connection=redis_conn).work(burst=True)
    reviewer = db.session.scalar(select(User).where(User.email == "reviewer@countersign.demo"))
    queues = {q.name: q for q in db.session.scalars(select(Queue))}
    readme = (ROOT / "README.md").read_text()

    next_in_credit = review.claim_next(db.session, reviewer, queues["credit"].id)
    assert next_in_credit is not None and next_in_credit.title == "Raise credit limit to GBP 12,000.00 for Priya Raman"
    dual = db.session.scalar(select(Case).where(Case.external_id == "PAY-2026-118861"))
    assert dual.title == "Release EUR 184,500.00 to DHL Freight GmbH"
    decide(reviewer, claim(reviewer, dual), "approve")
    assert dual.status == Status.AWAITING_SECOND_APPROVAL
    almost_late = db.session.scalar(select(Case).where(Case.sla_due_at < utcnow() + timedelta(minutes=5)))
    assert almost_late.title == "Release EUR 86,400.00 to Raben Logistics Polska"
    first = db.session.scalar(select(func.min(Case.id)))
    assert almost_late.id - first == 4  # the fifth case seeded: case 5 on a fresh database, as the README says
    for name in (next_in_credit.title, dual.title, almost_late.title):
        assert name.removeprefix("Raise ").removeprefix("Release ").split(" to ")[0] in readme
    # "n" in payments would claim the SLA case: the README says so and picks its payment by name.
    assert review.claim_next(db.session, reviewer, queues["payments"].id).id == almost_late.id
    review.release(db.session, reviewer, almost_late.id)
    db.session.commit()

    caplog.set_level("INFO", logger="app.escalation.sla")
    assert sla.sweep(db.session, utcnow() + timedelta(minutes=4), db.session.commit).breached == 1
    [said] = [message for message in caplog.messages if message.startswith("SLA:")]
    assert said == (f"SLA: case {almost_late.id} breached its 4 h 00 min SLA in queue payments; "
                    "escalated to finance-senior, priority urgent")
    assert said.replace(f"case {almost_late.id} ", "case 5 ") in " ".join(readme.split())


def test_the_demo_runs_the_example_agent_against_its_own_server_as_its_api_client() -> None:
    """Without an OpenAI key the agent's model is the local fake server; with one, OpenAI."""
    offline = launcher.agent_command(5917, {})
    assert offline[1:2] == [str(ROOT / "examples" / "refund_agent.py")] and Path(offline[1]).exists()
    assert offline[offline.index("--url") + 1] == "http://127.0.0.1:5917"
    assert offline[offline.index("--credentials") + 1].endswith("instance/demo-client.json")
    assert "--fake-openai" in offline
    assert "--fake-openai" not in launcher.agent_command(5917, {"OPENAI_API_KEY": "sk-test"})
