"""Unit tests of the local analyzers (each case type's `analyze`) and of their shared signals (no app, no DB)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

from app.cases.types import REGISTRY, examples
from app.cases.types.base import Analysis
from app.cases.types.kyc_review import analyzer as kyc_analyzer
from app.cases.types.signals import (
    MAX_CITATIONS,
    Signal,
    best_match,
    from_eur,
    loc,
    margin_confidence,
    name_similarity,
    normalize_name,
    risk_score,
)

EXAMPLES = examples()

CASE_TYPES = {case_type.name: case_type for case_type in REGISTRY.values()}
TODAY = date(2026, 11, 25)
# Each type's analyzer through CaseType.analyze (the consistency pass included), on a fixed today.
ANALYZERS: dict[str, Callable[[Any], Analysis]] = {
    name: case_type.analyze for name, case_type in CASE_TYPES.items()
} | {
    "credit_limit_change": partial(CASE_TYPES["credit_limit_change"].analyze, today=TODAY),
    "kyc_review": partial(CASE_TYPES["kyc_review"].analyze, today=TODAY),
}
_DELETE = object()
PATH_STYLE = re.compile(r"^[a-z_][a-z0-9_]*(\[\d+\])*(\.[a-z_][a-z0-9_]*(\[\d+\])*)*$")
FLAG_STYLE = re.compile(r"^[a-z][a-z0-9_]*$")


def payload(name: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of EXAMPLES[name] with each dotted path (list indexes as numbers) set, or deleted by _DELETE."""
    data = copy.deepcopy(EXAMPLES[name])
    for path, value in (changes or {}).items():
        *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
        target: Any = data
        for part in parents:
            target = target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = copy.deepcopy(value)
    return data


def resolve(data: Any, path: str) -> Any:
    """The value at a pydantic-loc style path ("clauses[2].text"); KeyError / IndexError when it is not there."""
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        data = data[int(index)] if index else data[key]
    return data


def analyze(name: str, data: dict[str, Any]) -> Analysis:
    return ANALYZERS[name](CASE_TYPES[name].validate_data(data))


def sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if part]


# --- fixtures of realistic cases -------------------------------------------------------------

CLEAN_SCREENING = {"sanctions_hits": [], "pep_hits": []}
KNOWN_DHL = {
    "name": "DHL Freight GmbH",
    "account": "DE44500105175407324931",
    "country": "DE",
    "bank_bic": "INGDDEFFXXX",
    "is_new": False,
}
KNOWN_RABEN = {
    "name": "Raben Logistics Polska Sp. z o.o.",
    "account": "PL61109010140000071219812874",
    "country": "PL",
    "bank_bic": "WBKPPLPP",
    "is_new": False,
}
VIETNAM_SUPPLIER = {
    "name": "Saigon Textile Export JSC",
    "account": "0071001234567",
    "country": "VN",
    "is_new": True,
}

