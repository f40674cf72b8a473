"""Typed documents: what the client sends about an agent's tool call, and what the server answers.

Results ignore members they do not know, so a newer server does not break an older client."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: While a case has one of these statuses it is with the reviewers: `GET ?wait=` blocks on it.
WAITING_STATUSES = frozenset({"received", "analyzing", "pending_review", "ai_failed", "in_review",
                              "awaiting_second_approval"})
#: An approval is final once the server has started executing it: the reviewer's undo window has
#: closed and the call's expiry was checked. While merely ``approved`` it can still be undone.
EXECUTED_STATUSES = frozenset({"executing", "executed"})
APPROVING_KINDS = frozenset({"approve", "edit", "second_approval"})
MAX_MESSAGES = 20
MAX_TITLE = 200


class _Sent(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Received(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- an agent's tool call ------------------------------------------------------------------------


class Agent(_Sent):
    """Who asks: shown to the reviewer."""

    id: str
    name: str
    version: str = "unknown"
    model: str = "unknown"


class Message(_Sent):
    """One of the last messages or steps of the agent's conversation."""

    role: Literal["user", "assistant", "tool", "system"]
    content: str


class Context(_Sent):
    """Why the agent makes the call: its goal, the last messages (the server keeps 20), its reasoning."""

    goal: str
    messages: list[Message] = Field(default_factory=list)
    reasoning: str | None = None


class ToolCall(_Sent):
    """An agent's tool call, as an ``agent_action`` case describes it (docs/agent-approvals.md)."""

    name: str
    description: str
    arguments: dict[str, Any]
    arguments_schema: dict[str, Any]
    agent: Agent
    context: Context
    risk_hints: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None  # None: when the client stops waiting
    title: str | None = None  # None: "<agent>: <tool>(<arguments>)"

    def case_data(self, expires_at: datetime) -> dict[str, Any]:
        """The case's ``data``: the last 20 messages, ``expires_at`` with its time zone."""
        context = self.context.model_dump(mode="json", exclude_none=True)
        context["messages"] = context["messages"][-MAX_MESSAGES:]
        return {
            "agent": self.agent.model_dump(mode="json"),
            "tool": {"name": self.name, "description": self.description, "arguments": self.arguments,
                     "arguments_schema": self.arguments_schema},
            "context": context,
            "risk_hints": list(self.risk_hints),
            "expires_at": (self.expires_at or expires_at).isoformat(),
        }

    def case_title(self) -> str:
        if self.title:
            return self.title[:MAX_TITLE]
        arguments = ", ".join(f"{name}={value!r}" for name, value in self.arguments.items())
        title = f"{self.agent.name}: {self.name}({arguments})"
        return title if len(title) <= MAX_TITLE else title[:MAX_TITLE - 1] + "…"


# --- what the server answers ---------------------------------------------------------------------


class Submission(_Received):
    """The answer to a submitted case. ``duplicate``: the server had this ``webhook_id`` already
    and answered as it did the first time (``Idempotent-Replayed: true``): no second case."""

    case_id: int = Field(alias="id")
    status: str
    url: str
    webhook_id: str
    duplicate: bool = False


class Decision(_Received):
    kind: str
    reason_code: str | None = None
    reason: str | None = None
    decided_at: datetime
    decided_by: str
    action: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Recommendation(_Received):
    action: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    rationale: str
    confidence: float
    flags: list[str] = Field(default_factory=list)
    citations: list[str] = Field(default_factory=list)
    provider: str
    model: str


class Execution(_Received):
    status: str
    attempts: int
    last_status_code: int | None = None
    delivered_at: datetime | None = None


class Case(_Received):
    """``GET /api/v1/cases/<id>``: the case as its API client sees it."""

    id: int
    external_id: str
    domain: str
    case_type: str
    title: str
    status: str
    version: int
    priority: str
    queue: str | None = None
    sla_due_at: datetime | None = None
    created_at: datetime
    expires_at: datetime | None = None
    answer: str | None = None
    recommendation: Recommendation | None = None
    decisions: list[Decision] = Field(default_factory=list)
    execution: Execution | None = None

    @property
    def waiting(self) -> bool:
        """Still with the reviewers."""
        return self.status in WAITING_STATUSES

    def approving_decision(self) -> Decision | None:
        """The last decision that approved an action (approve, edit or second approval)."""
        return next((d for d in reversed(self.decisions) if d.kind in APPROVING_KINDS), None)

    def last_decision(self, kind: str) -> Decision | None:
        return next((d for d in reversed(self.decisions) if d.kind == kind), None)


# --- outcomes of a tool call ---------------------------------------------------------------------


class Approved(_Received):
    """Run the tool with ``arguments``; ``edited``: they differ from what the agent asked for."""

    arguments: dict[str, Any]
    edited: bool
    case_id: int


class Responded(_Received):
    """A reviewer answered the agent instead: do not run the tool, give the agent ``answer``."""

    answer: str
    case_id: int
