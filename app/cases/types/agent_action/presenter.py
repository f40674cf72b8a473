"""How the case page shows an agent's tool call (agent_action): the agent, the tool, the call's
arguments, and its context as a conversation (goal, messages, the agent's reasoning)."""

from __future__ import annotations

import json
from typing import Any

from app.cases.types.signals import loc
from app.cases.types.view import Block, CaseView, Item, Section, items_of, text


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _conversation(context: dict[str, Any]) -> Section:
    blocks = [Block("Goal", "user goal", text(context.get("goal")), "context.goal")]
    blocks += [Block(message.get("role", ""), f"message {index + 1}", text(message.get("content")),
                     loc("context", "messages", index, "content"))
               for index, message in enumerate(context.get("messages", []))]
    if context.get("reasoning"):
        blocks.append(Block("assistant", "stated reasoning", text(context["reasoning"]), "context.reasoning"))
    return Section("Conversation", blocks=tuple(blocks), wide=True)


def present(data: dict[str, Any]) -> CaseView:
    agent, tool = data.get("agent", {}), data.get("tool", {})
    arguments = tool.get("arguments", {})
    sections = [
        _conversation(data.get("context", {})),
        Section("Tool call", (
            *items_of(tool, "tool", ("name", "Tool", text)),
            Item("Description", text(tool.get("description")), "tool.description", long=True),
            *(Item(name, value if isinstance(value, str) else _json(value), loc("tool", "arguments", name))
              for name, value in arguments.items()),
        )),
        Section("Agent", tuple(items_of(agent, "agent", ("name", "Name", text), ("id", "ID", text),
                                        ("version", "Version", text), ("model", "Model", text)))),
    ]
    if data.get("risk_hints"):
        sections.append(Section("Risk hints from the agent", tuple(
            Item(f"Hint {index + 1}", text(hint), loc("risk_hints", index), "warn")
            for index, hint in enumerate(data["risk_hints"]))))
    summary = (
        Item("Tool", text(tool.get("name")), "tool.name"),
        Item("Agent", f"{text(agent.get('name'))} {text(agent.get('version'))}".strip(), "agent.name"),
        Item("Expires at", text(data.get("expires_at")), "expires_at", "warn"),
    )
    return CaseView(summary, tuple(sections))
