"""What the MCP server and the gateway share: one tool call put to Countersign, waited for within a
bound, and told back as a structured result."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import anyio
from pydantic import BaseModel, Field

from countersign_client import (
    Agent,
    ApprovalTimeout,
    Approved,
    AsyncCountersign,
    CountersignError,
    NotApproved,
    ProblemError,
    Rejected,
    Responded,
    ToolCall,
)

#: Most MCP clients give up on a tool call after 60 s unless progress resets their clock: stay below.
DEFAULT_MAX_WAIT_SECONDS = 50.0
#: A call left pending can still be decided, and read with get_decision, for this long.
DEFAULT_EXPIRES_AFTER_SECONDS = 3600.0
#: How often a waiting call reports progress (clients that reset their time limit on progress keep waiting).
DEFAULT_PROGRESS_EVERY_SECONDS = 10.0

Status = Literal["approved", "edited", "rejected", "responded", "expired", "pending", "withdrawn", "needs_info",
                 "execution_failed"]
Report = Callable[[float, str], Awaitable[None]]
T = TypeVar("T")


class ApprovalResult(BaseModel):
    """How Countersign answered a tool call. Run the tool only when ``status`` is ``approved`` or
    ``edited``, and then with ``arguments`` (a reviewer may have changed them)."""

    status: Status = Field(description="approved or edited: run the tool with `arguments`; rejected: do not, "
                                       "`feedback` says why; responded: do not, `answer` is the reviewer's reply; "
                                       "pending: still with the reviewers, ask again with get_decision(case_id); "
                                       "anything else: do not run it")
    case_id: int = Field(description="the Countersign case of this call")
    arguments: dict[str, Any] | None = Field(default=None, description="the approved arguments (approved, edited)")
    feedback: str | None = Field(default=None, description="the reviewer's reason (rejected)")
    answer: str | None = Field(default=None, description="the reviewer's answer to the agent (responded)")


class CountersignUnavailable(Exception):
    """Countersign could not be asked (refused credentials, an invalid call, the server unreachable);
    the message says why and never carries a credential."""


def result_of(outcome: Approved | Responded) -> ApprovalResult:
    if isinstance(outcome, Responded):
        return ApprovalResult(status="responded", case_id=outcome.case_id, answer=outcome.answer)
    return ApprovalResult(status="edited" if outcome.edited else "approved", case_id=outcome.case_id,
                          arguments=outcome.arguments)


def result_of_refusal(error: NotApproved | ApprovalTimeout) -> ApprovalResult:
    if isinstance(error, ApprovalTimeout):
        return ApprovalResult(status="pending", case_id=error.case_id)
    feedback = error.feedback if isinstance(error, Rejected) else None
    return ApprovalResult(status=error.status, case_id=error.case_id, feedback=feedback)  # type: ignore[arg-type]


def unavailable(error: CountersignError) -> CountersignUnavailable:
    if isinstance(error, ProblemError) and error.status in (401, 403):
        return CountersignUnavailable(
            f"Countersign refused the credentials ({error}): check COUNTERSIGN_TOKEN and COUNTERSIGN_SIGNING_SECRET")
    return CountersignUnavailable(f"Countersign could not take the call: {error}")


async def reporting_progress(work: Callable[[], Awaitable[T]], report: Report, every: float) -> T:
    """``work()``, reporting progress every ``every`` seconds until it ends; its exception is raised
    as it is, not inside an exception group."""

    async def beat() -> None:
        waited = 0.0
        while True:
            await anyio.sleep(every)
            waited += every
            await report(waited, f"waiting for a Countersign reviewer ({waited:.0f} s)")

    failure: Exception | None = None
    async with anyio.create_task_group() as beats:
        beats.start_soon(beat)
        try:
            result = await work()
        except Exception as error:  # re-raised below, outside the task group
            failure = error
        finally:
            beats.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


@dataclass(frozen=True)
class Approvals:
    """Asks Countersign about tool calls for one MCP server: waits at most ``max_wait`` seconds per
    call, reporting progress every ``progress_every`` seconds meanwhile, and keeps each call open for
    reviewers ``expires_after`` seconds."""

    client: AsyncCountersign
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS
    expires_after: float = DEFAULT_EXPIRES_AFTER_SECONDS
    progress_every: float = DEFAULT_PROGRESS_EVERY_SECONDS

    def bounded(self, wanted: float | None) -> float:
        return self.max_wait if wanted is None else max(0.0, min(wanted, self.max_wait))

    def expires_at(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.expires_after)

    async def ask(self, call: ToolCall, *, domain: str, wait: float | None, report: Report) -> ApprovalResult:
        """Submit ``call`` and wait for the reviewers' decision, at most ``wait`` (bounded) seconds."""
        if call.expires_at is None:
            call = call.model_copy(update={"expires_at": self.expires_at()})
        timeout = self.bounded(wait)

        async def asked() -> ApprovalResult:
            return result_of(await self.client.request_tool_approval(call, domain=domain, timeout=timeout))

        return await self._answer(asked, report)

    async def decision(self, case_id: int, *, wait: float | None, report: Report) -> ApprovalResult:
        """The decision on an earlier call, waiting at most ``wait`` (bounded) seconds for it."""
        timeout = self.bounded(wait)

        async def decided() -> ApprovalResult:
            return result_of(await self.client.wait_for_outcome(case_id, timeout=timeout))

        return await self._answer(decided, report)

    async def _answer(self, work: Callable[[], Awaitable[ApprovalResult]], report: Report) -> ApprovalResult:
        try:
            return await reporting_progress(work, report, self.progress_every)
        except (NotApproved, ApprovalTimeout) as refused:
            return result_of_refusal(refused)
        except CountersignError as error:
            raise unavailable(error) from None



def agent_of(client_info: Any, *, agent_id: str | None, model: str) -> Agent:
    """The agent as reviewers see it: the MCP client's own name and version unless configured."""
    name = getattr(client_info, "name", None) or "MCP agent"
    version = getattr(client_info, "version", None) or "unknown"
    return Agent(id=agent_id or name, name=name, version=version, model=model)


def canonical(arguments: dict[str, Any]) -> str:
    """One text per set of arguments, whatever their order."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))
