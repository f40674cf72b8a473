"""The MCP server (countersign-mcp) and the approval gateway (countersign-mcp-gateway) of the Python
client, driven by the MCP SDK's own client (ClientSession) over stdio and streamable HTTP, against
Countersign over real HTTP, with reviewers deciding through the reviewer API. The gateway stands in
front of a real upstream MCP server (examples/mcp_shop_server.py) that records every call it runs.

Each agent's session runs in its own thread (its own event loop) while the test thread plays the
reviewer; every wait is bounded."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from rq import SimpleWorker
from sqlalchemy import func, select

from app.auth.services import create_api_token
from app.cases.models import Case, Status
from app.extensions import db
from tests.conftest import ROOT
from tests.review_helpers import EXAMPLES
from workers.demo import free_port

pytest_plugins = ["tests.review_fixtures"]

T = TypeVar("T")
BIN = Path(sys.executable).parent  # the commands, as `pip install countersign-client[mcp]` installs them
SHOP = ROOT / "examples" / "mcp_shop_server.py"
STEP_TIMEOUT = 60  # seconds: any one wait of these tests (a decision, a tool call, a process start)
REFUND = EXAMPLES["agent_action"]["tool"]
ORDER = {"order_id": "ORD-58213", "amount": 180.0, "currency": "EUR"}


# --- reviewers and the database -------------------------------------------------------------------


@dataclass
class Reviewer:
    """A reviewer deciding through the reviewer API, with the analysis and delivery workers run around it."""

    http: Any
    token: str
    redis: Any

    def decide(self, case_id: int, kind: str, **fields: Any) -> None:
        SimpleWorker(["ai"], connection=self.redis).work(burst=True)
        auth = {"Authorization": f"Bearer {self.token}"}
        claimed = self.http.post(f"/api/v1/cases/{case_id}/claim", headers=auth)
        assert claimed.status_code == 200, claimed.get_json()
        db.session.rollback()
        version = db.session.get(Case, case_id).version
        decided = self.http.post(f"/api/v1/cases/{case_id}/decisions", headers=auth,
                                 json={"kind": kind, "case_version": version, **fields})
        assert decided.status_code == 201, decided.get_json()
        SimpleWorker(["execute"], connection=self.redis).work(burst=True)


@pytest.fixture
def reviewer(client, people, redis_conn) -> Reviewer:
    _, token = create_api_token(db.session, people.reviewer, "mcp")
    db.session.commit()
    return Reviewer(client, token, redis_conn)


def newest_call() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.coalesce(func.max(Case.id), 0)).where(Case.case_type == "agent_action"))


def the_call_after(known: int, agent: Future[Any]) -> int:
    """The id of the tool call the agent submits after case ``known``."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if agent.done():
            pytest.fail(f"the agent finished before a reviewer decided: {agent.result()!r}")
        newest = newest_call()
        if newest > known:
            return newest
        time.sleep(0.1)
    pytest.fail(f"no tool call reached Countersign within {STEP_TIMEOUT} s")


