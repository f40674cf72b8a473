"""The one interface every AI provider implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from app.cases.types import CaseType


class ProviderError(Exception):
    """The provider could not give a usable answer; the next provider in the chain may."""


class TransientProviderError(ProviderError):
    """Worth retrying later: rate limited, 5xx, timeout, connection refused."""


class InvalidOutput(ProviderError):
    """The answer came back but is not a valid recommendation (bad JSON, unknown
    action, wrong parameters, refusal). Never stored as a recommendation."""


@dataclass(frozen=True)
class ProviderRequest:
    case_type: CaseType[Any]
    model: str
    system_prompt: str
    user_prompt: str  # the rendered, versioned template: case data (redacted where needed) and precedents
    data: dict[str, Any]  # the case data as the provider may see it (redacted for non-private providers)
    response_schema: dict[str, Any]  # JSON Schema of the answer (app.ai.schemas.response_schema)


@dataclass
class ProviderResponse:
    output: Any  # the parsed JSON answer, validated later by app.ai.schemas.parse_recommendation
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str
    private: bool  # True: may see confidential and unredacted data (runs on our own infrastructure)

    def complete(self, request: ProviderRequest) -> ProviderResponse: ...
