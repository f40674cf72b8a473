"""``countersign-mcp-gateway``: an MCP proxy in front of another MCP server (the upstream) that
runs the guarded tools only once a Countersign reviewer approved the call.

The agent connects to the gateway instead of the upstream and sees the upstream's tools. A call of
an unguarded tool passes through unchanged. A call of a guarded tool is submitted as an
``agent_action`` (with the tool's input schema, so reviewers can edit the arguments), and then:
approved → forwarded with the approved, possibly edited, arguments; rejected → a tool error with
the reviewer's feedback; answered → the answer is the result and the upstream is never called;
still undecided after ``--max-wait`` → a tool error naming the case, and calling again with the
same arguments waits on the same case."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from countersign_client import Context, ToolCall
from countersign_client.mcp import _cli
from countersign_client.mcp.approvals import (
    ApprovalResult,
    Approvals,
    CountersignUnavailable,
    Report,
    agent_of,
    canonical,
)


@dataclass(frozen=True)
class Guard:
    """A tool whose calls need an approval, and the domain whose reviewers give it."""

    tool: str
    domain: str
    goal: str | None = None


class ConfigError(ValueError):
    """The guard configuration is not usable; the message names the problem."""


def load_guards(path: Path, default_domain: str | None) -> dict[str, Guard]:
    """The guards of a JSON or YAML file: ``{"domain": D, "tools": {name: {"domain": D, "goal": G}}}``,
    ``tools`` also a list of names; each tool's domain defaults to the file's, then to ``default_domain``."""
    text = path.read_text(encoding="utf-8")
    document = _yaml(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("tools"), dict | list):
        raise ConfigError(f"{path}: expected an object with `tools` (an object or a list of tool names)")
    domain = document.get("domain", default_domain)
    tools = document["tools"]
    entries = tools.items() if isinstance(tools, dict) else ((name, {}) for name in tools)
    return {name: _guard(name, options or {}, domain, path) for name, options in entries}


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError("a YAML guard file needs PyYAML (pip install 'countersign-client[mcp]')") from None
    return yaml.safe_load(text)


def _guard(name: str, options: Mapping[str, Any], domain: str | None, source: object) -> Guard:
    unknown = set(options) - {"domain", "goal"}
    if unknown:
        raise ConfigError(f"{source}: tool {name}: unknown settings {sorted(unknown)}")
    chosen = options.get("domain", domain)
    if not chosen:
        raise ConfigError(f"{source}: tool {name} has no domain: give it one, or --domain")
    return Guard(tool=name, domain=chosen, goal=options.get("goal"))


@dataclass(frozen=True)
class Upstream:
    """Where the upstream MCP server is: a streamable HTTP URL, or a command run over stdio."""

    url: str | None = None
    command: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@asynccontextmanager
async def connected(upstream: Upstream) -> AsyncIterator[ClientSession]:
    """An initialized session with the upstream, closed (and its process stopped) at the end."""
    async with AsyncExitStack() as stack:
        if upstream.url:
            read, write = await stack.enter_async_context(streamable_http_client(upstream.url))
        else:
            command, *args = upstream.command
            # The SDK's safe default environment, not the gateway's: Countersign's credentials stay here.
            parameters = StdioServerParameters(command=command, args=args,
                                               env={**get_default_environment(), **upstream.env})
            read, write = await stack.enter_async_context(stdio_client(parameters))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


class Gateway:
    """The gateway's two handlers (list and call tools) over one upstream session."""

    def __init__(self, upstream: ClientSession, approvals: Approvals, guards: Mapping[str, Guard], *,
                 agent_id: str | None = None, agent_model: str = "unknown") -> None:
        self.upstream = upstream
        self.approvals = approvals
        self.guards = dict(guards)
        self.agent_id = agent_id
        self.agent_model = agent_model
        self._tools: dict[str, types.Tool] = {}
        self._pending: dict[tuple[str, str], int] = {}

    def server(self) -> Server[Any]:
        return Server("countersign-gateway", on_list_tools=self.list_tools, on_call_tool=self.call_tool)

    async def list_tools(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None,
                         ) -> types.ListToolsResult:
        listed = await self.upstream.list_tools(params=params)
        self._tools.update((tool.name, tool) for tool in listed.tools)
        return listed.model_copy(update={"tools": [self._offered(tool) for tool in listed.tools]})

    def _offered(self, tool: types.Tool) -> types.Tool:
        # A reviewer's answer can stand in for a guarded tool's result, so its output schema cannot be promised.
        return tool.model_copy(update={"output_schema": None}) if tool.name in self.guards else tool

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams,
                        ) -> types.CallToolResult:
        arguments = params.arguments or {}
        guard = self.guards.get(params.name)
        if guard is None:
            return await self.upstream.call_tool(params.name, arguments)
        tool = await self._tool(params.name)
        if tool is None:  # not listed, so no schema to review it by: never forwarded unapproved
            return failure(f"Countersign: {params.name} is not a tool the upstream server lists; it was not run.")
        try:
            decided = await self._approval(ctx, guard, tool, arguments)
        except CountersignUnavailable as error:
            return failure(f"{error}; {params.name} was not run.")
        if decided.status in ("approved", "edited"):
            return await self.upstream.call_tool(params.name, decided.arguments)
        if decided.status == "responded":
            return types.CallToolResult(content=[types.TextContent(type="text", text=decided.answer or "")])
        return failure(refusal(params.name, decided))

    async def _tool(self, name: str) -> types.Tool | None:
        if name not in self._tools:
            cursor = None
            while True:  # every page, once: a client may call a tool without listing them first
                listed = await self.upstream.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
                self._tools.update((tool.name, tool) for tool in listed.tools)
                cursor = listed.next_cursor
                if not cursor:
                    break
        return self._tools.get(name)

    async def _approval(self, ctx: ServerRequestContext[Any], guard: Guard, tool: types.Tool,
                        arguments: dict[str, Any]) -> ApprovalResult:
        key = (tool.name, canonical(arguments))
        report = progress_of(ctx)
        pending = self._pending.pop(key, None)
        if pending is None:
            decided = await self.approvals.ask(self._call(ctx, guard, tool, arguments), domain=guard.domain,
                                               wait=None, report=report)
        else:
            decided = await self.approvals.decision(pending, wait=None, report=report)
        if decided.status == "pending":
            self._pending[key] = decided.case_id
        return decided

    def _call(self, ctx: ServerRequestContext[Any], guard: Guard, tool: types.Tool,
              arguments: dict[str, Any]) -> ToolCall:
        client_info = getattr(ctx.session.client_params, "client_info", None)
        return ToolCall(
            name=tool.name, description=tool.description or f"The upstream MCP tool {tool.name}.",
            arguments=arguments, arguments_schema=tool.input_schema,
            agent=agent_of(client_info, agent_id=self.agent_id, model=self.agent_model),
            context=Context(goal=guard.goal or f"Run {tool.name} through the Countersign MCP gateway."))


