"""Demo data: queues, one user per role, one API client and realistic cases of every type.

Everything goes through the services (queues, users, clients, signed-case intake),
so the audit trail of a seeded database is as complete as that of a real one.
Idempotent: what already exists is left alone, and a re-run adds nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.agents import tools as agent_tools
from app.ai.jobs import analyze_case
from app.audit import chain
from app.audit.actions import AuditAction
from app.auth.services import create_user
from app.cases import policy
from app.cases.models import Case, Queue
from app.cases.queues import create_queue
from app.cases.types import DOMAINS, named
from app.db import utcnow
from app.errors import DomainError
from app.escalation import sla
from app.escalation.models import EscalationRule
from app.escalation.services import load_rules, validate_file
from app.intake.models import ApiClient
from app.intake.services import create_client, hash_token, submit_case
from app.review import services as review
from app.users import User
from app.webhooks import CallbackPolicy

Echo = Callable[[str], None]

SEED_ACTOR = Actor.system("seed")
CLIENT_NAME = "demo-upstream"
CLIENT_DOMAINS = list(DOMAINS)
CLIENT_CALLBACK_HOSTS = ["127.0.0.1", "localhost"]
CREDENTIALS_FILE = "demo-client.json"
CASE_URL = "http://localhost:5000/api/v1/cases/{id}"
EXAMPLE_RULES = Path(__file__).resolve().parent.parent / "escalation" / "rules.example.yaml"
# The demo launcher runs a receiver on loopback (plain http) and names it in DEMO_CALLBACK_URL.
DEMO_INSECURE_HOSTS = frozenset({"127.0.0.1", "localhost"})


def _callback_url() -> str | None:
    return os.environ.get("DEMO_CALLBACK_URL") or None


# --- queues and users --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoQueue:
    name: str
    domain: str
    sla_minutes: int
    is_default: bool = False
    escalates_to: str | None = None
    case_types: tuple[str, ...] = ()
    qa_share: float = 0.0


# Escalation targets come before the queues that escalate to them.
QUEUES = (
    DemoQueue("finance-senior", "finance", 120),
    # Every approval in payments and credit is drawn for QA, so the QA page has something to show at once
    # (a production queue would draw a few percent).
    DemoQueue("payments", "finance", 240, is_default=True, escalates_to="finance-senior", qa_share=1.0),
    DemoQueue("credit", "finance", 1440, escalates_to="finance-senior", case_types=("credit_limit_change",),
              qa_share=1.0),
    DemoQueue("legal", "legal", 2880, is_default=True),
    DemoQueue("compliance-senior", "compliance", 480),
    DemoQueue("compliance", "compliance", 1440, is_default=True, escalates_to="compliance-senior"),
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str
    role: str
    name: str
    queues: tuple[str, ...] = ()


# Demo only: these passwords are printed on every run.
USERS = (
    DemoUser("reviewer@countersign.demo", "review-demo-2026", "reviewer", "Rina Patel",
             ("payments", "credit", "legal", "compliance")),
    DemoUser("senior@countersign.demo", "senior-demo-2026", "senior_reviewer", "Samuel Okoye",
             tuple(q.name for q in QUEUES)),
    DemoUser("admin@countersign.demo", "admin-demo-2026", "admin", "Alex Morgan"),
    DemoUser("auditor@countersign.demo", "audit-demo-2026", "auditor", "Maria Keller"),
)


# --- cases ---------------------------------------------------------------------------------------


def variant(case_type: str, **changes: Any) -> dict[str, Any]:
    """The case type's example (a fresh copy) with changes; keys use ``__`` for nesting
    (``beneficiary__name="…"`` sets ``data["beneficiary"]["name"]``)."""
    data = named(case_type).example
    for key, value in changes.items():
        *parents, last = key.split("__")
        target = data
        for part in parents:
            target = target[part]
        target[last] = value
    return data


@dataclass(frozen=True)
class DemoCase:
    external_id: str
    case_type: str
    title: str
    data: dict[str, Any]
    priority: str = "normal"
    confidential: bool = False
    # Set the SLA due time to now + this many minutes after intake (a case about to breach).
    sla_due_in_minutes: int | None = None
    # Analysed and decided at seeding by the demo reviewer, so the decided list, executions and the
    # auditor's decision log have something in them: "approve", or "reject" with a reason.
    decided: str | None = None
    # The domain to post it in, for a type allowed in every domain (agent_action).
    in_domain: str | None = None

    @property
    def domain(self) -> str:
        return self.in_domain or named(self.case_type).domain

    def body(self, callback_url: str | None) -> bytes:
        document = {
            "external_id": self.external_id, "domain": self.domain, "case_type": self.case_type,
            "title": self.title, "data": self.data, "priority": self.priority, "confidential": self.confidential,
        }
        if callback_url:
            document["callback_url"] = callback_url
        return json.dumps(document).encode()


NO_SCREENING_HITS = {"sanctions_hits": [], "pep_hits": []}
CLEAN_KYC_SCREENING = {"sanctions_hits": [], "pep_hits": [], "adverse_media_hits": 0}

CASES = (
    # finance / payment_release
    DemoCase(
        "PAY-2026-118802", "payment_release", "Release EUR 3,180.40 to DHL Freight GmbH",
        variant(
            "payment_release", payment_id="PAY-2026-118802", amount="3180.40",
            beneficiary={"name": "DHL Freight GmbH", "account": "DE75512108001245126199", "country": "DE",
                         "bank_bic": "DEUTDEFFXXX", "is_new": False},
            purpose="Invoice DHL-FR-2026-55120: groupage freight Hamburg-Munich, week 46",
            screening=NO_SCREENING_HITS,
        ),
        priority="low", decided="approve",
    ),
    DemoCase(
        "PAY-2026-118861", "payment_release", "Release EUR 184,500.00 to DHL Freight GmbH",
        variant(
            "payment_release", payment_id="PAY-2026-118861", amount="184500.00",
            beneficiary={"name": "DHL Freight GmbH", "account": "DE75512108001245126199", "country": "DE",
                         "bank_bic": "DEUTDEFFXXX", "is_new": False},
            purpose="Annual freight framework prepayment 2027, contract DHL-FW-2027-004",
            screening=NO_SCREENING_HITS,
        ),
    ),
    DemoCase(
        "PAY-2026-118815", "payment_release", "Release EUR 48,250.00 to Nordlicht Industrial Supplies C.A.",
        variant(
            "payment_release", payment_id="PAY-2026-118815", channel="swift",
            beneficiary={"name": "Nordlicht Industrial Supplies C.A.", "account": "01020501830001234567",
                         "country": "VE", "bank_bic": "BVENVECAXXX", "is_new": True},
            purpose="Invoice NM-2026-4471 from Nordlicht Maschinenbau GmbH: replacement gearbox assemblies. "
                    "Supplier e-mailed new bank details on 2026-11-23.",
            history__known_beneficiary_names=["Nordlicht Maschinenbau GmbH", "DHL Freight GmbH",
                                              "Raben Logistics Polska"],
            screening=NO_SCREENING_HITS,
        ),
        priority="high",
    ),
    DemoCase(
        "PAY-2026-118734", "payment_release", "Release EUR 27,640.00 to Baltic Freight Solutions UAB",
        variant("payment_release", amount="27640.00"),
    ),
    DemoCase(
        "PAY-2026-118840", "payment_release", "Release EUR 86,400.00 to Raben Logistics Polska",
        variant(
            "payment_release", payment_id="PAY-2026-118840", amount="86400.00", value_date="2026-11-25",
            beneficiary={"name": "Raben Logistics Polska", "account": "PL61109010140000071219812874",
                         "country": "PL", "bank_bic": "WBKPPLPPXXX", "is_new": False},
            purpose="Fleet leasing Q4 2026, contract RLP-2024-17; bank cut-off 17:00 CET today",
            screening=NO_SCREENING_HITS,
        ),
        priority="high", sla_due_in_minutes=3,
    ),
    # finance / credit_limit_change
    DemoCase(
        "CLR-2026-00912", "credit_limit_change", "Raise credit limit to GBP 12,000.00 for Priya Raman",
        variant("credit_limit_change"),
    ),
    DemoCase(
        "CLR-2026-00927", "credit_limit_change", "Raise credit limit to GBP 8,000.00 for Daniel Whitcombe",
        variant(
            "credit_limit_change", account_id="CC-7781-5531",
            customer={"id": "CUST-219904", "name": "Daniel Whitcombe", "since": "2021-09-30"},
            current_limit="2500.00", requested_limit="8000.00", annual_income="31200.00",
            monthly_debt_payments="1460.00", utilization=0.97, missed_payments_12m=3, credit_score=561,
            reason="Consolidate two store cards and a car repair bill",
        ),
        decided="reject",
    ),
    DemoCase(
        "CLR-2026-00933", "credit_limit_change", "Raise credit limit to GBP 4,500.00 for Amelia Okafor",
        variant(
            "credit_limit_change", account_id="CC-7781-0417",
            customer={"id": "CUST-104417", "name": "Amelia Okafor", "since": "2012-05-08"},
            current_limit="3000.00", requested_limit="4500.00", annual_income="92000.00",
            monthly_debt_payments="850.00", utilization=0.21, missed_payments_12m=0, credit_score=811,
            reason="Headroom for booking family travel",
        ),
        priority="low",
    ),
    # legal / contract_review
    DemoCase(
        "CTR-2026-0457", "contract_review", "Review MSA with Northwind Analytics Ltd (GBP 360,000.00, 36 months)",
        variant("contract_review"),
    ),
    DemoCase(
        "CTR-2026-0472", "contract_review", "Review hosting agreement with Stratus Hosting Inc. (USD 540,000.00)",
        variant(
            "contract_review", contract_id="CTR-2026-0472", title="Cloud Hosting Agreement - Stratus Hosting Inc.",
            counterparty={"name": "Stratus Hosting Inc.", "country": "US"}, contract_value="540000.00",
            currency="USD", term_months=36, governing_law="New York",
            clauses=[
                {"id": "8.1", "heading": "Indemnity and Liability",
                 "text": "The Customer shall indemnify the Provider against all losses, without limitation as to "
                         "amount, arising out of the Customer's use of the Services. Nothing in this Agreement "
                         "limits or excludes the Customer's liability."},
                {"id": "8.4", "heading": "Limitation of Liability",
                 "text": "The Provider's total aggregate liability under this Agreement shall not exceed "
                         "USD 10,000."},
                {"id": "12.2", "heading": "Renewal",
                 "text": "This Agreement renews automatically for successive thirty-six (36) month terms unless "
                         "either party gives written notice at least twelve (12) months before the end of the "
                         "then-current term."},
                {"id": "15.1", "heading": "Governing Law",
                 "text": "This Agreement is governed by the laws of the State of New York."},
            ],
        ),
        priority="high",
    ),
    DemoCase(
        "CTR-2026-0481", "contract_review", "Review mutual NDA with Helix Biosystems Ltd",
        variant(
            "contract_review", contract_id="CTR-2026-0481",
            title="Mutual Non-Disclosure Agreement - Helix Biosystems Ltd",
            counterparty={"name": "Helix Biosystems Ltd", "country": "IE"}, contract_value="0.00",
            term_months=24,
            clauses=[
                {"id": "2.1", "heading": "Confidentiality",
                 "text": "Each party shall keep the other party's Confidential Information confidential and use "
                         "it only to evaluate the proposed research collaboration."},
                {"id": "4.1", "heading": "Term",
                 "text": "This Agreement lasts twenty-four (24) months from the Effective Date; the "
                         "confidentiality obligations survive for three (3) years after it ends."},
                {"id": "6.1", "heading": "Return of Information",
                 "text": "On written request, each party shall promptly return or destroy the other party's "
                         "Confidential Information."},
                {"id": "9.1", "heading": "Governing Law",
                 "text": "This Agreement is governed by the laws of England and Wales."},
            ],
        ),
        priority="low",
    ),
    # compliance / aml_alert
    DemoCase(
        "TM-ALERT-550921", "aml_alert", "AML alert: cash deposits just below EUR 10,000 by Marco Bellini",
        variant(
            "aml_alert", prior_alerts_12m=2,
            transactions=[
                *named("aml_alert").example["transactions"][:2],
                {"id": "TX-88231", "date": "2026-11-14", "amount": "9900.00", "currency": "EUR", "direction": "in",
                 "counterparty": "Cash deposit, Monza branch", "counterparty_country": "IT", "channel": "cash"},
                {"id": "TX-88262", "date": "2026-11-15", "amount": "9650.00", "currency": "EUR", "direction": "in",
                 "counterparty": "Cash deposit, Milano Navigli branch", "counterparty_country": "IT",
                 "channel": "cash"},
                named("aml_alert").example["transactions"][2],
            ],
        ),
        priority="high",
    ),
    DemoCase(
        "TM-ALERT-551038", "aml_alert", "AML alert: large incoming transfer to Lena Vogel",
        variant(
            "aml_alert", alert_id="TM-ALERT-551038",
            customer={"id": "CUST-402215", "name": "Lena Vogel", "risk_rating": "low", "country": "DE",
                      "occupation": "Software engineer"},
            rule_hits=[{"rule_id": "VOL-02", "description": "Incoming credit above 3x the 6-month average",
                        "score": 0.38}],
            transactions=[
                {"id": "TX-90211", "date": "2026-11-20", "amount": "14850.00", "currency": "EUR", "direction": "in",
                 "counterparty": "Kestrel Software GmbH (payroll: November salary and annual bonus)",
                 "counterparty_country": "DE", "channel": "sepa"},
            ],
            prior_alerts_12m=0,
        ),
        priority="low",
    ),
    # compliance / kyc_review
    DemoCase(
        "ONB-2026-77342", "kyc_review", "Onboard Tomasz Nowak (individual, PL)",
        variant(
            "kyc_review", application_id="ONB-2026-77342",
            applicant={"type": "individual", "name": "Tomasz Nowak", "date_of_birth": "1984-02-17",
                       "nationality": "PL",
                       "address": {"line1": "ul. Marszalkowska 84/92", "city": "Warszawa", "postcode": "00-514",
                                   "country": "PL"}},
            documents=[
                {"type": "passport", "number": "EM4417852", "issuing_country": "PL", "expires_on": "2025-08-31",
                 "name_on_document": "Tomasz Nowak", "date_of_birth_on_document": "1984-02-17"},
                {"type": "proof_of_address", "number": "PGE-2026-10-554812", "issuing_country": "PL",
                 "name_on_document": "Tomasz Nowak"},
            ],
            screening=CLEAN_KYC_SCREENING,
        ),
    ),
    DemoCase(
        "ONB-2026-77355", "kyc_review", "Onboard Fjordline Analytics AS (business, NO)",
        variant(
            "kyc_review", application_id="ONB-2026-77355",
            applicant={"type": "business", "name": "Fjordline Analytics AS", "nationality": "NO",
                       "address": {"line1": "Akersgata 32", "city": "Oslo", "postcode": "0180", "country": "NO"}},
            documents=[
                {"type": "company_registration", "number": "923456789", "issuing_country": "NO",
                 "name_on_document": "Fjordline Analytics AS"},
                {"type": "ubo_declaration", "number": "UBO-2026-1187", "issuing_country": "NO",
                 "name_on_document": "Fjordline Analytics AS"},
                {"type": "proof_of_address", "number": "HAFSLUND-2026-10-77812", "issuing_country": "NO",
                 "name_on_document": "Fjordline Analytics AS"},
            ],
            screening=CLEAN_KYC_SCREENING,
        ),
        priority="low",
    ),
    DemoCase(
        "ONB-2026-77361", "kyc_review", "Onboard Dmitri Kalvenko (individual, CY)",
        variant(
            "kyc_review", application_id="ONB-2026-77361",
            applicant={"type": "individual", "name": "Dmitri Kalvenko", "date_of_birth": "1972-03-09",
                       "nationality": "CY",
                       "address": {"line1": "28 Oktovriou 241", "city": "Limassol", "postcode": "3035",
                                   "country": "CY"}},
            documents=[
                {"type": "passport", "number": "K00918273", "issuing_country": "CY", "expires_on": "2030-01-14",
                 "name_on_document": "Dmitri Kalvenko", "date_of_birth_on_document": "1972-03-09"},
                {"type": "proof_of_address", "number": "EAC-2026-11-300412", "issuing_country": "CY",
                 "name_on_document": "Dmitri Kalvenko"},
            ],
            screening={"sanctions_hits": [{"list": "OFAC SDN", "matched_name": "Dmitriy Kalvenko", "score": 0.96,
                                           "date_of_birth": "1972-03-09"}],
                       "pep_hits": [], "adverse_media_hits": 3},
        ),
        priority="high", confidential=True,
    ),
    # every domain / agent_action: a support agent asks to refund more than the refund tool's limit
    DemoCase(
        "AGENT-RFD-58213", "agent_action", "Support agent: refund EUR 180.00 on order ORD-58213",
        variant("agent_action", expires_at=(utcnow() + timedelta(days=2)).replace(microsecond=0).isoformat()),
        priority="high",
    ),
    # a legal assistant agent asks to e-mail a draft NDA outside the company
    DemoCase(
        "AGENT-NDA-0412", "agent_action", "Legal assistant: e-mail the draft NDA to outside counsel",
        variant(
            "agent_action", expires_at=(utcnow() + timedelta(days=1)).replace(microsecond=0).isoformat(),
            agent={"id": "legal-assistant-2", "name": "Legal assistant", "version": "0.9.4", "model": "gpt-4.1"},
            tool={"name": "send_email", "description": "Send an e-mail with attachments from the legal team's mailbox.",
                  "arguments": {"to": "m.keller@keller-partners.example", "subject": "Draft NDA: Northwind / Acme",
                                "attachments": ["nda-northwind-acme-v3.docx"], "urgent": False},
                  "arguments_schema": {"type": "object", "required": ["to", "subject"], "properties": {
                      "to": {"type": "string"}, "subject": {"type": "string"},
                      "attachments": {"type": "array", "items": {"type": "string"}},
                      "urgent": {"type": "boolean"}}, "additionalProperties": False}},
            context={"goal": "Get outside counsel's comments on the draft NDA with Acme before Friday.",
                     "messages": [
                         {"role": "user", "content": "Send the latest NDA draft to Martina Keller for review."},
                         {"role": "tool", "content": "find_document('NDA Acme'): nda-northwind-acme-v3.docx"},
                     ],
                     "reasoning": "Martina Keller is the outside counsel named in the matter file."},
            risk_hints=["the recipient is outside the company"],
        ),
        in_domain="legal",
    ),
)
# The demo's tool policies: the refund tool's limit makes the analyzer propose a smaller refund.
DEMO_TOOL_POLICIES = """
- name: issue_refund
  arguments:
    amount: {max: 150}
    notify_email: {allowed_domains: [example.com]}
