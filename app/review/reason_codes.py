"""Reason codes: which a decision of each kind may give, and their administration (audited)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.errors import Conflict, Invalid, NotFound
from app.review.models import DECISION_KINDS, ReasonCode

CODE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_LABEL = 120


def offered(session: Session, kind: str) -> list[tuple[str, str]]:
    """``(code, label)`` of the active codes a decision of ``kind`` may give, by label."""
    return offered_in(all_codes(session), kind)


def offered_in(codes: Iterable[ReasonCode], kind: str) -> list[tuple[str, str]]:
    return [(c.code, c.label) for c in codes if c.active and kind in c.kinds]


def all_codes(session: Session) -> list[ReasonCode]:
    return list(session.scalars(select(ReasonCode).order_by(ReasonCode.label, ReasonCode.code)))


def labels(session: Session) -> dict[str, str]:
    """Every code's label, deactivated ones too: decisions keep showing what they gave."""
    return {c.code: c.label for c in all_codes(session)}


def code_named(session: Session, code: str) -> ReasonCode:
    found = session.scalar(select(ReasonCode).where(ReasonCode.code == code.strip()))
    if found is None:
        raise NotFound(f"no reason code {code.strip()!r}")
    return found


def add_code(session: Session, code: str, label: str, kinds: Iterable[str], actor: Actor) -> ReasonCode:
    code = code.strip()
    if not CODE_PATTERN.fullmatch(code):
        raise Invalid(f"{code!r} is not a reason code: lower-case letters, digits and _, starting with a letter, "
                      "at most 40", {"code": "lower-case letters, digits and _, starting with a letter, at most 40"})
    if session.scalar(select(ReasonCode.id).where(ReasonCode.code == code)):
        raise Conflict(f"a reason code {code!r} already exists", {"code": "already exists"})
    reason = ReasonCode(code=code, label=_label(label), kinds=_kinds(kinds), active=True)
    session.add(reason)
    session.flush()
    chain.record(session, AuditAction.REASON_CODE_CREATED, actor,
                 data={"reason_code_id": reason.id, **_settings(reason)})
    return reason


def update_code(session: Session, reason: ReasonCode, actor: Actor, *, label: str | None = None,
                kinds: Iterable[str] | None = None, active: bool | None = None) -> dict[str, list[Any]]:
    """Change the label, kinds or active flag (the code itself is fixed: decisions refer to it);
    returns ``{field: [old, new]}``, audited when not empty."""
    values: dict[str, Any] = {}
    if label is not None:
        values["label"] = _label(label)
    if kinds is not None:
        values["kinds"] = _kinds(kinds)
    if active is not None:
        values["active"] = bool(active)
    before = _settings(reason)
    for field, value in values.items():
        setattr(reason, field, value)
    after = _settings(reason)
    diff = {field: [before[field], after[field]] for field in before if before[field] != after[field]}
    if diff:
        session.flush()
        chain.record(session, AuditAction.REASON_CODE_UPDATED, actor,
                     data={"reason_code_id": reason.id, "code": reason.code, "changes": diff})
    return diff


def problem_with(session: Session, kind: str, code: str | None, *, required: bool) -> str | None:
    """What is wrong with giving ``code`` (None: none given) on a decision of ``kind``; None when nothing is."""
    if code is None and not required:
        return None
    choices = dict(offered(session, kind))
    if code in choices:
        return None
    return f"choose one of: {', '.join(choices) or '(no reason code is offered for ' + kind + ')'}"


def _label(label: str) -> str:
    label = " ".join(label.split())
    if not label or len(label) > MAX_LABEL:
        raise Invalid(f"a label must be 1 to {MAX_LABEL} characters", {"label": f"1 to {MAX_LABEL} characters"})
    return label


def _kinds(kinds: Iterable[str]) -> list[str]:
    chosen = {k.strip() for k in kinds if k.strip()}
    unknown = sorted(chosen - set(DECISION_KINDS))
    if unknown or not chosen:
        message = f"decision kinds must be a non-empty subset of {', '.join(DECISION_KINDS)}"
        raise Invalid(f"{message} (got {', '.join(sorted(chosen)) or 'none'})", {"kinds": message})
    return [k for k in DECISION_KINDS if k in chosen]


def _settings(reason: ReasonCode) -> dict[str, Any]:
    return {"code": reason.code, "label": reason.label, "kinds": list(reason.kinds), "active": reason.active}
