"""The dashboards' pictures: each dashboard's numbers drawn as the charts its page shows."""

from __future__ import annotations

from markupsafe import Markup

from app.dashboards.ai import AiDashboard
from app.dashboards.charts import Series, bars, columns, line
from app.dashboards.oversight import AGREEMENT_BY, OUTCOMES, OversightDashboard
from app.dashboards.queues import DECISION_KINDS, QueuesDashboard

CALM, GOOD, WARN, BAD = "#2f6fb3", "#3f9a5c", "#c98a1b", "#c0392b"
OUTCOME_COLOURS = {"approve": GOOD, "edit": WARN, "reject": BAD, "escalate": "#7d55b5"}


def _day(text: object) -> str:
    return str(text)[5:]  # MM-DD: the year is in the filters


def queues_charts(board: QueuesDashboard) -> dict[str, Markup]:
    days = [_day(d.day) for d in board.decisions]
    return {
        "queues": bars("Open cases per queue: at risk, overdue and the rest", [r.queue for r in board.queues], [
            Series("overdue", [r.overdue.value for r in board.queues], BAD),
            Series("at risk", [r.at_risk.value for r in board.queues], WARN),
            Series("other open", [r.open.value - r.overdue.value - r.at_risk.value for r in board.queues], CALM)]),
        "decisions": columns("Decisions per day, by kind", days, [
            Series(label, [d.by_kind[kind].value for d in board.decisions]) for kind, label in DECISION_KINDS.items()]),
        "sla": line("SLA compliance per day (% of decided cases decided by their due time)",
                    [_day(d.day) for d in board.sla_days], [d.compliance.percent for d in board.sla_days],
                    top_value=100, unit="%"),
    }


def oversight_charts(board: OversightDashboard) -> dict[str, Markup]:
    drawn = {f"agreement_{by}": bars(f"AI agreement by {label.lower()}", [r.group for r in board.agreement[by]], [
        Series(OUTCOMES[kind], [r.outcomes[kind].value for r in board.agreement[by]], OUTCOME_COLOURS[kind])
        for kind in OUTCOMES])
        for by, label in AGREEMENT_BY.items()}
    drawn["reasons"] = bars("Override reason codes", [r.label for r in board.reasons],
                            [Series("decisions", [r.decisions.value for r in board.reasons])])
    drawn["blind"] = bars("Blind assessments: the reviewer's own action against the AI's",
                          [r.reviewer for r in board.blind], [
                              Series("same action", [r.same_action.value for r in board.blind], GOOD),
                              Series("another action", [r.assessments.value - r.same_action.value
                                                        for r in board.blind], BAD)])
    drawn["speed"] = bars("Implausibly fast approvals per reviewer", [r.reviewer for r in board.speed], [
        Series("fast", [r.fast.value for r in board.speed], BAD),
        Series("other approvals", [r.approvals.value - r.fast.value for r in board.speed])])
    return drawn


def ai_charts(board: AiDashboard) -> dict[str, Markup]:
    days = [_day(d.day) for d in board.days]
    return {
        "cost": columns("AI cost per day in USD, by model", days, [
            Series(model, [float(d.by_model.get(model, 0)) for d in board.days]) for model in board.models]),
        "tokens": columns("Tokens per day (in and out)", days, [
            Series("tokens in", [d.total.tokens_in for d in board.days]),
            Series("tokens out", [d.total.tokens_out for d in board.days])]),
        "latency": bars("Latency p95 per provider (ms)", [r.provider for r in board.latency],
                        [Series("p95 ms", [r.p95_ms or 0 for r in board.latency])]),
    }
