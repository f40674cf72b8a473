"""The OpenAPI 3.1 document of the upstream and reviewer APIs, built from the pydantic models
the views validate requests with and answer with; served at ``/api/v1/openapi.json`` and as a
reference page at ``/api/v1/reference``."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, render_template
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.cases.schemas import CaseHead
from app.cases.types import REGISTRY
from app.intake.schemas import CaseAccepted, CaseEnvelope, InfoAnswer, UpstreamCase, Withdrawal
from app.review.schemas import AssignCommand, CaseSummary, DecisionAnswer, InboxPage, ReviewDocument
from app.review.services import DecisionCommand

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

UPSTREAM, REVIEWER = "upstream", "reviewer"
PROBLEMS = {
    400: "The request is malformed (not JSON, not a JSON object, a bad header)",
    401: "No valid credentials, or (signed requests) no valid Standard Webhooks signature",
    403: "Authenticated, but this role or client may not do this",
    404: "No such case, or not one this caller may see",
    409: "The case is not in a state that allows this, or this webhook-id was used for another body",
    413: "The body is larger than MAX_BODY_BYTES",
    415: "The body is not application/json",
    422: "The document is invalid: `errors` names every invalid field",
    429: "Too many requests for this client (INTAKE_RATE_LIMIT)",
    503: "No queue receives cases of this domain and type: `missing` names them; nothing was stored",
}
SIGNED = (400, 401, 404, 409, 413, 415, 422, 429)
CASE_ID = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
SIGNATURE_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string", "maxLength": 255},
     "description": "A unique id of this delivery: a retry with the same id and body is answered as before"},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds when it was signed (within WEBHOOK_TOLERANCE_SECONDS of now)"},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with one of the client's signing secrets"},
]
PAGE_ARG = {"type": "integer", "minimum": 1, "maximum": 10_000}


@dataclass(frozen=True)
class Operation:
    method: Literal["get", "post"]
    path: str
    audience: str
    summary: str
    answer: tuple[int, type[BaseModel]]
    problems: tuple[int, ...]
    body: type[BaseModel] | None = None
    parameters: list[dict[str, Any]] = field(default_factory=list)


OPERATIONS = (
    Operation("post", "/cases", UPSTREAM, "Submit a case for review (signed)", (202, CaseAccepted), (*SIGNED, 503),
              CaseEnvelope, SIGNATURE_HEADERS),
    Operation("get", "/cases/{case_id}", UPSTREAM, "Read one of your cases: its status, recommendation, "
              "decisions and execution; with wait, once it leaves review", (200, UpstreamCase), (401, 404, 422), None,
              [CASE_ID, {"name": "wait", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 0, "maximum": 60},
                         "description": "Answer as soon as the case is decided, or after this many seconds"}]),
    Operation("post", "/cases/{case_id}/info", UPSTREAM, "Answer a request for more information (signed)",
              (202, CaseAccepted), SIGNED, InfoAnswer, [CASE_ID, *SIGNATURE_HEADERS]),
    Operation("post", "/cases/{case_id}/withdraw", UPSTREAM, "Withdraw a case not yet approved (signed)",
              (202, CaseAccepted), SIGNED, Withdrawal, [CASE_ID, *SIGNATURE_HEADERS]),
    Operation("get", "/inbox", REVIEWER, "A page of a queue's cases", (200, InboxPage), (401, 404, 422), None, [
        {"name": "queue", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "The queue's name (default: your first queue)"},
        {"name": "status", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["open", "mine", "decided", "all"]}},
        {"name": "page", "in": "query", "required": False, "schema": PAGE_ARG},
        {"name": "per_page", "in": "query", "required": False, "schema": PAGE_ARG},
    ]),
    Operation("get", "/review/cases/{case_id}", REVIEWER, "Everything a reviewer sees of a case",
              (200, ReviewDocument), (401, 404), None, [CASE_ID]),
    Operation("post", "/cases/{case_id}/claim", REVIEWER, "Claim a case to review it", (200, CaseSummary),
              (401, 403, 404, 409), None, [CASE_ID]),
    Operation("post", "/cases/{case_id}/release", REVIEWER, "Hand a claimed case back to its queue",
              (200, CaseSummary), (401, 403, 404, 409), None, [CASE_ID]),
    Operation("post", "/cases/{case_id}/assign", REVIEWER, "Give a case to a reviewer of its queue (seniors, "
              "admins)", (200, CaseSummary), (400, 401, 403, 404, 409, 422), AssignCommand, [CASE_ID]),
    Operation("post", "/cases/{case_id}/decisions", REVIEWER, "Decide a claimed case: approve, edit, reject, "
              "escalate, request information, or a blind assessment", (201, DecisionAnswer),
              (400, 401, 403, 404, 409, 422), DecisionCommand, [CASE_ID]),
)


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (the models do not change while the process runs)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Countersign API", "version": "1",
                 "description": "The upstream API (API clients: submit cases, answer, withdraw, read) and the "
                                "reviewer API (personal tokens: the inbox, claims, decisions)."},
        "servers": [{"url": "/api/v1"}],
        "tags": [{"name": UPSTREAM, "description": "For upstream systems, with an API client's token"},
                 {"name": REVIEWER, "description": "For reviewers' scripts, with a personal API token"}],
        "paths": paths,
        "components": {"schemas": _schemas(), "securitySchemes": {
            "clientToken": {"type": "http", "scheme": "bearer", "description": "An API client's token (cs_…)"},
            "personalToken": {"type": "http", "scheme": "bearer",
                              "description": "A reviewer's personal API token (cst_…)"}}},
    }


def _operation(op: Operation) -> dict[str, Any]:
    status, model = op.answer
    answer: dict[str, Any] = {"description": model.__doc__.strip().splitlines()[0] if model.__doc__ else "OK",
                              "content": {"application/json": {"schema": _ref(model)}}}
    if status == 202:
        answer["headers"] = {
            "Location": {"schema": {"type": "string"}, "description": "The case's URL"},
            "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                    "description": "Present when the webhook-id was delivered before: the "
                                                   "first answer again, nothing new was done"}}
    responses = {str(status): answer}
    for code in op.problems:
        responses[str(code)] = {"description": PROBLEMS[code],
                                "content": {"application/problem+json": {"schema": _ref("Problem")}}}
    found: dict[str, Any] = {
        "tags": [op.audience], "summary": op.summary, "operationId": _operation_id(op),
        "security": [{"clientToken" if op.audience == UPSTREAM else "personalToken": []}],
        "parameters": op.parameters, "responses": responses,
    }
    if op.body is not None:
        media: dict[str, Any] = {"schema": _ref(op.body)}
        if op.body is CaseEnvelope:
            media["examples"] = _case_examples()
        found["requestBody"] = {"required": True, "content": {"application/json": media}}
    return found


def _case_examples() -> dict[str, Any]:
    """One valid submission per case type, from the case types' own examples."""
    return {case_type.name: {"summary": case_type.name.replace("_", " "), "value": {
        "external_id": f"example-{case_type.name}", "domain": case_type.domain, "case_type": case_type.name,
        "title": f"Example {case_type.name.replace('_', ' ')}", "data": case_type.example}}
        for case_type in REGISTRY.values()}


