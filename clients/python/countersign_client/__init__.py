"""Countersign's Python client: submit cases, wait for decisions, verify callbacks, and run an AI
agent's tool only once a human approved the call (`require_approval`). See README.md."""

from countersign_client._core import VERSION as __version__
from countersign_client.approval import AgentContext, agent_context, require_approval
from countersign_client.client import AsyncCountersign, Countersign
from countersign_client.errors import (
    ApprovalTimeout,
    CountersignError,
    Expired,
    InvalidSignature,
    NotApproved,
    ProblemError,
    QueueMismatchWarning,
    Rejected,
)
from countersign_client.models import (
    Agent,
    Approved,
    Case,
    Context,
    Decision,
    Execution,
    Message,
    Recommendation,
    Responded,
    Submission,
    ToolCall,
)

__all__ = [
    "Agent",
    "AgentContext",
    "ApprovalTimeout",
    "Approved",
    "AsyncCountersign",
    "Case",
    "Context",
    "Countersign",
    "CountersignError",
    "Decision",
    "Execution",
    "Expired",
    "InvalidSignature",
    "Message",
    "NotApproved",
    "ProblemError",
    "QueueMismatchWarning",
    "Recommendation",
    "Rejected",
    "Responded",
    "Submission",
    "ToolCall",
    "__version__",
    "agent_context",
    "require_approval",
]
