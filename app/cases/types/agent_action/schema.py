"""The data of an AI agent's tool call waiting for a human (agent_action) and its actions' parameters.

The tool's arguments must be valid under the tool's own JSON Schema, and that schema must itself
be a valid JSON Schema (draft 2020-12): both are checked here, so a stored case always holds a
call that its schema accepts, and a reviewer's edit is checked against the same schema
(`argument_problems`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.cases.types.base import LongText, NonEmptyStr, Reason, ShortText, Strict

MAX_MESSAGES = 20
MAX_RISK_HINTS = 10
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]


def check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) describing an object: its arguments."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise ValueError('the arguments\' schema must describe an object ("type": "object")')
    return schema


def plain_json(value: Any) -> Any:
    """JSON numbers as int or float: the intake reads them exactly (Decimal), but arguments and
    schemas are stored and checked as the agent's JSON has them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, dict):
        return {key: plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_json(item) for item in value]
    return value


JsonObject = Annotated[dict[str, Any], BeforeValidator(plain_json)]
JsonSchema = Annotated[dict[str, Any], BeforeValidator(plain_json), AfterValidator(check_json_schema)]


def argument_problems(schema: dict[str, Any], arguments: dict[str, Any]) -> dict[str, str]:
    """``{"arguments.<path>": message}`` for each way ``arguments`` breaks ``schema``; empty when valid."""
    problems: dict[str, str] = {}
    for error in sorted(Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.path)):
        path = ".".join(str(part) for part in ("arguments", *error.absolute_path))
        problems.setdefault(path, error.message)
    return problems


class Agent(Strict):
    id: NonEmptyStr
    name: ShortText
    version: NonEmptyStr
    model: NonEmptyStr


class Tool(Strict):
    name: ToolName
    description: LongText
    arguments: JsonObject
    arguments_schema: JsonSchema

    @model_validator(mode="after")
    def _arguments_fit_the_schema(self) -> Tool:
        problems = argument_problems(self.arguments_schema, self.arguments)
        if problems:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems.items()))
        return self


class Message(Strict):
    role: Literal["user", "assistant", "tool", "system"]
    content: LongText


class Context(Strict):
    goal: LongText
    messages: list[Message] = Field(default_factory=list, max_length=MAX_MESSAGES)
    reasoning: LongText | None = None


class AgentAction(Strict):
    agent: Agent
    tool: Tool
    context: Context
    risk_hints: list[ShortText] = Field(default_factory=list, max_length=MAX_RISK_HINTS)
    expires_at: AwareDatetime


class ToolArguments(Strict):
    """The arguments to run the tool with: any object; the tool's own JSON Schema checks them
    against the case (`argument_problems`)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any) -> Any:
        return plain_json(value)


def amount(data: AgentAction) -> None:
    """A tool call has no amount of its own: its policy limits its arguments."""
    return None


def expires_at(data: AgentAction) -> datetime:
    return data.expires_at


# "execute": run the tool with these arguments (approve, or edit them); "refuse": do not run it.
ACTIONS = {"execute": ToolArguments, "refuse": Reason}


def action_problems(data: AgentAction, action: str, parameters: dict[str, Any]) -> dict[str, str]:
    """What is wrong with running this call's tool with ``parameters``: its JSON Schema decides."""
    if action != "execute":
        return {}
    problems = argument_problems(data.tool.arguments_schema, parameters)
    return {path.replace("arguments", "parameters", 1): message for path, message in problems.items()}


def parameters_schema(data: AgentAction, action: str) -> dict[str, Any] | None:
    """The decision form of "execute" is the tool's own arguments' schema."""
    return data.tool.arguments_schema if action == "execute" else None
