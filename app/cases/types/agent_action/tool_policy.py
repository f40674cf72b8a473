"""A tool's policy as the analyzer reads it, and the check of one call against it.

The policies themselves are configured by admins (app.agents: a table, a YAML file, an admin
page); the app installs `use_policies` so that the analyzer, which knows nothing of the
database, can look a tool's policy up by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class ArgumentLimit:
    """Bounds on one argument: a maximum for a number; allowed values, or allowed e-mail / URL
    domains, for a string."""

    max: Decimal | None = None
    allowed_values: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolPolicy:
    """What the analyzer checks a call of the tool against: its arguments' limits, by name."""

    name: str
    limits: Mapping[str, ArgumentLimit] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    argument: str
    detail: str
    corrected: Any = None  # a value within the limit, when one follows from it (a clamped amount)
    fixable: bool = False


PolicySource = Callable[[str], ToolPolicy | None]
_source: list[PolicySource] = []


def use_policies(source: PolicySource) -> None:
    """Look tools' policies up with ``source(tool_name)`` from now on."""
    _source[:] = [source]


def policy_for(tool_name: str) -> ToolPolicy | None:
    return _source[0](tool_name) if _source else None


def domain_of(value: str) -> str:
    """The domain of an e-mail address or URL ("pay@shop.example" → "shop.example")."""
    host = value.rsplit("@", 1)[-1] if "@" in value else value.split("://", 1)[-1]
    return host.split("/", 1)[0].split(":", 1)[0].strip().lower()


def findings(policy: ToolPolicy, arguments: Mapping[str, Any]) -> list[Finding]:
    """Each argument of the call that breaks its limit, in the policy's order."""
    found = []
    for name, limit in policy.limits.items():
        if name in arguments:
            finding = _check(name, limit, arguments[name])
            if finding is not None:
                found.append(finding)
    return found


def _check(name: str, limit: ArgumentLimit, value: Any) -> Finding | None:
    number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if limit.max is not None and number and Decimal(str(value)) > limit.max:
        clamped = int(limit.max) if isinstance(value, int) and limit.max == int(limit.max) else float(limit.max)
        return Finding(name, f"{name} {value} is above the limit of {limit.max}", clamped, fixable=True)
    if isinstance(value, str):
        if limit.allowed_values and value not in limit.allowed_values:
            return Finding(name, f"{name} {value!r} is not one of {', '.join(limit.allowed_values)}")
        if limit.allowed_domains and domain_of(value) not in limit.allowed_domains:
            return Finding(name, f"{name} {value!r} is outside the allowed domains {', '.join(limit.allowed_domains)}")
    return None
