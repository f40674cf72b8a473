"""Unit tests of the AI governance functions: redaction and citation check (pure; screening: test_screening.py)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from app.ai.governance import (
    CitationCheck,
    check_citations,
    redact,
    unredact,
)
from app.cases.types import REGISTRY, examples

EXAMPLES = examples()

CASE_TYPES = {case_type.name: case_type for case_type in REGISTRY.values()}
PLACEHOLDER = re.compile(r"\[(PERSON|ACCOUNT|EMAIL|PHONE|NATIONAL_ID|ADDRESS|DATE_OF_BIRTH)_\d+\]")


def enriched(name: str) -> dict[str, Any]:
    """EXAMPLES[name] with emails, phones, IBANs and national ids typed into its free text (still valid)."""
    data = copy.deepcopy(EXAMPLES[name])
    if name == "payment_release":
        data["purpose"] = (
            "Invoice INV-2026-0931 of Baltic Freight Solutions UAB: road freight Hamburg-Vilnius. "
            "Remittance advice to ap@baltic-freight.lt or +370 5 212 3456."
        )
    elif name == "credit_limit_change":
        data["reason"] = "Kitchen refit. Call me on 020 7946 0958 or priya.raman@example.co.uk, NI AB 12 34 56 C"
    elif name == "contract_review":
        data["clauses"][1]["text"] += (
            " Notices to legal@northwind.example or (555) 123-4567; payments to GB82 WEST 1234 5698 7654 32."
        )
    elif name == "aml_alert":
        data["rule_hits"][0]["description"] += "; depositor SSN 123-45-6789 seen on 3 other accounts"
    elif name == "kyc_review":
        data["screening"]["pep_hits"][0]["position"] = "Councillor; registry contact sofie.a@aarhus.example"
    else:
        data["context"]["messages"][0]["content"] += " Call me on +44 20 7946 0321 or write to anna@home.example."
    CASE_TYPES[name].validate_data(data)
    return data


# The real values that must not reach a provider, per example (then per enriched example).
HIDDEN = {
    "payment_release": ["Hartmann Logistik GmbH", "DE89370400440532013000", "Baltic Freight Solutions UAB",
                        "LT121000011101001000", "DHL Freight GmbH", "Raben Logistics Polska",
                        "Baltic Freight Services"],
    "credit_limit_change": ["Priya Raman"],
    "contract_review": ["Northwind Analytics Ltd"],
    "aml_alert": ["Marco Bellini", "Cash deposit, Milano Centrale branch", "Cash deposit, Milano Brera branch",
                  "Golden Crescent Trading FZE"],
    "kyc_review": ["Sofia Andersson", "AA1234567", "Sofie Andersen", "Drottninggatan 71", "111 36", "1991-06-02"],
    "agent_action": ["anna.berg@example.com"],
}
HIDDEN_IN_TEXT = {
    "payment_release": ["ap@baltic-freight.lt", "+370 5 212 3456"],
    "credit_limit_change": ["020 7946 0958", "priya.raman@example.co.uk", "AB 12 34 56 C"],
    "contract_review": ["legal@northwind.example", "(555) 123-4567", "GB82 WEST 1234 5698 7654 32"],
    "aml_alert": ["123-45-6789"],
    "kyc_review": ["sofie.a@aarhus.example"],
    "agent_action": ["+44 20 7946 0321", "anna@home.example"],
}
# The leaves redaction may change in each example: every other leaf (ids, amounts, dates, countries,
# currencies, scores, free text without PII) must reach the model unchanged.
CHANGED = {
    "payment_release": {"originator.name", "originator.account", "beneficiary.name", "beneficiary.account",
                        "history.known_beneficiary_names[0]", "history.known_beneficiary_names[1]",
                        "screening.sanctions_hits[0].matched_name"},
    "credit_limit_change": {"customer.name"},
    "contract_review": {"title", "counterparty.name"},
    "aml_alert": {"customer.name", "transactions[0].counterparty", "transactions[1].counterparty",
                  "transactions[2].counterparty"},
    "kyc_review": {"applicant.name", "documents[0].number", "documents[0].name_on_document",
                   "screening.pep_hits[0].matched_name", "applicant.date_of_birth", "applicant.address.line1",
                   "applicant.address.postcode", "documents[0].date_of_birth_on_document"},
    "agent_action": {"tool.arguments.notify_email"},
}


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """{citation-style path: value} of every scalar in a JSON value."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{path}.{key}" if path else key).items()}
    if isinstance(value, list):
        return {k: v for index, item in enumerate(value) for k, v in leaves(item, f"{path}[{index}]").items()}
    return {path: value}


