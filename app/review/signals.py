"""Risk signals in plain words: the one table that turns the analyzers' and the pre-screen's
snake_case flags into what a reviewer reads, with the tone of their badge ("bad", "warn", or
"good" for a signal that speaks for the case). A flag missing here is shown humanized, as a warning."""

from __future__ import annotations

from dataclasses import dataclass

from app.cases.types.view import humanize

GOOD, WARN, BAD = "good", "warn", "bad"

SIGNAL_WORDS: dict[str, tuple[str, str]] = {
    # payments
    "large_amount": ("Large amount", WARN),
    "amount_above_usual": ("Amount above the usual for this payer", WARN),
    "round_amount": ("Suspiciously round amount", WARN),
    "round_amounts": ("Suspiciously round amounts", WARN),
    "new_beneficiary": ("First payment to this beneficiary", WARN),
    "changed_beneficiary_account": ("Beneficiary's bank account changed recently", BAD),
    "beneficiary_name_mismatch": ("Beneficiary name does not match the account", BAD),
    "lookalike_beneficiary_name": ("Beneficiary name looks like a known party's", BAD),
    "bank_country_mismatch": ("Bank in another country than the beneficiary", WARN),
    "unlisted_currency": ("Currency not on the approved list", WARN),
    "high_risk_country": ("High-risk country involved", WARN),
    "sanctioned_country": ("Sanctioned country involved", BAD),
    # sanctions, PEP, screening
    "sanctions_hit": ("Sanctions list match", BAD),
    "possible_sanctions_hit": ("Possible sanctions list match", BAD),
    "possible_sanctions_match": ("Possible sanctions list match", BAD),
    "sanctions_hit_excluded": ("Sanctions match ruled out", GOOD),
    "pep_hit": ("Politically exposed person", WARN),
    "pep_match": ("Politically exposed person", WARN),
    "pep_hit_discounted": ("Politically exposed person match ruled out", GOOD),
    "adverse_media": ("Adverse media reports", WARN),
    # identity (KYC)
    "expired_document": ("Identity document expired", BAD),
    "missing_document": ("Required document missing", BAD),
    "name_mismatch": ("Name differs between documents", BAD),
    "dob_mismatch": ("Date of birth differs between documents", BAD),
    "address_country_mismatch": ("Address in another country than declared", WARN),
    "activity_inconsistent_with_occupation": ("Activity does not fit the stated occupation", WARN),
    # credit
    "long_tenure": ("Long-standing customer", GOOD),
    "short_tenure": ("Customer for a short time only", WARN),
    "regular_income_pattern": ("Regular income", GOOD),
    "no_income": ("No income on record", BAD),
    "high_utilization": ("Credit line heavily used", WARN),
    "elevated_dti": ("Debt-to-income ratio elevated", WARN),
    "dti_above_limit": ("Debt-to-income ratio above policy", BAD),
    "low_credit_score": ("Low credit score", BAD),
    "fair_credit_score": ("Fair credit score", WARN),
    "missed_payments": ("Missed payments", BAD),
    "large_increase": ("Large limit increase", WARN),
    "limit_decrease": ("Limit decrease requested", WARN),
    "elevated_recent_activity": ("Unusual recent activity", WARN),
    # AML alerts
    "structuring": ("Possible structuring (amounts kept under reporting limits)", BAD),
    "rapid_movement": ("Money moved on quickly", WARN),
    "repeat_alerts": ("Repeated alerts on this customer", WARN),
    "strong_rule_hit": ("Strong monitoring rule hit", BAD),
}


@dataclass(frozen=True)
class SignalWords:
    code: str
    label: str
    tone: str


def in_words(code: str) -> SignalWords:
    """A flag as a reviewer reads it: "long_tenure" → Long-standing customer (good)."""
    label, tone = SIGNAL_WORDS.get(code, (humanize(code), WARN))
    return SignalWords(code, label, tone)


SEVERITY = {BAD: 0, WARN: 1, GOOD: 2}


def top(codes: list[str] | tuple[str, ...], limit: int = 3) -> list[SignalWords]:
    """The most serious ``limit`` signals, worst first (the table's order breaks ties)."""
    words = [in_words(code) for code in dict.fromkeys(codes)]
    return sorted(words, key=lambda w: SEVERITY[w.tone])[:limit]
