"""The decision log's JSON Lines rows built by PostgreSQL, for the export's common case (JSON Lines, not
redacted, on PostgreSQL): the same rows as export.DecisionRows makes in Python, each line written by
the database and streamed through COPY, so the rows are made on the database's core while Python
writes the ones before.

Each line parses to exactly what the Python path writes, key for key and in the same order. The
strings, times and numbers are written as Python's ``json.dumps`` writes them (the tests compare the
two paths byte for byte); the stored JSON of parameters and diffs is compacted from PostgreSQL's own
text. The audit entries are the exact bytes ``chain.entry`` hashes: a wrong byte there would not
verify against the signed tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from psycopg import Connection, sql

from app.cases import policy
from app.escalation.sla import Standing

if TYPE_CHECKING:
    from app.auditor.export import ExportFilters


def _text(expr: str) -> str:
    """A JSON string (or null), escaped as json.dumps(..., ensure_ascii=False) escapes it."""
    return f"coalesce(to_json(({expr})::text)::text, 'null')"


def _moment(expr: str) -> str:
    """datetime.isoformat() of a UTC time: microseconds only when there are any."""
    return (f"coalesce('\"' || replace(to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
            f"'.000000', '') || '+00:00\"', 'null')")


def _compact(expr: str) -> str:
    """jsonb as compact text: PostgreSQL writes ", " and ": " between items, and nowhere else outside strings."""
    return f"""regexp_replace(({expr})::text, '("(?:[^"\\\\]|\\\\.)*")|([,:]) ', '\\1\\2', 'g')"""


def _float(expr: str) -> str:
    """repr() of a float: PostgreSQL's shortest exact digits, with Python's ".0" on whole numbers."""
    return (f"CASE WHEN ({expr}) = trunc({expr}) AND abs({expr}) < 1e15 THEN trunc({expr})::bigint::text || '.0' "
            f"ELSE ({expr})::text END")


def _number(expr: str) -> str:
    return f"coalesce(({expr})::text, 'null')"


def _object(*pairs: tuple[str, str]) -> str:
    """The text of a JSON object from (key, JSON text expression) pairs, in order."""
    parts = [f"'{',' if i else '{'}\"{key}\":' || {value}" for i, (key, value) in enumerate(pairs)]
    return " || ".join(parts) + " || '}'"


_ENTRY = _object(("action", _text("ev.action")), ("actor", _text("ev.actor")),
                 ("case_id", _number("ev.case_id")), ("data", "ev.data::text"), ("seq", "ev.seq::text"),
                 ("time", _moment("ev.time")))
_LISTED_EVENT = _object(("leaf_index", "(ev.seq - 1)::text"), ("entry", f"to_json({_ENTRY})::text"))


def _reviewer(decision: str, user: str) -> str:
    return _object(("email", _text(f"{user}.email")), ("name", _text(f"{user}.name")),
                   ("role", _text(f"{user}.role")), ("decision", _text(f"{decision}.kind")),
                   ("decided_at", _moment(f"{decision}.created_at")))


_RECOMMENDATION = _object(("action", _text("rec.action")), ("parameters", _compact("rec.parameters")),
                          ("confidence", _float("rec.confidence")), ("provider", _text("rec.provider")),
                          ("model", _text("rec.model")), ("template_version", _text("rec.template_version")),
                          ("prompt_hash", _text("rec.prompt_hash")))
_EXECUTION = _object(("status", _text("e.status")), ("attempts", "e.attempts::text"),
                     ("last_status_code", _number("e.last_status_code")), ("last_error", _text("e.last_error")))
_SLA = (f"CASE WHEN c.sla_due_at IS NULL THEN 'null' WHEN s.created_at <= c.sla_due_at THEN '\"{Standing.MET}\"' "
        f"ELSE '\"{Standing.BREACHED}\"' END")
_LINE = _object(
    ("decision_id", "s.id::text"), ("case_id", "c.id::text"), ("external_id", _text("c.external_id")),
    ("case_type", _text("c.case_type")), ("domain", _text("c.domain")), ("queue", _text("q.name")),
    ("outcome", _text("r.outcome")),
    ("recommendation", f"CASE WHEN rec.id IS NULL THEN 'null' ELSE {_RECOMMENDATION} END"),
    ("final_action", _text("dd.action")), ("final_parameters", _compact("dd.parameters")),
    ("edited", "CASE WHEN dd.kind = 'edit' THEN 'true' ELSE 'false' END"), ("diff", _compact("dd.diff")),
    ("reviewers", f"'[' || CASE WHEN f.id IS NULL THEN '' ELSE {_reviewer('f', 'uf')} || ',' END "
                  f"|| {_reviewer('s', 'us')} || ']'"),
    ("reason_code", _text("dd.reason_code")), ("reason", _text("dd.reason")),
    ("received_at", _moment("c.created_at")), ("recommended_at", _moment("rec.created_at")),
    ("decided_at", _moment("s.created_at")), ("executed_at", _moment("e.delivered_at")), ("sla", _SLA),
    ("execution", f"CASE WHEN e.status IS NULL THEN 'null' ELSE {_EXECUTION} END"),
    ("audit_events", "'[' || coalesce(a.events, '') || ']'"),
)

# One row per settled round, as export.settled_rounds groups them: a decision that is not a first
# approval settles its round, with the first approval just before it if there is one; a first approval
# settles one only when nothing follows it and its case is approved.
_ROWS = """
WITH d AS (
  SELECT d.id, d.case_id, d.kind, lag(d.id) OVER w AS prev_id, lag(d.kind) OVER w AS prev_kind,
    lead(d.id) OVER w AS next_id
  FROM decisions d JOIN cases c ON c.id = d.case_id
  WHERE d.kind <> ALL({not_decisions}) {case_conditions}
  WINDOW w AS (PARTITION BY d.case_id ORDER BY d.id)
), r AS (
  SELECT d.id, d.case_id,
    CASE WHEN d.kind <> ALL({first}) AND d.prev_kind = ANY({first}) THEN d.prev_id END AS first_id,
    CASE CASE WHEN d.kind = 'second_approval' AND d.prev_kind = ANY({first}) THEN d.prev_kind ELSE d.kind END
      {outcomes} END AS outcome,
    d.kind = ANY({approvals}) AS approval
  FROM d JOIN cases c ON c.id = d.case_id
  WHERE d.kind <> ALL({first}) OR (d.next_id IS NULL AND c.status = ANY({approved_statuses}))
)
SELECT {line}, a.leaves, coalesce(a.covered, true)
FROM r
  JOIN cases c ON c.id = r.case_id
  JOIN decisions s ON s.id = r.id
  JOIN users us ON us.id = s.reviewer_id
  LEFT JOIN decisions f ON f.id = r.first_id
  LEFT JOIN users uf ON uf.id = f.reviewer_id
  JOIN decisions dd ON dd.id = CASE WHEN r.approval THEN coalesce(r.first_id, r.id) ELSE r.id END
  LEFT JOIN queues q ON q.id = c.queue_id
  LEFT JOIN recommendations rec ON rec.id = s.recommendation_id
  LEFT JOIN LATERAL (
    SELECT x.status, x.last_status_code, x.last_error, x.delivered_at,
      (SELECT count(*) FROM execution_attempts t WHERE t.execution_id = x.id) AS attempts
    FROM executions x WHERE r.approval AND x.case_id = c.id AND x.decision_id = r.id ORDER BY x.id DESC LIMIT 1
  ) e ON true
  LEFT JOIN LATERAL (
    SELECT string_agg({event}, ',' ORDER BY ev.seq) FILTER (WHERE l.listed) AS events,
      array_agg(ev.seq - 1 ORDER BY ev.seq) FILTER (WHERE l.listed) AS leaves,
      bool_and(ev.seq IS NOT NULL AND ev.seq <= {tree_size}) FILTER (WHERE ev.time <= s.created_at) AS covered
    FROM audit_events ev
      CROSS JOIN LATERAL (SELECT ev.seq <= {tree_size} AND (r.approval OR ev.time <= s.created_at) AS listed) l
    WHERE ev.case_id = c.id
  ) a ON true