def _operation_id(op: Operation) -> str:
    words = [part for part in op.path.split("/") if part and not part.startswith("{")]
    return "_".join([op.method, op.audience, *words])


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model if isinstance(model, str) else model.__name__}"}


def _schemas() -> dict[str, Any]:
    requests = [op.body for op in OPERATIONS if op.body is not None]
    answers = [op.answer[1] for op in OPERATIONS]
    _, schema = models_json_schema([(model, "validation") for model in requests]
                                   + [(model, "serialization") for model in (*answers, CaseHead)],
                                   ref_template="#/components/schemas/{model}")
    return {**schema["$defs"], "Problem": PROBLEM_SCHEMA}


PROBLEM_SCHEMA = {
    "type": "object", "title": "Problem",
    "description": "RFC 9457 problem details; `type` is urn:countersign:problem:<slug>",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}}}},
    },
}


@bp.app_template_filter("schema_type")
def schema_type(spec: dict[str, Any]) -> str:
    """A JSON Schema as a short type for people: ``string``, ``integer | null``, ``InboxItem[]``."""
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in spec:
        return " | ".join(schema_type(option) for option in spec["anyOf"])
    if spec.get("type") == "array":
        return schema_type(spec.get("items", {})) + "[]"
    if "enum" in spec:
        return " | ".join(f'"{value}"' for value in spec["enum"])
    if "const" in spec:
        return f'"{spec["const"]}"'
    return str(spec.get("type", "any"))


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document())


@bp.get("/reference")
def reference() -> str:
    return render_template("openapi/reference.html", doc=document(), operations=OPERATIONS)
