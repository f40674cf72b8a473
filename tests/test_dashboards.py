"""The dashboards' numbers, checked against a small world whose every number was worked out by hand.

The world (2026-03-01 to 2026-03-03, UTC; "now" is 2026-03-03 18:00 for the open cases):

case  queue    type                 client  status            created      SLA due      stopped
C1    finance  payment_release      alpha   executed          03-01 09:00  03-01 10:00  03-01 09:12  met
C2    finance  payment_release      alpha   executed          03-01 10:00  03-01 11:00  03-02 10:00  breached
C3    finance  credit_limit_change  beta    rejected          03-02 08:00  03-02 09:00  03-02 09:00  met (at due)
C4    legal    contract_review      beta    pending_review    03-02 12:00  03-03 11:00  -            overdue
C5    finance  payment_release      alpha   approved          03-03 08:00  03-03 09:00  03-03 08:40  met
C6    finance  payment_release      beta    in_review (rev.)  03-03 09:00  03-03 10:00  -            overdue
C7    finance  payment_release      alpha   pending_review    03-03 17:30  03-03 18:30  -            at risk (warned)
C8    finance  payment_release      alpha   ai_failed         03-03 12:00  03-03 20:00  -            on time
C9    finance  payment_release      alpha   executed          02-20 09:00  02-20 10:00  02-20 10:00  (before the range)

Recommendations (provider, model, template, tokens in/out, cost, latency, flags):
R1 C1 03-01 09:01 openai m-large v1 1000/200 0.03  1200 ms
R2 C2 03-01 10:01 openai m-large v1 2000/400 0.06  2000 ms fallback, unverified_citation; 1 invalid answer of m-small
R3 C3 03-02 08:00 local  m-small v2    0/0   0     100 ms cache hit, prompt_injection
R4 C4 03-02 12:01 local  m-small v2  500/100 0.001  300 ms
R5 C5 03-03 08:01 openai m-large v1 1500/300 0.045 1600 ms
R6 C6 03-03 09:01 openai m-large v1 1000/100 0.025  800 ms
R9 C9 02-20       openai m-large v1 9999/9999 1.0   9999 ms (before the range)
C8's analysis failed 03-03 12:01 after 2 invalid answers (openai:m-large, local:m-small).

Decisions: C1 approve (reviewer, 03-01 09:10, opened 09:09:50) and second_approval (senior, 09:12, opened
09:11:58); C2 edit (reviewer2, 03-02 10:00, policy_breach); C3 reject (reviewer, 03-02 09:00,
customer_risk); C4 escalate (senior, 03-03 12:00, policy_breach); C5 blind_assessment (reviewer,
03-03 08:30, same as the AI) then approve (reviewer, 08:40, opened 08:20); C6 blind_assessment
(reviewer2, 03-03 09:30, another action); C9 approve (reviewer, 02-20).
C1's data is 2048 bytes of JSON (2 KB), C5's 1024 (1 KB).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.cases.models import Case, Decision, Queue, Recommendation, UndoneApproval
from app.dashboards.ai import ai_dashboard
from app.dashboards.charts import Series, bars, columns, line
from app.dashboards.filters import Filters, select_for
from app.dashboards.oversight import oversight_dashboard
from app.dashboards.queues import queues_dashboard
from app.extensions import db
from app.intake.services import create_client
from app.review.models import CaseOpening
from app.users import User
from tests.conftest import sign_in
from tests.review_helpers import People, make_user

pytest_plugins = ["tests.review_fixtures"]

NOW = datetime(2026, 3, 3, 18, 0, tzinfo=UTC)
RANGE = {"since": "2026-03-01", "until": "2026-03-03"}


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def sized(total_bytes: int) -> dict[str, str]:
    """Case data whose canonical JSON is ``total_bytes`` long: {"note":"aaa…"} is 11 bytes + the a's."""
    return {"note": "a" * (total_bytes - 11)}


