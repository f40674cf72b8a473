"""The errors the client raises. Every one is a `CountersignError`."""

from __future__ import annotations

from typing import Any


class CountersignError(Exception):
    """Anything that went wrong talking to Countersign, or an outcome that is not an approval."""


class ProblemError(CountersignError):
    """The server refused a request: its RFC 9457 problem document, read into attributes.

    Branch on ``type`` (``urn:countersign:problem:<slug>``), show ``detail`` to people; a 422 lists
    each invalid field in ``errors`` (``[{"field", "message", "code"}]``)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or f"HTTP {status}")
        self.detail: str | None = problem.get("detail")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        super().__init__(self._message())

    @property
    def slug(self) -> str:
        """The last part of ``type``: ``validation-error``, ``duplicate-external-id``…"""
        return self.type.rsplit(":", 1)[-1]

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        fields = "; ".join(f"{error.get('field')}: {error.get('message')}" for error in self.errors)
        return f"{text} ({fields})" if fields else text


class NotApproved(CountersignError):
    """The call left the reviewers without an approval to act on; ``status`` says how it ended
    (``withdrawn``, ``needs_info``, ``execution_failed``, or one of the subclasses' statuses)."""

    def __init__(self, case_id: int, status: str, message: str | None = None) -> None:
        self.case_id = case_id
        self.status = status
        super().__init__(message or f"case {case_id} ended as {status}: nothing may be run")


class Rejected(NotApproved):
    """A reviewer refused the call (a rejection, or an approved ``refuse`` action); ``feedback``
    is what they told the agent."""

    def __init__(self, feedback: str | None, case_id: int, reason_code: str | None = None) -> None:
        self.feedback = feedback
        self.reason_code = reason_code
        super().__init__(case_id, "rejected", f"case {case_id} was rejected: {feedback or 'no reason given'}")


class Expired(NotApproved):
    """The call reached its ``expires_at`` undecided (or approved but not yet executed): it never runs."""

    def __init__(self, case_id: int) -> None:
        super().__init__(case_id, "expired", f"case {case_id} expired before it was approved and executed")


class ApprovalTimeout(CountersignError):
    """The client's own ``timeout`` passed while the call was still undecided; the case stays open
    on the server (until its ``expires_at``)."""

    def __init__(self, case_id: int, waited: float) -> None:
        self.case_id = case_id
        self.waited = waited
        super().__init__(f"case {case_id} was not decided within {waited:.0f} s")


class InvalidSignature(CountersignError):
    """A callback whose signature, headers or timestamp do not verify: do not act on it."""


class QueueMismatchWarning(UserWarning):
    """`require_approval(queue=…)` named another queue than the one the server routed the call to
    (the tool's policy decides the queue: docs/agent-approvals.md)."""
