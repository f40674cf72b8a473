"""The data of a payment held for release (payment_release) and its actions' parameters."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import StrictBool

from app.cases.types.base import (
    ConsistencyRule,
    Count,
    Country,
    Currency,
    LongText,
    Money,
    NonEmptyStr,
    NoParams,
    PepHit,
    PositiveMoney,
    Reason,
    SanctionsHit,
    ShortText,
    Strict,
)


class Party(Strict):
    name: ShortText
    account: NonEmptyStr
    country: Country


class Originator(Party):
    customer_id: NonEmptyStr


class Beneficiary(Party):
    bank_bic: NonEmptyStr | None = None
    is_new: StrictBool


class History(Strict):
    payments_last_30d: Count
    amount_last_30d: Money
    average_amount: Money
    known_beneficiary_names: list[ShortText]


class Screening(Strict):
    sanctions_hits: list[SanctionsHit]
    pep_hits: list[PepHit]


class PaymentRelease(Strict):
    payment_id: NonEmptyStr
    amount: PositiveMoney
    currency: Currency
    value_date: date
    channel: Literal["wire", "ach", "sepa", "swift"]
    originator: Originator
    beneficiary: Beneficiary
    purpose: LongText
    history: History | None = None
    screening: Screening | None = None


def amount(data: PaymentRelease) -> tuple[Decimal, str]:
    return data.amount, data.currency


ACTIONS = {"release": NoParams, "hold": Reason, "reject": Reason}

# The analyzer's hard flags and the actions each rules out: a sanctions match (strong or possible) or a
# sanctioned jurisdiction is never released, nor a payment with a PEP hit nobody has looked at yet; an
# FATF high-risk country is always shown.
HARD_FLAGS = {
    "sanctions_hit": frozenset({"release"}),
    "possible_sanctions_hit": frozenset({"release"}),
    "sanctioned_country": frozenset({"release"}),
    "pep_hit": frozenset({"release"}),
    "high_risk_country": frozenset(),
}

# What an analysis that takes a ruled-out action is corrected to (app.cases.types.base.ConsistencyRule).
CONSISTENCY_RULES = (
    ConsistencyRule("sanctions_hit", "reject", "a strong sanctions match is never released."),
    ConsistencyRule("sanctioned_country", "reject", "a payment touching a sanctioned jurisdiction is never released."),
    ConsistencyRule("possible_sanctions_hit", "hold",
                    "a potential sanctions match not yet dispositioned cannot be released; hold it until compliance"
                    " clears or confirms the match."),
    ConsistencyRule("pep_hit", "hold",
                    "a PEP hit is held until compliance confirms the payment fits the customer's known profile."),
)