@pytest.fixture
def world(people: People, queues: dict[str, Queue]) -> dict[str, Any]:
    alpha = create_client(db.session, "alpha", ["finance", "legal"], ["hooks.example.com"]).client
    beta = create_client(db.session, "beta", ["finance", "legal"], ["hooks.example.com"]).client
    db.session.flush()
    finance, legal = queues["finance"], queues["legal"]
    cases: dict[int, Case] = {}

    def case(n: int, queue: Queue, case_type: str, client: Any, status: str, created: datetime, due: datetime,
             stopped: datetime | None = None, payload: dict[str, Any] | None = None, **more: Any) -> Case:
        made = Case(client_id=client.id, external_id=f"c{n}", domain=queue.domain, case_type=case_type,
                    title=f"Case C{n}", payload=payload or {"n": n}, status=status, queue_id=queue.id,
                    created_at=created, sla_due_at=due, sla_window_minutes=60, sla_stopped_at=stopped, **more)
        db.session.add(made)
        db.session.flush()
        cases[n] = made
        return made

    def rec(c: Case, created: datetime, provider: str, model: str, template: str, tokens: tuple[int, int],
            cost: str, latency: int, flags: tuple[str, ...] = (), **more: Any) -> Recommendation:
        made = Recommendation(case_id=c.id, case_version=1, provider=provider, model=model, template_version=template,
                              prompt_hash="0" * 64, input_hash="0" * 64, action="release", parameters={},
                              rationale="r", confidence=0.9, flags=list(flags), citations=[], tokens_in=tokens[0],
                              tokens_out=tokens[1], cost_usd=Decimal(cost), latency_ms=latency, created_at=created,
                              **more)
        db.session.add(made)
        db.session.flush()
        c.recommendation_id = made.id
        return made

    def decision(c: Case, who: User, kind: str, when: datetime, r: Recommendation | None, *,
                 opened: datetime | None = None, **more: Any) -> None:
        db.session.add(Decision(case_id=c.id, reviewer_id=who.id, recommendation_id=r.id if r else None, kind=kind,
                                case_version=1, created_at=when, **more))
        if opened is not None:
            db.session.add(CaseOpening(case_id=c.id, user_id=who.id, opened_at=opened))

    c1 = case(1, finance, "payment_release", alpha, "executed", at(1, 9), at(1, 10), at(1, 9, 12), sized(2048))
    r1 = rec(c1, at(1, 9, 1), "openai", "m-large", "v1", (1000, 200), "0.03", 1200)
    decision(c1, people.reviewer, "approve", at(1, 9, 10), r1, opened=at(1, 9, 9, 50))
    decision(c1, people.senior, "second_approval", at(1, 9, 12), r1, opened=at(1, 9, 11, 58))

    c2 = case(2, finance, "payment_release", alpha, "executed", at(1, 10), at(1, 11), at(2, 10))
    r2 = rec(c2, at(1, 10, 1), "openai", "m-large", "v1", (2000, 400), "0.06", 2000,
             ("provider_fallback", "unverified_citation"), fallback_used=True,
             details={"attempts": [{"target": "openai:m-small", "outcome": "invalid_output", "detail": "bad"}]})
    decision(c2, people.reviewer2, "edit", at(2, 10), r2, opened=at(2, 9, 58), reason_code="policy_breach",
             diff={"parameters": {"x": [1, 2]}})

    c3 = case(3, finance, "credit_limit_change", beta, "rejected", at(2, 8), at(2, 9), at(2, 9))
    r3 = rec(c3, at(2, 8, 0, 30), "local", "m-small", "v2", (0, 0), "0", 100, ("prompt_injection",), cache_hit=True)
    decision(c3, people.reviewer, "reject", at(2, 9), r3, reason_code="customer_risk")

    c4 = case(4, legal, "contract_review", beta, "pending_review", at(2, 12), at(3, 11))
    r4 = rec(c4, at(2, 12, 1), "local", "m-small", "v2", (500, 100), "0.001", 300)
    decision(c4, people.senior, "escalate", at(3, 12), r4, reason_code="policy_breach")

    c5 = case(5, finance, "payment_release", alpha, "approved", at(3, 8), at(3, 9), at(3, 8, 40), sized(1024))
    r5 = rec(c5, at(3, 8, 1), "openai", "m-large", "v1", (1500, 300), "0.045", 1600)
    decision(c5, people.reviewer, "blind_assessment", at(3, 8, 30), r5, opened=at(3, 8, 20), diff={})
    decision(c5, people.reviewer, "approve", at(3, 8, 40), r5)

    c6 = case(6, finance, "payment_release", beta, "in_review", at(3, 9), at(3, 10), assignee_id=people.reviewer.id)
    r6 = rec(c6, at(3, 9, 1), "openai", "m-large", "v1", (1000, 100), "0.025", 800)
    decision(c6, people.reviewer2, "blind_assessment", at(3, 9, 30), r6, diff={"action": ["release", "hold"]})

    case(7, finance, "payment_release", alpha, "pending_review", at(3, 17, 30), at(3, 18, 30), sla_notified_pct=50)
    c8 = case(8, finance, "payment_release", alpha, "ai_failed", at(3, 12), at(3, 20), sla_next_at=at(3, 19, 30))
    db.session.add(AuditEvent(time=at(3, 12, 1), actor="system:ai", action="case.analysis_failed", case_id=c8.id,
                              data={"error": "no valid answer", "attempts": [
                                  {"target": "openai:m-large", "outcome": "invalid_output", "detail": "x"},
                                  {"target": "local:m-small", "outcome": "invalid_output", "detail": "y"}]}))

    c9 = case(9, finance, "payment_release", alpha, "executed", at(20, 9, month=2), at(20, 10, month=2),
              at(20, 10, month=2))
    r9 = rec(c9, at(20, 9, 1, month=2), "openai", "m-large", "v1", (9999, 9999), "1.0", 9999)
    decision(c9, people.reviewer, "approve", at(20, 10, month=2), r9, opened=at(20, 9, 59, 59, month=2))
    db.session.commit()
    return {"case": {n: c.id for n, c in cases.items()}, "alpha": alpha, "beta": beta}


