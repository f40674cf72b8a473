"""agent_action (every domain): an AI agent's tool call that waits for a human's approval."""

from app.cases.types.base import EVERY_DOMAIN, CaseType

from .analyzer import analyze
from .presenter import present
from .schema import ACTIONS, AgentAction, action_problems, amount, expires_at, parameters_schema

CASE_TYPE = CaseType.in_folder(
    __file__,
    domain=EVERY_DOMAIN,
    name="agent_action",
    data_schema=AgentAction,
    actions=ACTIONS,
    amount=amount,
    analyze=analyze,
    present=present,
    expires_at=expires_at,
    action_problems=action_problems,
    parameters_schema=parameters_schema,
    answerable=True,
)
