"""The Python client (clients/python, `countersign_client`) against a running Countersign over real
HTTP: tool calls guarded by `@require_approval` (sync and async) approved, edited, rejected,
answered, timed out and expired by real reviewer decisions; idempotent retries; problem details;
signed callbacks verified and forged ones refused; a waiting answer within a second of the decision."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import distribution
from pathlib import Path
from typing import Any, Literal

import countersign_client
import httpx
import pytest
from countersign_client import (
    Agent,
    ApprovalTimeout,
    AsyncCountersign,
    Countersign,
    Expired,
    InvalidSignature,
    ProblemError,
    QueueMismatchWarning,
    Rejected,
    agent_context,
    require_approval,
)
from countersign_client._core import Core
from rq import SimpleWorker
from sqlalchemy import select

from app.actors import Actor
from app.agents import tools as agent_tools
from app.cases.models import Case, Queue, Status
from app.execution.jobs import expire_due_calls
from app.extensions import db
from benchmarks.waiting import until_subscribed
from tests.conftest import ROOT, case_body
from tests.review_helpers import claim, decide

pytest_plugins = ["tests.review_fixtures"]

SECONDS = 30  # how long a test waits for something that should take well under a second
AGENT = Agent(id="support-agent-7", name="Support agent", version="2.3.1", model="gpt-4.1-mini")


@pytest.fixture
def config_overrides():
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 5}


# --- an agent running a guarded tool, in a thread ----------------------------------------------------


class AgentRun:
    """A guarded tool called in a thread (an async one in its own event loop); its result or error."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = completed(call())
        except BaseException as exc:
            self.error = exc

    def finish(self) -> Any:
        self._thread.join(SECONDS)
        assert not self._thread.is_alive(), "the agent is still waiting"
        if self.error is not None:
            raise self.error
        return self.result


def completed(outcome: Any) -> Any:
    """A sync tool's result, or an async one's, run in an event loop of its own."""
    return asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome


def refund_tool(mode: str, ran: list[tuple[str, float, str]], **options: Any) -> Callable[..., Any]:
    """issue_refund, guarded; sync or async. It records each run in ``ran``."""

    def issue_refund(order_id: str, amount: float, currency: Literal["EUR", "USD"] = "EUR") -> str:
        """Refund part or all of an order to the customer's original payment method."""
        ran.append((order_id, amount, currency))
        return f"refunded {amount} {currency} on {order_id}"

    async def issue_refund_async(order_id: str, amount: float, currency: Literal["EUR", "USD"] = "EUR") -> str:
        """Refund part or all of an order to the customer's original payment method."""
        return issue_refund(order_id, amount, currency)

    func = issue_refund if mode == "sync" else issue_refund_async
    return require_approval(domain="finance", tool="issue_refund", **options)(func)


