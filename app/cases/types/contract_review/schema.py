"""The data of a contract to be signed (contract_review) and its actions' parameters."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, field_validator

from app.cases.types.base import (
    ConsistencyRule,
    Count,
    Country,
    Currency,
    LongText,
    Money,
    NonEmptyStr,
    NoParams,
    Reason,
    ShortText,
    Strict,
    unique,
)


class Counterparty(Strict):
    name: ShortText
    country: Country


class Clause(Strict):
    id: NonEmptyStr
    heading: ShortText
    text: LongText


class Policy(Strict):
    allowed_governing_law: list[ShortText]
    max_liability_multiple: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    max_payment_terms_days: Count
    max_auto_renewal_months: Count


class ContractReview(Strict):
    contract_id: NonEmptyStr
    title: ShortText
    counterparty: Counterparty
    contract_value: Money
    currency: Currency
    term_months: Annotated[int, Field(gt=0, strict=True)]
    governing_law: ShortText
    clauses: Annotated[list[Clause], Field(min_length=1)]
    policy: Policy | None = None

    @field_validator("clauses")
    @classmethod
    def _unique_clause_ids(cls, clauses: list[Clause]) -> list[Clause]:
        return unique(clauses, "id", "clause")


class Redline(Strict):
    clause_id: NonEmptyStr
    issue: LongText
    proposed_text: LongText


class RequestChanges(Strict):
    redlines: Annotated[list[Redline], Field(min_length=1)]


def amount(data: ContractReview) -> tuple[Decimal, str]:
    return data.contract_value, data.currency


ACTIONS = {"approve": NoParams, "request_changes": RequestChanges, "reject": Reason}

# The analyzer's hard flags and the actions each rules out: unlimited liability or an uncapped
# indemnity is never signed as it stands, a counterparty in a sanctioned jurisdiction never at all;
# an FATF high-risk country is always shown.
HARD_FLAGS = {
    "unlimited_liability": frozenset({"approve"}),
    "uncapped_indemnity": frozenset({"approve"}),
    "sanctioned_country": frozenset({"approve", "request_changes"}),
    "high_risk_country": frozenset(),
}

# What an analysis that takes a ruled-out action is corrected to (app.cases.types.base.ConsistencyRule).
CONSISTENCY_RULES = (
    ConsistencyRule("sanctioned_country", "reject",
                    "a contract with a counterparty in a sanctioned jurisdiction is not signed."),
    ConsistencyRule("unlimited_liability", "reject",
                    "a contract with unlimited liability is not signed as it stands; it needs a cap first."),
    ConsistencyRule("uncapped_indemnity", "reject",
                    "a contract with an uncapped indemnity is not signed as it stands; it needs a cap first."),
)
