"""Confidence calibrated from reviewers' decisions: the fit on a synthetic set with known agreement
rates, the labels read from real decisions, the stored curve and its minimum, the case page, the
reviewer API, the escalation condition and the reliability diagram page."""

from __future__ import annotations

import random
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth.services import create_api_token
from app.escalation import rules as schema
from app.escalation import services as escalation
from app.escalation.models import RuleFiring
from app.extensions import db
from app.oversight import calibration
from app.oversight.jobs import refresh_calibrations
from app.oversight.models import Calibration
from app.review import services as review
from tests.conftest import sign_in
from tests.escalation_helpers import add_rule
from tests.review_helpers import People, claim, decide, make_case

pytest_plugins = ["tests.review_fixtures"]

# The synthetic set: 200 recommendations at each confidence, each approved as recommended with the
# probability beside it (an over-confident model: at 0.95 reviewers agree 90% of the time, at 0.55 30%).
KNOWN = {0.55: 0.30, 0.65: 0.45, 0.75: 0.60, 0.85: 0.75, 0.95: 0.90}
PER_LEVEL = 200
# 200 Bernoulli draws: the standard error of an observed rate is at most sqrt(.25/200) = 0.0354; the
# tolerance is three of them (a fit off by more is wrong, not unlucky), and the seed fixes the draws.
TOLERANCE = 0.106


def synthetic_labels(seed: int = 20261129) -> list[tuple[float, bool]]:
    draw = random.Random(seed)
    return [(confidence, draw.random() < agreement) for confidence, agreement in KNOWN.items()
            for _ in range(PER_LEVEL)]


def test_the_reliability_bins_of_a_synthetic_set_recover_the_known_agreement_rates():
    labels = synthetic_labels()
    assert len(labels) == 1000
    bins = calibration.reliability_bins(labels)
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 0, 200, 200, 200, 200, 200]
    assert all(b["mean_confidence"] is None and b["agreement"] is None for b in bins[:5])
    for b, (confidence, agreement) in zip(bins[5:], KNOWN.items(), strict=True):
        assert b["mean_confidence"] == pytest.approx(confidence)
        assert abs(b["agreement"] - agreement) <= TOLERANCE, (confidence, b["agreement"])


def test_the_isotonic_fit_of_a_synthetic_set_recovers_the_known_agreement_rates():
    curve = calibration.fit_isotonic(synthetic_labels())
    rates = [block["rate"] for block in curve]
    assert rates == sorted(rates)  # never falling as confidence rises
    assert sum(block["count"] for block in curve) == 1000
    for confidence, agreement in KNOWN.items():
        assert abs(calibration.rate_on(curve, confidence) - agreement) <= TOLERANCE, confidence


def test_pool_adjacent_violators_worked_by_hand():
    # rates by confidence: 0.1 → 0, 0.2 → 1, 0.3 → 0, 0.4 → 1; 0.2 and 0.3 violate the order and pool to 1/2
    labels = [(0.3, False), (0.1, False), (0.4, True), (0.2, True)]
    assert calibration.fit_isotonic(labels) == [
        {"low": 0.1, "high": 0.1, "rate": 0.0, "count": 1},
        {"low": 0.2, "high": 0.3, "rate": 0.5, "count": 2},
        {"low": 0.4, "high": 0.4, "rate": 1.0, "count": 1},
    ]
    curve = calibration.fit_isotonic(labels)
    assert calibration.rate_on(curve, 0.25) == 0.5  # inside a block: its rate
    assert calibration.rate_on(curve, 0.15) == pytest.approx(0.25)  # between 0.1 (0) and 0.2 (0.5): linear
    assert calibration.rate_on(curve, 0.35) == pytest.approx(0.75)
    assert (calibration.rate_on(curve, 0.0), calibration.rate_on(curve, 1.0)) == (0.0, 1.0)  # flat outside
    assert calibration.rate_on([], 0.5) is None


def test_equal_confidences_share_one_block():
    assert calibration.fit_isotonic([(0.5, True), (0.5, False), (0.5, False)]) == [
        {"low": 0.5, "high": 0.5, "rate": pytest.approx(1 / 3), "count": 3}]


# --- labels from real decisions ---------------------------------------------------------------------------


