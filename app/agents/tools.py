"""The per-tool policies of agents' tool calls: one home for reading, changing and applying them.

A policy is a row of ``agent_tools``; its document form (YAML, for the ``agent-tools`` commands
and the admin page) is::

    - name: issue_refund
      queue: agent-refunds          # optional: where its calls go (a queue of the case's domain)
      two_approvals: true           # optional: every call needs a second approval (a senior's)
      arguments:                    # optional: limits, by argument name
        amount: {max: 500}
        currency: {allowed_values: [EUR, USD]}
        notify_email: {allowed_domains: [example.com]}

Loading upserts by name, all or nothing, and audits each change with its before and after.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import yaml
from flask import has_app_context
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.agents.models import AgentTool
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases.models import Case, Queue
from app.cases.types.agent_action.tool_policy import ArgumentLimit, ToolPolicy, use_policies
from app.errors import Invalid
from app.extensions import db

AGENT_ACTION = "agent_action"
MAX_DOCUMENT_CHARS = 1_000_000
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
Domain = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", to_lower=True)]


class LimitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False)
    allowed_values: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = []
    allowed_domains: list[Domain] = []


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: ToolName
    queue: str | None = None
    two_approvals: bool = False
    arguments: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], LimitSpec] = {}

    @field_validator("arguments")
    @classmethod
    def _some_limit(cls, arguments: dict[str, LimitSpec]) -> dict[str, LimitSpec]:
        empty = [name for name, limit in arguments.items() if not limit.model_dump(exclude_defaults=True)]
        if empty:
            raise ValueError(f"give each listed argument a limit (max, allowed_values or allowed_domains): {empty}")
        return arguments


# --- reading -------------------------------------------------------------------------------------------


def all_tools(session: Session) -> list[AgentTool]:
    return list(session.scalars(select(AgentTool).order_by(AgentTool.name)))


def tool_named(session: Session, name: str) -> AgentTool | None:
    return session.scalar(select(AgentTool).where(AgentTool.name == name))


def document_of(tool: AgentTool) -> dict[str, Any]:
    """The tool's policy as the YAML file writes it (what `load` accepts)."""
    document: dict[str, Any] = {"name": tool.name}
    if tool.queue is not None:
        document["queue"] = tool.queue.name
    if tool.two_approvals:
        document["two_approvals"] = True
    if tool.arguments:
        document["arguments"] = tool.arguments
    return document


def export_yaml(session: Session) -> str:
    return yaml.safe_dump([document_of(tool) for tool in all_tools(session)], sort_keys=False, allow_unicode=True)


def policy_of(tool: AgentTool) -> ToolPolicy:
    limits = {name: ArgumentLimit(max=Decimal(limit["max"]) if limit.get("max") is not None else None,
                                  allowed_values=tuple(limit.get("allowed_values", ())),
                                  allowed_domains=tuple(limit.get("allowed_domains", ())))
              for name, limit in tool.arguments.items()}
    return ToolPolicy(tool.name, limits)


def _current_policy(tool_name: str) -> ToolPolicy | None:
    """The analyzer's lookup (installed by `install`): the policy as stored now. Outside the app (the
    analyzer called on its own, as the case-type tests do) there is no table, so no policy."""
    if not has_app_context():
        return None
    tool = tool_named(db.session, tool_name)
    return policy_of(tool) if tool is not None else None


def install() -> None:
    """Let the agent_action analyzer read the tools' policies from the database."""
    use_policies(_current_policy)


# --- applying: where a call goes and what it needs --------------------------------------------------------


def tool_of_call(session: Session, case_type: str, data: BaseModel) -> AgentTool | None:
    """At intake: the policy of the tool an agent_action calls, if it has one (None for other types)."""
    if case_type != AGENT_ACTION:
        return None
    return tool_named(session, data.tool.name)  # type: ignore[attr-defined]  (an AgentAction)


def receiving_queue(tool: AgentTool | None, domain: str) -> Queue | None:
    """The queue the tool's policy names, when it takes calls of this domain (else the usual routing)."""
    queue = tool.queue if tool is not None else None
    if queue is None or queue.domain != domain or queue.archived_at is not None:
        return None
    return queue


def apply_policy(tool: AgentTool | None, case: Case) -> None:
    """A tool that always needs two approvals flags its call so (the second by a senior reviewer)."""
    if tool is not None and tool.two_approvals:
        case.requires_dual_approval = True


# --- changing ------------------------------------------------------------------------------------------------


def parse_yaml(text: str) -> list[ToolSpec]:
    """The tools of a YAML (or JSON) document: a list of tool policies, each valid, names unique."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise Invalid(f"the document is longer than {MAX_DOCUMENT_CHARS} characters", {"document": "too long"})
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Invalid(f"not valid YAML: {exc}", {"document": "not valid YAML"}) from None
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise Invalid("the document is a list of tool policies", {"document": "a list of tool policies"})
    specs, errors = [], {}
    for index, item in enumerate(raw):
        try:
            specs.append(ToolSpec.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in (f"[{index}]", *error["loc"]))
                errors[where] = error["msg"]
    names = [spec.name for spec in specs]
    for name in sorted({name for name in names if names.count(name) > 1}):
        errors[name] = "listed more than once"
    if errors:
        raise Invalid("the tool policies are invalid: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    return specs


def load(session: Session, specs: list[ToolSpec], actor: Actor) -> dict[str, str]:
    """Upsert each tool's policy by name (flushed; the caller commits): ``{name: created|updated|unchanged}``.
    Every queue named must exist, else nothing changes."""
    queues = {spec.queue: session.scalar(select(Queue).where(Queue.name == spec.queue))
              for spec in specs if spec.queue}
    missing = sorted(name for name, queue in queues.items() if queue is None)
    if missing:
        raise Invalid(f"no queue named {', '.join(missing)}", {"queue": f"no queue named {', '.join(missing)}"})
    return {spec.name: _upsert(session, spec, queues.get(spec.queue), actor) for spec in specs}


def _upsert(session: Session, spec: ToolSpec, queue: Queue | None, actor: Actor) -> str:
    values = {"arguments": {name: limit.model_dump(mode="json", exclude_defaults=True)
                            for name, limit in spec.arguments.items()},
              "two_approvals": spec.two_approvals, "queue_id": queue.id if queue else None}
    tool = tool_named(session, spec.name)
    if tool is None:
        tool = AgentTool(name=spec.name, **values)
        session.add(tool)
        session.flush()
        chain.record(session, AuditAction.AGENT_TOOL_CREATED, actor, data={"tool_id": tool.id, "name": tool.name,
                                                                             **values})
        return "created"
    before = {field: getattr(tool, field) for field in values}
    changes = {field: [before[field], value] for field, value in values.items() if before[field] != value}
    if not changes:
        return "unchanged"
    for field, value in values.items():
        setattr(tool, field, value)
    session.flush()
    chain.record(session, AuditAction.AGENT_TOOL_UPDATED, actor, data={"tool_id": tool.id, "name": tool.name,
                                                                         "changes": changes})
    return "updated"
