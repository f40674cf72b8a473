"""Shared building blocks of the case types: strict models, value types, the CaseType record."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from operator import or_
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    create_model,
)


class Strict(BaseModel):
    """Base of every schema: unknown fields are refused, surrounding whitespace is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TextValue(str):
    """A string a human or an upstream system typed; `collect_free_text` finds these."""


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# 4 decimal places covers every ISO 4217 minor unit (KWD has 3, CLF 4).
Money = Annotated[
    Decimal, Field(ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False)
]
PositiveMoney = Annotated[
    Decimal, Field(gt=0, max_digits=18, decimal_places=4, allow_inf_nan=False)
]
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, strict=True)]
# Identifiers, account numbers, codes: not free text.
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# Free text (names, headings) and long free text (purposes, clause text, reasons).
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(TextValue)
]
LongText = Annotated[
    str, StringConstraints(min_length=1, max_length=20_000), AfterValidator(TextValue)
]


class NoParams(Strict):
    """Parameters of an action that takes none: any key is refused."""


class Reason(Strict):
    reason: LongText


class SanctionsHit(Strict):
    list: NonEmptyStr
    matched_name: ShortText
    score: Score


class PepHit(Strict):
    matched_name: ShortText
    score: Score
    position: ShortText | None = None


M = TypeVar("M", bound=BaseModel)


def unique(items: list[M], key: str, what: str) -> list[M]:
    """Return `items`, or raise ValueError when two of them share the same `key` attribute."""
    seen: set[Any] = set()
    for item in items:
        value = getattr(item, key)
        if value in seen:
            raise ValueError(f"duplicate {what} {key} {value!r}")
        seen.add(value)
    return items


def collect_free_text(model: BaseModel) -> dict[str, str]:
    """Every free-text value of a validated model, as {json-path: text}."""

    def walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, TextValue):
            yield path, str(value)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                yield from walk(
                    getattr(value, name), f"{path}.{name}" if path else name
                )
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, f"{path}[{index}]")

    return dict(walk(model, ""))


@dataclass(frozen=True)
class Analysis:
    """What a local analyzer concludes from a case's data, before any model is asked."""

    action: str
    parameters: dict[str, Any]
    rationale: str
    confidence: float  # 0..1: how clear-cut the evidence is
    risk_score: float  # 0..1
    risk_flags: list[str]  # machine-readable signals, e.g. "new_beneficiary", "sanctions_hit"
    citations: list[str]  # the payload paths the conclusion rests on, e.g. "beneficiary.country"


class UnknownAction(ValueError):
    """The action is not in the case type's closed list."""


D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True)
class CaseType(Generic[D]):
    domain: str
    name: str
    data_schema: type[D]
    actions: Mapping[str, type[BaseModel]]
    amount: Callable[[D], tuple[Decimal, str] | None]
    analyze: Callable[[D], Analysis]
    free_text: Callable[[D], dict[str, str]] = collect_free_text

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(self.actions)

    def validate_data(self, raw: Any) -> D:
        return self.data_schema.model_validate(raw)

    def validate_action(self, action: str, parameters: Any) -> BaseModel:
        schema = self.actions.get(action)
        if schema is None:
            raise UnknownAction(
                f"unknown action {action!r} for {self.name}; allowed: {', '.join(self.action_names)}"
            )
        return schema.model_validate(parameters)

    def action_json_schema(self) -> dict[str, Any]:
        """JSON Schema of {"action": ..., "parameters": ...}, a union discriminated by "action"."""
        choices = tuple(
            create_model(
                f"{name.title().replace('_', '')}Action",
                __base__=Strict,
                action=(Literal[name], ...),
                parameters=(schema, ...),
            )
            for name, schema in self.actions.items()
        )
        union = Annotated[reduce(or_, choices), Field(discriminator="action")]
        return TypeAdapter(union).json_schema()