PAYMENT_CASES = [
    # clear releases
    ("routine_known_beneficiary", {"beneficiary": KNOWN_DHL, "amount": "14900.00", "screening": CLEAN_SCREENING},
     "release", []),
    ("known_name_with_legal_form", {"beneficiary": KNOWN_RABEN, "amount": "12480.55", "screening": CLEAN_SCREENING},
     "release", []),
    ("small_first_payment_no_history", {"amount": "2300.00", "history": _DELETE, "screening": _DELETE},
     "release", ["new_beneficiary"]),
    # borderline: new beneficiary just under 3x the usual amount, nothing else
    ("new_beneficiary_below_velocity_line", {"amount": "45000.00", "screening": CLEAN_SCREENING},
     "release", ["new_beneficiary"]),
    # clear rejections
    ("iranian_beneficiary", {"beneficiary.country": "IR", "beneficiary.account": "IR820540102680020817909002",
                             "beneficiary.bank_bic": "BMJIIRTH"}, "reject", ["sanctioned_country"]),
    ("strong_sanctions_hit", {"screening.sanctions_hits.0.score": 0.96}, "reject", ["sanctions_hit"]),
    ("russian_bank_behind_lithuanian_beneficiary", {"beneficiary.bank_bic": "SABRRUMM", "screening": CLEAN_SCREENING},
     "reject", ["sanctioned_country", "bank_country_mismatch"]),
    # holds
    ("pep_hit_on_routine_payment", {"beneficiary": KNOWN_DHL, "amount": "14900.00", "screening": {
        "sanctions_hits": [], "pep_hits": [{"matched_name": "Klaus Weber", "score": 0.86}]}}, "hold", ["pep_hit"]),
    ("example_possible_sanctions_hit", {}, "hold", ["possible_sanctions_hit", "new_beneficiary", "amount_above_usual"]),
    ("lookalike_of_known_beneficiary",
     {"beneficiary.name": "Baltic Freight Services", "screening": CLEAN_SCREENING,
      "history.known_beneficiary_names": ["Baltic Freight Solutions UAB", "DHL Freight GmbH"]},
     "hold", ["lookalike_beneficiary_name"]),
    ("known_supplier_new_account", {"beneficiary": {**KNOWN_DHL, "is_new": True}, "amount": "15200.00",
                                    "screening": CLEAN_SCREENING}, "hold", ["changed_beneficiary_account"]),
    ("existing_beneficiary_unknown_name", {"beneficiary.is_new": False, "beneficiary.name": "Nordic Timber Trading",
                                           "amount": "9800.00", "screening": CLEAN_SCREENING},
     "hold", ["beneficiary_name_mismatch"]),
    ("several_moderate_signals", {"beneficiary": VIETNAM_SUPPLIER, "amount": "160000.00", "screening": CLEAN_SCREENING},
     "hold", ["new_beneficiary", "high_risk_country", "amount_above_usual", "large_amount", "round_amount"]),
    ("unlisted_currency_new_beneficiary_large_multiple",
     {"currency": "XAF", "amount": "31250000.00", "screening": CLEAN_SCREENING, "history.average_amount": "900000.00"},
     "hold", ["unlisted_currency", "new_beneficiary", "amount_above_usual"]),
]

CREDIT_CASES = [
    # clear approvals
    ("example_well_within_affordability", {}, "approve", ["high_utilization", "long_tenure"]),
    ("exceptional_score_high_income",
     {"credit_score": 812, "annual_income": "142000.00", "monthly_debt_payments": "650.00", "utilization": 0.18,
      "current_limit": "10000.00", "requested_limit": "20000.00"}, "approve", ["long_tenure"]),
    ("limit_decrease", {"requested_limit": "3000.00"}, "approve", ["limit_decrease"]),
    # counter-offers
    ("request_above_affordable", {"requested_limit": "25000.00"}, "counter_offer", ["high_utilization"]),
    ("good_score_modest_income",
     {"credit_score": 690, "annual_income": "45000.00", "monthly_debt_payments": "600.00", "utilization": 0.5,
      "missed_payments_12m": 1, "current_limit": "2000.00", "requested_limit": "9000.00",
      "customer.since": "2021-05-10"}, "counter_offer", ["missed_payments", "long_tenure"]),
    # borderline: debt-to-income just under the 45 % line
    ("dti_just_under_limit", {"monthly_debt_payments": "2550.00"}, "counter_offer", ["elevated_dti"]),
    # clear declines
    ("poor_credit_score", {"credit_score": 552}, "decline", ["low_credit_score"]),
    ("three_missed_payments", {"missed_payments_12m": 3}, "decline", ["missed_payments"]),
    ("debt_to_income_too_high", {"annual_income": "52000.00", "monthly_debt_payments": "2600.00"},
     "decline", ["dti_above_limit"]),
    ("no_income", {"annual_income": "0"}, "decline", ["no_income"]),
    ("many_soft_signals",
     {"credit_score": 604, "utilization": 0.96, "missed_payments_12m": 2, "customer.since": "2026-08-01",
      "monthly_debt_payments": "2100.00"}, "decline", ["short_tenure", "high_utilization", "fair_credit_score"]),
    ("no_affordable_increase", {"credit_score": 640, "requested_limit": "6000.00"}, "decline", ["fair_credit_score"]),
]


def clause(clause_id: str, heading: str, text: str) -> dict[str, str]:
    return {"id": clause_id, "heading": heading, "text": text}


