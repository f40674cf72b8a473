"""How the local analyzers judge: negation and exceptions in the text they read, confidence that
reflects ambiguity, actions that never contradict their own evidence, and context that explains
activity. Every expected outcome is written by hand, row by row."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.cases.types import REGISTRY
from app.cases.types.base import CORRECTED, CORRECTED_CONFIDENCE, Analysis, ConsistencyRule
from app.cases.types.text import affirms, denies, readings, without_negated
from tests.test_analyzers import (
    _DELETE,
    CAP_12_MONTHS,
    CLEAN_CLAUSES,
    CLEAN_SCREENING,
    COMPLETE,
    KNOWN_DHL,
    LOW_RISK_CUSTOMER,
    NET_30,
    SALARY,
    analyze,
    clause,
    payload,
    transaction,
)

CASE_TYPES = {case_type.name: case_type for case_type in REGISTRY.values()}
AMBIGUOUS, CLEAR = 0.7, 0.85


# --- the shared helper -----------------------------------------------------------------------

RENEWS = re.compile(r"renew\w*\s+automatically|automatic\w*\s+renew", re.IGNORECASE)


@pytest.mark.parametrize(("text", "affirmed"), [
    ("This Agreement renews automatically.", True),
    ("This Agreement does not renew automatically.", False),
    ("This Agreement doesn't renew automatically.", False),
    ("No automatic renewal applies unless the Customer opts in.", False),
    ("This Agreement shall not expire without renewing automatically.", True),  # not ... without: affirmed
    ("If the Customer does not object, this Agreement renews automatically.", True),  # the comma ends the negation
    ("The term is fixed, except where it renews automatically under clause 3.", False),  # only the exception says it
    ("This Agreement shall not be extended and renews automatically.", True),  # "and" ends the negation
])
def test_affirms_reads_negation_and_exceptions(text: str, affirmed: bool) -> None:
    assert affirms(RENEWS, text) is affirmed


def test_a_reading_tells_negated_from_excepted() -> None:
    [negated] = readings(RENEWS, "It does not renew automatically.")
    [excepted] = readings(RENEWS, "It ends, unless it renews automatically.")
    assert (negated.negated, negated.excepted) == (True, False)
    assert (excepted.negated, excepted.excepted) == (False, True)


@pytest.mark.parametrize(("text", "denied"), [
    ("Neither party may terminate for convenience.", True),
    ("Either party may terminate on notice, other than for convenience.", True),
    ("Either party may terminate for convenience.", False),
    ("Neither party may terminate for convenience in year one; later either may terminate for convenience.", False),
    ("Either party may terminate for breach.", False),  # not mentioned at all
])
def test_denies_means_mentioned_and_affirmed_nowhere(text: str, denied: bool) -> None:
    assert denies(re.compile("convenience"), text) is denied


def test_without_negated_keeps_what_the_text_says() -> None:
    governed = re.compile(r"governed\s+by", re.IGNORECASE)
    text = "This Agreement shall not be governed by the laws of France but by the laws of Ireland."
    assert without_negated(governed, text) == "but by the laws of Ireland."


# --- every contract rule that reads text -----------------------------------------------------


def contract_flags(clauses: list[dict[str, str]], **changes: Any) -> list[str]:
    return analyze("contract_review", payload("contract_review", {"clauses": clauses, **changes})).risk_flags


LIABILITY_WORDING = [
    ("The Supplier's liability shall be unlimited.", ["unlimited_liability"]),
    ("The Supplier's liability shall not be limited.", ["unlimited_liability"]),
    ("The Supplier's liability is not limited to the fees paid.", ["unlimited_liability"]),
    # negated
    ("The Supplier's liability shall not be unlimited and shall not exceed the fees paid in the twelve (12) months"
     " preceding the claim.", []),
    ("The Supplier's liability for all losses, including but not limited to legal costs, shall not exceed the fees"
     " paid in the twelve (12) months preceding the claim.", []),
    # excepted
    ("The Supplier's liability shall be unlimited, except for indirect or consequential loss.",
     ["unlimited_liability"]),
    ("The Supplier's liability shall not exceed the fees paid in the twelve (12) months preceding the claim, except for"
     " death, personal injury or fraud, for which it is unlimited.", []),
    ("Nothing in this Agreement limits liability for death or personal injury, which is unlimited.", []),
    ("The Supplier's liability shall not exceed the fees paid in the twelve (12) months preceding the claim, except for"
     " breach of confidentiality, for which it shall not exceed three (3) times the annual fees.",
     ["liability_cap_above_policy"]),
    # double negation
    ("The Supplier's liability is not without limit: it shall not exceed the fees paid in the twelve (12) months"
     " preceding the claim.", []),
    ("The Supplier's liability is never without a cap: it shall not exceed three (3) times the annual fees.",
     ["liability_cap_above_policy"]),
]


@pytest.mark.parametrize(("text", "flags"), LIABILITY_WORDING)
def test_liability_wording(text: str, flags: list[str]) -> None:
    found = contract_flags([clause("7.2", "Limitation of Liability", text), NET_30])
    assert [f for f in found if f in ("unlimited_liability", "liability_cap_above_policy")] == flags


INDEMNITY_WORDING = [
    ("The Supplier shall indemnify the Customer against third-party IP claims without limit.", ["uncapped_indemnity"]),
    ("The Supplier shall indemnify the Customer against any and all losses howsoever arising.", ["broad_indemnity"]),
    # negated
    ("Neither party shall indemnify the other against any and all losses.", []),
    ("The Supplier shall indemnify the Customer against third-party IP claims; this indemnity is not unlimited.", []),
    # excepted
    ("The Supplier shall indemnify the Customer against losses caused by its breach, other than any and all losses"
     " howsoever arising from the Customer's own acts.", []),
    ("Neither party shall indemnify the other except for third-party IP claims, for which the Supplier shall indemnify"
     " the Customer without limit.", ["uncapped_indemnity"]),
    # double negation
    ("The Supplier shall indemnify the Customer against third-party IP claims; no indemnity shall be without limit.",
     []),
    ("It is not the case that the Supplier shall not indemnify the Customer against any and all losses.",
     ["broad_indemnity"]),
]


@pytest.mark.parametrize(("text", "flags"), INDEMNITY_WORDING)
def test_indemnity_wording(text: str, flags: list[str]) -> None:
    found = contract_flags([CAP_12_MONTHS, NET_30, clause("11.1", "Indemnity", text)])
    assert [f for f in found if f in ("uncapped_indemnity", "broad_indemnity")] == flags


RENEWAL_WORDING = [
    ("This Agreement renews automatically for successive twelve (12) month periods.", True),
    # negated
    ("This Agreement does not renew automatically.", False),
    ("This Agreement is not subject to automatic renewal.", False),
    ("No automatic renewal applies unless the Customer opts in writing.", False),
    # excepted
    ("This Agreement shall not renew automatically, except with the written agreement of both parties.", False),
    ("This Agreement renews automatically for successive twelve (12) month periods, except in its first year.", True),
    # double negation
    ("This Agreement shall not expire without renewing automatically for a further twelve (12) months.", True),
]


@pytest.mark.parametrize(("text", "renews"), RENEWAL_WORDING)
def test_auto_renewal_wording(text: str, renews: bool) -> None:
    # Without a policy, any auto-renewal with no notice window is flagged: the flag shows it was read as one.
    found = contract_flags([CAP_12_MONTHS, NET_30, clause("3.1", "Term", text)], policy=_DELETE)
    assert ("auto_renewal_without_notice" in found) is renews


TERMINATION_WORDING = [
    ("Either party may terminate this Agreement for convenience on sixty (60) days' written notice.", False),
    # negated
    ("Neither party may terminate this Agreement for convenience.", True),
    ("The Customer may not terminate this Agreement without cause.", True),
    ("This Agreement is not irrevocable: either party may terminate it at any time on thirty (30) days' notice.",
     False),
    # excepted
    ("The Customer may not terminate this Agreement except for material breach.", True),
    ("Either party may terminate this Agreement on thirty (30) days' notice, other than for convenience.", True),
    ("Either party may terminate this Agreement at any time on sixty (60) days' notice, except during the first"
     " three (3) months.", False),
    # double negation
    ("No party is without the right to terminate this Agreement for convenience on sixty (60) days' notice.", False),
]


@pytest.mark.parametrize(("text", "locked_in"), TERMINATION_WORDING)
def test_termination_wording(text: str, locked_in: bool) -> None:
    found = contract_flags([*CLEAN_CLAUSES, clause("16.1", "Termination", text)])  # a 36-month term
    assert ("no_termination_for_convenience" in found) is locked_in


PAYMENT_WORDING = [
    ("Invoices are payable within ninety (90) days of receipt.", True),
    # negated
    ("Invoices are payable within thirty (30) days of receipt, not net 90.", False),
    # excepted: a longer period in an exception is still a period to pay in
    ("Invoices are payable within thirty (30) days of receipt unless paid by bank draft within one hundred and twenty"
     " (120) days of receipt.", True),
    ("Invoices are payable within thirty (30) days of receipt, except for disputed amounts.", False),
    # double negation
    ("No invoice is payable other than within ninety (90) days of receipt.", True),
]


@pytest.mark.parametrize(("text", "too_long"), PAYMENT_WORDING)
def test_payment_terms_wording(text: str, too_long: bool) -> None:
    found = contract_flags([CAP_12_MONTHS, clause("9.1", "Payment", text)])  # the policy's maximum is 60 days
    assert ("payment_terms_too_long" in found) is too_long


GOVERNING_LAW_WORDING = [
    ("This Agreement is governed by the laws of England and Wales.", False),
    ("This Agreement is governed by the laws of the State of New York.", True),
    # negated
    ("This Agreement shall not be governed by the laws of England and Wales but by the laws of the State of New York.",
     True),
    ("This Agreement is governed by the laws of England and Wales, not those of the State of New York.", False),
    # excepted / double negation: "not ... other than" names the only law that governs
    ("This Agreement shall not be governed by any law other than the laws of Ireland.", False),
]


@pytest.mark.parametrize(("text", "not_allowed"), GOVERNING_LAW_WORDING)
def test_governing_law_wording(text: str, not_allowed: bool) -> None:
    found = contract_flags([CAP_12_MONTHS, NET_30, clause("20.1", "Governing Law", text)])
    assert ("governing_law_not_allowed" in found) is not_allowed


# --- AML: occupations and references ---------------------------------------------------------

PRIVATE_INFLOWS = [  # 3 x 9,800 EUR from a company that explains nothing
    transaction(f"TX-P{month}", f"2026-{month:02d}-05", "9800.00", "in", "Brightwater Trading Ltd", "GB")
    for month in (8, 9, 10)
]


def aml(customer: dict[str, Any], transactions: list[dict[str, Any]], score: float = 0.5) -> Analysis:
    return analyze("aml_alert", payload("aml_alert", {
        "customer": customer, "transactions": transactions, "prior_alerts_12m": 0,
        "rule_hits": [{"rule_id": "VOL-02", "description": "Incoming volume above peer group", "score": score}],
    }))


OCCUPATION_WORDING = [
    ("Retired", True),
    ("Retired teacher", True),
    ("Student", True),
    # negated
    ("Not retired, works as a surgeon", False),
    ("No longer a student; software engineer", False),
    ("Not unemployed", False),
    # excepted
    ("Surgeon, except for a sabbatical year as a student", False),
    # double negation
    ("Never not a student", True),
]


@pytest.mark.parametrize(("occupation", "inconsistent"), OCCUPATION_WORDING)
def test_occupation_wording(occupation: str, inconsistent: bool) -> None:
    result = aml({**LOW_RISK_CUSTOMER, "occupation": occupation}, PRIVATE_INFLOWS)
    assert ("activity_inconsistent_with_occupation" in result.risk_flags) is inconsistent


PURCHASE = transaction("TX-B1", "2026-10-01", "2400.00", "out", "MediaMarkt Italia", channel="card")


def refund(reference: str, merchant: str = "MediaMarkt Italia") -> dict[str, Any]:
    return {**transaction("TX-R1", "2026-10-20", "2400.00", "in", merchant), "reference": reference}


REFERENCE_WORDING = [
    ("Refund order 55120", True),
    ("Reimbursement of returned goods", True),
    # negated
    ("Not a refund: consultancy fee", False),
    ("No refund due; invoice 88", False),
    # excepted
    ("Consultancy fee, except for the refund of VAT", False),
    # double negation
    ("Refund, not without the merchant's approval", True),
]


@pytest.mark.parametrize(("reference", "explained"), REFERENCE_WORDING)
def test_reference_wording(reference: str, explained: bool) -> None:
    result = aml(LOW_RISK_CUSTOMER, [PURCHASE, refund(reference)])
    assert ("explained_inflows" in result.risk_flags) is explained


# --- AML: context that explains activity -----------------------------------------------------

RETIREE = {**LOW_RISK_CUSTOMER, "name": "Hans Becker", "country": "DE", "occupation": "Retired"}
PENSION = [transaction(f"TX-{m}", f"2026-{m:02d}-01", "9800.00", "in", "Deutsche Rentenversicherung Bund", "DE")
           for m in (8, 9, 10)]
EMPLOYEE = {**LOW_RISK_CUSTOMER, "occupation": "Engineer", "employer": "Leonardo S.p.A."}
BONUS = [transaction("TX-S1", "2026-09-27", "4100.00", "in", "Leonardo SpA"),
         transaction("TX-S2", "2026-10-15", "26000.00", "in", "Leonardo SpA")]


@pytest.mark.parametrize(("customer", "transactions", "action", "because"), [
    # closed: an analyst would close these, and the reason says why
    (RETIREE, PENSION, "close_false_positive", "state pension from Deutsche Rentenversicherung Bund"),
    (EMPLOYEE, BONUS, "close_false_positive", "salary from the customer's employer Leonardo S.p.A."),
    (LOW_RISK_CUSTOMER, [PURCHASE, refund("Refund order 55120")], "close_false_positive",
     "refund from MediaMarkt Italia, a merchant the customer paid EUR 2,400.00"),
    # near misses: the same amounts from sources that explain nothing
    (RETIREE, [{**t, "counterparty": "Rentenkasse Holding GmbH"} for t in PENSION], "open_investigation", None),
    (RETIREE, [{**t, "counterparty": "Brightwater Trading Ltd"} for t in PENSION], "open_investigation", None),
    ({**RETIREE, "occupation": "Software engineer"}, PENSION, "close_false_positive", None),
    (EMPLOYEE, [{**t, "counterparty": "Brightwater Trading Ltd"} for t in BONUS], "open_investigation", None),
    (LOW_RISK_CUSTOMER, [refund("Refund order 55120")], "open_investigation", None),  # never bought there
    (LOW_RISK_CUSTOMER, [PURCHASE, refund("Refund order 55120", "Brightwater Trading Ltd")], "open_investigation",
     None),
])
def test_legitimate_sources_close_the_alert(customer: dict[str, Any], transactions: list[dict[str, Any]],
                                            action: str, because: str | None) -> None:
    result = aml(customer, transactions, score=0.85)
    assert result.action == action, result.rationale
    if because:
        assert "explained_inflows" in result.risk_flags
        assert because in result.parameters["reason"]
    else:
        assert "explained_inflows" not in result.risk_flags


def test_a_legitimate_source_does_not_close_structuring() -> None:
    cash = [transaction(f"TX-C{d}", f"2026-11-{d:02d}", "9300.00", "in", "Cash deposit", channel="cash")
            for d in (3, 6)]
    result = aml(RETIREE, [*PENSION, *cash], score=0.85)
    assert result.action == "open_investigation"
    assert "structuring" in result.risk_flags


# --- confidence reflects ambiguity -----------------------------------------------------------


def confidence(name: str, changes: dict[str, Any]) -> Analysis:
    return analyze(name, payload(name, changes))


SCREENED_DHL = {"beneficiary": KNOWN_DHL, "screening": CLEAN_SCREENING}
STRONG_APPLICANT = {"credit_score": 812, "annual_income": "142000.00", "monthly_debt_payments": "650.00",
                    "utilization": 0.18, "current_limit": "10000.00", "requested_limit": "12000.00"}
STUDENT_IN_BAND = {"customer": {**LOW_RISK_CUSTOMER, "risk_rating": "high"}, "prior_alerts_12m": 1,
                   "transactions": [transaction("TX-M1", "2026-11-02", "3100.00", "in", "Luca Bianchi")],
                   "rule_hits": [{"rule_id": "VOL-02", "description": "Volume", "score": 0.6}]}

BANDS = [
    # payment_release: clear release, clear hold, the middle band (0.30-0.50), missing evidence
    ("payment_release", "clear release", {**SCREENED_DHL, "amount": "14900.00"}, "release", True),
    ("payment_release", "clear hold", {}, "hold", True),
    ("payment_release", "middle band: a new beneficiary and a large amount", {
        "screening": CLEAN_SCREENING, "amount": "52000.50", "history.average_amount": "30000.00"}, "release", False),
    ("payment_release", "no screening result", {"beneficiary": KNOWN_DHL, "screening": _DELETE, "amount": "14900.00"},
     "release", False),
    # credit_limit_change: clear approval, clear decline, the middle band (0.45-0.75), conflicting signals
    ("credit_limit_change", "clear approval", STRONG_APPLICANT, "approve", True),
    ("credit_limit_change", "clear decline", {"credit_score": 500}, "decline", True),
    ("credit_limit_change", "middle band: short tenure, high utilisation, missed payment", {
        **STRONG_APPLICANT, "customer.since": "2026-08-01", "utilization": 0.8, "missed_payments_12m": 1},
     "approve", False),
    ("credit_limit_change", "conflicting: long tenure against very high utilisation", {
        **STRONG_APPLICANT, "utilization": 0.95}, "approve", False),
    # contract_review: clear approval, clear redline, a departure near the policy line, no policy
    ("contract_review", "clear approval", {"clauses": CLEAN_CLAUSES}, "approve", True),
    ("contract_review", "clear redline", {}, "request_changes", True),
    ("contract_review", "65 days against 60", {"clauses": [CAP_12_MONTHS, clause(
        "9.1", "Payment", "Invoices shall be paid within sixty-five (65) days of the invoice date.")]},
     "request_changes", False),
    ("contract_review", "no policy to hold it to", {"clauses": CLEAN_CLAUSES, "policy": _DELETE}, "approve", False),
    # aml_alert: clear closure, clear SAR, the middle band (0.35-0.70), conflicting, no transactions
    ("aml_alert", "clear closure", {"customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": SALARY,
                                    "rule_hits": [{"rule_id": "V", "description": "Volume", "score": 0.55}]},
     "close_false_positive", True),
    ("aml_alert", "clear SAR", {"transactions": [
        transaction("TX-31", "2026-11-12", "48000.00", "out", "Pars Trading Co", "IR", "swift")],
        "rule_hits": [{"rule_id": "SANC-02", "description": "Sanctioned jurisdiction", "score": 0.93}],
        "prior_alerts_12m": 3}, "file_sar", True),
    ("aml_alert", "middle band, no typology", STUDENT_IN_BAND, "open_investigation", False),
    ("aml_alert", "conflicting: structuring beside a regular salary", {
        "customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": [*SALARY,
            transaction("TX-C1", "2026-11-03", "9300.00", "in", "Cash deposit", channel="cash"),
            transaction("TX-C2", "2026-11-05", "9500.00", "in", "Cash deposit", channel="cash")],
        "rule_hits": [{"rule_id": "S", "description": "Cash", "score": 0.6}]}, "open_investigation", False),
    ("aml_alert", "no transactions", {"customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": [],
                                      "rule_hits": [{"rule_id": "K", "description": "Profile", "score": 0.3}]},
     "close_false_positive", False),
    # kyc_review: clear approval, clear refusal, the middle band (0.25-0.60), missing date of birth
    ("kyc_review", "clear approval", {**COMPLETE, "screening.pep_hits": []}, "approve_onboarding", True),
    ("kyc_review", "clear refusal", {**COMPLETE, "screening.sanctions_hits": [
        {"list": "OFAC SDN", "matched_name": "ANDERSSON, Sofia", "score": 0.95, "date_of_birth": "1991-06-02"}]},
     "reject_onboarding", True),
    ("kyc_review", "middle band: adverse media and a grey-list nationality", {
        **COMPLETE, "screening.pep_hits": [], "screening.adverse_media_hits": 3, "applicant.nationality": "KE"},
     "approve_onboarding", False),
    ("kyc_review", "possible hit, no date of birth to compare", {
        **COMPLETE, "applicant.date_of_birth": _DELETE, "documents.0.date_of_birth_on_document": _DELETE,
        "screening.sanctions_hits": [{"list": "OFAC SDN", "matched_name": "Sofia Andersson", "score": 0.91}]},
     "request_documents", False),
]


@pytest.mark.parametrize(("name", "label", "changes", "action", "clear"), BANDS,
                         ids=[f"{name}-{label}" for name, label, *_ in BANDS])
def test_confidence_bands(name: str, label: str, changes: dict[str, Any], action: str, clear: bool) -> None:
    result = confidence(name, changes)
    assert result.action == action, result.rationale
    if clear:
        assert result.confidence >= CLEAR, result.rationale
        assert "Uncertain:" not in result.rationale
    else:
        assert result.confidence < AMBIGUOUS, result.rationale
        assert "Uncertain:" in result.rationale  # the reviewer is told why


# --- the action never contradicts its own rationale ------------------------------------------


def fabricated(action: str, flags: list[str], parameters: dict[str, Any] | None = None) -> Analysis:
    """An analysis as a faulty analyzer might produce it."""
    return Analysis(action=action, parameters=parameters or {}, rationale="Some rationale.", confidence=0.9,
                    risk_score=0.5, risk_flags=flags, citations=["x"])


CORRECTIONS = [
    ("payment_release", "release", ["sanctions_hit"], "reject", "strong sanctions match"),
    ("payment_release", "release", ["sanctioned_country"], "reject", "sanctioned jurisdiction"),
    ("payment_release", "release", ["possible_sanctions_hit"], "hold", "not yet dispositioned"),
    ("payment_release", "release", ["pep_hit"], "hold", "PEP hit"),
    ("payment_release", "release", ["possible_sanctions_hit", "sanctions_hit"], "reject", "strong sanctions match"),
    ("credit_limit_change", "approve", ["low_credit_score"], "decline", "credit score below the minimum"),
    ("credit_limit_change", "counter_offer", ["no_income"], "decline", "declared income"),
    ("credit_limit_change", "approve", ["dti_above_limit"], "decline", "debt-to-income"),
    ("contract_review", "approve", ["unlimited_liability"], "reject", "unlimited liability"),
    ("contract_review", "approve", ["uncapped_indemnity"], "reject", "uncapped indemnity"),
    ("contract_review", "request_changes", ["sanctioned_country"], "reject", "sanctioned jurisdiction"),
    ("aml_alert", "close_false_positive", ["structuring"], "open_investigation", "structuring"),
    ("aml_alert", "close_false_positive", ["rapid_movement"], "open_investigation", "pass-through"),
    ("aml_alert", "close_false_positive", ["sanctioned_country"], "open_investigation", "sanctioned-country"),
    ("kyc_review", "approve_onboarding", ["pep_match"], "request_documents", "senior-management approval"),
    ("kyc_review", "approve_onboarding", ["expired_document"], "request_documents", "expired document"),
    ("kyc_review", "approve_onboarding", ["missing_document"], "request_documents", "document is missing"),
    ("kyc_review", "approve_onboarding", ["possible_sanctions_match"], "request_documents", "not yet dispositioned"),
    ("kyc_review", "request_documents", ["sanctions_match"], "reject_onboarding", "confirmed sanctions match"),
    # two rules in turn: the PEP rule asks for documents, which a confirmed match then rules out
    ("kyc_review", "approve_onboarding", ["pep_match", "sanctions_match"], "reject_onboarding", "confirmed sanctions"),
]


@pytest.mark.parametrize(("name", "action", "flags", "safe", "why"), CORRECTIONS)
def test_a_contradicting_action_is_corrected_with_its_reason(name: str, action: str, flags: list[str], safe: str,
                                                             why: str) -> None:
    case_type = CASE_TYPES[name]
    result = case_type.reconcile(fabricated(action, flags))
    assert result.action == safe
    assert why in result.rationale
    assert f"Corrected from {action} to {safe}" in result.rationale
    assert CORRECTED in result.risk_flags
    assert result.confidence <= CORRECTED_CONFIDENCE
    case_type.validate_action(result.action, result.parameters)


@pytest.mark.parametrize(("name", "action", "flags"), [
    ("payment_release", "hold", ["possible_sanctions_hit", "pep_hit"]),
    ("payment_release", "release", ["high_risk_country", "new_beneficiary"]),
    ("kyc_review", "request_documents", ["pep_match", "expired_document"]),
    ("kyc_review", "approve_onboarding", ["high_risk_country", "pep_hit_discounted"]),
    ("aml_alert", "open_investigation", ["structuring"]),
    ("contract_review", "request_changes", ["unlimited_liability"]),
])
def test_a_consistent_analysis_is_left_alone(name: str, action: str, flags: list[str]) -> None:
    analysis = fabricated(action, flags)
    assert CASE_TYPES[name].reconcile(analysis) is analysis


def test_the_pep_match_is_never_approved_by_the_analyzer() -> None:
    result = analyze("kyc_review", payload("kyc_review", {**COMPLETE, "screening.pep_hits": [
        {"matched_name": "Sofia Andersson", "score": 0.93, "position": "Member of the Riksdag"}]}))
    assert result.action == "request_documents"
    assert result.parameters["documents"] == ["source_of_wealth", "source_of_funds"]
    assert "enhanced due diligence and senior-management approval required" in result.rationale
    assert result.confidence >= CLEAR  # the rule is plain: no approval before the due diligence


def test_a_case_type_needs_a_consistency_rule_for_each_ruling_hard_flag() -> None:
    kyc = CASE_TYPES["kyc_review"]
    with pytest.raises(ValueError, match="one consistency rule for each hard flag"):
        type(kyc)(**{**vars(kyc), "consistency_rules": kyc.consistency_rules[1:]})
    selfish = ConsistencyRule("pep_match", "approve_onboarding", "loops back.")
    others = tuple(rule for rule in kyc.consistency_rules if rule.flag != "pep_match")
    with pytest.raises(ValueError, match="rules out its own safe action"):
        type(kyc)(**{**vars(kyc), "consistency_rules": (*others, selfish)})