@pytest.fixture(params=["sync", "async"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def connected(live_server, upstream, monkeypatch) -> dict[str, Any]:
    """The decorator's client: a `Countersign` for sync tools; for async ones none, so the wrapper
    makes an `AsyncCountersign` from the environment."""
    monkeypatch.setenv("COUNTERSIGN_URL", live_server)
    monkeypatch.setenv("COUNTERSIGN_TOKEN", upstream.token)
    monkeypatch.setenv("COUNTERSIGN_SIGNING_SECRET", upstream.secret)
    return {"url": live_server, "token": upstream.token, "secret": upstream.secret}


def guarded(mode: str, connected: dict[str, Any], ran: list, **options: Any) -> Callable[..., Any]:
    if mode == "sync":
        options.setdefault("client", Countersign(connected["url"], connected["token"], connected["secret"]))
    return refund_tool(mode, ran, **options)


def submitted_call(seconds: float = SECONDS) -> Case:
    """The agent_action case the agent posted, once it exists."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()
        case = db.session.scalar(select(Case).where(Case.case_type == "agent_action"))
        if case is not None:
            return case
        time.sleep(0.05)
    raise AssertionError("the agent posted no case")


def analysed(redis_conn, case_id: int) -> Case:
    """The case once the AI worker has analysed it (its job is enqueued just after the intake's commit)."""
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        SimpleWorker(["ai"], connection=redis_conn).work(burst=True)
        db.session.expire_all()
        case = db.session.get(Case, case_id)
        if case.status not in (Status.RECEIVED, Status.ANALYZING):
            return case
        time.sleep(0.05)
    raise AssertionError(f"case {case_id} was not analysed")


def executed(redis_conn) -> None:
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True)


def reviewed(reviewer, redis_conn, kind: str, **fields: Any) -> Case:
    """The posted call, analysed, claimed and decided by ``reviewer``; the approval executed."""
    case = analysed(redis_conn, submitted_call().id)
    decide(reviewer, claim(reviewer, case), kind, **fields)
    executed(redis_conn)
    db.session.expire_all()
    return db.session.get(Case, case.id)


# --- the decorator -----------------------------------------------------------------------------------


def test_an_approved_call_runs_with_the_asked_arguments_and_tells_the_reviewer_why(
        mode, connected, people, redis_conn):
    ran: list = []
    issue_refund = guarded(mode, connected, ran, risk_hints=["refund of a whole order"])
    history = [{"role": "user", "content": "My espresso machine arrived broken."},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "call_1", "type": "function",
                    "function": {"name": "issue_refund", "arguments": '{"order_id": "ORD-58213"}'}}]}]

    def agent() -> Any:
        with agent_context(agent=AGENT, goal="Resolve the complaint about order ORD-58213", messages=history,
                           reasoning="The carrier confirmed the damage.", risk_hints=["new customer"]):
            return completed(issue_refund("ORD-58213", 180))  # an async tool runs inside the block too

    run = AgentRun(agent)
    case = reviewed(people.reviewer, redis_conn, "approve")

    assert run.finish() == "refunded 180.0 EUR on ORD-58213"
    assert ran == [("ORD-58213", 180.0, "EUR")]
    assert case.status == Status.EXECUTED
    data = case.payload
    assert data["tool"]["name"] == "issue_refund"
    assert data["tool"]["description"] == "Refund part or all of an order to the customer's original payment method."
    assert data["tool"]["arguments"] == {"order_id": "ORD-58213", "amount": 180.0, "currency": "EUR"}
    schema = data["tool"]["arguments_schema"]
    assert schema["type"] == "object" and schema["required"] == ["order_id", "amount"]
    assert schema["properties"]["amount"]["type"] == "number"
    assert schema["properties"]["currency"]["enum"] == ["EUR", "USD"]
    assert data["agent"] == AGENT.model_dump()
    assert data["context"]["goal"] == "Resolve the complaint about order ORD-58213"
    assert data["context"]["reasoning"] == "The carrier confirmed the damage."
    assert data["context"]["messages"] == [
        {"role": "user", "content": "My espresso machine arrived broken."},
        {"role": "assistant", "content": 'calls issue_refund({"order_id": "ORD-58213"})'}]
    assert data["risk_hints"] == ["refund of a whole order", "new customer"]


def test_an_edited_call_runs_with_the_reviewers_arguments(mode, connected, people, redis_conn):
    ran: list = []
    issue_refund = guarded(mode, connected, ran)
    run = AgentRun(lambda: issue_refund("ORD-58213", 180.0, currency="EUR"))

    reviewed(people.reviewer, redis_conn, "edit", action="execute",
             parameters={"order_id": "ORD-58213", "amount": 150, "currency": "USD"})

    assert run.finish() == "refunded 150.0 USD on ORD-58213"
    assert ran == [("ORD-58213", 150.0, "USD")]  # re-validated against the hints: the JSON 150 is a float