CAP_12_MONTHS = clause(
    "7.2",
    "Limitation of Liability",
    "Each party's total aggregate liability arising out of or in connection with this Agreement shall not exceed the "
    "fees paid in the twelve (12) months preceding the claim. Nothing in this Agreement limits liability for death or "
    "personal injury caused by negligence, or for fraud, which shall be unlimited.",
)
NET_30 = clause(
    "9.1", "Payment Terms", "The Customer shall pay each undisputed invoice within thirty (30) days of receipt."
)
RENEW_12 = clause(
    "14.3",
    "Renewal",
    "This Agreement shall renew automatically for successive periods of twelve (12) months unless either party gives "
    "three (3) months' written notice.",
)
ENGLISH_LAW = clause("20.1", "Governing Law", "This Agreement is governed by the laws of England and Wales.")
CLEAN_CLAUSES = [CAP_12_MONTHS, NET_30, RENEW_12, ENGLISH_LAW]
UNLIMITED = clause("7.2", "Liability", "The Supplier's liability under this Agreement shall be unlimited.")
UNCAPPED_INDEMNITY = clause(
    "11.1",
    "Indemnity",
    "The Supplier shall indemnify the Customer against any and all losses howsoever arising, and this indemnity shall "
    "not be subject to any limitation of liability.",
)

CONTRACT_CASES = [
    # clear approvals
    ("clean_within_policy", {"clauses": CLEAN_CLAUSES}, "approve", []),
    ("clean_without_policy", {"policy": _DELETE, "clauses": [
        CAP_12_MONTHS, clause("4", "Fees", "Invoices are payable net 45."),
        clause("15", "Term", "The Agreement renews automatically for successive one-year terms unless either party "
                             "gives notice of non-renewal of at least 60 days."),
    ]}, "approve", []),
    ("termination_for_convenience", {"clauses": [*CLEAN_CLAUSES, clause(
        "16.2", "Termination", "Either party may terminate this Agreement for convenience on sixty (60) days' written "
                               "notice.")]}, "approve", []),
    ("claims_period_is_not_a_payment_term", {"clauses": [*CLEAN_CLAUSES, clause(
        "7.5", "Claims", "Any claim under this Agreement must be brought within twelve (12) months of the date on "
                         "which the claimant became aware of it.")]}, "approve", []),
    # request changes
    ("example_payment_and_renewal", {}, "request_changes", ["payment_terms_too_long", "auto_renewal_too_long"]),
    ("unlimited_liability", {"clauses": [UNLIMITED, NET_30]}, "request_changes", ["unlimited_liability"]),
    ("cap_three_times_annual_fees", {"clauses": [clause(
        "7.2", "Limitation of Liability",
        "The Supplier's aggregate liability shall not exceed three (3) times the annual fees."), NET_30]},
     "request_changes", ["liability_cap_above_policy"]),
    ("new_york_law_no_clause", {"governing_law": "New York", "clauses": [CAP_12_MONTHS, NET_30]},
     "request_changes", ["governing_law_not_allowed"]),
    ("renewal_without_notice_no_policy", {"policy": _DELETE, "clauses": [CAP_12_MONTHS, clause(
        "3.1", "Term", "This Agreement renews automatically for successive twelve (12) month periods.")]},
     "request_changes", ["auto_renewal_without_notice"]),
    ("long_termination_notice", {"clauses": [*CLEAN_CLAUSES, clause(
        "16.1", "Termination", "The Customer may terminate this Agreement on one hundred and eighty (180) days' prior "
                               "written notice.")]}, "request_changes", ["long_termination_notice"]),
    ("termination_only_for_breach", {"clauses": [*CLEAN_CLAUSES, clause(
        "16.1", "Termination", "Either party may terminate this Agreement on thirty (30) days' written notice if the "
                               "other party commits a material breach and fails to remedy it.")]},
     "request_changes", ["no_termination_for_convenience"]),
    ("cap_as_an_amount", {"clauses": [clause(
        "7.2", "Limitation of Liability", "The Supplier's liability shall not exceed GBP 1,000,000 in aggregate."),
        NET_30]}, "request_changes", ["liability_cap_above_policy"]),
    ("policy_forbids_auto_renewal", {"policy.max_auto_renewal_months": 0, "clauses": [CAP_12_MONTHS, RENEW_12]},
     "request_changes", ["auto_renewal_too_long"]),
    ("broad_indemnity", {"clauses": [CAP_12_MONTHS, clause(
        "11.1", "Indemnity", "The Supplier shall indemnify the Customer against any and all losses howsoever "
                             "arising from the Services.")]}, "request_changes", ["broad_indemnity"]),
    # borderline: 65 days against a 60-day maximum
    ("payment_slightly_late", {"clauses": [CAP_12_MONTHS, clause(
        "9.1", "Payment", "Invoices shall be paid within sixty-five (65) days of the invoice date.")]},
     "request_changes", ["payment_terms_too_long"]),
    # clear rejections
    ("russian_counterparty", {"counterparty": {"name": "Volga Data OOO", "country": "RU"}, "clauses": CLEAN_CLAUSES},
     "reject", ["sanctioned_country"]),
    ("unlimited_liability_and_uncapped_indemnity", {"clauses": [UNLIMITED, UNCAPPED_INDEMNITY, NET_30]},
     "reject", ["unlimited_liability", "uncapped_indemnity"]),
]


