"""The one Recommendation every provider's answer must parse into."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.ai.providers.base import InvalidOutput
from app.cases.types import CaseType, UnknownAction, get_case_type


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str
    parameters: dict[str, Any]
    rationale: str = Field(min_length=1, max_length=8000)
    confidence: float = Field(ge=0, le=1)
    risk_flags: list[str] = Field(default_factory=list, max_length=50)
    citations: list[str] = Field(default_factory=list, max_length=100)


def parse_recommendation(case_type: CaseType[Any], output: Any) -> Recommendation:
    """Validate a provider's answer against the case type's closed action list, or raise InvalidOutput."""
    if isinstance(output, str | bytes):
        try:
            output = json.loads(output)
        except json.JSONDecodeError as exc:
            raise InvalidOutput(f"the answer is not valid JSON: {exc}") from None
    try:
        rec = Recommendation.model_validate(output)
    except ValidationError as exc:
        raise _invalid(exc, ()) from None
    try:
        params = case_type.validate_action(rec.action, rec.parameters)
    except UnknownAction as exc:
        raise InvalidOutput(str(exc)) from None
    except ValidationError as exc:
        raise _invalid(exc, ("parameters",)) from None
    return rec.model_copy(update={"parameters": params.model_dump(mode="json")})


def _invalid(exc: ValidationError, prefix: tuple[str, ...]) -> InvalidOutput:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in (*prefix, *first["loc"])) or "answer"
    return InvalidOutput(f"invalid answer at {where}: {first['msg']} ({exc.error_count()} error(s))")


def response_schema(case_type: CaseType[Any]) -> dict[str, Any]:
    """JSON Schema of a Recommendation for ``case_type``, fit for strict structured outputs:
    every property required, no additional properties, the action a closed enum."""
    return copy.deepcopy(_response_schema(case_type.domain, case_type.name))


@cache
def _response_schema(domain: str, name: str) -> dict[str, Any]:
    case_type = get_case_type(domain, name)
    actions = case_type.action_json_schema()
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["action", "parameters", "rationale", "confidence", "risk_flags", "citations"],
        "properties": {
            "action": {"type": "string", "enum": list(case_type.action_names)},
            "parameters": {"anyOf": [_strict(copy.deepcopy(choice["properties"]["parameters"]), actions)
                                     for choice in _choices(actions)]},
            "rationale": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "risk_flags": {"type": "array", "items": {"type": "string"}},
            "citations": {"type": "array", "items": {"type": "string"},
                          "description": "dotted paths of the case data fields the answer rests on"},
        },
    }


def _choices(schema: dict[str, Any]) -> list[dict[str, Any]]:
    defs = schema.get("$defs", {})
    return [defs[ref["$ref"].rsplit("/", 1)[1]] for ref in schema["oneOf"]]


def _strict(node: Any, root: dict[str, Any]) -> Any:
    """Inline $refs and make every object strict (all properties required, nothing extra)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _strict(copy.deepcopy(root["$defs"][node["$ref"].rsplit("/", 1)[1]]), root)
        node = {k: _strict(v, root) for k, v in node.items() if k not in ("title", "default")}
        if node.get("type") == "object":
            node["additionalProperties"] = False
            node["required"] = list(node.get("properties", {}))
            node.setdefault("properties", {})
        return node
    if isinstance(node, list):
        return [_strict(item, root) for item in node]
    return node
