"""Shared building blocks of the case types: strict models, value types, the CaseType record."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import reduce
from operator import or_
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    create_model,
)

if TYPE_CHECKING:
    from app.cases.types.view import CaseView


class Strict(BaseModel):
    """Base of every schema: unknown fields are refused, surrounding whitespace is stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TextValue(str):
    """A string a human or an upstream system typed; `collect_free_text` finds these."""


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
PLAIN_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # a sign is left to the bounds of each type


def exact_amount(value: Any) -> Any:
    """An amount as the contract writes it: a decimal string of ASCII digits, or a JSON number
    (read exactly, as a Decimal: app.jsonbody). No exponents, spaces or other digits."""
    if isinstance(value, bool):
        raise ValueError("an amount is a decimal string or a number, not true or false")
    if isinstance(value, int | float | Decimal):
        value = str(value)
    if not isinstance(value, str) or not PLAIN_AMOUNT.fullmatch(value):
        raise ValueError("an amount is written with the digits 0-9 and an optional decimal point, like \"1250.00\"")
    return Decimal(value)


def plain_number(value: Any) -> Any:
    """A JSON number, not a string or a boolean that looks like one."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("a number is expected, not text or true/false")
    return float(value)


def identifier(value: str) -> str:
    """Identifiers carry no control or invisible formatting characters (bidi overrides, zero-width)."""
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise ValueError("an identifier must not contain control or invisible formatting characters")
    return value


# 4 decimal places covers every ISO 4217 minor unit (KWD has 3, CLF 4).
Money = Annotated[
    Decimal, BeforeValidator(exact_amount), Field(ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False)
]
PositiveMoney = Annotated[
    Decimal, BeforeValidator(exact_amount), Field(gt=0, max_digits=18, decimal_places=4, allow_inf_nan=False)
]
Score = Annotated[float, BeforeValidator(plain_number), Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, strict=True)]
# Identifiers, account numbers, codes: not free text.
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(identifier)]
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


CORRECTED_CONFIDENCE = 0.6  # at most this sure of an action the consistency pass had to correct
CORRECTED = "action_corrected"  # the flag of an analysis whose action the consistency pass corrected


@dataclass(frozen=True)
class ConsistencyRule:
    """A check a compliance analyst insists on: an analysis that carries ``flag`` must not take an action
    the flag rules out (the type's hard flags say which); if it does, its action becomes ``safe_action``
    for the reason ``why``. ``parameters`` are the safe action's (default: ``{"reason": why}``)."""

    flag: str
    safe_action: str
    why: str
    parameters: Mapping[str, Any] | None = None

    def safe_parameters(self) -> dict[str, Any]:
        return {"reason": self.why} if self.parameters is None else dict(self.parameters)


class UnknownAction(ValueError):
    """The action is not in the case type's closed list."""


D = TypeVar("D", bound=BaseModel)


EVERY_DOMAIN = "*"  # a case type's domain when it is allowed in every domain (the registry lists it in each)


def never_expires(data: Any) -> datetime | None:
    return None


def no_action_problems(data: Any, action: str, parameters: dict[str, Any]) -> dict[str, str]:
    return {}


def no_parameters_schema(data: Any, action: str) -> dict[str, Any] | None:
    return None


PROMPT_PREFIX, PROMPT_SUFFIX = "prompt.", ".md"  # a type's prompt template: prompt.<version>.md
EXAMPLE_FILE = "example.json"


@dataclass(frozen=True)
class CaseType(Generic[D]):
    """Everything a case type offers. Each type is one folder (package) in app/cases/types, whose
    ``__init__.py`` builds its CASE_TYPE with `CaseType.in_folder`; the registry lists the folders."""

    domain: str
    name: str  # also the name of its folder
    data_schema: type[D]  # the pydantic model of the case's `data`
    actions: Mapping[str, type[BaseModel]]  # the closed list of actions and the model of each one's parameters
    amount: Callable[[D], tuple[Decimal, str] | None]  # the amount at stake and its currency, if any
    analyzer: Callable[..., Analysis]  # the deterministic local analyzer: analyzer(data) (see `analyze`)
    present: Callable[[dict[str, Any]], CaseView]  # how the case page shows the stored (JSON) data
    folder: Path  # where the type lives: its prompt templates and example are files there
    prompts: Mapping[str, str]  # prompt template text by template version (prompt.<version>.md)
    example_json: str  # example.json: a realistic, valid `data` payload (see `example`)
    free_text: Callable[[D], dict[str, str]] = collect_free_text
    # Dual approval (app.cases.policy): actions that always need a second approver, and whether the
    # amount at stake (or a credit limit an action sets) at or above its currency's threshold does.
    dual_approval_actions: frozenset[str] = frozenset()
    dual_approval_over_threshold: bool = False
    # The local analyzer's hard flags: attached to every recommendation whichever provider answered,
    # each with the actions it rules out (an answer taking one contradicts the screening).
    hard_flags: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    # What the action becomes when the analysis takes one its own hard flags rule out: one rule for each
    # hard flag that rules an action out (`reconcile`).
    consistency_rules: tuple[ConsistencyRule, ...] = ()

    # When a case of the type expires for good, undecided or unexecuted (None: never).
    expires_at: Callable[[D], datetime | None] = never_expires
    # What is wrong with an action's (already valid) parameters for this case's own data, as
    # {"parameters.<path>": message}: e.g. a tool call's arguments against the tool's JSON Schema.
    action_problems: Callable[[D, str, dict[str, Any]], dict[str, str]] = no_action_problems
    # The JSON Schema of an action's parameters when the case's own data defines it (a tool call's
    # arguments): the decision form is built from it. None: the action's model in `actions` alone.
    parameters_schema: Callable[[D, str], dict[str, Any] | None] = no_parameters_schema
    # Whether a reviewer may answer the case instead of deciding it (the "respond" decision).
    answerable: bool = False

    def __post_init__(self) -> None:
        unknown = {action for ruled_out in self.hard_flags.values() for action in ruled_out} - set(self.actions)
        if unknown:
            raise ValueError(f"case type {self.name!r}: hard flags rule out unknown actions {sorted(unknown)}")
        ruling = {flag for flag, ruled_out in self.hard_flags.items() if ruled_out}
        covered = [rule.flag for rule in self.consistency_rules]
        if sorted(covered) != sorted(ruling):
            raise ValueError(f"case type {self.name!r}: one consistency rule for each hard flag that rules actions"
                             f" out ({sorted(ruling)}), found {covered}")
        for rule in self.consistency_rules:
            if rule.safe_action in self.hard_flags[rule.flag]:
                raise ValueError(f"case type {self.name!r}: {rule.flag} rules out its own safe action")
            self.validate_action(rule.safe_action, rule.safe_parameters())

    @classmethod
    def in_folder(
        cls,
        package_file: str | Path,
        *,
        domain: str,
        name: str,
        data_schema: type[D],
        actions: Mapping[str, type[BaseModel]],
        amount: Callable[[D], tuple[Decimal, str] | None],
        analyze: Callable[..., Analysis],
        present: Callable[[dict[str, Any]], CaseView],
        free_text: Callable[[D], dict[str, str]] = collect_free_text,
        dual_approval_actions: frozenset[str] = frozenset(),
        dual_approval_over_threshold: bool = False,
        hard_flags: Mapping[str, frozenset[str]] = MappingProxyType({}),
        consistency_rules: tuple[ConsistencyRule, ...] = (),
        expires_at: Callable[[D], datetime | None] = never_expires,
        action_problems: Callable[[D, str, dict[str, Any]], dict[str, str]] = no_action_problems,
        parameters_schema: Callable[[D, str], dict[str, Any] | None] = no_parameters_schema,
        answerable: bool = False,
    ) -> CaseType[D]:
        """The case type whose package is ``package_file`` (its ``__file__``): the folder must be
        called ``name`` and hold at least one ``prompt.<version>.md`` and an ``example.json``."""
        folder = Path(package_file).resolve()
        folder = folder.parent if folder.is_file() else folder
        if folder.name != name:
            raise ValueError(f"case type {name!r} lives in a folder called {folder.name!r}: they must agree")
        prompts = {
            path.name.removeprefix(PROMPT_PREFIX).removesuffix(PROMPT_SUFFIX): path.read_text(encoding="utf-8")
            for path in sorted(folder.glob(f"{PROMPT_PREFIX}*{PROMPT_SUFFIX}"))
        }
        if not prompts:
            raise FileNotFoundError(f"case type {name!r} has no prompt template ({folder}/prompt.<version>.md)")
        return cls(
            domain=domain, name=name, data_schema=data_schema, actions=actions,
            amount=amount, analyzer=analyze, present=present, folder=folder, prompts=prompts,
            example_json=(folder / EXAMPLE_FILE).read_text(encoding="utf-8"), free_text=free_text,
            dual_approval_actions=dual_approval_actions, dual_approval_over_threshold=dual_approval_over_threshold,
            hard_flags=MappingProxyType(dict(hard_flags)), consistency_rules=consistency_rules,
            expires_at=expires_at, action_problems=action_problems, parameters_schema=parameters_schema,
            answerable=answerable,
        )

    @property
    def example(self) -> dict[str, Any]:
        """A fresh copy of the type's example payload (JSON-ready: amounts are strings)."""
        example: dict[str, Any] = json.loads(self.example_json)
        return example

    def prompt_path(self, version: str) -> Path:
        return self.folder / f"{PROMPT_PREFIX}{version}{PROMPT_SUFFIX}"

    def prompt(self, version: str) -> str:
        """The type's guidance for the model in prompt template ``version`` (app.ai.runtime.TEMPLATE_VERSION)."""
        found = self.prompts.get(version)
        if found is None:
            raise LookupError(f"case type {self.name!r} has no prompt template {version!r}"
                              f" ({self.prompt_path(version)} is missing)")
        return found

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(self.actions)

    def hard_flags_of(self, flags: list[str]) -> list[str]:
        """The hard flags among an analysis's risk flags, in their order."""
        return [flag for flag in flags if flag in self.hard_flags]

    def contradicted(self, hard_flags: list[str], action: str) -> list[str]:
        """The hard flags that rule ``action`` out."""
        return [flag for flag in hard_flags if action in self.hard_flags.get(flag, ())]

    def analyze(self, data: D, **options: Any) -> Analysis:
        """The local analyzer's analysis of ``data``, its action made consistent with its own evidence."""
        return self.reconcile(self.analyzer(data, **options))

    def reconcile(self, analysis: Analysis) -> Analysis:
        """``analysis`` with every action its hard flags rule out replaced by the consistency rule's safe
        action, the reason appended to the rationale, the flag `CORRECTED` added and the confidence capped."""
        for _ in range(len(self.consistency_rules) + 1):
            rule = next((rule for rule in self.consistency_rules if rule.flag in analysis.risk_flags
                         and analysis.action in self.hard_flags[rule.flag]), None)
            if rule is None:
                return analysis
            analysis = replace(
                analysis,
                action=rule.safe_action,
                parameters=self.validate_action(rule.safe_action, rule.safe_parameters()).model_dump(mode="json"),
                rationale=f"{analysis.rationale} Corrected from {analysis.action} to {rule.safe_action}: {rule.why}",
                confidence=min(analysis.confidence, CORRECTED_CONFIDENCE),
                risk_flags=list(dict.fromkeys([*analysis.risk_flags, CORRECTED])),
            )
        raise ValueError(f"case type {self.name!r}: its consistency rules send an action round in a circle")

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