def selected(user: User, **filters: Any) -> Any:
    return select_for(db.session, user, Filters(since=date(2026, 3, 1), until=date(2026, 3, 3), **filters))


def ids(world: dict[str, Any], *numbers: int) -> frozenset[int]:
    return frozenset(world["case"][n] for n in numbers)


# --- queues -------------------------------------------------------------------------------------------


def test_open_cases_per_queue_on_the_badges_clock(world, people):
    board = queues_dashboard(db.session, selected(people.admin), NOW)
    rows = {r.queue: (r.open.value, r.unassigned.value, r.at_risk.value, r.overdue.value) for r in board.queues}
    assert rows == {
        "compliance": (0, 0, 0, 0),
        # C6, C7, C8 open; C7 and C8 wait unclaimed (C6 is claimed); C7 warned at 50 %; C6 due 10:00 < 18:00
        "finance": (3, 2, 1, 1),
        "finance-senior": (0, 0, 0, 0),
        "legal": (1, 1, 0, 1),  # C4, unclaimed, due 03-03 11:00
    }
    finance = next(r for r in board.queues if r.queue == "finance")
    assert finance.unassigned.case_ids == ids(world, 7, 8)
    assert finance.at_risk.case_ids == ids(world, 7)
    assert finance.overdue.case_ids == ids(world, 6)


def test_decisions_per_day_time_to_decision_and_sla_compliance(world, people):
    board = queues_dashboard(db.session, selected(people.admin), NOW)
    per_day = {str(d.day): {k: c.value for k, c in d.by_kind.items() if c.value} for d in board.decisions}
    assert per_day == {
        "2026-03-01": {"approve": 1, "second_approval": 1},  # C1 twice
        "2026-03-02": {"edit": 1, "reject": 1},  # C2, C3
        "2026-03-03": {"approve": 1, "escalate": 1},  # C5, C4 (blind assessments decide nothing)
    }
    assert [d.total.value for d in board.decisions] == [2, 2, 2]
    # decided in the range: C1 720 s, C2 86 400 s (a day), C3 3 600 s, C5 2 400 s; sorted 720, 2400, 3600, 86400
    assert board.decided.case_ids == ids(world, 1, 2, 3, 5)
    assert board.time_to_decision_p50 == 2400  # nearest rank ceil(0.5 * 4) = 2nd
    assert board.time_to_decision_p90 == 86400  # nearest rank ceil(0.9 * 4) = 4th
    # met: C1, C3 (decided at its due time), C5; breached: C2 → 3 / 4 = 75 %
    assert (board.sla_met.value, board.sla_breached.value, board.sla_compliance.percent) == (3, 1, 75.0)
    assert [d.compliance.percent for d in board.sla_days] == [100.0, 50.0, 100.0]
    assert board.sla_breached.case_ids == ids(world, 2)


