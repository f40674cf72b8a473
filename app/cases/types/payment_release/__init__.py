"""finance / payment_release: a payment held for release."""

from app.cases.types.base import CaseType

from .analyzer import analyze
from .presenter import present
from .schema import ACTIONS, CONSISTENCY_RULES, HARD_FLAGS, PaymentRelease, amount

CASE_TYPE = CaseType.in_folder(
    __file__,
    domain="finance",
    name="payment_release",
    data_schema=PaymentRelease,
    actions=ACTIONS,
    amount=amount,
    analyze=analyze,
    present=present,
    hard_flags=HARD_FLAGS,
    consistency_rules=CONSISTENCY_RULES,
    dual_approval_over_threshold=True,
)