def test_the_outcome_of_a_call_asked_earlier_is_read_by_its_case_id(mode, connected, people, redis_conn):
    """An agent that asked before (a restart, a gateway's second look) reads the outcome by case id."""
    issue_refund = guarded(mode, connected, [], timeout=1, expires_at=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(ApprovalTimeout) as waited:
        completed(issue_refund("ORD-58213", 180.0, currency="EUR"))
    case_id = waited.value.case_id
    url, token, secret = connected["url"], connected["token"], connected["secret"]

    def outcome(timeout: float) -> Any:
        if mode == "sync":
            with Countersign(url, token, secret) as cs:
                return cs.wait_for_outcome(case_id, timeout=timeout)

        async def read() -> Any:
            async with AsyncCountersign(url, token, secret) as cs:
                return await cs.wait_for_outcome(case_id, timeout=timeout)
        return asyncio.run(read())

    with pytest.raises(ApprovalTimeout):
        outcome(0)  # still with the reviewers
    case = analysed(redis_conn, case_id)
    decide(people.reviewer, claim(people.reviewer, case), "edit", action="execute",
           parameters={"order_id": "ORD-58213", "amount": 150, "currency": "USD"})
    executed(redis_conn)
    approved = outcome(SECONDS)
    assert (approved.case_id, approved.arguments, approved.edited) == (
        case_id, {"order_id": "ORD-58213", "amount": 150, "currency": "USD"}, True)


def test_a_rejected_call_raises_with_the_reviewers_feedback_and_runs_nothing(mode, connected, people, redis_conn):
    ran: list = []
    issue_refund = guarded(mode, connected, ran)
    run = AgentRun(lambda: issue_refund("ORD-58213", 180.0))

    case = reviewed(people.reviewer, redis_conn, "reject", reason_code="policy_breach",
                    reason="Refund only the water tank, not the machine.")

    with pytest.raises(Rejected) as rejected:
        run.finish()
    assert rejected.value.feedback == "Refund only the water tank, not the machine."
    assert (rejected.value.case_id, rejected.value.reason_code) == (case.id, "policy_breach")
    assert ran == []


def test_an_answered_call_returns_the_answer_and_runs_nothing(mode, connected, people, redis_conn):
    ran: list = []
    issue_refund = guarded(mode, connected, ran)
    run = AgentRun(lambda: issue_refund("ORD-58213", 180.0))

    case = reviewed(people.reviewer, redis_conn, "respond", reason="Offer a replacement tank first: 35 EUR.")

    assert run.finish() == "Offer a replacement tank first: 35 EUR."
    assert ran == []
    assert case.status == Status.RESPONDED


def test_a_call_nobody_decides_in_time_raises_approval_timeout_and_runs_nothing(mode, connected, people):
    ran: list = []
    issue_refund = guarded(mode, connected, ran, timeout=1)

    with pytest.raises(ApprovalTimeout) as timed_out:
        AgentRun(lambda: issue_refund("ORD-58213", 180.0)).finish()

    assert ran == []
    assert timed_out.value.waited >= 1
    case = submitted_call()
    assert timed_out.value.case_id == case.id
    assert case.status in ("received", "analyzing", "pending_review")  # still open on the server
    assert case.expires_at is not None  # until it expires there, when the agent stopped waiting


def test_a_call_that_expires_undecided_raises_expired_and_runs_nothing(mode, connected, people):
    ran: list = []
    expires_at = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    issue_refund = guarded(mode, connected, ran, timeout=SECONDS, expires_at=expires_at)
    run = AgentRun(lambda: issue_refund("ORD-58213", 180.0))
    case = submitted_call()

    while datetime.now(UTC) <= expires_at:
        time.sleep(0.1)
    assert expire_due_calls() == 1  # the scheduler's sweep

    with pytest.raises(Expired) as expired:
        run.finish()
    assert expired.value.case_id == case.id
    assert ran == []


def test_an_approved_refusal_is_a_rejection(connected, people, redis_conn):
    """The analyzer refuses a currency the tool's policy does not allow; the reviewer approves that."""
    agent_tools.load(db.session, agent_tools.parse_yaml(
        "- name: issue_refund\n  arguments:\n    currency: {allowed_values: [EUR]}\n"), Actor.system("test"))
    db.session.commit()
    ran: list = []
    issue_refund = guarded("sync", connected, ran)
    run = AgentRun(lambda: issue_refund("ORD-58213", 180.0, "USD"))

    reviewed(people.reviewer, redis_conn, "approve")

    with pytest.raises(Rejected) as rejected:
        run.finish()
    assert "currency" in (rejected.value.feedback or "")
    assert ran == []


def test_queue_names_the_policys_queue_and_warns_when_the_server_routes_elsewhere(connected, queues):
    refunds = Queue(name="agent-refunds", domain="finance", sla_minutes=60)
    db.session.add(refunds)
    db.session.commit()
    agent_tools.load(db.session, agent_tools.parse_yaml("- name: issue_refund\n  queue: agent-refunds\n"),
                     Actor.system("test"))
    db.session.commit()

    with warnings.catch_warnings():
        warnings.simplefilter("error", QueueMismatchWarning)
        with pytest.raises(ApprovalTimeout):
            guarded("sync", connected, [], queue="agent-refunds", timeout=0)("ORD-1", 10.0)
    with pytest.warns(QueueMismatchWarning, match="'agent-refunds', not 'finance'"), pytest.raises(ApprovalTimeout):
        guarded("sync", connected, [], queue="finance", timeout=0)("ORD-2", 10.0)

    assert {case.queue.name for case in db.session.scalars(select(Case))} == {"agent-refunds"}


def test_the_arguments_are_checked_against_the_hints_before_anything_is_asked(connected, queues):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        guarded("sync", connected, [])("ORD-1", "a lot")
    assert db.session.scalar(select(Case)) is None


# --- the client: submitting, retries, problems ---------------------------------------------------------


def test_the_same_webhook_id_twice_makes_one_case(connected, upstream):
    body = case_body("agent_action", domain="finance")
    with Countersign(connected["url"], connected["token"], connected["secret"]) as cs:
        first = cs.submit_case(body, webhook_id="msg_client_twice")
        second = cs.submit_case(body, webhook_id="msg_client_twice")

    assert (first.case_id, first.duplicate) == (second.case_id, False)
    assert second.duplicate is True
    assert [case.id for case in db.session.scalars(select(Case))] == [first.case_id]


class FlakyProxy(ThreadingHTTPServer):
    """Forwards requests to ``target``; the first POST is forwarded and its answer lost (the
    connection closes without one), or answered ``first_status`` with ``Retry-After: 1``."""

    def __init__(self, target: str, first_status: int | None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.target, self.first_status = target, first_status
        self.posts: list[str] = []  # the webhook-id of each POST

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FlakyProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(self.headers["webhook-id"])
        first = len(self.server.posts) == 1
        if first and self.server.first_status is not None:
            self.send_response(self.server.first_status)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = httpx.post(self.server.target + self.path, content=body, headers=dict(self.headers))
        if first:  # the server made the case; the client never hears of it
            self.close_connection = True
            return
        self.send_response(answer.status_code)
        for name in ("Content-Type", "Idempotent-Replayed", "Location"):
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy(request, live_server) -> Iterator[FlakyProxy]:
    server = FlakyProxy(live_server, request.param)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("proxy", [None], indirect=True)
def test_a_lost_answer_is_retried_with_the_same_webhook_id_and_makes_one_case(proxy, connected, mode):
    body = case_body("agent_action", domain="finance")

    async def submit_async() -> Any:
        async with AsyncCountersign(proxy.url, connected["token"], connected["secret"], backoff=0.05) as cs:
            return await cs.submit_case(body)

    if mode == "sync":
        with Countersign(proxy.url, connected["token"], connected["secret"], backoff=0.05) as cs:
            submitted = cs.submit_case(body)
    else:
        submitted = asyncio.run(submit_async())

    assert proxy.posts == [submitted.webhook_id] * 2
    assert submitted.duplicate is True
    assert [case.id for case in db.session.scalars(select(Case))] == [submitted.case_id]


@pytest.mark.parametrize("proxy", [503, 429], indirect=True)
def test_a_busy_server_is_asked_again_after_its_retry_after(proxy, connected):
    with Countersign(proxy.url, connected["token"], connected["secret"]) as cs:
        submitted = cs.submit_case(case_body("agent_action", domain="finance"))

    assert proxy.posts == [submitted.webhook_id] * 2
    assert submitted.duplicate is False  # the first attempt never reached the server
    assert db.session.get(Case, submitted.case_id) is not None


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("", None), ("soon", None), ("120", None)])
def test_retry_after_is_honoured_up_to_the_clients_limit(header, expected):
    core = Core("http://countersign.test", "cs_x", "whsec_" + "A" * 32, timeout=1, retries=3, backoff=0.5,
                max_retry_after=60)
    answer = httpx.Response(429, headers={"Retry-After": header} if header else {})
    delay = core.retry_delay(0, answer)
    if expected is None and header in ("", "soon"):
        assert delay is not None and 0.45 <= delay <= 0.55  # no usable header: the backoff
    else:
        assert delay == expected  # 120 s is over the limit: not retried
    assert core.retry_delay(3, answer) is None  # out of retries
    assert core.retry_delay(0, httpx.Response(400)) is None