def all_payloads() -> list[tuple[str, dict[str, Any], list[str]]]:
    return [(name, EXAMPLES[name], HIDDEN[name]) for name in EXAMPLES] + [
        (f"{name}+text", enriched(name), HIDDEN[name] + HIDDEN_IN_TEXT[name]) for name in EXAMPLES
    ]


# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "data", "hidden"), all_payloads(), ids=lambda v: v if isinstance(v, str) else "")
def test_redaction_hides_pii_and_round_trips(label: str, data: dict[str, Any], hidden: list[str]) -> None:
    before = copy.deepcopy(data)
    redaction = redact(data)
    dumped = json.dumps(redaction.data, ensure_ascii=False)
    assert [value for value in hidden if value in dumped] == []
    assert sorted(redaction.mapping.values()) == sorted(set(hidden))
    assert all(PLACEHOLDER.fullmatch(placeholder) for placeholder in redaction.mapping)
    assert unredact(redaction.data, redaction.mapping) == data
    assert data == before  # the input is not modified


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_redaction_keeps_what_the_analysis_needs(name: str) -> None:
    original, redacted = leaves(EXAMPLES[name]), leaves(redact(EXAMPLES[name]).data)
    assert original.keys() == redacted.keys()
    assert {path for path in original if original[path] != redacted[path]} == CHANGED[name]


def test_redaction_counts_and_numbers_placeholders_per_kind() -> None:
    redaction = redact(EXAMPLES["payment_release"])
    assert redaction.applied == {"person": 5, "account": 2}
    assert redaction.data["originator"] == {
        "name": "[PERSON_1]", "account": "[ACCOUNT_1]", "country": "DE", "customer_id": "CUST-004512",
    }
    assert redaction.data["beneficiary"]["account"] == "[ACCOUNT_2]"
    assert redact(EXAMPLES["kyc_review"]).applied == {"person": 3, "national_id": 1, "address": 2,
                                                      "date_of_birth": 2}


def test_the_same_value_gets_the_same_placeholder_everywhere() -> None:
    kyc = redact(EXAMPLES["kyc_review"]).data
    assert kyc["applicant"]["name"] == kyc["documents"][0]["name_on_document"] == "[PERSON_1]"
    assert kyc["screening"]["pep_hits"][0]["matched_name"] == "[PERSON_2]"  # a different (similar) name

    contract = redact(EXAMPLES["contract_review"]).data
    assert contract["title"] == f"Master Services Agreement - {contract['counterparty']['name']}"

    payment = copy.deepcopy(EXAMPLES["payment_release"])
    payment["history"]["known_beneficiary_names"].append("Baltic Freight Solutions UAB")
    payment["purpose"] = enriched("payment_release")["purpose"]
    redacted = redact(payment).data
    beneficiary = redacted["beneficiary"]["name"]
    assert redacted["history"]["known_beneficiary_names"][-1] == beneficiary
    assert redacted["purpose"].startswith(f"Invoice INV-2026-0931 of {beneficiary}: road freight")


@pytest.mark.parametrize(
    ("text", "found", "kind"),
    [
        ("Call +44 (0)20 7946 0958 today", "+44 (0)20 7946 0958", "PHONE"),
        ("Ring 020 7946 0958 after 5pm", "020 7946 0958", "PHONE"),
        ("US desk (555) 123-4567", "(555) 123-4567", "PHONE"),
        ("US desk 555-123-4567", "555-123-4567", "PHONE"),
        ("WhatsApp +4915112345678", "+4915112345678", "PHONE"),
        ("mail a.b+c@ex-ample.co.uk.", "a.b+c@ex-ample.co.uk", "EMAIL"),
        ("refund to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00", "ACCOUNT"),
        ("refund to LT121000011101001000 FROM today", "LT121000011101001000", "ACCOUNT"),
        ("NI number AB 12 34 56 C", "AB 12 34 56 C", "NATIONAL_ID"),
        ("NI number AB123456C", "AB123456C", "NATIONAL_ID"),
        ("SSN 123-45-6789", "123-45-6789", "NATIONAL_ID"),
    ],
)
def test_pii_found_anywhere_in_text(text: str, found: str, kind: str) -> None:
    redaction = redact({"purpose": text})
    [(placeholder, value)] = redaction.mapping.items()
    assert value == found
    assert placeholder == f"[{kind}_1]"
    assert redaction.data["purpose"] == text.replace(found, placeholder)