def decided_world(upstream, people: People) -> None:
    """Five payment releases recommended by rules-v1 at confidence 0.8: approved as recommended once;
    edited once; rejected once; escalated and then rejected by the senior (the reject is the label);
    left waiting for information (no label)."""
    decide(people.reviewer, claim(people.reviewer, make_case(upstream)), "approve")
    decide(people.reviewer, claim(people.reviewer, make_case(upstream)), "edit", action="release",
           parameters={})
    decide(people.reviewer, claim(people.reviewer, make_case(upstream)), "reject")
    escalated = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, escalated, "escalate", target_queue="finance-senior")
    decide(people.senior, claim(people.senior, escalated), "reject")
    decide(people.reviewer, claim(people.reviewer, make_case(upstream)), "request_info")


def test_each_recommendation_is_labelled_by_its_first_verdict(upstream, people):
    decided_world(upstream, people)
    assert calibration.decided_labels(db.session) == {
        ("payment_release", "rules-v1"): [(0.8, True), (0.8, False), (0.8, False), (0.8, False)]}


def test_an_undone_approval_is_no_verdict(app, upstream, people, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 60)
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "approve")
    review.undo_approval(db.session, people.reviewer, case.id)
    db.session.commit()
    decide(people.reviewer, case, "reject")
    assert calibration.decided_labels(db.session) == {("payment_release", "rules-v1"): [(0.8, False)]}


def test_the_refresh_job_stores_the_curve_with_its_number_of_decisions(upstream, people):
    decided_world(upstream, people)
    assert refresh_calibrations() == {"curves": 1}  # the job itself, with its Redis lock
    row = db.session.scalars(select(Calibration)).one()
    assert (row.case_type, row.model, row.decisions, row.agreements) == ("payment_release", "rules-v1", 4, 1)
    assert row.curve == [{"low": 0.8, "high": 0.8, "rate": 0.25, "count": 4}]
    assert row.bins[8] == {"low": 0.8, "high": 0.9, "count": 4, "mean_confidence": 0.8, "agreement": 0.25}
    assert refresh_calibrations() == {"curves": 1}
    assert len(db.session.scalars(select(Calibration)).all()) == 1  # refitted in place


def test_the_scheduler_runs_the_refresh_periodically():
    from workers.scheduler import PERIODIC_JOBS

    assert (refresh_calibrations, "default", "CALIBRATION_REFRESH_SECONDS") in PERIODIC_JOBS


def test_below_the_minimum_it_says_so_instead_of_guessing(app, upstream, people):
    decided_world(upstream, people)
    calibration.refresh(db.session)
    found = calibration.agreement_for(db.session, "payment_release", "rules-v1", 0.8)
    assert (found.rate, found.decisions, found.minimum) == (None, 4, 30)
    assert found.label == "not enough decided cases (4 of 30)"
    assert calibration.agreement_for(db.session, "payment_release", "gpt-other", 0.8).label == \
        "not enough decided cases (0 of 30)"
    app.config["CALIBRATION_MIN_DECISIONS"] = 4
    found = calibration.agreement_for(db.session, "payment_release", "rules-v1", 0.8)
    assert (found.rate, found.label) == (0.25, "25% approved as recommended (4 decided cases)")


# --- where the calibrated rate shows ------------------------------------------------------------------------


def test_the_case_page_and_the_reviewer_api_show_it_beside_the_raw_confidence(app, client: FlaskClient, upstream,
                                                                              people):
    decided_world(upstream, people)
    calibration.refresh(db.session)
    case = make_case(upstream)
    sign_in(client, people.reviewer)
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "80% confidence" in page
    assert re.search(r"calibrated: not enough decided cases \(4 of 30\)", page)

    app.config["CALIBRATION_MIN_DECISIONS"] = 4
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "calibrated: 25% approved as recommended (4 decided cases)" in page

    _, token = create_api_token(db.session, people.reviewer, "calibration")
    db.session.commit()
    document = client.get(f"/api/v1/review/cases/{case.id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert document["calibrated_agreement"] == {"rate": 0.25, "decisions": 4, "minimum": 4,
                                                "label": "25% approved as recommended (4 decided cases)"}