def transaction(tx_id: str, day: str, amount: str, direction: str, counterparty: str, country: str = "IT",
                channel: str = "sepa", currency: str = "EUR") -> dict[str, str]:
    return {"id": tx_id, "date": day, "amount": amount, "currency": currency, "direction": direction,
            "counterparty": counterparty, "counterparty_country": country, "channel": channel}


SALARY = [
    transaction("TX-1", "2026-08-27", "4850.00", "in", "Acme Software GmbH", "DE"),
    transaction("TX-2", "2026-09-26", "4850.00", "in", "ACME SOFTWARE GMBH", "DE"),
    transaction("TX-3", "2026-10-27", "5120.00", "in", "Acme Software GmbH", "DE"),
    transaction("TX-4", "2026-10-28", "1400.00", "out", "Immobiliare Navigli Srl"),
]
LOW_RISK_CUSTOMER = {"id": "CUST-1", "name": "Giulia Conti", "risk_rating": "low", "country": "IT",
                     "occupation": "Software engineer"}

AML_CASES = [
    # clear closures
    ("salary_credits", {"customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": SALARY,
                        "rule_hits": [{"rule_id": "VOL-02", "description": "Incoming volume above peer group",
                                       "score": 0.55}]}, "close_false_positive", ["regular_income_pattern"]),
    ("small_card_spending", {"customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": [
        transaction("TX-7", "2026-11-02", "86.40", "out", "Esselunga", channel="card"),
        transaction("TX-8", "2026-11-04", "129.90", "out", "Decathlon Italia", channel="card"),
    ], "rule_hits": [{"rule_id": "NEW-MERCH", "description": "New merchant category", "score": 0.4}]},
     "close_false_positive", ["rule_hit"]),
    ("alert_without_transactions", {"customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": [],
                                    "rule_hits": [{"rule_id": "KYC-REFRESH", "description": "Profile change",
                                                   "score": 0.3}]}, "close_false_positive", []),
    # middle band
    ("structuring_only", {"customer": LOW_RISK_CUSTOMER, "prior_alerts_12m": 0, "transactions": [
        transaction("TX-11", "2026-11-03", "9200.00", "in", "Cash deposit, Torino", channel="cash"),
        transaction("TX-12", "2026-11-08", "9400.00", "in", "Cash deposit, Asti", channel="cash"),
    ], "rule_hits": [{"rule_id": "STRUCT-01", "description": "Cash just below 10,000", "score": 0.6}]},
     "open_investigation", ["structuring"]),
    ("high_risk_exposure_without_typology", {
        "customer": {**LOW_RISK_CUSTOMER, "risk_rating": "high"}, "prior_alerts_12m": 0, "transactions": [
            transaction("TX-21", "2026-11-05", "7300.00", "out", "Comercial Andina CA", "VE", "swift"),
        ], "rule_hits": [{"rule_id": "GEO-04", "description": "High-risk jurisdiction", "score": 0.5}]},
     "open_investigation", ["high_risk_country", "high_risk_customer"]),
    # clear SARs
    ("example_structuring_then_pass_through", {}, "file_sar", ["structuring", "rapid_movement", "strong_rule_hit"]),
    ("transfer_to_sanctioned_country", {"transactions": [
        transaction("TX-31", "2026-11-12", "48000.00", "out", "Pars Trading Co", "IR", "swift"),
    ], "rule_hits": [{"rule_id": "SANC-02", "description": "Sanctioned jurisdiction", "score": 0.93}]},
     "file_sar", ["sanctioned_country"]),
    ("student_pass_through", {
        "customer": {**LOW_RISK_CUSTOMER, "occupation": "Student"}, "prior_alerts_12m": 3, "transactions": [
            transaction("TX-41", "2026-11-02", "12000.00", "in", "Marco Rossi"),
            transaction("TX-42", "2026-11-03", "12500.00", "in", "Luca Bianchi"),
            transaction("TX-43", "2026-11-05", "24000.00", "out", "Bright Future Ltd", "HK", "swift"),
        ], "rule_hits": [{"rule_id": "VEL-03", "description": "Funds in and out within days", "score": 0.7}]},
     "file_sar", ["rapid_movement", "activity_inconsistent_with_occupation", "repeat_alerts", "round_amounts"]),
]

