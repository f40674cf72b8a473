"""Talking to the upstream system: signed POSTs and the executors that deliver an approved action.

Every delivery is signed per Standard Webhooks with the client's newest active secret, goes
only to a URL the client's callback allow-list accepts (checked again right before sending),
never follows a redirect, and comes back as a `DeliveryResult`: ``delivered``, ``retry``
(timeouts, connection errors, 5xx, 408, 429) or ``failed`` (any other answer, for good).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.cases.models import Case, Decision, Execution
from app.db import canonical_json
from app.intake import signatures
from app.intake.models import ApiClient
from app.intake.services import active_secrets, callback_url_problem

RETRY_STATUSES = frozenset({408, 429})
ERROR_SNIPPET_BYTES = 200
USER_AGENT = "Countersign-Webhooks/1"
NO_CALLBACK_URL = "no callback_url"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "retry", "failed"]
    status_code: int | None = None
    error: str | None = None
    note: str | None = None  # delivered without a request, and why


class Executor(Protocol):
    """Carries out an approved action. Called with detached objects and no database session open."""

    def deliver(self, case: Case, decision: Decision, execution: Execution,
                approved_by: Sequence[str]) -> DeliveryResult: ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None  # the 3xx reaches `post` as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> DeliveryResult:
    """POST ``body`` once and classify the answer."""
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    request = urllib.request.Request(url, data=body, method="POST", headers=sent)  # noqa: S310 (callers check the URL)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return DeliveryResult("delivered", response.status)
    except urllib.error.HTTPError as exc:
        return _answered(exc)
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            return DeliveryResult("retry", error=f"no answer within {timeout:g} s")
        return DeliveryResult("retry", error=f"connection failed: {str(reason) or type(reason).__name__}")


def _answered(exc: urllib.error.HTTPError) -> DeliveryResult:
    code = exc.code
    if 300 <= code < 400:
        target = exc.headers.get("Location") or "nowhere"
        return DeliveryResult("failed", code, f"HTTP {code} redirect to {target}: redirects are not followed")
    try:
        snippet = exc.read(ERROR_SNIPPET_BYTES).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        snippet = ""
    error = f"HTTP {code}: {snippet}" if snippet else f"HTTP {code}"
    transient = code >= 500 or code in RETRY_STATUSES
    return DeliveryResult("retry" if transient else "failed", code, error)


@dataclass(frozen=True)
class Sender:
    """Signs and sends documents to a client's callback URLs."""

    timeout: float
    insecure_hosts: frozenset[str]

    def send(self, client: ApiClient, url: str, msg_id: str, document: dict[str, Any]) -> DeliveryResult:
        """``msg_id`` is the ``webhook-id``: the receiver's idempotency key, the same on every retry."""
        problem = callback_url_problem(url, client, self.insecure_hosts)
        if problem:
            return DeliveryResult("failed", error=f"refused before sending: {problem}")
        secrets = active_secrets(client)
        if not secrets:
            return DeliveryResult("failed", error="refused before sending: the client has no active signing secret")
        body = canonical_json(document).encode()
        return post(url, body, signatures.headers(secrets[0], msg_id, body), self.timeout)


def case_summary(case: Case) -> dict[str, Any]:
    return {"id": case.id, "external_id": case.external_id, "domain": case.domain, "case_type": case.case_type,
            "title": case.title}


def callback_document(case: Case, decision: Decision, execution: Execution,
                      approved_by: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "case.approved",
        "case": case_summary(case),
        "action": {"name": decision.action, "parameters": decision.parameters},
        "decision": {"kind": decision.kind, "reason_code": decision.reason_code, "reason": decision.reason,
                     "decided_at": decision.created_at.isoformat()},
        "approved_by": list(approved_by),
        "execution": {"idempotency_key": execution.idempotency_key, "attempt": execution.attempts},
    }


@dataclass(frozen=True)
class CallbackExecutor:
    """The standard executor: a signed ``case.approved`` callback to ``case.callback_url``."""

    sender: Sender

    def deliver(self, case: Case, decision: Decision, execution: Execution,
                approved_by: Sequence[str]) -> DeliveryResult:
        if not case.callback_url:
            return DeliveryResult("delivered", note=NO_CALLBACK_URL)
        document = callback_document(case, decision, execution, approved_by)
        return self.sender.send(case.client, case.callback_url, execution.idempotency_key, document)
