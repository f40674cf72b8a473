"""The data of a customer asking for a new credit limit (credit_limit_change) and its actions' parameters."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from app.cases.types.base import (
    ConsistencyRule,
    Count,
    Currency,
    LongText,
    Money,
    NonEmptyStr,
    PositiveMoney,
    Reason,
    ShortText,
    Strict,
)


class Customer(Strict):
    id: NonEmptyStr
    name: ShortText
    since: date


class CreditLimitChange(Strict):
    account_id: NonEmptyStr
    customer: Customer
    currency: Currency
    current_limit: Money
    requested_limit: PositiveMoney
    annual_income: Money
    monthly_debt_payments: Money
    utilization: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    missed_payments_12m: Count
    credit_score: Annotated[int, Field(ge=300, le=850, strict=True)]
    reason: LongText | None = None


class Limit(Strict):
    limit: PositiveMoney


def amount(data: CreditLimitChange) -> tuple[Decimal, str]:
    return data.requested_limit, data.currency


ACTIONS = {"approve": Limit, "counter_offer": Limit, "decline": Reason}

# The analyzer's hard flags (its hard decline rules) and the actions each rules out: no credit is
# granted, at the requested limit or a lower one, below the minimum score, without income or above
# the debt-to-income maximum.
HARD_FLAGS = {
    "low_credit_score": frozenset({"approve", "counter_offer"}),
    "no_income": frozenset({"approve", "counter_offer"}),
    "dti_above_limit": frozenset({"approve", "counter_offer"}),
}

# What an analysis that takes a ruled-out action is corrected to (app.cases.types.base.ConsistencyRule).
CONSISTENCY_RULES = (
    ConsistencyRule("low_credit_score", "decline", "a credit score below the minimum declines any increase."),
    ConsistencyRule("no_income", "decline", "without a declared income no increase is affordable."),
    ConsistencyRule("dti_above_limit", "decline", "a debt-to-income ratio above the maximum declines any increase."),
)