PROOF_OF_ADDRESS = {
    "type": "proof_of_address",
    "number": "VATTENFALL-2026-10-884213",
    "issuing_country": "SE",
    "name_on_document": "Sofia Andersson",
}
COMPLETE = {"documents": [*EXAMPLES["kyc_review"]["documents"], PROOF_OF_ADDRESS]}
BUSINESS_APPLICANT = {
    "type": "business",
    "name": "Nordljus Design AB",
    "nationality": "SE",
    "address": {"line1": "Sveavägen 44", "city": "Stockholm", "postcode": "111 34", "country": "SE"},
}
BUSINESS_DOCUMENTS = [
    {"type": "company_registration", "number": "559123-4567", "issuing_country": "SE",
     "name_on_document": "Nordljus Design Aktiebolag"},
    {"type": "ubo_declaration", "number": "UBO-2026-5591", "issuing_country": "SE", "name_on_document": "Erik Nord"},
    {**PROOF_OF_ADDRESS, "name_on_document": "NORDLJUS DESIGN AB"},
]


def sanctions_hit(name: str, score: float, born: str | None) -> dict[str, Any]:
    hit: dict[str, Any] = {"list": "OFAC SDN", "matched_name": name, "score": score}
    return hit | ({"date_of_birth": born} if born else {})


KYC_CASES = [
    # clear approvals
    ("complete_individual", COMPLETE, "approve_onboarding", ["pep_hit_discounted"]),
    ("complete_business", {"applicant": BUSINESS_APPLICANT, "documents": BUSINESS_DOCUMENTS,
                           "screening.pep_hits": []}, "approve_onboarding", []),
    ("custom_requirement_passport_only", {"required_documents": ["passport"]}, "approve_onboarding", []),
    ("namesake_with_other_birth_date", {**COMPLETE, "screening.sanctions_hits": [
        sanctions_hit("ANDERSSON, Sofia", 0.97, "1968-02-11")]}, "approve_onboarding", ["sanctions_hit_excluded"]),
    # a PEP match is not refused, nor approved outright: the enhanced due diligence evidence is asked for
    ("pep_match", {**COMPLETE, "screening.pep_hits": [
        {"matched_name": "Sofia Andersson", "score": 0.93, "position": "Member of the Riksdag"}]},
     "request_documents", ["pep_match"]),
    # document requests
    ("example_without_proof_of_address", {}, "request_documents", ["missing_document"]),
    ("expired_passport", {**COMPLETE, "documents.0.expires_on": "2025-01-31"}, "request_documents",
     ["expired_document"]),
    ("foreign_proof_of_address", {**COMPLETE, "documents.1.issuing_country": "DK"}, "request_documents",
     ["address_country_mismatch"]),
    ("someone_else_on_passport", {**COMPLETE, "documents.0.name_on_document": "Sofia Lindqvist"}, "request_documents",
     ["name_mismatch"]),
    ("birth_date_differs", {**COMPLETE, "documents.0.date_of_birth_on_document": "1991-02-06"}, "request_documents",
     ["dob_mismatch"]),
    ("possible_hit_no_birth_date_on_file", {
        **COMPLETE, "applicant.date_of_birth": _DELETE, "documents.0.date_of_birth_on_document": _DELETE,
        "screening.sanctions_hits": [sanctions_hit("Sofia Andersson", 0.91, None)]},
     "request_documents", ["possible_sanctions_match"]),
    # rejections
    ("confirmed_sanctions_match", {**COMPLETE, "screening.sanctions_hits": [
        sanctions_hit("ANDERSSON, Sofia", 0.95, "1991-06-02")]}, "reject_onboarding", ["sanctions_match"]),
    ("unresolved_sanctions_match", {**COMPLETE, "screening.sanctions_hits": [
        sanctions_hit("Sofia Anderson", 0.92, None)]}, "reject_onboarding", ["possible_sanctions_match"]),
]

