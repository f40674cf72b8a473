"""The case envelope of ``POST /api/v1/cases`` (CASE_TYPES.md, "Common envelope")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CaseEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str = Field(min_length=1, max_length=128)
    domain: Literal["finance", "legal", "compliance"]
    case_type: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    callback_url: str | None = Field(default=None, max_length=2048)
    confidential: bool = False
