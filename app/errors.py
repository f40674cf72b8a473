"""Domain errors: what services raise when they refuse a request. They know nothing of HTTP;
the web edge (`app.problems`) turns them into problem details, flash messages or error pages.

Each error carries a plain-language ``message``, a stable ``slug`` an API client can act on,
and, when fields are at fault, ``errors``: ``[{"field": …, "message": …, "code"?: …}]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FieldErrors = Mapping[str, str] | Sequence[Mapping[str, Any]]


class DomainError(Exception):
    slug = "error"
    title = "Request refused"

    def __init__(self, message: str, errors: FieldErrors | None = None, *, slug: str | None = None,
                 title: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if isinstance(errors, Mapping):
            errors = [{"field": field, "message": text} for field, text in errors.items()]
        self.errors: list[dict[str, Any]] = [dict(e) for e in errors or ()]
        self.slug = slug or self.slug
        self.title = title or self.title
        self.extra = extra  # more members of the problem document, e.g. the case_id a conflict is about

    @property
    def by_field(self) -> dict[str, str]:
        return {e["field"]: e["message"] for e in self.errors}


class Malformed(DomainError):
    """The request cannot even be read (not JSON, not an object)."""

    slug, title = "malformed", "Malformed request"


class Unauthenticated(DomainError):
    slug, title = "unauthenticated", "Authentication required"


class Forbidden(DomainError):
    slug, title = "forbidden", "Not allowed"


class NotFound(DomainError):
    slug, title = "not-found", "Not found"


class Conflict(DomainError):
    """The request is valid but clashes with the state of things (already claimed, already used)."""

    slug, title = "conflict", "Conflict"


class Stale(Conflict):
    """Someone changed the thing meanwhile: read it again."""

    slug, title = "stale-version", "Changed meanwhile"


class ConfirmationRequired(Conflict):
    """The decision is allowed but risky: it is made only once the reviewer confirms it, knowing
    ``reasons`` (plain sentences)."""

    slug, title = "confirmation-required", "Confirm first"

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message, reasons=reasons)
        self.reasons = reasons


class Invalid(DomainError):
    """Readable, but some field is wrong: ``errors`` names each."""

    slug, title = "invalid", "Invalid request"


class Unavailable(DomainError):
    """A configuration or dependency the request needs is missing."""

    slug, title = "unavailable", "Not available"


def field_errors(exc: Any, *, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """Every invalid field of a pydantic ``ValidationError``, as ``errors`` entries with dotted paths."""
    return [{"field": _dotted(prefix + tuple(err["loc"])), "message": err["msg"], "code": err["type"]}
            for err in exc.errors(include_url=False)]


def validation_error(errors: list[dict[str, Any]], what: str = "request body") -> Invalid:
    """A 422-style refusal listing every invalid field."""
    return Invalid(f"{len(errors)} invalid field(s)", errors, slug="validation-error", title=f"The {what} is invalid")


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