TABLES = {
    "payment_release": PAYMENT_CASES,
    "credit_limit_change": CREDIT_CASES,
    "contract_review": CONTRACT_CASES,
    "aml_alert": AML_CASES,
    "kyc_review": KYC_CASES,
}
CASES = [
    pytest.param(name, changes, action, flags, id=f"{name}-{case_id}")
    for name, table in TABLES.items()
    for case_id, changes, action, flags in table
]


def case_payload(name: str, case_id: str) -> dict[str, Any]:
    """The payload of a case of the tables above, by its id."""
    return payload(name, next(changes for cid, changes, _, _ in TABLES[name] if cid == case_id))


def case(name: str, case_id: str) -> Analysis:
    return analyze(name, case_payload(name, case_id))


# --- every case ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "changes", "action", "flags"), CASES)
def test_analyzer(name: str, changes: dict[str, Any], action: str, flags: list[str]) -> None:
    data = payload(name, changes)
    result = analyze(name, data)

    assert result.action == action, result.rationale
    assert set(flags) <= set(result.risk_flags), result.risk_flags
    assert all(FLAG_STYLE.match(flag) for flag in result.risk_flags)
    CASE_TYPES[name].validate_action(result.action, result.parameters)
    json.dumps(result.parameters)  # JSON-ready: Decimals as strings
    assert result.citations
    for path in result.citations:
        assert PATH_STYLE.match(path), path
        resolve(data, path)  # raises when the path does not exist in the payload
    assert 0 < result.confidence < 1
    assert 0 <= result.risk_score <= 1
    assert 1 <= len(sentences(result.rationale)) <= 5, result.rationale
    assert analyze(name, copy.deepcopy(data)) == result


@pytest.mark.parametrize("name", sorted(CASE_TYPES))
def test_every_case_type_has_its_analyzer(name: str) -> None:
    module_analyze = __import__(f"app.cases.types.{name}.analyzer", fromlist=["analyze"]).analyze
    assert CASE_TYPES[name].analyzer is module_analyze


# --- what the answers say --------------------------------------------------------------------


def test_payment_hold_reason_names_the_signals() -> None:
    result = analyze("payment_release", payload("payment_release"))
    reason = result.parameters["reason"]
    assert "Baltic Freight Services" in reason and "0.62" in reason
    assert "new beneficiary" in reason and "3.2x the average" in reason
    assert {"screening.sanctions_hits[0].score", "history.known_beneficiary_names"} <= set(result.citations)


def test_payment_confidence_is_lower_near_the_hold_line() -> None:
    clean = case("payment_release", "routine_known_beneficiary")
    borderline = case("payment_release", "new_beneficiary_below_velocity_line")
    assert clean.confidence > borderline.confidence


def test_payment_sanctioned_bank_is_named_once() -> None:
    result = case("payment_release", "iranian_beneficiary")
    assert result.parameters["reason"].count("beneficiary bank country IR") == 1
    assert {"beneficiary.bank_bic", "beneficiary.account"} <= set(result.citations)


