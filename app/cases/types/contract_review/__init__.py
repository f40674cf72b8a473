"""legal / contract_review: a contract to be signed."""

from app.cases.types.base import CaseType

from .analyzer import analyze
from .presenter import present
from .schema import ACTIONS, CONSISTENCY_RULES, HARD_FLAGS, ContractReview, amount

CASE_TYPE = CaseType.in_folder(
    __file__,
    domain="legal",
    name="contract_review",
    data_schema=ContractReview,
    actions=ACTIONS,
    amount=amount,
    analyze=analyze,
    present=present,
    hard_flags=HARD_FLAGS,
    consistency_rules=CONSISTENCY_RULES,
)
