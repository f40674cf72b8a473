"""finance / credit_limit_change: a customer asks for a new credit limit."""

from app.cases.types.base import CaseType

from .analyzer import analyze
from .presenter import present
from .schema import ACTIONS, CONSISTENCY_RULES, HARD_FLAGS, CreditLimitChange, amount

CASE_TYPE = CaseType.in_folder(
    __file__,
    domain="finance",
    name="credit_limit_change",
    data_schema=CreditLimitChange,
    actions=ACTIONS,
    amount=amount,
    analyze=analyze,
    present=present,
    hard_flags=HARD_FLAGS,
    consistency_rules=CONSISTENCY_RULES,
    dual_approval_over_threshold=True,
)