@pytest.mark.parametrize(
    ("changes", "action", "limit"),
    [
        ({}, "approve", "12000.00"),
        ({"requested_limit": "25000.00"}, "counter_offer", "13000"),
        ({"requested_limit": "3000.00"}, "approve", "3000.00"),
    ],
)
def test_credit_limits(changes: dict[str, Any], action: str, limit: str) -> None:
    result = analyze("credit_limit_change", payload("credit_limit_change", changes))
    assert (result.action, Decimal(result.parameters["limit"])) == (action, Decimal(limit))
    assert isinstance(result.parameters["limit"], str)


def test_credit_counter_offer_lies_between_current_and_requested() -> None:
    data = case_payload("credit_limit_change", "good_score_modest_income")
    limit = Decimal(analyze("credit_limit_change", data).parameters["limit"])
    assert Decimal(data["current_limit"]) < limit < Decimal(data["requested_limit"])
    assert limit % 100 == 0


def test_credit_confidence_is_lower_near_the_dti_line() -> None:
    near = case("credit_limit_change", "dti_just_under_limit")
    far = case("credit_limit_change", "request_above_affordable")
    assert near.confidence < 0.6 < far.confidence


def test_credit_decline_reason_names_the_rule() -> None:
    result = analyze("credit_limit_change", payload("credit_limit_change", {"credit_score": 552}))
    assert "credit score 552 is below the 580 minimum" in result.parameters["reason"]


def test_contract_redlines_propose_concrete_text() -> None:
    result = analyze("contract_review", payload("contract_review"))
    redlines = {redline["clause_id"]: redline for redline in result.parameters["redlines"]}
    assert set(redlines) == {"9.1", "14.3"}
    assert "90 days exceed the 60-day maximum" in redlines["9.1"]["issue"]
    assert redlines["9.1"]["proposed_text"] == (
        "The Customer shall pay each undisputed invoice within sixty (60) days of receipt."
    )
    assert "successive periods of twelve (12) months" in redlines["14.3"]["proposed_text"]
    assert {"clauses[1].text", "policy.max_payment_terms_days", "clauses[2].text"} <= set(result.citations)


def test_contract_unlimited_liability_gets_a_cap() -> None:
    result = analyze("contract_review", payload("contract_review", {"clauses": [UNLIMITED, NET_30]}))
    [redline] = result.parameters["redlines"]
    assert redline["clause_id"] == "7.2"
    assert redline["proposed_text"].startswith("The aggregate liability of either party")
    assert "shall not exceed the fees paid or payable in the twelve (12) months" in redline["proposed_text"]


def test_contract_governing_law_without_a_clause_is_redlined_on_the_field() -> None:
    data = payload("contract_review", {"governing_law": "New York", "clauses": [CAP_12_MONTHS, NET_30]})
    [redline] = analyze("contract_review", data).parameters["redlines"]
    assert redline["clause_id"] == "governing_law"
    assert redline["proposed_text"].endswith("governed by the laws of England and Wales.")


def test_contract_near_the_line_is_less_certain() -> None:
    far = case("contract_review", "example_payment_and_renewal")
    near = case("contract_review", "payment_slightly_late")
    assert near.confidence < far.confidence


def test_contract_termination_on_notice_without_cause_is_for_convenience() -> None:
    result = case("contract_review", "long_termination_notice")
    assert "no_termination_for_convenience" not in result.risk_flags


def test_contract_policy_without_auto_renewal_proposes_none() -> None:
    [redline] = case("contract_review", "policy_forbids_auto_renewal").parameters["redlines"]
    assert redline["proposed_text"].startswith("This Agreement shall not renew automatically")


def test_sar_narrative_tells_who_what_when_how_much() -> None:
    narrative = analyze("aml_alert", payload("aml_alert")).parameters["narrative"]
    for fact in ["Marco Bellini", "CUST-331207", "2026-11-10", "2026-11-15", "EUR 19,300.00", "USD 21,000.00",
                 "TX-88120", "TX-88197", "TX-88305", "Golden Crescent Trading FZE", "STRUCT-01"]:
        assert fact in narrative


def test_aml_citations_stay_bounded() -> None:
    deposits = [transaction(f"TX-{n}", f"2026-11-{1 + n % 10:02d}", "9500.00", "in", "Cash deposit", channel="cash")
                for n in range(60)]
    data = payload("aml_alert", {"transactions": deposits})
    result = analyze("aml_alert", data)
    assert result.action == "file_sar"
    assert len(result.citations) <= MAX_CITATIONS
    for path in result.citations:
        resolve(data, path)