WHERE true {row_conditions}
ORDER BY c.id, s.id
"""


def _conditions(filters: ExportFilters) -> tuple[sql.Composable, sql.Composable]:
    """(conditions on the case, on the row) for ``filters``."""
    on_case: list[sql.Composable] = []
    on_row: list[sql.Composable] = []
    for column, value in (("c.domain", filters.domain), ("c.case_type", filters.case_type)):
        if value is not None:
            on_case.append(sql.SQL("AND {} = {}").format(sql.SQL(column), sql.Literal(value)))
    if filters.queue is not None:
        on_case.append(sql.SQL("AND c.queue_id = (SELECT id FROM queues WHERE name = {})").format(
            sql.Literal(filters.queue)))
    if filters.since is not None:
        on_row.append(sql.SQL("AND s.created_at >= {}").format(sql.Literal(filters.since)))
    if filters.until is not None:
        on_row.append(sql.SQL("AND s.created_at <= {}").format(sql.Literal(filters.until)))
    if filters.outcome is not None:
        on_row.append(sql.SQL("AND r.outcome = {}").format(sql.Literal(filters.outcome)))
    if filters.reviewer is not None:
        on_row.append(sql.SQL("AND {} IN (us.email, uf.email)").format(sql.Literal(filters.reviewer)))
    return sql.SQL(" ").join(on_case), sql.SQL(" ").join(on_row)


def query(filters: ExportFilters, tree_size: int, outcomes: Mapping[str, str]) -> sql.Composed:
    """The rows' statement; ``outcomes`` names a row's outcome by the kind of the decision that made it."""
    on_case, on_row = _conditions(filters)
    when = sql.SQL(" ").join(sql.SQL("WHEN {} THEN {}").format(sql.Literal(kind), sql.Literal(outcome))
                             for kind, outcome in outcomes.items())
    return sql.SQL(_ROWS).format(
        not_decisions=sql.Literal(list(policy.NOT_DECISIONS)), first=sql.Literal(list(policy.FIRST_APPROVALS)),
        outcomes=when, approvals=sql.Literal(list(policy.APPROVALS)),
        approved_statuses=sql.Literal(sorted(policy.APPROVED_STATUSES)), case_conditions=on_case,
        line=sql.SQL(_LINE), event=sql.SQL(_LISTED_EVENT), tree_size=sql.Literal(int(tree_size)),
        row_conditions=on_row)


class PostgresLines:
    """The rows' lines (newline included) with the leaf indexes of their events, streamed: PostgreSQL
    sends each row as it makes it. Iterate once; ``left_out`` then counts the rows whose events up to
    their decision the tree does not cover yet."""

    def __init__(self, connection: Connection[Any], filters: ExportFilters, tree_size: int,
                 outcomes: Mapping[str, str]) -> None:
        self.connection, self.filters, self.tree_size, self.outcomes = connection, filters, tree_size, outcomes
        self.left_out = 0

    def __iter__(self) -> Iterator[tuple[bytes, list[int]]]:
        rows = query(self.filters, self.tree_size, self.outcomes)
        statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(rows)
        with self.connection.cursor() as cursor:
            # This query's plan, not a setting of the server: JIT compiling costs more than it saves here,
            # and nested loops keep the rows in the order they are made, so they stream without a sort.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL enable_hashjoin = off")
            with cursor.copy(statement) as copy:
                copy.set_types(["text", "int8[]", "bool"])
                for line, leaves, covered in copy.rows():
                    if covered:
                        yield f"{line}\n".encode(), leaves or []
                    else:
                        self.left_out += 1