def test_a_refusal_raises_the_servers_problem_details(connected, upstream):
    body = case_body("agent_action", domain="finance")
    body["data"]["tool"]["arguments"]["amount"] = "lots"
    with Countersign(connected["url"], connected["token"], connected["secret"]) as cs, \
            pytest.raises(ProblemError) as refused:
        cs.submit_case(body)

    problem = refused.value
    assert (problem.status, problem.type, problem.slug) == (422, "urn:countersign:problem:validation-error",
                                                           "validation-error")
    assert [error["field"] for error in problem.errors] == ["data.tool"]
    assert "arguments.amount: 'lots' is not of type 'number'" in problem.errors[0]["message"]
    with Countersign(connected["url"], "cs_wrong", connected["secret"]) as cs, pytest.raises(ProblemError) as denied:
        cs.get_case(1)
    assert denied.value.status == 401


# --- waiting -------------------------------------------------------------------------------------------


def test_a_waiting_client_hears_of_the_decision_within_a_second(connected, people, redis_conn, redis_url, mode):
    with Countersign(connected["url"], connected["token"], connected["secret"]) as cs:
        case_id = cs.submit_case(case_body("agent_action", domain="finance")).case_id
    analysed(redis_conn, case_id)
    answered: dict[str, Any] = {}

    async def wait_async() -> Any:
        async with AsyncCountersign(connected["url"], connected["token"], connected["secret"]) as cs:
            return await cs.wait_for_decision(case_id, SECONDS)

    def wait() -> None:
        if mode == "sync":
            with Countersign(connected["url"], connected["token"], connected["secret"]) as cs:
                answered["case"] = cs.wait_for_decision(case_id, SECONDS)
        else:
            answered["case"] = asyncio.run(wait_async())
        answered["at"] = time.monotonic()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    until_subscribed(redis_url, [case_id])  # the server holds the request, on Redis
    decide(people.reviewer, claim(people.reviewer, db.session.get(Case, case_id)), "approve")
    decided_at = time.monotonic()
    waiter.join(SECONDS)

    assert answered["case"].status == "approved"
    assert answered["case"].approving_decision().kind == "approve"
    assert answered["at"] - decided_at < 1.0


