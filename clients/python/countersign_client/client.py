"""`Countersign` (blocking, httpx.Client) and `AsyncCountersign` (asyncio, httpx.AsyncClient): the
same methods, the second ``async``. Both sign with the API client's secret (Standard Webhooks), retry
what is safe to retry, and wait on `GET /api/v1/cases/<id>?wait=`."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from countersign_client._core import (
    APPROVAL_POLL_SECONDS,
    Core,
    Deadline,
    Outcome,
    outcome_of,
)
from countersign_client.errors import ApprovalTimeout, CountersignError, QueueMismatchWarning
from countersign_client.models import Approved, Case, Responded, Submission, ToolCall

log = logging.getLogger("countersign_client")
ENV_URL, ENV_TOKEN, ENV_SECRET = "COUNTERSIGN_URL", "COUNTERSIGN_TOKEN", "COUNTERSIGN_SIGNING_SECRET"


def settings_from_env() -> tuple[str, str, str]:
    missing = [name for name in (ENV_URL, ENV_TOKEN, ENV_SECRET) if not os.environ.get(name)]
    if missing:
        raise CountersignError(f"set {', '.join(missing)} (the server's URL, the API client's token and "
                               "signing secret) or pass a client")
    return os.environ[ENV_URL], os.environ[ENV_TOKEN], os.environ[ENV_SECRET]


class _Client:
    """What both clients do without I/O."""

    def __init__(self, url: str, token: str, signing_secret: str, *, timeout: float = 10.0, retries: int = 4,
                 backoff: float = 0.5, max_retry_after: float = 60.0) -> None:
        self._core = Core(url, token, signing_secret, timeout=timeout, retries=retries, backoff=backoff,
                          max_retry_after=max_retry_after)

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """From COUNTERSIGN_URL, COUNTERSIGN_TOKEN and COUNTERSIGN_SIGNING_SECRET."""
        return cls(*settings_from_env(), **options)

    @property
    def url(self) -> str:
        return self._core.base_url

    def outcome(self, case: Case, requested: Mapping[str, Any] | None = None) -> Outcome | None:
        """What the agent may do with the call now: `Approved` (once its execution has started:
        an approval can be undone until then), `Responded`, or None while it is not final; raises
        `Rejected`, `Expired` or `NotApproved`. With ``requested`` (the arguments the agent asked
        for), ``Approved.edited`` says whether the approved ones differ; without, whether a
        reviewer edited them."""
        return outcome_of(case, requested)

    def verify_callback(self, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
        """The callback's document once its signature and timestamp verify; `InvalidSignature`
        otherwise. De-duplicate on ``headers["webhook-id"]``: retries of one delivery repeat it."""
        return self._core.verify_callback(headers, body)

    def _tool_case(self, call: ToolCall, domain: str, timeout: float, external_id: str | None,
                   callback_url: str | None) -> dict[str, Any]:
        return self._core.tool_case(call, domain=domain, timeout=timeout, external_id=external_id,
                                    callback_url=callback_url)

    def _asked(self, call: ToolCall, submitted: Submission, timeout: float) -> None:
        log.info("asked for approval of %s: case %d at %s/cases/%d, waiting up to %g s",
                 call.name, submitted.case_id, self.url, submitted.case_id, timeout)

    def _decided(self, case: Case, call: ToolCall | None) -> Outcome | None:
        """The outcome (logged), None while there is none; raises for the refusing ones. ``call``: the
        call as asked, when known (its arguments tell whether the approved ones were edited)."""
        outcome = self.outcome(case, call.arguments if call else None)
        if isinstance(outcome, Approved):
            log.info("case %d approved%s: %s(%s)", outcome.case_id, " with edited arguments" if outcome.edited else "",
                     call.name if call else "the tool",
                     ", ".join(f"{name}={value!r}" for name, value in outcome.arguments.items()))
        elif isinstance(outcome, Responded):
            log.info("case %d answered instead of run: %s", outcome.case_id, outcome.answer)
        return outcome

    @staticmethod
    def _check_queue(case: Case, queue: str | None) -> None:
        if queue is not None and case.queue != queue:
            warnings.warn(QueueMismatchWarning(
                f"case {case.id} waits in queue {case.queue!r}, not {queue!r}: the tool's policy on the "
                "server chooses the queue (docs/agent-approvals.md)"), stacklevel=4)


class Countersign(_Client):
    """The blocking client. ``with Countersign(url, token, secret) as cs: …`` or ``.close()``."""

    def __init__(self, url: str, token: str, signing_secret: str, *, timeout: float = 10.0, retries: int = 4,
                 backoff: float = 0.5, max_retry_after: float = 60.0) -> None:
        super().__init__(url, token, signing_secret, timeout=timeout, retries=retries, backoff=backoff,
                         max_retry_after=max_retry_after)
        self._http = httpx.Client(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit_case(self, case: Mapping[str, Any], *, webhook_id: str | None = None) -> Submission:
        """POST the case, signed; network errors, 5xx and 429 are retried with the same webhook-id,
        so the server makes one case however often it arrives."""
        webhook_id = webhook_id or self._core.new_webhook_id()
        body = self._core.encode(case)
        response = self._send(lambda: self._core.submit_request(self._http, body, webhook_id))
        return self._core.submission(response, webhook_id)

    def get_case(self, case_id: int, *, wait: int = 0) -> Case:
        """The case; with ``wait`` (0 to 60 s), as soon as it leaves the reviewers or when the wait ends."""
        return self._core.case(self._send(lambda: self._core.case_request(self._http, case_id, wait)))

    def wait_for_decision(self, case_id: int, timeout: float) -> Case:
        """The case once it has left the reviewers; `ApprovalTimeout` when ``timeout`` seconds pass first."""
        return self._wait(case_id, Deadline(timeout))

    def request_tool_approval(self, call: ToolCall, *, domain: str, timeout: float, external_id: str | None = None,
                              callback_url: str | None = None, queue: str | None = None) -> Outcome:
        """Submit the call as an ``agent_action`` case and wait for its outcome: `Approved` or
        `Responded`; raises `Rejected`, `Expired`, `NotApproved` or `ApprovalTimeout`. ``queue``:
        the queue the tool's policy should route it to; another one warns (`QueueMismatchWarning`)."""
        deadline = Deadline(timeout)
        submitted = self.submit_case(self._tool_case(call, domain, timeout, external_id, callback_url))
        self._asked(call, submitted, timeout)
        if queue is not None:
            self._check_queue(self.get_case(submitted.case_id), queue)
        return self._outcome(submitted.case_id, deadline, call)

    def wait_for_outcome(self, case_id: int, timeout: float) -> Outcome:
        """The outcome of an ``agent_action`` case asked earlier, as `request_tool_approval` gives it
        (`edited` says whether a reviewer changed the arguments); the same exceptions."""
        return self._outcome(case_id, Deadline(timeout), None)

    def _outcome(self, case_id: int, deadline: Deadline, call: ToolCall | None) -> Outcome:
        while True:
            outcome = self._decided(self._wait(case_id, deadline), call)
            if outcome is not None:
                return outcome
            if deadline.passed:
                raise ApprovalTimeout(case_id, deadline.waited)
            time.sleep(deadline.pause(APPROVAL_POLL_SECONDS))  # approved, undoable until its execution starts

    def _wait(self, case_id: int, deadline: Deadline) -> Case:
        while True:
            case = self.get_case(case_id, wait=deadline.server_wait())
            if not case.waiting:
                return case
            if deadline.passed:
                raise ApprovalTimeout(case_id, deadline.waited)

    def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.send(build())
            except httpx.TransportError as exc:
                delay = self._core.retry_delay(attempt, None)
                if delay is None:
                    raise CountersignError(f"cannot reach {self.url}: {exc!r}") from exc
            else:
                delay = self._core.retry_delay(attempt, response)
                if delay is None:
                    return response
                response.close()
            time.sleep(delay)
            attempt += 1