@pytest.mark.parametrize(
    "text",
    [
        "Invoice INV-2026-0931 due 2026-11-27 10:30, value date 27.11.2026",
        "Facility of EUR 100 000 000, drawn 212430.55, quoted at GBP 9,800",
        "Payment PAY-2026-118734 for customer CUST-004512, postcode 111 36",
        "BIC CBVILT2X; wrong check digits DE00370400440532013000",
        "renew for twenty-four (24) months; 3 deposits within 7 days",
    ],
)
def test_ordinary_numbers_and_ids_are_not_pii(text: str) -> None:
    redaction = redact({"purpose": text})
    assert redaction.data == {"purpose": text}
    assert redaction.mapping == {}
    assert redaction.applied == {}


def test_placeholders_already_in_the_payload_are_never_reused() -> None:
    data = {"customer": {"name": "Jane Doe"}, "reason": "Template says [PERSON_1]; signed by Jane Doe"}
    redaction = redact(data)
    assert redaction.data == {
        "customer": {"name": "[PERSON_2]"},
        "reason": "Template says [PERSON_1]; signed by [PERSON_2]",
    }
    assert unredact(redaction.data, redaction.mapping) == data


def test_names_are_replaced_as_whole_words_only() -> None:
    data = {"customer": {"name": "Wu"}, "counterparty": "X", "purpose": "Paid by Wu for X-ray kit; Wuhan office"}
    redacted = redact(data).data
    assert redacted["purpose"] == "Paid by [PERSON_1] for X-ray kit; Wuhan office"
    assert redacted["counterparty"] == "[PERSON_2]"


def test_unredact_restores_placeholders_in_any_nested_value() -> None:
    mapping = {"[PERSON_1]": "Sofia Andersson", "[ACCOUNT_1]": "LT121000011101001000"}
    output = {
        "action": "hold",
        "parameters": {"reason": "[PERSON_1] is new; account [ACCOUNT_1] unseen"},
        "citations": ["beneficiary.name"],
        "risk_flags": ["[PERSON_1]", "[PERSON_9]"],
        "confidence": 0.7,
        "nested": [{"deep": ["[ACCOUNT_1]"]}, None, True],
    }
    assert unredact(output, mapping) == {
        "action": "hold",
        "parameters": {"reason": "Sofia Andersson is new; account LT121000011101001000 unseen"},
        "citations": ["beneficiary.name"],
        "risk_flags": ["Sofia Andersson", "[PERSON_9]"],  # an unknown placeholder is left as it is
        "confidence": 0.7,
        "nested": [{"deep": ["LT121000011101001000"]}, None, True],
    }
    assert unredact("plain [PERSON_1]", {}) == "plain [PERSON_1]"


# --- citation check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("citation", "valid"),
    [
        ("beneficiary.country", True),
        ("data.beneficiary.country", True),
        ("amount", True),
        ("history.known_beneficiary_names", True),  # a list itself
        ("history.known_beneficiary_names[1]", True),
        ("screening.sanctions_hits[0].matched_name", True),
        ("screening", True),
        (" beneficiary.is_new ", True),
        ("beneficiary.iban", False),  # missing key
        ("history.known_beneficiary_names[2]", False),  # index out of range
        ("beneficiary[0]", False),  # an object is not a list
        ("amount.value", False),  # a string has no fields
        ("purpose[0]", False),  # a string is not a list
        ("screening.pep_hits[0]", False),  # an empty list
        ("data", False),
        ("data.", False),
        ("", False),
        ("beneficiary..country", False),
        ("beneficiary.country.", False),
        ("history.known_beneficiary_names[-1]", False),
        ("history.known_beneficiary_names[x]", False),
        ("beneficiary['country']", False),
        ("/beneficiary/country", False),
        ("the beneficiary country", False),
    ],
)
def test_citation_check(citation: str, valid: bool) -> None:
    result = check_citations([citation], EXAMPLES["payment_release"])
    assert result == (CitationCheck([citation], []) if valid else CitationCheck([], [citation]))


def test_citation_check_keeps_order_and_reaches_nested_lists() -> None:
    contract = EXAMPLES["contract_review"]
    citations = ["clauses[2].text", "clauses[3].text", "policy.max_payment_terms_days", "data.clauses[0].id",
                 "clauses.text"]
    assert check_citations(citations, contract) == CitationCheck(
        valid=["clauses[2].text", "policy.max_payment_terms_days", "data.clauses[0].id"],
        invalid=["clauses[3].text", "clauses.text"],
    )
    assert check_citations(["transactions[0].amount"], EXAMPLES["aml_alert"]).valid == ["transactions[0].amount"]
    assert check_citations([], contract) == CitationCheck([], [])