"""


# --- seeding ---------------------------------------------------------------------------------------


def seed_demo_data(session: Session, echo: Echo = print, *, credentials_path: Path | None = None) -> None:
    """Create the demo queues, users, API client and cases that do not exist yet, then commit.

    ``credentials_path`` (default ``instance/demo-client.json``) receives the API
    client's token and signing secret when the client is created.
    """
    credentials_path = credentials_path or Path(current_app.instance_path) / CREDENTIALS_FILE
    queues = _seed_queues(session)
    users = _seed_users(session)
    client, new_credentials = _seed_client(session)
    if new_credentials:
        _write_credentials(credentials_path, new_credentials)
    rules = _seed_rules(session)
    _seed_tool_policies(session)
    cases = _seed_cases(session, client)
    session.commit()

    if not (queues or users or new_credentials or rules or cases):
        echo("Demo data already present: nothing added.")
    else:
        echo(f"Added {queues} queue(s), {users} user(s), {1 if new_credentials else 0} API client(s), "
             f"{rules} escalation rule(s) and {len(cases)} case(s).")
    _print_summary(session, client, credentials_path, echo)


def _seed_rules(session: Session) -> int:
    """The example escalation rules, when no rule exists yet (an admin's edits are kept)."""
    if session.scalar(select(EscalationRule.id).limit(1)) is not None:
        return 0
    specs = validate_file(session, yaml.safe_load(EXAMPLE_RULES.read_text()))
    return len(load_rules(session, specs, SEED_ACTOR))


def _seed_tool_policies(session: Session) -> None:
    """The demo's agent tool policies, when no tool has one yet (an admin's edits are kept)."""
    if not agent_tools.all_tools(session):
        agent_tools.load(session, agent_tools.parse_yaml(DEMO_TOOL_POLICIES), SEED_ACTOR)


def _seed_queues(session: Session) -> int:
    existing = {q.name: q for q in session.scalars(select(Queue))}
    added = 0
    for spec in QUEUES:
        if spec.name in existing:
            continue
        existing[spec.name] = create_queue(
            session, spec.name, spec.domain, spec.sla_minutes, is_default=spec.is_default,
            escalation_target=existing[spec.escalates_to] if spec.escalates_to else None,
            case_types=spec.case_types, qa_share=spec.qa_share, actor=SEED_ACTOR,
        )
        added += 1
    return added


def _seed_users(session: Session) -> int:
    existing = set(session.scalars(select(User.email)))
    added = 0
    for spec in USERS:
        if spec.email in existing:
            continue
        create_user(session, spec.email, spec.password, spec.role, name=spec.name, queues=list(spec.queues),
                    actor=SEED_ACTOR)
        added += 1
    return added


def _seed_client(session: Session) -> tuple[ApiClient, dict[str, Any] | None]:
    """The demo API client, and its credentials when it was created just now."""
    client = session.scalar(select(ApiClient).where(ApiClient.name == CLIENT_NAME))
    if client is not None:
        return client, None
    new = create_client(session, CLIENT_NAME, CLIENT_DOMAINS, CLIENT_CALLBACK_HOSTS, actor=SEED_ACTOR)
    return new.client, {
        "client_id": new.client.id, "name": CLIENT_NAME, "token": new.token, "signing_secret": new.signing_secret,
        "domains": new.client.allowed_domains, "callback_hosts": new.client.callback_hosts,
    }


def _write_credentials(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(credentials, file, indent=2)
        file.write("\n")
    path.chmod(0o600)  # when the file existed before with wider permissions


def _read_credentials(path: Path, client: ApiClient) -> dict[str, Any] | None:
    """The saved credentials of ``client``, or None when the file is missing or belongs to another client."""
    try:
        credentials = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    token = credentials.get("token") if isinstance(credentials, dict) else None
    if not isinstance(token, str) or hash_token(token) != client.token_hash:
        return None
    return credentials


def _seed_cases(session: Session, client: ApiClient) -> list[Case]:
    existing = set(session.scalars(select(Case.external_id).where(Case.client_id == client.id)))
    created = []
    for spec in CASES:
        if spec.external_id in existing:
            continue
        try:
            result = submit_case(session, client, f"seed-{spec.external_id}", spec.body(_callback_url()),
                                 case_url=CASE_URL, callbacks=CallbackPolicy(DEMO_INSECURE_HOSTS))
        except DomainError as exc:
            raise RuntimeError(f"demo case {spec.external_id} was refused: {exc.message} {exc.errors or ''}") from exc
        case = session.get_one(Case, result.case_id)
        if spec.sla_due_in_minutes is not None:
            _bring_sla_forward(session, case, timedelta(minutes=spec.sla_due_in_minutes))
        if spec.decided:
            _decide(session, case, spec.decided)
        created.append(case)
    return created


DEMO_DECIDER = "reviewer@countersign.demo"
REJECTION = {"reason_code": "customer_risk",
             "reason": "Utilisation and recent missed payments do not support a higher limit now."}


def _decide(session: Session, case: Case, kind: str) -> None:
    """Analyse the case now (the configured AI provider), then claim and decide it as the demo
    reviewer, through the same services as the web UI."""
    session.commit()  # the analysis job reads the case as committed
    if analyze_case(case.id) != "stored":
        return  # the analysis failed: the case waits in the inbox like any other
    reviewer = session.scalars(select(User).where(User.email == DEMO_DECIDER)).one()
    claimed = review.claim(session, reviewer, case.id)
    action, parameters = policy.proposed_action(session, claimed)
    command = review.DecisionCommand(kind=kind, case_version=claimed.version,
                                     view_hash=policy.view_hash(claimed, action, parameters),
                                     **(REJECTION if kind == "reject" else {}))
    review.decide(session, reviewer, case.id, command)
    session.commit()


def _bring_sla_forward(session: Session, case: Case, remaining: timedelta) -> None:
    """Make the case nearly breach its SLA, so the demo shows an escalation; audited like any change."""
    previous = case.sla_due_at
    case.sla_due_at = utcnow() + remaining
    sla.refresh(case)  # its next step moves with it
    session.flush()
    chain.record(session, AuditAction.CASE_SLA_CHANGED, SEED_ACTOR, case_id=case.id, data={
        "previous": previous.isoformat() if previous else None, "sla_due_at": case.sla_due_at.isoformat(),
        "reason": "demo seed: a case about to breach its SLA",
    })


def _print_summary(session: Session, client: ApiClient, credentials_path: Path, echo: Echo) -> None:
    roles = dict(session.execute(select(User.email, User.role).where(User.email.in_([u.email for u in USERS]))).all())
    lines = ["", "Demo logins (demo only: these passwords are public):"]
    lines += [f"  {u.email:<28} {u.password:<18} {roles.get(u.email, '(missing)')}" for u in USERS]
    credentials = _read_credentials(credentials_path, client)
    lines += ["", f"API client {CLIENT_NAME!r} (id {client.id}): credentials in {credentials_path}"]
    if credentials:
        lines += [f"  token:          {credentials['token']}", f"  signing secret: {credentials['signing_secret']}"]
    else:
        lines += ["  (that file is missing or belongs to another client: the token cannot be shown again;",
                  "   create a new client with `flask --app wsgi clients create`)"]
    for line in lines:
        echo(line)
