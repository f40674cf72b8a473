"""A small world of decided cases for the decision-log tests, built through the real services:
intake, the local AI analysis, claims, decisions, the SLA sweep and execution."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.ai.jobs import analyze_case
from app.audit import chain
from app.cases.models import Case
from app.db import utcnow
from app.escalation import sla
from app.execution.jobs import execute_case
from app.extensions import db
from tests.conftest import Upstream, case_body
from tests.review_helpers import People, claim, decide

NAMES = {"reviewer": "Ana Lindqvist", "reviewer2": "Tomás Ferreira", "senior": "Grace Okafor"}
BIG = {"requested_limit": "90000.00", "annual_income": "400000.00"}  # GBP 90,000: above the dual-approval line


@dataclass
class World:
    breached: Case  # kyc_review: its SLA breached, then rejected
    approved: Case  # credit_limit_change: approved as recommended, executed
    edited: Case  # credit_limit_change: edited to a counter offer, executed
    dual: Case  # credit_limit_change over the line: approved, second approval, executed
    dual_rejected: Case  # over the line: approved, then rejected by the second reviewer
    escalated: Case  # escalated to finance-senior, where information was requested
    waiting: Case  # over the line: the first approval waits for a second
    between: datetime  # after the approved case's decision, before every later one


def seal_everything(seconds: float = 30) -> None:
    """Seal every committed event. On PostgreSQL the sealer leaves the events of transactions newer than
    the oldest one still open in the whole cluster (another database's too): try again for a while."""
    deadline = time.monotonic() + seconds
    while True:
        chain.seal(db.session)
        if not chain.unsealed_count(db.session):
            return
        assert time.monotonic() < deadline, "events left unsealed: a transaction stays open somewhere"
        time.sleep(0.05)


def post(upstream: Upstream, case_type: str, external_id: str, **data: Any) -> Case:
    body = case_body(case_type, external_id=external_id)
    body["data"].update(data)
    answer = upstream.post_case(body)
    assert answer.status_code == 202, answer.get_json()
    case_id = answer.get_json()["id"]
    assert analyze_case(case_id) == "stored"
    return db.session.get_one(Case, case_id)


def approve_and_execute(people: People, case: Case, second: bool = False) -> None:
    claim(people.reviewer, case)
    decide(people.reviewer, case, "approve")
    if second:
        decide(people.senior, case, "approve")
    assert execute_case(case.id) == "delivered"


def build(upstream: Upstream, people: People) -> World:
    for key, name in NAMES.items():
        getattr(people, key).name = name
    db.session.commit()
    breached = post(upstream, "kyc_review", "EXT-KYC-1")
    breached.sla_due_at = utcnow() - timedelta(minutes=1)  # it has waited past its SLA: the sweep breaches it
    sla.refresh(breached)
    db.session.commit()
    assert sla.sweep(db.session, utcnow(), db.session.commit).breached == 1

    approved = post(upstream, "credit_limit_change", "EXT-CREDIT-A")
    approve_and_execute(people, approved)
    between = utcnow()

    edited = post(upstream, "credit_limit_change", "EXT-CREDIT-B")
    claim(people.reviewer2, edited)
    decide(people.reviewer2, edited, "edit", action="counter_offer", parameters={"limit": "9000.00"},
           reason_code="customer_risk", reason="Income supports GBP 9,000 at most.")
    assert execute_case(edited.id) == "delivered"

    dual = post(upstream, "credit_limit_change", "EXT-CREDIT-C", **BIG)
    approve_and_execute(people, dual, second=True)

    claim(people.reviewer, breached)
    decide(people.reviewer, breached, "reject", reason_code="insufficient_evidence",
           reason="The proof of address is a screenshot.")

    dual_rejected = post(upstream, "credit_limit_change", "EXT-CREDIT-E", **BIG)
    claim(people.reviewer, dual_rejected)
    decide(people.reviewer, dual_rejected, "approve")
    decide(people.senior, dual_rejected, "reject", reason_code="policy_breach",
           reason="Exposure above the customer's band.")

    escalated = post(upstream, "credit_limit_change", "EXT-CREDIT-F")
    claim(people.reviewer, escalated)
    decide(people.reviewer, escalated, "escalate", target_queue="finance-senior", reason_code="other",
           reason="Needs a senior look.")
    claim(people.senior, escalated)
    decide(people.senior, escalated, "request_info", reason_code="needs_more_information",
           reason="Send the last three payslips.")

    waiting = post(upstream, "credit_limit_change", "EXT-CREDIT-G", **BIG)
    claim(people.reviewer, waiting)
    decide(people.reviewer, waiting, "approve")
    seal_everything()
    return World(breached, approved, edited, dual, dual_rejected, escalated, waiting, between)
