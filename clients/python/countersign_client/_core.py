"""What the sync and the async client share: building signed requests, reading answers, the retry
policy, the deadline of a wait and the mapping of a case to a tool call's outcome. No I/O here."""

from __future__ import annotations

import binascii
import email.utils
import math
import random
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pydantic_core
from pydantic import BaseModel, ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from countersign_client.errors import (
    CountersignError,
    Expired,
    InvalidSignature,
    NotApproved,
    ProblemError,
    Rejected,
)
from countersign_client.models import EXECUTED_STATUSES, Approved, Case, Responded, Submission, ToolCall

VERSION = "0.2.0"
MAX_WAIT_SECONDS = 60  # the server's longest `?wait=`
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
#: An approved call is final once its execution starts, after the reviewer's undo window (10 s by
#: default); until then the server answers a wait at once, so the client looks again this often.
APPROVAL_POLL_SECONDS = 0.5
Outcome = Approved | Responded
M = TypeVar("M", bound=BaseModel)


class Core:
    """One client's settings and the pure half of every request."""

    def __init__(self, url: str, token: str, signing_secret: str, *, timeout: float, retries: int,
                 backoff: float, max_retry_after: float) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, not {url!r}")
        self.base_url = url.rstrip("/")
        self.token = token
        self.webhook = Webhook(signing_secret)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after

    # --- requests --------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                "User-Agent": f"countersign-client/{VERSION}"}

    def submit_request(self, http: httpx.Client | httpx.AsyncClient, body: bytes,
                       webhook_id: str) -> httpx.Request:
        """The signed POST; signed anew (a fresh timestamp) for each attempt, with the same id."""
        sent_at = datetime.now(UTC)
        headers = {**self.headers(), "Content-Type": "application/json", "webhook-id": webhook_id,
                   "webhook-timestamp": str(int(sent_at.timestamp())),
                   "webhook-signature": self.webhook.sign(webhook_id, sent_at, body.decode())}
        return http.build_request("POST", f"{self.base_url}/api/v1/cases", content=body, headers=headers)

    def case_request(self, http: httpx.Client | httpx.AsyncClient, case_id: int, wait: int) -> httpx.Request:
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait is 0 to {MAX_WAIT_SECONDS} seconds, not {wait}")
        params = {"wait": str(wait)} if wait else None
        # The server may hold the answer for `wait` seconds: the read timeout must outlast it.
        return http.build_request("GET", f"{self.base_url}/api/v1/cases/{int(case_id)}", params=params,
                                  headers=self.headers(), timeout=httpx.Timeout(self.timeout + wait))

    @staticmethod
    def encode(case: Mapping[str, Any]) -> bytes:
        return pydantic_core.to_json(dict(case))

    @staticmethod
    def new_webhook_id() -> str:
        return f"msg_{uuid.uuid4().hex}"

    def tool_case(self, call: ToolCall, *, domain: str, timeout: float, external_id: str | None,
                  callback_url: str | None) -> dict[str, Any]:
        """An ``agent_action`` case for ``call``; it expires when the client stops waiting, unless
        the call says otherwise."""
        expires_at = (datetime.now(UTC) + timedelta(seconds=math.ceil(max(timeout, 1)))).replace(microsecond=0)
        case: dict[str, Any] = {
            "external_id": external_id or f"{call.name}-{uuid.uuid4().hex}",
            "domain": domain,
            "case_type": "agent_action",
            "title": call.case_title(),
            "data": call.case_data(expires_at),
        }
        if callback_url is not None:
            case["callback_url"] = callback_url
        return case

    # --- answers ---------------------------------------------------------------------------------

    def retry_delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying again after ``attempt`` (0-based) failed with ``response``
        (None: a network error); None when it is not to be tried again."""
        if response is not None and response.status_code not in RETRIED_STATUSES:
            return None
        if attempt >= self.retries:
            return None
        asked = retry_after(response) if response is not None else None
        if asked is not None:
            return asked if asked <= self.max_retry_after else None
        return self.backoff * 2**attempt * random.uniform(0.9, 1.1)

    @staticmethod
    def submission(response: httpx.Response, webhook_id: str) -> Submission:
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return validated(Submission, {**answer(response), "webhook_id": webhook_id, "duplicate": replayed})

    @staticmethod
    def case(response: httpx.Response) -> Case:
        return validated(Case, answer(response))

    def verify_callback(self, headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
        try:
            document = self.webhook.verify(body, dict(headers))
        except (WebhookVerificationError, ValueError, binascii.Error) as exc:
            raise InvalidSignature(f"the callback does not verify: {exc}") from exc
        if not isinstance(document, dict):
            raise InvalidSignature("the callback's body is not a JSON object")
        return document


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful answer; a `ProblemError` for any other."""
    if response.is_success:
        try:
            body = response.json()
        except ValueError as exc:
            raise CountersignError(f"{response.request.url} answered {response.status_code} without JSON") from exc
        if not isinstance(body, dict):
            raise CountersignError(f"{response.request.url} answered a JSON {type(body).__name__}, not an object")
        return body
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"title": response.reason_phrase or f"HTTP {response.status_code}", "detail": response.text[:500]}
    raise ProblemError(response.status_code, problem)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (it may be seconds or an HTTP date), if any."""
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Deadline:
    """The end of a client-side wait, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.end = self.started + seconds

    @property
    def left(self) -> float:
        return self.end - time.monotonic()

    @property
    def passed(self) -> bool:
        return self.left <= 0

    @property
    def waited(self) -> float:
        return time.monotonic() - self.started

    def server_wait(self) -> int:
        """The `?wait=` for the next request: what is left, rounded up, at most the server's 60 s."""
        return max(0, min(MAX_WAIT_SECONDS, math.ceil(self.left)))

    def pause(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.left))


def outcome_of(case: Case, requested: Mapping[str, Any] | None = None) -> Outcome | None:
    """What the agent may do with its call now: `Approved`, `Responded`, None while it is still
    with the reviewers or approved but not yet final; raises `Rejected`, `Expired` or `NotApproved`."""
    if case.waiting or case.status == "approved":
        return None
    if case.status in EXECUTED_STATUSES:
        return _approved(case, requested)
    if case.status == "rejected":
        rejection = case.last_decision("reject")
        raise Rejected(rejection.reason if rejection else None, case.id, rejection.reason_code if rejection else None)
    if case.status == "responded":
        answered = case.last_decision("respond")
        return Responded(answer=case.answer or (answered.reason if answered else None) or "", case_id=case.id)
    if case.status == "expired":
        raise Expired(case.id)
    raise NotApproved(case.id, case.status)


def _approved(case: Case, requested: Mapping[str, Any] | None) -> Approved:
    decision = case.approving_decision()
    if decision is None:
        raise NotApproved(case.id, case.status, f"case {case.id} is {case.status} without an approving decision")
    if decision.action == "refuse":
        raise Rejected(str(decision.parameters.get("reason") or decision.reason or ""), case.id, decision.reason_code)
    edited = decision.parameters != dict(requested) if requested is not None else decision.kind == "edit"
    return Approved(arguments=decision.parameters, edited=edited, case_id=case.id)


def validated(model: type[M], document: dict[str, Any]) -> M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise CountersignError(f"unexpected answer from the server: {exc}") from exc