def test_filters_narrow_the_queue_numbers(world, people):
    legal = queues_dashboard(db.session, selected(people.admin, queue="legal"), NOW)
    assert [(r.queue, r.open.value) for r in legal.queues] == [("legal", 1)]
    assert legal.decided.value == 0 and legal.time_to_decision_p50 is None
    assert sum(d.total.value for d in legal.decisions) == 1  # C4's escalation
    mine = queues_dashboard(db.session, selected(people.admin, reviewer=people.reviewer.id), NOW)
    assert [d.total.value for d in mine.decisions] == [1, 1, 1]  # C1 approve, C3 reject, C5 approve
    small = queues_dashboard(db.session, selected(people.admin, model="m-small"), NOW)
    assert small.decided.case_ids == ids(world, 3)  # C3, decided on m-small's recommendation


def test_a_senior_reviewer_sees_only_the_numbers_of_their_queues(world, queues):
    legal_senior = make_user("legal_senior", "senior_reviewer", [queues["legal"]])
    db.session.commit()
    board = queues_dashboard(db.session, selected(legal_senior), NOW)
    assert [r.queue for r in board.queues] == ["legal"]
    assert oversight_dashboard(db.session, selected(legal_senior)).agreement_total.total.case_ids == ids(world, 4)


# --- human oversight ------------------------------------------------------------------------------------


def test_ai_agreement_by_case_type_model_template_and_reviewer(world, people):
    board = oversight_dashboard(db.session, selected(people.admin))

    def table(by: str) -> dict[str, tuple[int, int, int, int, float | None]]:
        return {r.group: (*(r.outcomes[k].value for k in ("approve", "edit", "reject", "escalate")),
                          r.agreement.percent) for r in board.agreement[by]}

    # first decisions on a recommendation: C1 approve, C2 edit, C3 reject, C4 escalate, C5 approve → 2 / 5 = 40 %
    assert board.agreement_total.total.value == 5
    assert board.agreement_total.agreement.percent == 40.0
    assert table("case_type") == {"contract_review": (0, 0, 0, 1, 0.0), "credit_limit_change": (0, 0, 1, 0, 0.0),
                                  "payment_release": (2, 1, 0, 0, pytest.approx(200 / 3))}  # 2 of 3
    assert table("model") == {"m-large": (2, 1, 0, 0, pytest.approx(200 / 3)), "m-small": (0, 0, 1, 1, 0.0)}
    assert table("template_version") == {"v1": (2, 1, 0, 0, pytest.approx(200 / 3)), "v2": (0, 0, 1, 1, 0.0)}
    assert table("reviewer") == {"reviewer@example.com": (2, 0, 1, 0, pytest.approx(200 / 3)),
                                 "reviewer2@example.com": (0, 1, 0, 0, 0.0), "senior@example.com": (0, 0, 0, 1, 0.0)}


def test_an_undone_approval_counts_nowhere(world, people, queues):
    """C10: approved at 15:00, the approval undone within its window, then rejected at 15:05: one
    decision counts, the reject, in the queue numbers and as the reviewer's verdict on the AI."""
    case = db.session.get(Case, world["case"][7])
    rec = Recommendation(case_id=case.id, case_version=1, provider="local", model="m-small", template_version="v2",
                         prompt_hash="0" * 64, input_hash="0" * 64, action="release", parameters={}, rationale="r",
                         confidence=0.9, flags=[], citations=[], created_at=at(3, 14))
    db.session.add(rec)
    db.session.flush()
    undone = Decision(case_id=case.id, reviewer_id=people.reviewer.id, recommendation_id=rec.id, kind="approve",
                      case_version=1, created_at=at(3, 15))
    db.session.add_all([undone, Decision(case_id=case.id, reviewer_id=people.reviewer.id, recommendation_id=rec.id,
                                         kind="reject", case_version=1, created_at=at(3, 15, 5))])
    db.session.flush()
    db.session.add(UndoneApproval(decision_id=undone.id, case_id=case.id, undone_at=at(3, 15, 0, 8)))
    db.session.commit()

    per_day = {str(d.day): {k: c.value for k, c in d.by_kind.items() if c.value}
               for d in queues_dashboard(db.session, selected(people.admin), NOW).decisions}
    assert per_day["2026-03-03"] == {"approve": 1, "escalate": 1, "reject": 1}  # C5, C4, C10's reject
    board = oversight_dashboard(db.session, selected(people.admin))
    assert board.agreement_total.total.value == 6  # the five of the world, and C10's reject
    assert board.agreement_total.agreement.percent == pytest.approx(200 / 6)


