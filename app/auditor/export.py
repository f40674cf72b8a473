"""The decision log: one row per decision, streamed as JSON Lines or CSV, with a manifest that lets
anyone check offline (tools/verify_export.py) that every audit event a row lists is in a signed
checkpoint of the audit log.

A row is a decision that settled a review round: approve, edit and approve, reject, escalate,
request information. The first approval of a dual approval is folded into the row of the decision
that settled it (the second approval, or a rejection), so ``reviewers`` lists both; a first
approval still waiting, or whose case was withdrawn, settled nothing and makes no row.

Each export signs a checkpoint first and lists only the events it covers. A row lists its case's
events up to its decision, and an approval's row also those after it (its execution); a row whose
events up to its decision are not all covered yet (a decision made meanwhile) is left out, and
counted in the manifest.

Rows are read a page of cases at a time (keyset pages, plain rows rather than ORM objects), and the
leaves they reference are kept in a bitmap, so memory stays flat however long the log. On PostgreSQL,
JSON Lines that are not redacted are written by the database instead (export_sql), line for line the
same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Integer, Row, Select, bindparam, exists, func, select
from sqlalchemy.orm import Session

from app.audit import chain, checkpoints, merkle, proofs
from app.audit.models import AuditEvent
from app.auditor import export_sql
from app.cases import policy
from app.cases.models import Case, Decision, Execution, ExecutionAttempt, Queue, Recommendation
from app.cases.types import DOMAINS, REGISTRY, UnknownCaseType, get_case_type
from app.db import utcnow
from app.errors import Invalid
from app.escalation import sla
from app.users import User

FORMAT = "countersign-decision-log/v1"
FORMATS = ("jsonl", "csv")
# decision kind → the row's outcome; a second approval's row takes the first approval's
OUTCOMES = {"approve": "approved", "edit": "edited_and_approved", "reject": "rejected", "escalate": "escalated",
            "request_info": "info_requested"}
APPROVED = frozenset({"approved", "edited_and_approved"})
CASE_PAGE = 500
PROGRESS_EVERY = 10_000

RECOMMENDATION_FIELDS = ("action", "parameters", "confidence", "provider", "model", "template_version",
                         "prompt_hash")
EXECUTION_FIELDS = ("status", "attempts", "last_status_code", "last_error")
# The row's keys in order; a CSV column per key, "recommendation.action" for the keys of a nested object.
COLUMNS = ("decision_id", "case_id", "external_id", "case_type", "domain", "queue", "outcome",
           *(f"recommendation.{name}" for name in RECOMMENDATION_FIELDS), "final_action", "final_parameters",
           "edited", "diff", "reviewers", "reason_code", "reason", "received_at", "recommended_at", "decided_at",
           "executed_at", "sla", *(f"execution.{name}" for name in EXECUTION_FIELDS), "audit_events")


# --- filters ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFilters:
    """Which rows: decided between ``since`` and ``until`` (both included), and the rest by name."""

    since: datetime | None = None
    until: datetime | None = None
    domain: str | None = None
    queue: str | None = None
    case_type: str | None = None
    outcome: str | None = None
    reviewer: str | None = None  # an email

    def document(self) -> dict[str, str | None]:
        return {name: value.isoformat() if isinstance(value, datetime) else value
                for name, value in asdict(self).items()}


FILTERS = tuple(ExportFilters.__dataclass_fields__)


def parse_filters(session: Session, given: Mapping[str, str | None]) -> ExportFilters:
    """Filters from text (command-line options, query parameters), each checked; Invalid names every
    bad one. A date alone means the start of that day for ``since``, its end for ``until`` (UTC)."""
    raw = {name: (given.get(name) or "").strip() or None for name in FILTERS}
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, text in raw.items():
        if text is None:
            continue
        try:
            values[name] = _PARSERS[name](session, text, raw)
        except ValueError as exc:
            errors[name] = str(exc)
    if values.get("since") and values.get("until") and values["since"] > values["until"]:
        errors["until"] = "is before since"
    if errors:
        raise Invalid("; ".join(f"{name}: {message}" for name, message in errors.items()), errors)
    return ExportFilters(**values)


def _moment(text: str, *, end_of_day: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        start = datetime.combine(day, time.min, UTC)
        return start + timedelta(days=1, microseconds=-1) if end_of_day else start
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _domain(_session: Session, text: str, _raw: Mapping[str, str | None]) -> str:
    if text not in DOMAINS:
        raise ValueError(f"unknown domain {text!r}; one of {', '.join(DOMAINS)}")
    return text


def _case_type(_session: Session, text: str, raw: Mapping[str, str | None]) -> str:
    if raw["domain"] in DOMAINS:
        try:
            get_case_type(raw["domain"], text)
        except UnknownCaseType as exc:
            raise ValueError(str(exc)) from None
    elif text not in {name for _, name in REGISTRY}:
        raise ValueError(f"unknown case type {text!r}; one of {', '.join(name for _, name in REGISTRY)}")
    return text


def _queue(session: Session, text: str, _raw: Mapping[str, str | None]) -> str:
    if session.scalar(select(Queue.id).where(Queue.name == text)) is None:
        raise ValueError(f"no queue named {text!r}")
    return text


def _outcome(_session: Session, text: str, _raw: Mapping[str, str | None]) -> str:
    if text not in OUTCOMES.values():
        raise ValueError(f"unknown outcome {text!r}; one of {', '.join(OUTCOMES.values())}")
    return text


def _reviewer(session: Session, text: str, _raw: Mapping[str, str | None]) -> str:
    email = text.lower()
    if session.scalar(select(User.id).where(User.email == email)) is None:
        raise ValueError(f"no user with email {text!r}")
    return email


_PARSERS: dict[str, Callable[[Session, str, Mapping[str, str | None]], Any]] = {
    "since": lambda _session, text, _raw: _moment(text, end_of_day=False),
    "until": lambda _session, text, _raw: _moment(text, end_of_day=True),
    "domain": _domain, "queue": _queue, "case_type": _case_type, "outcome": _outcome, "reviewer": _reviewer,
}


# --- pseudonyms -------------------------------------------------------------------------------------------


class Pseudonyms:
    """Stand-ins for personal values: a keyed hash (HMAC-SHA-256) under a random key made for one
    export and never kept, so a value has the same stand-in throughout that export, and nobody can
    find a stand-in's value by hashing guesses."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def __call__(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}-{digest[:16]}"

    def strings(self, value: Any) -> Any:
        """``value`` with every string in it (keys aside) replaced."""
        if isinstance(value, dict):
            return {key: self.strings(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.strings(item) for item in value]
        return self("value", value) if isinstance(value, str) else value


# --- rows -------------------------------------------------------------------------------------------------


def settled_rounds(decisions: Sequence[Any], case_status: str) -> Iterator[list[Any]]:
    """The case's decisions (in order, blind assessments left out) grouped by the round each settled.

    Only a second approval or a rejection can follow a first approval (the lifecycle allows nothing
    else from awaiting_second_approval), and nothing follows a sole approval: its case stays in an
    approved status for good, where a first approval's never is."""
    waiting: list[Any] = []
    for decision in decisions:
        if decision.kind in policy.FIRST_APPROVALS:
            waiting = [decision]
            continue
        yield [*waiting, decision]
        waiting = []
    if waiting and case_status in policy.APPROVED_STATUSES:
        yield waiting


@dataclass(frozen=True)
class _PageQueries:
    """The queries of a page of cases, built once for an export's filters and run for each page with
    its parameters (``after``: the last case id of the page before; ``page``: its size). Every query
    reads its page's cases through the same subquery: no list of ids is sent, and the statements stay
    the same from page to page."""

    cases: Select[Any]
    decisions: Select[Any]  # with their reviewers, and the recommendation each was made on
    events: Select[Any]
    executions: Select[Any]

    @classmethod
    def matching(cls, conditions: list[Any]) -> _PageQueries:
        in_page = [*conditions, Case.id > bindparam("after")]
        page_ids = select(Case.id).where(*in_page).order_by(Case.id).limit(bindparam("page", type_=Integer))
        attempts = (select(func.count()).where(ExecutionAttempt.execution_id == Execution.id)
                    .correlate(Execution).scalar_subquery())
        return cls(
            cases=select(Case.id, Case.external_id, Case.case_type, Case.domain, Case.queue_id, Case.status,
                         Case.created_at, Case.sla_due_at)
            .where(*in_page).order_by(Case.id).limit(bindparam("page", type_=Integer)),
            decisions=select(Decision.id, Decision.case_id, Decision.kind, Decision.action, Decision.parameters,
                             Decision.diff, Decision.reason_code, Decision.reason, Decision.created_at, User.email,
                             User.name, User.role, Recommendation.created_at.label("recommended_at"),
                             *(getattr(Recommendation, name).label(f"recommendation_{name}")
                               for name in RECOMMENDATION_FIELDS))
            .join(User, User.id == Decision.reviewer_id)
            .outerjoin(Recommendation, Recommendation.id == Decision.recommendation_id)
            .where(Decision.case_id.in_(page_ids), Decision.kind.not_in(policy.NOT_DECISIONS))
            .order_by(Decision.id),
            events=select(*chain.ENTRY_COLUMNS).where(AuditEvent.case_id.in_(page_ids)).order_by(AuditEvent.seq),
            executions=select(Execution.decision_id, Execution.status, attempts.label("attempts"),
                              Execution.last_status_code, Execution.last_error, Execution.delivered_at)
            .where(Execution.case_id.in_(page_ids)),
        )


@dataclass
class _Page:
    """What the rows of one page of cases are made of, grouped by case (executions by decision)."""

    decisions: dict[int, list[Row[Any]]]
    events: dict[int, list[Row[Any]]]  # in the log's order (those not sealed yet first or last)
    executions: dict[int, Row[Any]]


class DecisionRows:
    """The rows of the decision log for ``filters``, over events 1..``tree_size``; iterate once.
    ``left_out`` counts the rows that matched but whose events the tree does not cover yet."""

    def __init__(self, session: Session, filters: ExportFilters, tree_size: int,
                 pseudonyms: Pseudonyms | None = None) -> None:
        self.session, self.filters, self.tree_size, self.pseudonyms = session, filters, tree_size, pseudonyms
        self.left_out = 0
        self._queues = dict(session.execute(select(Queue.id, Queue.name)).all())
        self._queries = _PageQueries.matching(self._case_conditions())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        after = 0
        while cases := self._run(self._queries.cases, after):
            page = _Page(decisions=_grouped(self._run(self._queries.decisions, after)),
                         events=_grouped(self._run(self._queries.events, after)),
                         executions={e.decision_id: e for e in self._run(self._queries.executions, after)})
            for case in cases:
                for decisions in settled_rounds(page.decisions.get(case.id, []), case.status):
                    row = self._row_if_wanted(case, decisions, page)
                    if row is not None:
                        yield row
            after = cases[-1].id

    def _run(self, query: Select[Any], after: int) -> Sequence[Row[Any]]:
        return self.session.execute(query, {"after": after, "page": CASE_PAGE}).all()

    def _case_conditions(self) -> list[Any]:
        """What a case must be for any of its rows to match; the rows are checked one by one too."""
        f = self.filters
        # The page's bound again: a merge join then starts reading decisions there, not at the first case.
        decided = [Decision.case_id == Case.id, Decision.case_id > bindparam("after"),
                   Decision.kind.not_in(policy.NOT_DECISIONS)]
        if f.since is not None:
            decided.append(Decision.created_at >= f.since)
        if f.until is not None:
            decided.append(Decision.created_at <= f.until)
        if f.reviewer is not None:
            decided.append(Decision.reviewer_id == select(User.id).where(User.email == f.reviewer).scalar_subquery())
        conditions = [exists().where(*decided)]
        if f.domain is not None:
            conditions.append(Case.domain == f.domain)
        if f.case_type is not None:
            conditions.append(Case.case_type == f.case_type)
        if f.queue is not None:
            conditions.append(Case.queue_id == select(Queue.id).where(Queue.name == f.queue).scalar_subquery())
        return conditions

    def _row_if_wanted(self, case: Row[Any], decisions: list[Row[Any]], page: _Page) -> dict[str, Any] | None:
        settling = decisions[-1]
        outcome = OUTCOMES[decisions[0].kind if settling.kind == "second_approval" else settling.kind]
        f = self.filters
        wanted = ((f.since is None or settling.created_at >= f.since)
                  and (f.until is None or settling.created_at <= f.until)
                  and (f.outcome is None or outcome == f.outcome)
                  and (f.reviewer is None or any(d.email == f.reviewer for d in decisions)))
        if not wanted:
            return None
        events = page.events.get(case.id, [])
        if not all(self._covered(e) for e in events if e.time <= settling.created_at):
            self.left_out += 1
            return None
        return self._row(case, decisions, outcome, events, page)

    def _covered(self, event: Row[Any]) -> bool:
        return event.seq is not None and event.seq <= self.tree_size

    def _row(self, case: Row[Any], decisions: list[Row[Any]], outcome: str, events: list[Row[Any]],
             page: _Page) -> dict[str, Any]:
        settling = decisions[-1]
        approval = outcome in APPROVED
        deciding = decisions[0] if approval else settling  # a second approval confirms the first's action
        execution = page.executions.get(settling.id) if approval else None
        return {
            "decision_id": settling.id, "case_id": case.id, "external_id": self._hide("ref", case.external_id),
            "case_type": case.case_type, "domain": case.domain, "queue": self._queues.get(case.queue_id),
            "outcome": outcome, "recommendation": self._recommendation(settling), "final_action": deciding.action,
            "final_parameters": self._hide_strings(deciding.parameters), "edited": deciding.kind == "edit",
            "diff": self._diff(deciding.diff), "reviewers": [self._reviewer(d) for d in decisions],
            "reason_code": deciding.reason_code, "reason": self._hide("text", deciding.reason),
            "received_at": _iso(case.created_at), "recommended_at": _iso(settling.recommended_at),
            "decided_at": _iso(settling.created_at), "executed_at": _iso(execution.delivered_at) if execution else None,
            "sla": _sla(case, settling.created_at), "execution": self._execution(execution),
            "audit_events": [self._event(e) for e in events
                             if self._covered(e) and (approval or e.time <= settling.created_at)],
        }

    def _recommendation(self, decision: Row[Any]) -> dict[str, Any] | None:
        """The recommendation ``decision`` was made on, if any."""
        if decision.recommended_at is None:
            return None
        found = {name: getattr(decision, f"recommendation_{name}") for name in RECOMMENDATION_FIELDS}
        return {**found, "parameters": self._hide_strings(found["parameters"])}

    def _execution(self, execution: Row[Any] | None) -> dict[str, Any] | None:
        if execution is None:
            return None
        found = {name: getattr(execution, name) for name in EXECUTION_FIELDS}
        return {**found, "last_error": self._hide("text", execution.last_error)}

    def _reviewer(self, decision: Row[Any]) -> dict[str, Any]:
        person = self.pseudonyms("person", decision.email) if self.pseudonyms else None
        return {"email": person or decision.email, "name": person or decision.name, "role": decision.role,
                "decision": decision.kind, "decided_at": _iso(decision.created_at)}

    def _diff(self, diff: dict[str, Any]) -> dict[str, Any]:
        if "parameters" not in diff:
            return diff
        return {**diff, "parameters": self._hide_strings(diff["parameters"])}

    def _event(self, event: Row[Any]) -> dict[str, Any]:
        if self.pseudonyms:  # contents withheld; the leaf hash still proves the event is in the log
            return {"leaf_index": event.seq - 1, "leaf_hash": event.hash}
        return {"leaf_index": event.seq - 1, "entry": chain.entry_of(event).decode()}

    def _hide(self, kind: str, value: str | None) -> str | None:
        return self.pseudonyms(kind, value) if self.pseudonyms and value is not None else value

    def _hide_strings(self, value: Any) -> Any:
        return self.pseudonyms.strings(value) if self.pseudonyms else value


def _grouped(rows: Sequence[Row[Any]]) -> dict[int, list[Row[Any]]]:
    """Rows by their case, in the order given."""
    groups: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        groups[row.case_id].append(row)
    return groups


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _sla(case: Row[Any], decided_at: datetime) -> str | None:
    """Met or breached as of the decision, against the case's due time; None without an SLA."""
    standing = sla.decided_standing(case.sla_due_at, decided_at)
    return None if standing == sla.Standing.NONE else standing.value


# --- files ------------------------------------------------------------------------------------------------


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _jsonl_line(row: dict[str, Any]) -> bytes:
    return _json_text(row).encode() + b"\n"


def _csv_line(cells: Sequence[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerow(cells)
    return text.getvalue().encode()


def _cell(row: dict[str, Any], column: str) -> str:
    value: Any = row
    for key in column.split("."):
        value = None if value is None else value[key]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _json_text(value) if isinstance(value, dict | list) else str(value)


# format → (the file's first bytes, one row's bytes)
ENCODERS: dict[str, tuple[bytes, Callable[[dict[str, Any]], bytes]]] = {
    "jsonl": (b"", _jsonl_line),
    "csv": (_csv_line(COLUMNS), lambda row: _csv_line([_cell(row, column) for column in COLUMNS])),
}


@dataclass(frozen=True)
class ExportResult:
    rows: int
    left_out: int
    manifest: dict[str, Any]


class EncodedRows:
    """DecisionRows as lines of ``fmt``, each with the leaf indexes of the events it lists."""

    def __init__(self, rows: DecisionRows, fmt: str) -> None:
        self.rows, self._encode = rows, ENCODERS[fmt][1]

    @property
    def left_out(self) -> int:
        return self.rows.left_out

    def __iter__(self) -> Iterator[tuple[bytes, list[int]]]:
        for row in self.rows:
            yield self._encode(row), [event["leaf_index"] for event in row["audit_events"]]


def _lines(session: Session, fmt: str, filters: ExportFilters, tree_size: int,
           redact: bool) -> EncodedRows | export_sql.PostgresLines:
    """The rows' lines: made by PostgreSQL for JSON Lines that keep every value (pseudonyms are keyed
    hashes made here), by DecisionRows otherwise."""
    if fmt == "jsonl" and not redact and session.get_bind().dialect.name == "postgresql":
        return export_sql.PostgresLines(session.connection().connection.driver_connection, filters, tree_size,
                                        OUTCOMES)
    return EncodedRows(DecisionRows(session, filters, tree_size, Pseudonyms() if redact else None), fmt)


def check_format(fmt: str) -> None:
    if fmt not in ENCODERS:
        raise Invalid(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", {"format": f"one of {', '.join(FORMATS)}"})


def export(session: Session, config: Mapping[str, Any], out: BinaryIO, *, fmt: str, filters: ExportFilters,
           file_name: str, redact: bool = False, progress: Callable[[int], None] | None = None) -> ExportResult:
    """Sign a checkpoint, write the rows to ``out`` and return the manifest that proves their events.
    ``progress(rows)`` is called every PROGRESS_EVERY rows."""
    check_format(fmt)
    checkpoint = checkpoints.create(session, config)
    referenced = merkle.LeafSet(checkpoint.tree_size)
    rows = _lines(session, fmt, filters, checkpoint.tree_size, redact)
    header, _ = ENCODERS[fmt]
    digest = hashlib.sha256(header)
    out.write(header)
    written = 0
    for line, leaves in rows:
        for index in leaves:
            referenced.add(index)
        digest.update(line)
        out.write(line)
        written += 1
        if progress is not None and written % PROGRESS_EVERY == 0:
            progress(written)
    # The builder goes as soon as its proof is out: with many gaps between the events listed, both are large.
    proof = proofs.tree_over(session, checkpoint.tree_size, referenced, paths=False).batch_proof()
    nodes = [[start, size, node.hex()] for start, size, node in proof]
    del proof
    manifest = {
        "format": FORMAT, "file": file_name, "file_format": fmt, "file_sha256": digest.hexdigest(), "rows": written,
        "rows_left_out": rows.left_out, "filters": filters.document(), "redacted": redact,
        "created_at": utcnow().isoformat(), "checkpoint": checkpoint.document(),
        "public_key": checkpoints.public_key(config),
        "proof": {"tree_size": checkpoint.tree_size, "nodes": nodes},
    }
    return ExportResult(written, rows.left_out, manifest)


def manifest_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.manifest.json")


def write_export(session: Session, config: Mapping[str, Any], path: Path, *, fmt: str, filters: ExportFilters,
                 redact: bool = False, progress: Callable[[int], None] | None = None) -> ExportResult:
    """The export in ``path`` and its manifest next to it (``path``.manifest.json). Both are written
    under temporary names and renamed at the end: a failed export leaves nothing behind."""
    check_format(fmt)
    targets = (path, manifest_path(path))
    partials = [target.with_name(f".{target.name}.partial") for target in targets]
    try:
        with partials[0].open("wb") as out:
            result = export(session, config, out, fmt=fmt, filters=filters, file_name=path.name, redact=redact,
                            progress=progress)
        with partials[1].open("w", encoding="utf-8") as out:
            json.dump(result.manifest, out, indent=1)
            out.write("\n")
        for partial, target in zip(partials, targets, strict=True):
            os.replace(partial, target)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)
    return result
