"""``countersign-mcp``: an MCP server an agent asks before it runs a risky tool.

``request_approval`` submits the call as an ``agent_action`` case and waits (bounded) for the
reviewers; ``get_decision`` reads, or waits a little more for, the decision on an earlier call.
Countersign's credentials come from the environment and are never logged nor returned."""

from __future__ import annotations

import argparse
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from countersign_client import Context as CallContext
from countersign_client import Message, ToolCall
from countersign_client.mcp import _cli
from countersign_client.mcp.approvals import ApprovalResult, Approvals, CountersignUnavailable, Report, agent_of

INSTRUCTIONS = (
    "Before running a tool call that moves money, deletes data, contacts people or is otherwise risky, call "
    "request_approval with the call. Run it only when the status is approved or edited, and then with the "
    "returned arguments. On rejected, do not run it and take the feedback into account; on responded, read the "
    "answer instead of running it; on pending, call get_decision with the case_id later.")
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def build_server(approvals: Approvals, *, agent_id: str | None = None, agent_model: str = "unknown") -> MCPServer:
    server = MCPServer("countersign", instructions=INSTRUCTIONS)

    @server.tool()
    async def request_approval(
        domain: Annotated[str, Field(description="the Countersign domain whose reviewers decide: finance, legal "
                                                 "or compliance")],
        tool_name: Annotated[str, Field(description="the tool the agent wants to run")],
        arguments: Annotated[dict[str, Any], Field(description="the call's arguments")],
        ctx: Context,
        arguments_schema: Annotated[dict[str, Any] | None, Field(
            description="the arguments' JSON Schema; reviewers edit the arguments in a form built from it")] = None,
        description: Annotated[str | None, Field(description="what the tool does")] = None,
        goal: Annotated[str | None, Field(description="what the agent is trying to achieve")] = None,
        reasoning: Annotated[str | None, Field(description="why the agent makes this call")] = None,
        messages: Annotated[list[Message] | None, Field(
            description="the last messages or steps of the conversation (up to 20 are kept)")] = None,
        risk_hints: Annotated[list[str] | None, Field(description="short notes on the call's risk")] = None,
        timeout_seconds: Annotated[float | None, Field(
            description="wait at most this long for the decision (the server has its own maximum)")] = None,
    ) -> ApprovalResult:
        """Ask a human reviewer at Countersign to approve a tool call before running it, and wait for the
        decision. Run the tool only when the status is approved or edited, with the returned arguments."""
        client_info = getattr(ctx.session.client_params, "client_info", None)
        call = ToolCall(
            name=tool_name, description=description or f"The agent's tool {tool_name}.", arguments=arguments,
            arguments_schema=arguments_schema or ANY_OBJECT,
            agent=agent_of(client_info, agent_id=agent_id, model=agent_model),
            context=CallContext(goal=goal or "Not stated by the agent.", messages=messages or [],
                                reasoning=reasoning),
            risk_hints=risk_hints or [])
        try:
            return await approvals.ask(call, domain=domain, wait=timeout_seconds, report=progress_of(ctx))
        except CountersignUnavailable as error:
            raise ToolError(str(error)) from None

    @server.tool()
    async def get_decision(
        case_id: Annotated[int, Field(description="the case_id request_approval returned")],
        ctx: Context,
        timeout_seconds: Annotated[float, Field(
            description="wait at most this long for a decision still pending (0: answer at once)")] = 0,
    ) -> ApprovalResult:
        """The reviewers' decision on a tool call asked earlier with request_approval."""
        try:
            return await approvals.decision(case_id, wait=timeout_seconds, report=progress_of(ctx))
        except CountersignUnavailable as error:
            raise ToolError(str(error)) from None

    return server


def progress_of(ctx: Context) -> Report:
    async def report(waited: float, message: str) -> None:
        await ctx.report_progress(waited, None, message)

    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="countersign-mcp", description=__doc__.split("\n\n")[0])
    _cli.add_common_arguments(parser)
    arguments = parser.parse_args(argv)
    _cli.check_transport(arguments)
    anyio.run(serve, arguments)


async def serve(arguments: argparse.Namespace) -> None:
    async with _cli.client_from_environment() as client:
        server = build_server(_cli.approvals(client, arguments), agent_id=arguments.agent_id,
                              agent_model=arguments.agent_model)
        if arguments.transport == "stdio":
            await server.run_stdio_async()
        else:
            await _cli.serve_http(server, arguments)


if __name__ == "__main__":
    main()