# --- callbacks ---------------------------------------------------------------------------------------


class CallbackCatcher(ThreadingHTTPServer):
    """Keeps each callback's raw headers and body, and answers 204."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CatchHandler)
        self.caught: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _CatchHandler(BaseHTTPRequestHandler):
    server: CallbackCatcher

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.caught.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_verify_callback_accepts_the_servers_signed_callback_and_refuses_a_forged_one(
        connected, people, redis_conn):
    catcher = CallbackCatcher()
    threading.Thread(target=catcher.serve_forever, daemon=True).start()
    try:
        with Countersign(connected["url"], connected["token"], connected["secret"]) as cs:
            case_id = cs.submit_case(case_body("agent_action", domain="finance", callback_url=catcher.url)).case_id
            decide(people.reviewer, claim(people.reviewer, analysed(redis_conn, case_id)), "approve")
            executed(redis_conn)
            [(headers, body)] = catcher.caught

            document = cs.verify_callback(headers, body)
            assert (document["type"], document["case"]["id"]) == ("case.approved", case_id)
            assert document == json.loads(body)
            with pytest.raises(InvalidSignature):
                cs.verify_callback(headers, body.replace(b"case.approved", b"case.rejected"))
            with pytest.raises(InvalidSignature):
                cs.verify_callback({**headers, "webhook-signature": "v1,bm90IHRoZSBzaWduYXR1cmU="}, body)
            with pytest.raises(InvalidSignature):
                cs.verify_callback({name: value for name, value in headers.items()
                                    if name.lower() != "webhook-timestamp"}, body)
        with Countersign(connected["url"], connected["token"], "whsec_" + "QUJD" * 8) as other, \
                pytest.raises(InvalidSignature):
            other.verify_callback(headers, body)  # signed with another client's secret
    finally:
        catcher.shutdown()
        catcher.server_close()


def test_the_client_is_installed_from_clients_python_with_its_own_version():
    installed = distribution("countersign-client")
    assert installed.version == "0.2.0"  # the client's own version, not the server's
    assert {requirement.split(">")[0].split("<")[0] for requirement in installed.requires or []
            if "extra ==" not in requirement} == {"httpx", "pydantic", "standardwebhooks"}
    assert Path(countersign_client.__file__).is_relative_to(ROOT / "clients" / "python")