def test_override_reason_codes_and_blind_review_agreement(world, people):
    board = oversight_dashboard(db.session, selected(people.admin))
    # C2 edit and C4 escalate gave policy_breach, C3's rejection customer_risk
    assert [(r.code, r.label, r.decisions.value) for r in board.reasons] == [
        ("policy_breach", "Policy breach", 2), ("customer_risk", "Customer risk", 1)]
    assert board.reasons[0].decisions.case_ids == ids(world, 2, 4)
    # C5: the reviewer's own call was the AI's; C6: reviewer2 chose another action → 1 / 2 = 50 %
    total = board.blind_total
    assert (total.assessments.value, total.same_action.value, total.same_action_and_parameters.value) == (2, 1, 1)
    assert total.agreement.percent == 50.0
    assert {r.reviewer: r.agreement.percent for r in board.blind} == {"reviewer@example.com": 100.0,
                                                                      "reviewer2@example.com": 0.0}


def test_implausibly_fast_approvals_absolute_and_for_the_case_size(world, people):
    board = oversight_dashboard(db.session, selected(people.admin))
    rows = {r.reviewer: r for r in board.speed}
    assert set(rows) == {"reviewer@example.com", "senior@example.com"}
    reviewer = rows["reviewer@example.com"]
    # C1: opened 09:09:50, approved 09:10:00 → 10 s < 20 s, and 10 s / 2 KB = 5 s per KB < 10
    # C5: opened 08:20, approved 08:40 → 1 200 s, 1 200 s per KB: neither
    assert (reviewer.approvals.value, reviewer.timed.value, reviewer.fast.value, reviewer.fast_for_size.value) == (
        2, 2, 1, 1)
    assert reviewer.fast.case_ids == ids(world, 1)
    assert (reviewer.median_seconds, reviewer.median_seconds_per_kb) == (10, 5)  # nearest rank: the 1st of 2
    senior = rows["senior@example.com"]  # C1's second approval: 2 s after opening; 1 s per KB
    assert (senior.approvals.value, senior.fast.value, senior.fast_for_size.value, senior.median_seconds) == (
        1, 1, 1, 2)
    # stricter thresholds: 5 s and 2 s per KB catch only the senior's 2 s (1 s per KB)
    strict = oversight_dashboard(db.session, selected(people.admin, fast_seconds=5, fast_seconds_per_kb=2))
    assert {r.reviewer: (r.fast.value, r.fast_for_size.value) for r in strict.speed} == {
        "reviewer@example.com": (0, 0), "senior@example.com": (1, 1)}


# --- AI cost and quality --------------------------------------------------------------------------------


