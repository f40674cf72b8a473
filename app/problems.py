"""The web edge of errors: RFC 9457 problem details for the API, error pages for browsers.

Services raise `app.errors.DomainError`s; this module alone knows their HTTP status codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app import errors

PROBLEM_TYPE_PREFIX = "urn:countersign:problem:"
STATUS: dict[type[errors.DomainError], int] = {
    errors.Malformed: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Invalid: 422,
    errors.Unavailable: 503,
}


def status_of(exc: errors.DomainError) -> int:
    return next((code for cls in type(exc).__mro__ if (code := STATUS.get(cls)) is not None), 400)


class Problem(Exception):
    """An error of the HTTP exchange itself (media type, signature headers), raised by views."""

    def __init__(self, status: int, slug: str, title: str, detail: str | None = None,
                 errors: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.errors, self.extra = errors, extra

    @classmethod
    def of(cls, exc: errors.DomainError) -> Problem:
        return cls(status_of(exc), exc.slug, exc.title, exc.message, exc.errors or None, **exc.extra)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": PROBLEM_TYPE_PREFIX + self.slug, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def problem_response(problem: Problem) -> Response:
    response = jsonify(problem.to_dict())
    response.status_code = problem.status
    response.content_type = "application/problem+json"
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def sentence(message: str) -> str:
    """A message as a sentence for people: capitalised (unless it opens with a field name, such as
    ``sla_minutes``, kept as written), with a full stop."""
    opening = message.split(" ", 1)[0]
    capitalised = message if "_" in opening else message[:1].upper() + message[1:]
    return capitalised + ("" if message.endswith((".", "!", "?")) else ".")


@dataclass(frozen=True)
class ErrorPage:
    code: int
    name: str
    description: str


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)

    @app.errorhandler(errors.DomainError)
    def domain_error(exc: errors.DomainError) -> Response | tuple[str, int]:
        from app.extensions import db

        db.session.rollback()
        if wants_json():
            return problem_response(Problem.of(exc))
        page = ErrorPage(status_of(exc), exc.title, sentence(exc.message))
        return render_template("errors/error.html", error=page), page.code

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[str, int]:
        if wants_json():
            slug = (exc.name or "error").lower().replace(" ", "-")
            return problem_response(Problem(exc.code or 500, slug, exc.name, exc.description))
        return render_template("errors/error.html", error=exc), exc.code or 500