class AsyncCountersign(_Client):
    """The asyncio client: the same methods, awaited. ``async with AsyncCountersign(…) as cs: …``."""

    def __init__(self, url: str, token: str, signing_secret: str, *, timeout: float = 10.0, retries: int = 4,
                 backoff: float = 0.5, max_retry_after: float = 60.0) -> None:
        super().__init__(url, token, signing_secret, timeout=timeout, retries=retries, backoff=backoff,
                         max_retry_after=max_retry_after)
        self._http = httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def submit_case(self, case: Mapping[str, Any], *, webhook_id: str | None = None) -> Submission:
        """As `Countersign.submit_case`."""
        webhook_id = webhook_id or self._core.new_webhook_id()
        body = self._core.encode(case)
        response = await self._send(lambda: self._core.submit_request(self._http, body, webhook_id))
        return self._core.submission(response, webhook_id)

    async def get_case(self, case_id: int, *, wait: int = 0) -> Case:
        """As `Countersign.get_case`."""
        return self._core.case(await self._send(lambda: self._core.case_request(self._http, case_id, wait)))

    async def wait_for_decision(self, case_id: int, timeout: float) -> Case:
        """As `Countersign.wait_for_decision`."""
        return await self._wait(case_id, Deadline(timeout))

    async def request_tool_approval(self, call: ToolCall, *, domain: str, timeout: float,
                                    external_id: str | None = None, callback_url: str | None = None,
                                    queue: str | None = None) -> Outcome:
        """As `Countersign.request_tool_approval`."""
        deadline = Deadline(timeout)
        submitted = await self.submit_case(self._tool_case(call, domain, timeout, external_id, callback_url))
        self._asked(call, submitted, timeout)
        if queue is not None:
            self._check_queue(await self.get_case(submitted.case_id), queue)
        return await self._outcome(submitted.case_id, deadline, call)

    async def wait_for_outcome(self, case_id: int, timeout: float) -> Outcome:
        """As `Countersign.wait_for_outcome`."""
        return await self._outcome(case_id, Deadline(timeout), None)

    async def _outcome(self, case_id: int, deadline: Deadline, call: ToolCall | None) -> Outcome:
        while True:
            outcome = self._decided(await self._wait(case_id, deadline), call)
            if outcome is not None:
                return outcome
            if deadline.passed:
                raise ApprovalTimeout(case_id, deadline.waited)
            await asyncio.sleep(deadline.pause(APPROVAL_POLL_SECONDS))

    async def _wait(self, case_id: int, deadline: Deadline) -> Case:
        while True:
            case = await self.get_case(case_id, wait=deadline.server_wait())
            if not case.waiting:
                return case
            if deadline.passed:
                raise ApprovalTimeout(case_id, deadline.waited)

    async def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.send(build())
            except httpx.TransportError as exc:
                delay = self._core.retry_delay(attempt, None)
                if delay is None:
                    raise CountersignError(f"cannot reach {self.url}: {exc!r}") from exc
            else:
                delay = self._core.retry_delay(attempt, response)
                if delay is None:
                    return response
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1