def test_tokens_cost_latency_and_rates(world, people):
    board = ai_dashboard(db.session, selected(people.admin))
    assert board.recommendations.value == 6  # R1 to R6 (R9 is before the range)
    assert [(str(d.day), d.total.tokens_in, d.total.tokens_out, d.total.cost_usd) for d in board.days] == [
        ("2026-03-01", 3000, 600, Decimal("0.09")),  # R1 + R2
        ("2026-03-02", 500, 100, Decimal("0.001")),  # R3 + R4
        ("2026-03-03", 2500, 400, Decimal("0.07")),  # R5 + R6
    ]
    assert [(s.group, s.recommendations.value, s.tokens_in, s.tokens_out, s.cost_usd) for s in board.by_model] == [
        ("m-large", 4, 5500, 1000, Decimal("0.16")),  # 0.03 + 0.06 + 0.045 + 0.025
        ("m-small", 2, 500, 100, Decimal("0.001"))]
    assert [(s.group, s.recommendations.value, s.tokens_in, s.tokens_out, s.cost_usd) for s in board.by_client] == [
        ("alpha", 3, 4500, 900, Decimal("0.135")),  # R1, R2, R5
        ("beta", 3, 1500, 200, Decimal("0.026"))]  # R3, R4, R6
    # openai: 800, 1200, 1600, 2000 → p50 the 2nd, p95 the 4th; local: R4's 300 (R3 came from the cache)
    assert [(r.provider, r.calls.value, r.p50_ms, r.p95_ms) for r in board.latency] == [
        ("local", 1, 300, 300), ("openai", 4, 1200, 2000)]
    assert [(rate.part.value, rate.whole) for rate in (board.cache_hits, board.fallbacks,
                                                      board.hallucinated_citations, board.injections)] == [
        (1, 6), (1, 6), (1, 6), (1, 6)]  # R3, R2, R2, R3
    assert board.injections.part.case_ids == ids(world, 3)
    # invalid answers: 1 before R2, 2 in C8's failed analysis; of 3 invalid + 6 valid answers
    assert (board.invalid_outputs.part.value, board.invalid_outputs.whole) == (3, 9)
    assert board.invalid_outputs.part.case_ids == ids(world, 2, 8)


def test_the_model_filter_on_the_ai_numbers(world, people):
    board = ai_dashboard(db.session, selected(people.admin, model="m-small"))
    assert board.recommendations.case_ids == ids(world, 3, 4)
    # m-small's invalid answers: before R2 (openai:m-small) and in C8 (local:m-small); 2 of 2 + 2
    assert (board.invalid_outputs.part.value, board.invalid_outputs.whole) == (2, 4)


# --- the pages ------------------------------------------------------------------------------------------


def page(client: FlaskClient, path: str, **args: str) -> tuple[int, str]:
    response = client.get(path, query_string=args)
    return response.status_code, response.get_data(as_text=True)


def test_the_pages_show_the_numbers_with_charts_and_links_to_the_cases(client, world, people):
    sign_in(client, people.auditor)
    status, html = page(client, "/dashboards/oversight", **RANGE)
    assert status == 200
    assert "<svg" in html and "<title>AI agreement by model</title>" in html
    assert "40.0 %" in html  # the agreement of all first decisions
    status, html = page(client, "/dashboards/cases", view="oversight", measure="reasons/policy_breach", **RANGE)
    assert status == 200
    assert f'href="/cases/{world["case"][2]}"' in html and f'href="/cases/{world["case"][4]}"' in html
    assert f'href="/cases/{world["case"][3]}"' not in html
    for path in ("/dashboards", "/dashboards/ai"):
        status, html = page(client, path, **RANGE)
        assert status == 200 and "<svg" in html
    # every number links to its cases, with the page's range and filters, so the list matches the number
    assert "/dashboards/cases?view=ai&amp;measure=injections&amp;since=2026-03-01&amp;until=2026-03-03" in html


@pytest.mark.parametrize(("args", "field", "message"), [
    ({"queue": "nope"}, "queue", "No queue &#39;nope&#39; among your queues."),
    ({"since": "2026-13-01"}, "since", "is not a day"),
    ({"since": "2025-01-01", "until": "2026-03-03"}, "until", "at most 366 days"),
    ({"since": "2026-03-03", "until": "2026-03-01"}, "until", "before its start"),
    ({"case_type": "horoscope"}, "case_type", "No case type"),
    ({"reviewer": "bob"}, "reviewer", "is not a user id"),
    ({"reviewer": "99999999999999"}, "reviewer", "is not a user id"),  # past any id column: never a 500
    ({"reviewer": "4242"}, "reviewer", "No user with id 4242."),
    ({"model": "gpt-11"}, "model", "No recommendation came from a model &#39;gpt-11&#39;."),
    ({"model": "", "fast_seconds": "-3"}, "fast_seconds", "above 0"),
    ({"fast_seconds_per_kb": "nan"}, "fast_seconds_per_kb", "above 0"),
])
def test_bad_filters_are_a_form_error_not_a_500(client, people, args, field, message):
    sign_in(client, people.admin)
    for path in ("/dashboards", "/dashboards/oversight", "/dashboards/ai"):
        status, html = page(client, path, **args)
        assert status == 422
        assert message in html and 'role="alert"' in html


