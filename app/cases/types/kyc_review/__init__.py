"""compliance / kyc_review: an onboarding application."""

from app.cases.types.base import CaseType

from .analyzer import analyze
from .presenter import present
from .schema import ACTIONS, CONSISTENCY_RULES, HARD_FLAGS, KycReview, amount

CASE_TYPE = CaseType.in_folder(
    __file__,
    domain="compliance",
    name="kyc_review",
    data_schema=KycReview,
    actions=ACTIONS,
    amount=amount,
    analyze=analyze,
    present=present,
    hard_flags=HARD_FLAGS,
    consistency_rules=CONSISTENCY_RULES,
    dual_approval_actions=frozenset({"reject_onboarding"}),
)
