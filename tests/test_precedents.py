"""Unit tests of the precedent ranking: case texts, tokens, TF-IDF cosine ranking (pure)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from app.ai.precedents import case_text, rank, tokenize
from app.cases.types import examples

EXAMPLES = examples()


def payment(country: str, amount: str, purpose: str, beneficiary: str, *, channel: str = "swift",
            is_new: bool = True) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLES["payment_release"])
    data["amount"] = amount
    data["channel"] = channel
    data["purpose"] = purpose
    data["beneficiary"].update(name=beneficiary, country=country, is_new=is_new)
    return data


# --- tokens and case texts -------------------------------------------------------------------


def test_tokenize_lowercases_unicode_words_without_stop_words_or_single_letters() -> None:
    assert tokenize("The Zürich-based Straße GmbH shall pay a fee of 5 EUR in 30 days") == [
        "zürich", "based", "straße", "gmbh", "pay", "fee", "eur", "30", "days",
    ]
    assert tokenize("country_IR channel_swift") == ["country_ir", "channel_swift"]
    assert tokenize("") == []
    assert tokenize("a I of the ... ,") == []


def test_case_text_keeps_meaning_and_drops_identifiers() -> None:
    text = case_text(EXAMPLES["payment_release"])
    words = text.split()
    for term in ("channel_sepa", "currency_eur", "country_de", "country_lt", "is_new_true", "sanctions_hits",
                 "amount_bucket_10k_100k", "average_amount_bucket_10k_100k", "amount_last_30d_bucket_100k_1m",
                 "freight", "Hamburg-Vilnius,"):
        assert term in words
    for identifier in ("PAY-2026-118734", "CUST-004512", "DE89370400440532013000", "LT121000011101001000",
                       "CBVILT2X", "2026-11-27", "INV-2026-0931", "48250.00"):
        assert identifier not in text
    assert "pep_hits" not in words  # an empty list says nothing


@pytest.mark.parametrize(
    ("amount", "bucket"),
    [("250.00", "under_1k"), ("999.99", "under_1k"), ("1000", "1k_10k"), (48250, "10k_100k"),
     ("360000.00", "100k_1m"), (2_500_000.5, "1m_10m"), ("10000000.00", "10m_plus")],
)
def test_amounts_become_coarse_buckets(amount: Any, bucket: str) -> None:
    assert case_text({"amount": amount, "term_months": 36, "credit_score": 742}) == f"amount_bucket_{bucket}"


def test_case_text_of_every_example_is_searchable() -> None:
    for data in EXAMPLES.values():
        assert len(tokenize(case_text(data))) >= 10
    aml = case_text(EXAMPLES["aml_alert"]).split()
    assert {"risk_rating_medium", "direction_out", "channel_cash", "country_ae", "rule_hits"} <= set(aml)
    assert "country_se" in case_text(EXAMPLES["kyc_review"]).split()  # nationality counts as a country


# --- ranking ---------------------------------------------------------------------------------


def test_high_risk_country_payments_rank_above_routine_ones() -> None:
    query = case_text(payment("IR", "185000.00", "Consulting services, phase 2", "Pars Energy Consultants"))
    routine = [
        payment("PL", "12400.00", "Road freight Poznan-Hamburg, October", "Raben Logistics Polska",
                channel="sepa", is_new=False),
        payment("US", "150000.00", "Software licence renewal", "Contoso Inc"),
        payment("DE", "48000.00", "Warehouse rent November", "Lagerhaus Nord GmbH", channel="sepa", is_new=False),
        payment("GB", "220000.00", "Consulting services, audit support", "Fabrikam Advisory Ltd", is_new=False),
        payment("FR", "8300.00", "Office furniture", "Mobilier Bureau SARL", channel="sepa"),
        payment("US", "640000.00", "Aircraft parts, order 7", "Northwind Aero Inc", channel="wire"),
    ]
    high_risk = [
        payment("IR", "94000.00", "Industrial pump spare parts", "Tabriz Machinery Co"),
        payment("IR", "31000.00", "Advance for engineering study", "Kish Trading LLC", channel="wire"),
    ]
    candidates = [(1, case_text(EXAMPLES["payment_release"]))]
    candidates += [(index, case_text(data)) for index, data in enumerate(routine + high_risk, start=2)]
    ranked = rank(query, candidates, k=3)
    assert {candidate_id for candidate_id, _ in ranked[:2]} == {8, 9}
    assert len(ranked) == 3
    assert all(0 < score < 1 for _, score in ranked)
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)


def test_identical_text_ranks_first_with_score_one() -> None:
    texts = [case_text(data) for data in EXAMPLES.values()]
    candidates = list(enumerate(texts, start=10))
    for candidate_id, text in candidates:
        assert rank(text, candidates, k=1) == [(candidate_id, 1.0)]


def test_equal_scores_put_the_most_recent_first_and_ranking_is_deterministic() -> None:
    text = case_text(EXAMPLES["aml_alert"])
    other = case_text(EXAMPLES["kyc_review"])
    candidates = [(3, text), (9, text), (5, text), (7, other)]
    assert rank(text, candidates, k=3) == [(9, 1.0), (5, 1.0), (3, 1.0)]
    shuffled = candidates[::-1]
    assert rank(text, shuffled, k=4) == rank(text, candidates, k=4) == rank(text, candidates, k=4)


def test_scores_are_rounded_and_filtered_by_min_score() -> None:
    query = "wire transfer to new beneficiary in Iran"
    candidates = [(1, "wire transfer to a supplier"), (2, "kitchen renovation loan"), (3, "new beneficiary Iran")]
    ranked = rank(query, candidates, k=5, min_score=0.0)
    assert [candidate_id for candidate_id, _ in ranked] == [3, 1, 2]
    assert all(score == round(score, 4) for _, score in ranked)
    assert ranked[-1] == (2, 0.0)
    assert rank(query, candidates, k=5) == ranked[:2]  # the default min_score drops the unrelated one
    assert rank(query, candidates, k=5, min_score=1.0) == []


def test_empty_inputs() -> None:
    assert rank("anything", []) == []
    assert rank("", [(1, "wire transfer"), (2, "")]) == []
    assert rank("wire transfer", [(1, ""), (2, "the of and")]) == []
    assert rank("wire transfer", [(1, "wire transfer")], k=0) == []
    assert case_text({}) == ""


def test_two_thousand_candidates() -> None:
    rnd = random.Random(2026)
    countries = ["DE", "LT", "PL", "FR", "GB", "US", "AE", "IR", "CN", "TR"]
    words = ["invoice", "freight", "consulting", "licence", "rent", "machinery", "spare parts", "advance", "salary",
             "dividend", "loan repayment", "insurance premium", "marketing services", "software", "hardware"]
    candidates = [
        (index, case_text(payment(rnd.choice(countries), f"{rnd.randint(100, 2_000_000)}.00",
                                  " ".join(rnd.sample(words, 5)), f"Supplier {index} Ltd",
                                  channel=rnd.choice(["wire", "sepa", "swift", "ach"]), is_new=rnd.random() < 0.3)))
        for index in range(2000)
    ]
    query_id, query = candidates[1234]
    ranked = rank(query, candidates, k=5)
    assert len(ranked) == 5
    assert ranked[0] == (query_id, 1.0)
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)
    assert len({candidate_id for candidate_id, _ in ranked}) == 5
