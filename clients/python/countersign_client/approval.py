"""`@require_approval`: a tool function that runs only once a human approved the call, with the
arguments they approved; and `agent_context`, where the agent loop says who it is and why it calls.

    @require_approval(domain="finance", tool="issue_refund", timeout=600)
    def issue_refund(order_id: str, amount: float, currency: Literal["EUR", "USD"] = "EUR") -> str: ...

    with agent_context(agent=Agent(id="support-7", name="Support agent", version="2.3", model="gpt-4.1"),
                       goal="Resolve the customer's complaint", messages=history):
        issue_refund("ORD-1", 180.0)     # asks, waits, then runs with the approved (maybe edited) arguments
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from countersign_client.client import AsyncCountersign, Countersign
from countersign_client.errors import CountersignError
from countersign_client.models import Agent, Approved, Context, Message, Responded, ToolCall

P = ParamSpec("P")
R = TypeVar("R")
DEFAULT_AGENT = Agent(id="python-agent", name="Python agent")
UNSTATED_GOAL = "(the agent did not state its goal)"
ROLES = {"user": "user", "assistant": "assistant", "tool": "tool", "function": "tool", "system": "system",
         "developer": "system"}


# --- the agent's context ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentContext:
    """What the agent loop tells the reviewer about every call it makes in this context."""

    agent: Agent | None = None
    goal: str | None = None
    messages: Sequence[Message | Mapping[str, Any]] | None = None  # read when the call is made
    reasoning: str | None = None
    risk_hints: tuple[str, ...] = ()
    expires_at: datetime | None = None

    def merged(self, inner: AgentContext) -> AgentContext:
        """``inner`` where it says something, else this; risk hints add up."""
        given = {name: value for name, value in vars(inner).items()
                 if value is not None and name != "risk_hints"}
        return replace(self, **given, risk_hints=self.risk_hints + inner.risk_hints)


_CURRENT: ContextVar[AgentContext | None] = ContextVar("countersign_agent_context", default=None)


def current_context() -> AgentContext:
    """What the enclosing `agent_context` blocks say (nothing outside them)."""
    return _CURRENT.get() or AgentContext()


@contextlib.contextmanager
def agent_context(*, agent: Agent | None = None, goal: str | None = None,
                  messages: Sequence[Message | Mapping[str, Any]] | None = None, reasoning: str | None = None,
                  risk_hints: Sequence[str] = (), expires_at: datetime | None = None) -> Iterator[AgentContext]:
    """Within the block (and the asyncio tasks it starts), every approval request says this.
    ``messages`` may be the loop's own list, read at each call: OpenAI-style dicts are accepted
    (a tool-calling assistant turn is shown as the calls it made). Nested blocks override what
    they give; risk hints add up."""
    context = current_context().merged(AgentContext(agent, goal, messages, reasoning, tuple(risk_hints), expires_at))
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def as_message(message: Message | Mapping[str, Any]) -> Message | None:
    """A message as the server takes it, from ours or an OpenAI-style dict; None when it says nothing."""
    if isinstance(message, Message):
        return message
    role = ROLES.get(str(message.get("role")), "assistant")
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    calls = [call.get("function", {}) for call in message.get("tool_calls") or [] if isinstance(call, Mapping)]
    said = [str(content).strip()] if content else []
    said += [f"calls {call.get('name')}({call.get('arguments', '')})" for call in calls]
    text = " ".join(part for part in said if part)
    return Message(role=role, content=text) if text else None  # type: ignore[arg-type]


# --- the decorator ---------------------------------------------------------------------------------


class _Signature:
    """The function's parameters as a pydantic model: its JSON Schema for the reviewer's form, and
    the validation of the agent's and the reviewer's arguments."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
        fields: dict[str, Any] = {}
        for name, parameter in self.signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"{func.__qualname__}: a tool's parameters are named: *{name} cannot be approved")
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[name] = (hints.get(name, Any), default)
        self.model: type[BaseModel] = create_model(  # type: ignore[call-overload]
            f"{func.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        self.schema = self.model.model_json_schema()

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments, defaults filled in, checked against the hints, as JSON."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self.model.model_validate(dict(bound.arguments)).model_dump(mode="json")

    def call_with(self, approved: Approved, tool: str) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the function, from the approved ones."""
        try:
            values = self.model.model_validate(approved.arguments)
        except ValidationError as exc:
            raise CountersignError(f"the arguments approved in case {approved.case_id} do not fit {tool}'s "
                                   f"parameters: {exc}") from exc
        positional, named = [], {}
        for name, parameter in self.signature.parameters.items():
            value = getattr(values, name)
            if parameter.kind is parameter.POSITIONAL_ONLY:
                positional.append(value)
            else:
                named[name] = value
        return positional, named


@dataclass(frozen=True)
class _Tool:
    name: str
    description: str
    domain: str
    queue: str | None
    timeout: float
    defaults: AgentContext
    signature: _Signature

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolCall:
        context = self.defaults.merged(current_context())
        messages = [m for m in (as_message(m) for m in context.messages or ()) if m is not None]
        return ToolCall(
            name=self.name, description=self.description, arguments=self.signature.arguments(args, kwargs),
            arguments_schema=self.signature.schema, agent=context.agent or DEFAULT_AGENT,
            context=Context(goal=context.goal or UNSTATED_GOAL, messages=messages, reasoning=context.reasoning),
            risk_hints=list(context.risk_hints), expires_at=context.expires_at)

    def tool_spec(self) -> dict[str, Any]:
        """The tool as function-calling APIs declare it: ``{"type": "function", "function": tool_spec}``."""
        return {"name": self.name, "description": self.description, "parameters": self.signature.schema}

    def options(self) -> dict[str, Any]:
        return {"domain": self.domain, "timeout": self.timeout, "queue": self.queue}


def require_approval(domain: str, tool: str | None = None, queue: str | None = None, timeout: float = 600,
                     client: Countersign | AsyncCountersign | None = None, *, description: str | None = None,
                     agent: Agent | None = None, goal: str | None = None, risk_hints: Sequence[str] = (),
                     expires_at: datetime | None = None) -> Callable[[Callable[P, R]], Callable[P, R | str]]:
    """Each call of the decorated function (sync or async) is first submitted to Countersign as an
    ``agent_action`` case of ``domain`` and waited for (``timeout`` seconds at most). Approved: the
    function runs with the approved, possibly edited, arguments (validated against its type hints)
    and its result is returned. Answered by a reviewer: the answer (a string) is returned and the
    function does not run. Otherwise `Rejected`, `Expired`, `NotApproved` or `ApprovalTimeout`.

    ``tool`` defaults to the function's name and ``description`` to its docstring. ``queue`` is the
    queue the tool's policy on the server routes it to (the case itself cannot choose one): the
    client warns (`QueueMismatchWarning`) when the server put the call elsewhere. ``agent``, ``goal``,
    ``risk_hints`` and ``expires_at`` are defaults that `agent_context` overrides (risk hints add
    up). ``client=None``: a client from COUNTERSIGN_URL, COUNTERSIGN_TOKEN and
    COUNTERSIGN_SIGNING_SECRET, made for each call."""

    def decorate(func: Callable[P, R]) -> Callable[P, R | str]:
        spec = _Tool(name=tool or func.__name__,
                     description=description or inspect.getdoc(func) or f"{func.__name__} (no description given)",
                     domain=domain, queue=queue, timeout=timeout,
                     defaults=AgentContext(agent, goal, None, None, tuple(risk_hints), expires_at),
                     signature=_Signature(func))
        if inspect.iscoroutinefunction(func):
            return _async_wrapper(func, spec, client)  # type: ignore[arg-type,return-value]
        if isinstance(client, AsyncCountersign):
            raise TypeError(f"{func.__qualname__} is not async: give it a Countersign client, not an AsyncCountersign")
        return _sync_wrapper(func, spec, client)

    return decorate


def _sync_wrapper(func: Callable[P, R], spec: _Tool, client: Countersign | None) -> Callable[P, R | str]:
    @functools.wraps(func)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R | str:
        call = spec.call(args, kwargs)
        if client is not None:
            outcome = client.request_tool_approval(call, **spec.options())
        else:
            with Countersign.from_env() as own:
                outcome = own.request_tool_approval(call, **spec.options())
        if isinstance(outcome, Responded):
            return outcome.answer
        positional, named = spec.signature.call_with(outcome, spec.name)
        return func(*positional, **named)

    guarded.tool_spec = spec.tool_spec()  # type: ignore[attr-defined]
    return guarded


def _async_wrapper(func: Callable[P, Awaitable[R]], spec: _Tool,
                   client: Countersign | AsyncCountersign | None) -> Callable[P, Awaitable[R | str]]:
    @functools.wraps(func)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R | str:
        call = spec.call(args, kwargs)
        if isinstance(client, AsyncCountersign):
            outcome = await client.request_tool_approval(call, **spec.options())
        elif isinstance(client, Countersign):  # a blocking client: waits in a thread, not in the event loop
            outcome = await asyncio.to_thread(client.request_tool_approval, call, **spec.options())
        else:
            async with AsyncCountersign.from_env() as own:
                outcome = await own.request_tool_approval(call, **spec.options())
        if isinstance(outcome, Responded):
            return outcome.answer
        positional, named = spec.signature.call_with(outcome, spec.name)
        return await func(*positional, **named)

    guarded.tool_spec = spec.tool_spec()  # type: ignore[attr-defined]
    return guarded
