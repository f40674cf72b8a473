"""compliance / aml_alert: a transaction-monitoring alert on a customer."""

from app.cases.types.base import CaseType

from .analyzer import analyze
from .presenter import present
from .schema import ACTIONS, CONSISTENCY_RULES, HARD_FLAGS, AmlAlert, amount

CASE_TYPE = CaseType.in_folder(
    __file__,
    domain="compliance",
    name="aml_alert",
    data_schema=AmlAlert,
    actions=ACTIONS,
    amount=amount,
    analyze=analyze,
    present=present,
    hard_flags=HARD_FLAGS,
    consistency_rules=CONSISTENCY_RULES,
    dual_approval_actions=frozenset({"file_sar"}),
)
