"""RFC 9457 problem details for the API, HTML error pages for browsers."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

PROBLEM_TYPE_PREFIX = "urn:countersign:problem:"


class Problem(Exception):
    """An error an API client can act on: a stable type, a status and a precise detail."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.extra = extra

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


def validation_problem(
    exc: ValidationError, *, prefix: tuple[str | int, ...] = (), detail: str | None = None
) -> Problem:
    """Every invalid field of a pydantic error, as a 422 problem."""
    errors = [
        {"field": _dotted(prefix + tuple(err["loc"])), "message": err["msg"], "code": err["type"]}
        for err in exc.errors(include_url=False)
    ]
    return Problem(
        422, "validation-error", "The request body is invalid", detail or f"{len(errors)} invalid field(s)", errors
    )


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[str, int]:
        if wants_json():
            slug = (exc.name or "error").lower().replace(" ", "-")
            return problem_response(Problem(exc.code or 500, slug, exc.name, exc.description))
        return render_template("errors/error.html", error=exc), exc.code or 500
