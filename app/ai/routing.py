"""Routing rules: provider + model per case, fallback chains, prices and budgets."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.cases.models import Case, Recommendation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSpec(_Strict):
    kind: Literal["local", "openai"]
    private: bool = False


class Price(_Strict):
    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)


class Match(_Strict):
    domain: str | None = None
    case_type: str | None = None
    min_risk: float | None = Field(default=None, ge=0, le=1)
    confidential: bool | None = None

    def matches(self, domain: str, case_type: str, risk: float, confidential: bool) -> bool:
        return (
            self.domain in (None, domain)
            and self.case_type in (None, case_type)
            and (self.min_risk is None or risk >= self.min_risk)
            and self.confidential in (None, confidential)
        )


class Target(_Strict):
    provider: str
    model: str

    @classmethod
    def parse(cls, text: str) -> Target:
        provider, sep, model = text.partition(":")
        if not sep or not provider or not model:
            raise ValueError(f"{text!r} is not 'provider:model'")
        return cls(provider=provider, model=model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


class Route(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=60)  # for `flask ai eval --route`
    match: Match = Match()
    chain: list[Target] = Field(min_length=1)
    # Analyses the same cases after the primary answered, apart: never shown to reviewers, never executed.
    shadow: Target | None = None

    @field_validator("chain", mode="before")
    @classmethod
    def _parse_chain(cls, value: list[str]) -> list[Target]:
        return [Target.parse(v) if isinstance(v, str) else v for v in value]

    @field_validator("shadow", mode="before")
    @classmethod
    def _parse_shadow(cls, value: str | None) -> Target | None:
        return Target.parse(value) if isinstance(value, str) else value


class Budgets(_Strict):
    per_client_monthly_usd: Decimal | None = Field(default=None, ge=0)
    per_domain_monthly_usd: dict[str, Decimal] = {}
    # Shadow analyses have their own monthly cap (None: no cap); when it is spent, paid shadows are skipped.
    shadow_monthly_usd: Decimal | None = Field(default=None, ge=0)


class Disagreement(_Strict):
    enabled: bool = False
    second: Target | None = None

    @field_validator("second", mode="before")
    @classmethod
    def _parse_second(cls, value: str | None) -> Target | None:
        return Target.parse(value) if isinstance(value, str) else value


class RoutingConfig(_Strict):
    providers: dict[str, ProviderSpec]
    prices: dict[str, Price] = {}
    routes: list[Route] = Field(min_length=1)
    budgets: Budgets = Budgets()
    cache_ttl_seconds: int = Field(default=86400, ge=0)
    disagreement: Disagreement = Disagreement()

    @model_validator(mode="after")
    def _targets_are_known(self) -> RoutingConfig:
        targets = [t for r in self.routes for t in [*r.chain, *([r.shadow] if r.shadow else [])]]
        if self.disagreement.second:
            targets.append(self.disagreement.second)
        for target in targets:
            if target.provider not in self.providers:
                raise ValueError(f"route names unknown provider {target.provider!r} "
                                 f"(known: {', '.join(self.providers)})")
            if target.model not in self.prices:
                raise ValueError(f"no price for model {target.model!r}: add it under prices")
        if not any(r.match == Match() for r in self.routes):
            raise ValueError("the last route must match everything (match: {}) so no case goes unrouted")
        names = [r.name for r in self.routes if r.name]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be unique: {', '.join(names)}")
        return self

    def route_for(self, domain: str, case_type: str, risk: float, confidential: bool) -> Route:
        return next(r for r in self.routes if r.match.matches(domain, case_type, risk, confidential))

    def chain_for(self, domain: str, case_type: str, risk: float, confidential: bool) -> list[Target]:
        return list(self.route_for(domain, case_type, risk, confidential).chain)

    def named_route(self, name: str) -> Route:
        """The route called ``name``, or the route at that 1-based position in the file."""
        for position, route in enumerate(self.routes, start=1):
            if name in (route.name, str(position)):
                return route
        known = ", ".join(r.name or str(i) for i, r in enumerate(self.routes, start=1))
        raise LookupError(f"no route {name!r} (routes: {known})")

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> Decimal:
        price = self.prices[model]
        return (price.input * tokens_in + price.output * tokens_out) / 1000

    def is_paid(self, model: str) -> bool:
        price = self.prices[model]
        return price.input > 0 or price.output > 0

    def may_pay(self, enabled: Container[str]) -> bool:
        """Whether any route's chain may ask a paid model of a provider in ``enabled``: else no budget
        can stop a call, and the month's spending need not be added up for each case."""
        return any(target.provider in enabled and self.is_paid(target.model)
                   for route in self.routes for target in route.chain)


class RoutingFileError(ValueError):
    """The routing file is missing or invalid; the message says where."""


@cache
def load_routing(path: str) -> RoutingConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text())
        return RoutingConfig.model_validate(raw)
    except OSError as exc:
        raise RoutingFileError(f"cannot read AI routing file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RoutingFileError(f"AI routing file {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise RoutingFileError(f"AI routing file {path} is invalid: {problems}") from None


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spent_this_month(session: Session, now: datetime, *, client_id: int | None = None,
                     domain: str | None = None) -> Decimal:
    query = (
        select(func.coalesce(func.sum(Recommendation.cost_usd), 0))
        .join(Case, Case.id == Recommendation.case_id)
        .where(Recommendation.created_at >= month_start(now))
    )
    if client_id is not None:
        query = query.where(Case.client_id == client_id)
    if domain is not None:
        query = query.where(Case.domain == domain)
    return Decimal(session.scalar(query) or 0)


def over_budget(session: Session, config: RoutingConfig, now: datetime, client_id: int, domain: str) -> str | None:
    """Which budget is spent (a sentence), or None while paid calls are allowed."""
    budgets = config.budgets
    if budgets.per_client_monthly_usd is not None:
        spent = spent_this_month(session, now, client_id=client_id)
        if spent >= budgets.per_client_monthly_usd:
            return f"client budget spent: USD {spent:.2f} of {budgets.per_client_monthly_usd:.2f} this month"
    cap = budgets.per_domain_monthly_usd.get(domain)
    if cap is not None:
        spent = spent_this_month(session, now, domain=domain)
        if spent >= cap:
            return f"{domain} budget spent: USD {spent:.2f} of {cap:.2f} this month"
    return None