def failure(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def refusal(tool: str, decided: ApprovalResult) -> str:
    case = f"case {decided.case_id}"
    if decided.status == "rejected":
        return f"Countersign: a reviewer rejected this call of {tool} ({case}): {decided.feedback or 'no reason given'}"
    if decided.status == "pending":
        return (f"Countersign: this call of {tool} is still waiting for a reviewer ({case}); call {tool} again "
                "with the same arguments to keep waiting for the decision.")
    return f"Countersign: this call of {tool} ended as {decided.status} ({case}); it was not run."


def progress_of(ctx: ServerRequestContext[Any]) -> Report:
    async def report(waited: float, message: str) -> None:
        await ctx.session.report_progress(waited, None, message)

    return report


# --- the command ---------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, Upstream, dict[str, Guard]]:
    parser = argparse.ArgumentParser(
        prog="countersign-mcp-gateway", description=__doc__.split("\n\n")[0],
        usage="%(prog)s [options] (--upstream-url URL | -- COMMAND [ARGS...])")
    _cli.add_common_arguments(parser)
    parser.add_argument("--guard", action="append", default=[], metavar="TOOL",
                        help="a tool whose calls need an approval (repeatable); its domain is --domain")
    parser.add_argument("--domain", help="the domain of the guarded tools that do not name their own")
    parser.add_argument("--config", type=Path, help="a JSON or YAML file of guarded tools (see docs/mcp.md)")
    parser.add_argument("--upstream-url", help="the upstream's streamable HTTP URL")
    parser.add_argument("--upstream-env", action="append", default=[], metavar="NAME",
                        help="pass this variable of the gateway's environment to the upstream command (repeatable)")
    own, command = _split_command(list(argv))
    arguments = parser.parse_args(own)
    if bool(arguments.upstream_url) == bool(command):
        parser.error("give the upstream: --upstream-url URL, or a command after --")
    env = {name: os.environ[name] for name in arguments.upstream_env if name in os.environ}
    try:
        guards = load_guards(arguments.config, arguments.domain) if arguments.config else {}
        guards |= {name: _guard(name, {}, arguments.domain, "--guard") for name in arguments.guard}
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if not guards:
        parser.error("guard at least one tool: --guard TOOL or --config FILE")
    return arguments, Upstream(url=arguments.upstream_url, command=command, env=env), guards


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]


def main(argv: Sequence[str] | None = None) -> None:
    arguments, upstream, guards = parse(sys.argv[1:] if argv is None else argv)
    _cli.check_transport(arguments)
    anyio.run(serve, arguments, upstream, guards)


async def serve(arguments: argparse.Namespace, upstream: Upstream, guards: Mapping[str, Guard]) -> None:
    async with _cli.client_from_environment() as client, connected(upstream) as session:
        gateway = Gateway(session, _cli.approvals(client, arguments), guards, agent_id=arguments.agent_id,
                          agent_model=arguments.agent_model)
        server = gateway.server()
        if arguments.transport == "stdio":
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        else:
            await _cli.serve_http(server, arguments)


if __name__ == "__main__":
    main()