def test_every_bad_filter_is_named_at_once(client, people):
    sign_in(client, people.admin)
    status, html = page(client, "/dashboards", queue="nope", since="yesterday", until="2026-03-03", fast_seconds="x")
    assert status == 422
    assert "No queue &#39;nope&#39; among your queues." in html and "is not a day" in html
    assert "A number of seconds above 0" in html
    assert "The end of the range is before its start." not in html  # the unreadable day is the fault


def test_a_senior_reviewer_may_not_filter_on_a_queue_they_do_not_see(client, world, queues):
    legal_senior = make_user("legal_senior", "senior_reviewer", [queues["legal"]])
    db.session.commit()
    sign_in(client, legal_senior)
    status, html = page(client, "/dashboards", queue="finance", **RANGE)
    assert status == 422 and "No queue &#39;finance&#39; among your queues." in html


def test_an_unknown_number_or_view_is_refused(client, people):
    sign_in(client, people.admin)
    assert page(client, "/dashboards/cases", view="queues", measure="no/such/number")[0] == 404
    assert page(client, "/dashboards/cases", view="horoscope", measure="decided")[0] == 422


def test_with_no_data_every_chart_says_so(client, people):
    sign_in(client, people.admin)
    for path in ("/dashboards", "/dashboards/oversight", "/dashboards/ai"):
        status, html = page(client, path)  # the default: the last 30 days
        assert status == 200
        assert "No data in this range" in html and "<svg" in html


def test_opening_a_case_records_the_reviewers_first_opening_once(client, upstream, people):
    from tests.review_helpers import make_case

    case = make_case(upstream)
    sign_in(client, people.reviewer)
    assert client.get(f"/cases/{case.id}").status_code == 200
    first = db.session.scalars(select(CaseOpening)).one()
    assert client.get(f"/cases/{case.id}").status_code == 200
    sign_in(client, people.auditor)  # auditors decide nothing: their views time nothing
    assert client.get(f"/cases/{case.id}").status_code == 200
    db.session.expire_all()
    assert [(o.case_id, o.user_id, o.opened_at) for o in db.session.scalars(select(CaseOpening))] == [
        (case.id, people.reviewer.id, first.opened_at)]


def test_the_dashboards_show_the_demos_own_numbers(client, redis_conn, tmp_path):
    """`make demo` seeds two cases decided by the demo reviewer: one approved as recommended, one rejected."""
    from app.demo.seed import seed_demo_data

    seed_demo_data(db.session, echo=lambda _line: None, credentials_path=tmp_path / "demo-client.json")
    admin = db.session.scalars(select(User).where(User.email == "admin@countersign.demo")).one()
    sign_in(client, admin)
    status, html = page(client, "/dashboards/oversight")
    assert status == 200
    assert "50.0 %" in html  # 1 of the 2 first decisions approved the recommendation
    board = oversight_dashboard(db.session, select_for(db.session, admin, Filters.default(datetime.now(UTC).date())))
    assert {k: c.value for k, c in board.agreement_total.outcomes.items()} == {
        "approve": 1, "edit": 0, "reject": 1, "escalate": 0}
    assert [r.code for r in board.reasons] == ["customer_risk"]  # the demo's rejection
    status, html = page(client, "/dashboards")
    assert status == 200 and "2</a> cases decided in the range" in html
    status, html = page(client, "/dashboards/ai")
    assert status == 200 and "2</a> recommendations in the range" in html


def test_charts_escape_their_text_and_draw_an_empty_state():
    drawn = bars("<script>", ["a<b"], [Series("x&y", [2])])
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn and "a&lt;b" in drawn and "x&amp;y: 2" in drawn
    assert 'role="img" aria-label="&lt;script&gt;"' in drawn
    for empty in (bars("t", [], []), columns("t", ["03-01"], [Series("x", [0])]), line("t", ["03-01"], [None])):
        assert "No data in this range" in empty and empty.startswith("<svg")