def test_kyc_requests_exactly_what_is_missing_or_expired() -> None:
    data = payload("kyc_review", {"documents.0.expires_on": "2026-11-24"})
    result = analyze("kyc_review", data)
    assert result.parameters == {"documents": ["identity_document", "proof_of_address"]}
    assert "documents[0].expires_on" in result.citations


def test_kyc_expiry_is_relative_to_today() -> None:
    model = CASE_TYPES["kyc_review"].validate_data(payload("kyc_review", {**COMPLETE, "documents.0.expires_on":
                                                                           "2027-01-01"}))
    assert kyc_analyzer.analyze(model, today=date(2026, 12, 31)).action == "approve_onboarding"
    assert kyc_analyzer.analyze(model, today=date(2027, 1, 2)).action == "request_documents"


def test_kyc_confirmed_sanctions_match_is_rejected_confidently() -> None:
    result = case("kyc_review", "confirmed_sanctions_match")
    unresolved = case("kyc_review", "unresolved_sanctions_match")
    assert "Confirmed sanctions match" in result.parameters["reason"]
    assert result.confidence > unresolved.confidence


# --- the shared signals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Baltic Freight Solutions UAB", "BALTIC FREIGHT SOLUTIONS"),
        ("Müller GmbH", "Muller"),
        ("Raben Logistics Polska Sp. z o.o.", "Raben Logistics Polska"),
        ("ANDERSSON, Sofia", "Sofia Andersson"),
        ("Sofia Maria Andersson", "Sofia Andersson"),
        ("O\u2019Brien & Sons Ltd.", "OBrien and Sons Limited"),
        ("Nordljus Design Aktiebolag", "NORDLJUS DESIGN AB"),
    ],
)
def test_names_that_match(left: str, right: str) -> None:
    assert name_similarity(left, right) >= 0.9
    assert name_similarity(left, right) == name_similarity(right, left)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Baltic Freight Solutions UAB", "DHL Freight GmbH"),
        ("Baltic Freight Solutions", "Raben Logistics Polska"),
        ("Sofia Andersson", "Sofia Lindqvist"),
        ("Ali", "Ali Hassan Mohammed"),
        ("Müller GmbH", "Schneider GmbH"),
    ],
)
def test_names_that_do_not_match(left: str, right: str) -> None:
    assert name_similarity(left, right) < 0.75


def test_lookalike_name_sits_between() -> None:
    assert 0.75 <= name_similarity("Baltic Freight Services", "Baltic Freight Solutions UAB") < 0.9


def test_normalize_name() -> None:
    assert normalize_name("  Müller & Söhne GmbH. ") == "muller and sohne"
    assert normalize_name("Straße AG") == "strasse"
    assert normalize_name("SA") == "sa"  # a name is never emptied


def test_best_match() -> None:
    assert best_match("DHL Freight", ["Raben Logistics Polska", "DHL Freight GmbH"]) == (1, 1.0)
    assert best_match("DHL Freight", []) is None


def test_risk_score_combines_and_mitigates() -> None:
    assert risk_score([]) == 0
    assert risk_score([Signal("a", 0.5, "a"), Signal("b", 0.5, "b")]) == 0.75
    assert risk_score([Signal("a", 0.5, "a"), Signal("m", -0.6, "m")]) == 0.2


def test_margin_confidence() -> None:
    assert margin_confidence(0.4, 0.4, 0.3) == 0.5
    assert margin_confidence(0.0, 0.4, 0.3) == 0.95
    assert 0.5 < margin_confidence(0.5, 0.4, 0.3) < 0.95


def test_thresholds_in_other_currencies() -> None:
    assert from_eur(Decimal(50_000), "EUR") == Decimal(50_000)
    assert from_eur(Decimal(50_000), "USD") == Decimal(57_000)
    assert from_eur(Decimal(50_000), "JPY") == Decimal(8_500_000)
    assert from_eur(Decimal(50_000), "XAF") is None


def test_loc() -> None:
    assert loc("clauses", 2, "text") == "clauses[2].text"
    assert loc("screening", "sanctions_hits", 0) == "screening.sanctions_hits[0]"
