"""The local analyzer of agent_action: the call checked against its tool's policy and schema.

It recommends one of three things: approve (run the tool as called), edit (run it with corrected
arguments, e.g. an amount clamped to the tool's limit) or reject (refuse the call), with reasons."""

from __future__ import annotations

from app.cases.types.base import Analysis, Reason
from app.cases.types.signals import Signal, conclude, loc

from .schema import AgentAction, ToolArguments, argument_problems
from .tool_policy import Finding, ToolPolicy, findings, policy_for

NO_POLICY_WEIGHT = 0.3
RISK_HINT_WEIGHT = 0.15
PATHS = ["tool.name", "tool.arguments", "context.goal"]


def analyze(data: AgentAction) -> Analysis:
    return analyze_with(data, policy_for(data.tool.name))


def analyze_with(data: AgentAction, policy: ToolPolicy | None) -> Analysis:
    """The recommendation for ``data`` under ``policy`` (None: the tool has none configured)."""
    hints = [Signal("agent_risk_hint", RISK_HINT_WEIGHT, f"the agent flags: {hint}", (loc("risk_hints", index),))
             for index, hint in enumerate(data.risk_hints)]
    if policy is None:
        signals = [Signal("no_tool_policy", NO_POLICY_WEIGHT, f"no policy is configured for tool {data.tool.name}",
                          ("tool.name",)), *hints]
        summary = f"Approve: no policy limits {data.tool.name}; a reviewer judges the call on its context."
        return _run(data, data.tool.arguments, summary, signals, confidence=0.5)
    found = findings(policy, data.tool.arguments)
    signals = [*(_signal(finding) for finding in found), *hints]
    if not found:
        summary = f"Approve: the call keeps within every limit of the {data.tool.name} policy."
        return _run(data, data.tool.arguments, summary, signals, confidence=0.9)
    corrected = {**data.tool.arguments, **{f.argument: f.corrected for f in found if f.fixable}}
    if all(f.fixable for f in found) and not argument_problems(data.tool.arguments_schema, corrected):
        changes = ", ".join(f"{f.argument} → {f.corrected}" for f in found)
        summary = f"Edit: run {data.tool.name} within its policy limits ({changes})."
        return _run(data, corrected, summary, signals, confidence=0.8)
    reason = f"Rejected: the call breaks the {data.tool.name} policy: " + "; ".join(f.detail for f in found) + "."
    summary = f"Reject: {data.tool.name} is called outside its policy, and no correction follows from the limits."
    return conclude("refuse", Reason(reason=reason), summary, signals, confidence=0.9, paths=PATHS)


def _signal(finding: Finding) -> Signal:
    flag = "argument_over_limit" if finding.fixable else "argument_not_allowed"
    return Signal(flag, 0.5 if finding.fixable else 0.8, finding.detail, (loc("tool", "arguments", finding.argument),))


def _run(data: AgentAction, arguments: dict[str, object], summary: str, signals: list[Signal], *,
         confidence: float) -> Analysis:
    return conclude("execute", ToolArguments.model_validate(arguments), summary, signals, confidence=confidence,
                    paths=PATHS)
