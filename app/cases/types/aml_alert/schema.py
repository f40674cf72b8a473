"""The data of a transaction-monitoring alert on a customer (aml_alert) and its actions' parameters."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

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
    Score,
    ShortText,
    Strict,
    unique,
)


class Customer(Strict):
    id: NonEmptyStr
    name: ShortText
    risk_rating: Literal["low", "medium", "high"]
    country: Country
    occupation: ShortText | None = None
    employer: ShortText | None = None  # who pays the customer's salary, when known


class RuleHit(Strict):
    rule_id: NonEmptyStr
    description: LongText
    score: Score


class Transaction(Strict):
    id: NonEmptyStr
    date: date
    amount: Money
    currency: Currency
    direction: Literal["in", "out"]
    counterparty: ShortText
    counterparty_country: Country
    channel: NonEmptyStr
    reference: ShortText | None = None  # the payment reference or remittance information


class AmlAlert(Strict):
    alert_id: NonEmptyStr
    customer: Customer
    rule_hits: Annotated[list[RuleHit], Field(min_length=1)]
    transactions: list[Transaction]
    prior_alerts_12m: Count

    @field_validator("transactions")
    @classmethod
    def _unique_transaction_ids(
        cls, transactions: list[Transaction]
    ) -> list[Transaction]:
        return unique(transactions, "id", "transaction")


class FileSar(Strict):
    narrative: LongText


def amount(data: AmlAlert) -> tuple[Decimal, str] | None:
    """Total of the transactions in the most frequent currency (first seen wins a tie)."""
    if not data.transactions:
        return None
    currency = Counter(t.currency for t in data.transactions).most_common(1)[0][0]
    total = sum(
        (t.amount for t in data.transactions if t.currency == currency), Decimal(0)
    )
    return total, currency


ACTIONS = {
    "close_false_positive": Reason,
    "open_investigation": NoParams,
    "file_sar": FileSar,
}

# The analyzer's hard flags and the actions each rules out: structuring, a pass-through of funds or
# sanctioned-country exposure is never closed as a false positive; an FATF high-risk country is always shown.
HARD_FLAGS = {
    "structuring": frozenset({"close_false_positive"}),
    "rapid_movement": frozenset({"close_false_positive"}),
    "sanctioned_country": frozenset({"close_false_positive"}),
    "high_risk_country": frozenset(),
}

# What an analysis that takes a ruled-out action is corrected to (app.cases.types.base.ConsistencyRule).
CONSISTENCY_RULES = tuple(
    ConsistencyRule(flag, "open_investigation", f"an alert showing {what} is investigated, never closed as a"
                    " false positive.", parameters={})
    for flag, what in (("structuring", "structuring"), ("rapid_movement", "a pass-through of funds"),
                       ("sanctioned_country", "sanctioned-country exposure"))
)