def test_a_blind_reviewer_sees_no_calibration_before_their_own_assessment(client, upstream, people, queues):
    queues["finance"].blind_review = True
    db.session.commit()
    case = claim(people.reviewer, make_case(upstream))
    _, token = create_api_token(db.session, people.reviewer, "blind")
    db.session.commit()
    document = client.get(f"/api/v1/review/cases/{case.id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert document["recommendation_hidden"] is True
    assert document["calibrated_agreement"] is None


# --- the escalation condition ----------------------------------------------------------------------------


def facts(rate: float | None) -> schema.Facts:
    from tests.test_escalation_rules import FACTS

    return schema.Facts(**{**FACTS.__dict__, "calibrated_agreement": lambda: rate})


@pytest.mark.parametrize(("rate", "expected"), [(0.5, True), (0.59, True), (0.6, False), (0.9, False),
                                                (None, False)])
def test_calibrated_agreement_below(rate, expected):
    conditions = schema.Conditions.model_validate({"calibrated_agreement_below": 0.6})
    assert schema.matches(conditions, facts(rate)) is expected


@pytest.mark.parametrize("value", [1.5, -0.1, "often"])
def test_a_calibrated_agreement_condition_out_of_range_is_refused_with_its_field(value):
    with pytest.raises(schema.RuleInvalid) as refused:
        schema.validate({"name": "r", "conditions": {"calibrated_agreement_below": value},
                         "actions": [{"set_priority": {"priority": "high"}}]})
    assert [e.field for e in refused.value.errors] == ["conditions.calibrated_agreement_below"]


def test_a_rule_fires_on_the_calibrated_rate_once_there_are_enough_decisions(app, client, upstream, people):
    decided_world(upstream, people)
    calibration.refresh(db.session)
    rule = add_rule("distrusted", {"calibrated_agreement_below": 0.5}, [{"set_priority": {"priority": "urgent"}}])
    case = make_case(upstream)
    escalation.apply_rules(db.session, case, "sweep")
    assert db.session.scalars(select(RuleFiring).where(RuleFiring.case_id == case.id)).all() == []  # 4 of 30

    app.config["CALIBRATION_MIN_DECISIONS"] = 4
    escalation.apply_rules(db.session, case, "sweep")
    db.session.commit()
    assert [f.rule_id for f in db.session.scalars(select(RuleFiring).where(RuleFiring.case_id == case.id))] == \
        [rule.id]
    assert case.priority_label == "urgent"

    sign_in(client, people.admin)
    assert "calibrated_agreement_below: 0.5" in client.get("/admin/rules").get_data(as_text=True)


# --- the reliability diagram page --------------------------------------------------------------------------


def test_the_calibration_page_draws_each_curve_with_its_numbers(client, upstream, people):
    decided_world(upstream, people)
    calibration.refresh(db.session)
    sign_in(client, people.senior)
    page = client.get("/oversight/calibration").get_data(as_text=True)
    assert "payment_release · rules-v1" in page
    assert page.count("<circle ") == 1  # one non-empty bin
    assert '<tr data-bin="0.8"><td class="nowrap">0.8\u20130.9</td><td class="num">4</td>' in page
    assert "<td class=\"num\">80%</td><td class=\"num\">25%</td>" in page
    assert "not enough decided cases (4 of 30)" in page


def test_the_calibration_page_without_decisions(client, people):
    sign_in(client, people.auditor)
    assert "No decided cases yet" in client.get("/oversight/calibration").get_data(as_text=True)


def test_the_oversight_dashboard_draws_the_same_reliability_diagram(client, upstream, people):
    sign_in(client, people.auditor)
    assert "No calibration yet" in client.get("/dashboards/oversight").get_data(as_text=True)
    decided_world(upstream, people)
    calibration.refresh(db.session)
    db.session.commit()
    page = client.get("/dashboards/oversight").get_data(as_text=True)
    assert "Confidence learned from reviewers" in page and "payment_release · rules-v1" in page
    assert '<tr data-bin="0.8"><td class="nowrap">0.8\u20130.9</td><td class="num">4</td>' in page
    assert "<td class=\"num\">80%</td><td class=\"num\">25%</td>" in page  # 4 approvals at 0.8, 1 as recommended