def in_background(scenario: Callable[[], Awaitable[T]]) -> Future[T]:
    """Runs the agent's ``scenario`` on its own event loop in another thread."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(anyio.run, scenario)
    pool.shutdown(wait=False)
    return future


# --- starting the MCP servers ------------------------------------------------------------------------


@pytest.fixture
def credentials(live_server, upstream) -> dict[str, str]:
    """The environment of an MCP server run for the API client."""
    return {"COUNTERSIGN_URL": live_server, "COUNTERSIGN_TOKEN": upstream.token,
            "COUNTERSIGN_SIGNING_SECRET": upstream.secret}


@asynccontextmanager
async def over_stdio(command: str, args: list[str], env: dict[str, str], log: Path) -> AsyncIterator[ClientSession]:
    """A session with ``command args`` started as the agent's MCP client starts it."""
    parameters = StdioServerParameters(command=command, args=args, env=env, cwd=ROOT)
    with log.open("a") as errors:
        async with stdio_client(parameters, errlog=errors) as (read, write), \
                ClientSession(read, write, read_timeout_seconds=STEP_TIMEOUT) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def over_http(url: str, token: str | None = None) -> AsyncIterator[ClientSession]:
    """A session over streamable HTTP; with ``token``, presented as the transport's bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with create_mcp_http_client(headers=headers) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, read_timeout_seconds=STEP_TIMEOUT) as session:
        await session.initialize()
        yield session


@contextmanager
def listening(argv: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[None]:
    """``argv`` running until the block ends, once it accepts connections on ``port``."""
    with log.open("a") as output:
        process = subprocess.Popen(argv, cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env}, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STEP_TIMEOUT
        while not accepts(port):
            assert process.poll() is None, f"{argv} exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"{argv} did not listen: {log.read_text()}"
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=STEP_TIMEOUT)


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content)


# --- the MCP server -----------------------------------------------------------------------------------


SERVER = str(BIN / "countersign-mcp")


def refund_call(**overrides: Any) -> dict[str, Any]:
    return {"domain": "finance", "tool_name": REFUND["name"], "arguments": dict(REFUND["arguments"]),
            "arguments_schema": REFUND["arguments_schema"], "description": REFUND["description"],
            "goal": "Refund the damaged espresso machine of order ORD-58213.",
            "messages": [{"role": "user", "content": "My machine arrived broken."}],
            "risk_hints": ["full refund"], **overrides}


def test_the_server_over_stdio_returns_an_approval(credentials, reviewer, tmp_path):
    log = tmp_path / "server.log"
    known = newest_call()

    async def agent() -> tuple[set[str], dict[str, Any]]:
        async with over_stdio(SERVER, [], credentials, log) as session:
            tools = {tool.name for tool in (await session.list_tools()).tools}
            return tools, structured(await session.call_tool("request_approval", refund_call()))

    running = in_background(agent)
    case_id = the_call_after(known, running)
    reviewer.decide(case_id, "approve")
    tools, answer = running.result(timeout=STEP_TIMEOUT)

    assert tools == {"request_approval", "get_decision"}
    assert answer == {"status": "approved", "case_id": case_id, "arguments": REFUND["arguments"],
                      "feedback": None, "answer": None}
    case = db.session.get(Case, case_id)
    assert (case.domain, case.payload["tool"]["name"], case.payload["context"]["goal"]) == (
        "finance", "issue_refund", "Refund the damaged espresso machine of order ORD-58213.")
    assert case.payload["agent"]["name"] == "mcp"  # the SDK client's own name, as it introduced itself
    assert credentials["COUNTERSIGN_TOKEN"] not in log.read_text()


def test_the_server_over_streamable_http_returns_the_edited_arguments(credentials, reviewer, tmp_path):
    port = free_port()
    edited = {**REFUND["arguments"], "amount": 150}
    known = newest_call()

    async def agent() -> tuple[dict[str, Any], dict[str, Any]]:
        async with over_http(f"http://127.0.0.1:{port}/mcp") as session:
            asked = structured(await session.call_tool("request_approval", refund_call()))
            again = structured(await session.call_tool("get_decision", {"case_id": asked["case_id"]}))
            return asked, again

    with listening([SERVER, "--transport", "http", "--port", str(port)], credentials,
                   tmp_path / "server.log", port):
        running = in_background(agent)
        case_id = the_call_after(known, running)
        reviewer.decide(case_id, "edit", action="execute", parameters=edited, reason_code="policy_breach",
                        reason="Refunds above 150 need a manager.")
        asked, again = running.result(timeout=STEP_TIMEOUT)

    assert asked == {"status": "edited", "case_id": case_id, "arguments": edited, "feedback": None, "answer": None}
    assert again == asked


def test_an_undecided_call_is_pending_and_get_decision_tells_the_rejection_later(credentials, reviewer, tmp_path):
    log = tmp_path / "server.log"
    progress: list[str | None] = []

    async def note(done: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async def ask() -> dict[str, Any]:
        async with over_stdio(SERVER, ["--progress-every", "0.2"], credentials, log) as session:
            return structured(await session.call_tool("request_approval", refund_call(timeout_seconds=1),
                                                      progress_callback=note))

    pending = anyio.run(ask)
    assert pending["status"] == "pending"
    assert progress and all(message.startswith("waiting for a Countersign reviewer") for message in progress)
    assert db.session.get(Case, pending["case_id"]).status == Status.RECEIVED  # still with Countersign

    reviewer.decide(pending["case_id"], "reject", reason_code="policy_breach", reason="No refund without a photo.")

    async def look() -> dict[str, Any]:
        async with over_stdio(SERVER, [], credentials, log) as session:
            return structured(await session.call_tool("get_decision", {"case_id": pending["case_id"]}))

    assert anyio.run(look) == {"status": "rejected", "case_id": pending["case_id"], "arguments": None,
                               "feedback": "No refund without a photo.", "answer": None}


def test_the_server_with_bad_credentials_answers_a_clear_tool_error(credentials, tmp_path):
    wrong = {**credentials, "COUNTERSIGN_TOKEN": "cs_not-the-token"}
    log = tmp_path / "server.log"

    async def agent() -> Any:
        async with over_stdio(SERVER, [], wrong, log) as session:
            return await session.call_tool("request_approval", refund_call())

    result = anyio.run(agent)
    assert result.is_error
    assert "Countersign refused the credentials" in text(result), text(result)
    assert "cs_not-the-token" not in text(result) + log.read_text()
    assert newest_call() == 0


# --- the gateway ---------------------------------------------------------------------------------------


GATEWAY = str(BIN / "countersign-mcp-gateway")


def calls_run(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def gateway_arguments(record: Path, *guards: str) -> list[str]:
    return [*guards, "--", sys.executable, str(SHOP), "--record", str(record)]


async def call_through(gateway: list[str], env: dict[str, str], log: Path, tool: str,
                       arguments: dict[str, Any]) -> tuple[Any, Any]:
    """What the gateway lists and answers for one call of ``tool``."""
    async with over_stdio(GATEWAY, gateway, env, log) as session:
        listed = await session.list_tools()
        return listed, await session.call_tool(tool, arguments)


@pytest.mark.parametrize(("kind", "fields", "runs_with", "answers"), [
    ("approve", {}, ORDER, "refunded 180.00 EUR on ORD-58213"),
    ("edit", {"action": "execute", "parameters": {**ORDER, "amount": 150}, "reason_code": "policy_breach",
              "reason": "At most 150 without a manager."},
     {**ORDER, "amount": 150}, "refunded 150.00 EUR on ORD-58213"),
    ("respond", {"reason": "Ask the customer for a photo of the damage first."}, None,
     "Ask the customer for a photo of the damage first."),
])
def test_the_gateway_forwards_a_guarded_call_as_the_reviewer_decided(kind, fields, runs_with, answers, credentials,
                                                                     reviewer, tmp_path):
    record = tmp_path / "calls.jsonl"
    gateway = gateway_arguments(record, "--guard", "issue_refund", "--domain", "finance")
    known = newest_call()
    running = in_background(lambda: call_through(gateway, credentials, tmp_path / "gateway.log", "issue_refund",
                                                  ORDER))
    case_id = the_call_after(known, running)
    assert calls_run(record) == []  # nothing runs while the reviewers decide
    reviewer.decide(case_id, kind, **fields)
    listed, result = running.result(timeout=STEP_TIMEOUT)

    assert not result.is_error, text(result)
    assert text(result) == answers
    assert calls_run(record) == ([{"tool": "issue_refund", "arguments": runs_with}] if runs_with else [])
    offered = {tool.name: tool for tool in listed.tools}
    assert set(offered) == {"issue_refund", "lookup_order"}
    case = db.session.get(Case, case_id)
    assert case.payload["tool"]["arguments"] == ORDER
    assert case.payload["tool"]["arguments_schema"] == offered["issue_refund"].input_schema
    assert case.payload["tool"]["description"] == offered["issue_refund"].description


def test_the_gateway_answers_a_rejection_as_a_tool_error_and_runs_nothing(credentials, reviewer, tmp_path):
    record = tmp_path / "calls.jsonl"
    config = tmp_path / "guards.yaml"
    config.write_text("domain: finance\ntools:\n  issue_refund:\n    goal: Settle refund requests.\n")
    gateway = gateway_arguments(record, "--config", str(config))
    known = newest_call()
    running = in_background(lambda: call_through(gateway, credentials, tmp_path / "gateway.log", "issue_refund",
                                                  ORDER))
    case_id = the_call_after(known, running)
    reviewer.decide(case_id, "reject", reason_code="policy_breach", reason="The carrier pays for damage, not us.")
    _, result = running.result(timeout=STEP_TIMEOUT)

    assert result.is_error
    assert "The carrier pays for damage, not us." in text(result)
    assert calls_run(record) == []
    assert db.session.get(Case, case_id).payload["context"]["goal"] == "Settle refund requests."


def test_the_gateway_passes_unguarded_tools_through_without_asking(credentials, tmp_path):
    record = tmp_path / "calls.jsonl"
    gateway = gateway_arguments(record, "--guard", "issue_refund", "--guard", "wire_money", "--domain", "finance")

    async def agent() -> tuple[Any, Any]:
        async with over_stdio(GATEWAY, gateway, credentials, tmp_path / "gateway.log") as session:
            return (await session.call_tool("lookup_order", {"order_id": "ORD-1"}),
                    await session.call_tool("wire_money", {"amount": 5}))

    unguarded, unlisted = anyio.run(agent)
    assert text(unguarded) == "ORD-1: total 180.00 EUR, delivered"
    assert calls_run(record) == [{"tool": "lookup_order", "arguments": {"order_id": "ORD-1"}}]
    assert unlisted.is_error  # a guarded name the upstream does not list is never forwarded unapproved
    assert "wire_money is not a tool the upstream server lists" in text(unlisted)
    assert newest_call() == 0


def test_the_gateway_with_bad_credentials_runs_nothing_and_says_why(credentials, tmp_path):
    record = tmp_path / "calls.jsonl"
    wrong = {**credentials, "COUNTERSIGN_SIGNING_SECRET": "whsec_bm90IHRoZSBzZWNyZXQ="}
    gateway = gateway_arguments(record, "--guard", "issue_refund", "--domain", "finance")
    _, result = anyio.run(call_through, gateway, wrong, tmp_path / "gateway.log", "issue_refund", ORDER)

    assert result.is_error
    assert "Countersign refused the credentials" in text(result), text(result)
    assert calls_run(record) == []
    assert newest_call() == 0


def test_the_gateway_over_http_keeps_an_undecided_call_and_a_retry_waits_on_the_same_case(credentials, reviewer,
                                                                                         tmp_path):
    record = tmp_path / "calls.jsonl"
    shop_port, gateway_port = free_port(), free_port()
    shop = [sys.executable, str(SHOP), "--record", str(record), "--transport", "http", "--port", str(shop_port)]
    gateway = [GATEWAY, "--transport", "http", "--port", str(gateway_port), "--max-wait", "1",
               "--guard", "issue_refund", "--domain", "finance", "--upstream-url", f"http://127.0.0.1:{shop_port}/mcp"]

    async def call() -> Any:
        async with over_http(f"http://127.0.0.1:{gateway_port}/mcp", token=HTTP_TOKEN) as session:
            return await session.call_tool("issue_refund", ORDER)

    with listening(shop, {}, tmp_path / "shop.log", shop_port), \
            listening(gateway, {**credentials, "COUNTERSIGN_MCP_TOKEN": HTTP_TOKEN}, tmp_path / "gateway.log",
                      gateway_port):
        assert refused_without_the_token(f"http://127.0.0.1:{gateway_port}/mcp")
        undecided = anyio.run(call)
        assert undecided.is_error
        case_id = newest_call()
        assert f"still waiting for a reviewer (case {case_id})" in text(undecided), text(undecided)
        assert calls_run(record) == []

        reviewer.decide(case_id, "approve")
        retried = anyio.run(call)

    assert text(retried) == "refunded 180.00 EUR on ORD-58213"
    assert calls_run(record) == [{"tool": "issue_refund", "arguments": ORDER}]
    assert newest_call() == case_id  # the retry asked no new question


HTTP_TOKEN = "agents-only-0123456789"


def refused_without_the_token(url: str) -> bool:
    """Without the transport's token, or with another, nothing reaches the MCP server: 401."""
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    answers = [httpx.post(url, json=hello, headers={**headers, **extra}, timeout=STEP_TIMEOUT)
               for extra in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": HTTP_TOKEN})]
    return all(a.status_code == 401 and a.headers["WWW-Authenticate"].startswith("Bearer") for a in answers)


def test_the_server_over_http_with_a_token_serves_its_bearers_only(credentials, tmp_path):
    port = free_port()

    async def tools() -> list[str]:
        async with over_http(f"http://127.0.0.1:{port}/mcp", token=HTTP_TOKEN) as session:
            return sorted(tool.name for tool in (await session.list_tools()).tools)

    with listening([SERVER, "--transport", "http", "--port", str(port)],
                   {**credentials, "COUNTERSIGN_MCP_TOKEN": HTTP_TOKEN}, tmp_path / "server.log", port):
        assert refused_without_the_token(f"http://127.0.0.1:{port}/mcp")
        assert anyio.run(tools) == ["get_decision", "request_approval"]
    assert HTTP_TOKEN not in (tmp_path / "server.log").read_text()


def test_a_call_countersign_refuses_is_a_tool_error_naming_the_field(credentials, tmp_path):
    async def agent() -> Any:
        async with over_stdio(SERVER, [], credentials, tmp_path / "server.log") as session:
            return await session.call_tool("request_approval", refund_call(
                arguments={**REFUND["arguments"], "amount": "lots"}))

    result = anyio.run(agent)
    assert result.is_error
    assert "arguments.amount: 'lots' is not of type 'number'" in text(result), text(result)
    assert newest_call() == 0


@pytest.mark.parametrize(("argv", "env", "says"), [
    ([SERVER], {}, "set COUNTERSIGN_URL, COUNTERSIGN_TOKEN, COUNTERSIGN_SIGNING_SECRET"),
    ([GATEWAY, "--guard", "issue_refund", "--", "true"], {"COUNTERSIGN_URL": "http://127.0.0.1:9"},
     "tool issue_refund has no domain"),
    ([GATEWAY, "--guard", "issue_refund", "--domain", "finance"], {}, "give the upstream"),
    ([SERVER, "--transport", "http", "--host", "0.0.0.0"], {},  # noqa: S104 (refused: that is the test)
     "listening on 0.0.0.0 needs COUNTERSIGN_MCP_TOKEN"),
    ([GATEWAY, "--transport", "http", "--host", "10.0.0.5", "--guard", "issue_refund", "--domain", "finance",
      "--upstream-url", "http://127.0.0.1:9/mcp"], {}, "listening on 10.0.0.5 needs COUNTERSIGN_MCP_TOKEN"),
])
def test_the_commands_refuse_to_start_without_what_they_need(argv, env, says):
    finished = subprocess.run(argv, env={"PATH": "/usr/bin:/bin", **env}, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert finished.returncode != 0
    assert says in finished.stderr, finished.stderr
