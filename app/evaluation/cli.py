"""``flask ai``: evaluate the AI on labelled cases, and compare shadow models with the primary."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from app.ai import shadow
from app.ai.routing import RoutingFileError, Target
from app.ai.runtime import RuntimeContext
from app.evaluation import evals
from app.extensions import db

ai = AppGroup("ai", help="Evaluate the AI on labelled cases; compare shadow models with the primary.")


def _fail(message: str) -> None:
    raise click.ClickException(message)


@ai.command("eval")
@click.option("--cases", "cases_path", required=True, type=click.Path(dir_okay=False),
              help="JSON Lines file of labelled cases (see docs/evaluation.md).")
@click.option("--provider", help="Ask only this provider of the routing file (with --model).")
@click.option("--model", help="The model to ask (with --provider).")
@click.option("--route", help="Use this route's chain for every case (its name, or its position from 1).")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Cases analysed at once.")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write the report to OUT.json and OUT.html (a .json or .html suffix is dropped).")
def ai_eval(cases_path: str, provider: str | None, model: str | None, route: str | None, concurrency: int,
            out: str | None) -> None:
    """Run labelled cases through the AI runtime (nothing stored or enqueued) and report how it did."""
    try:
        cases = evals.load_cases(cases_path)
        ctx = evals.runtime_context()
    except (evals.EvalFileError, RoutingFileError) as exc:
        _fail(str(exc))
    chain, target = _chain(ctx, provider, model, route)

    def progress(done: int, total: int, outcome: evals.Outcome) -> None:
        verdict = "ok" if outcome.agreed else "FORBIDDEN" if outcome.forbidden else "differs"
        click.echo(f"[{done}/{total}] {outcome.case.label.id}: {outcome.action or outcome.error} ({verdict})",
                   err=True)

    outcomes = evals.run(cases, ctx, chain=chain, concurrency=concurrency, progress=progress)
    document = evals.report(outcomes, source=cases_path, target=target)
    click.echo(render_text(document))
    if out:
        base = Path(out).with_suffix("") if Path(out).suffix in (".json", ".html") else Path(out)
        json_path, html_path = base.with_name(base.name + ".json"), base.with_name(base.name + ".html")
        json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        html_path.write_text(render_html(document), encoding="utf-8")
        click.echo(f"report written to {json_path} and {html_path}")


def _chain(ctx: RuntimeContext, provider: str | None, model: str | None,
           route: str | None) -> tuple[list[Target] | None, str]:
    """The chain replacing the routed one (None: route each case as in production), and its description."""
    if (provider is None) != (model is None):
        _fail("--provider and --model go together")
    if provider and route:
        _fail("give either --provider/--model or --route, not both")
    if provider and model:
        if provider not in ctx.routing.providers:
            _fail(f"no provider {provider!r} in the routing file (providers: {', '.join(ctx.routing.providers)})")
        if provider not in ctx.providers:
            _fail(f"provider {provider!r} is not enabled (AI_PROVIDER / credentials)")
        if model not in ctx.routing.prices:
            _fail(f"no price for model {model!r} in the routing file: add it under prices")
        target = Target(provider=provider, model=model)
        return [target], str(target)
    if route:
        try:
            chain = list(ctx.routing.named_route(route).chain)
        except LookupError as exc:
            _fail(str(exc.args[0]))
        return chain, f"route {route}: " + " → ".join(map(str, chain))
    return None, "routed as in production"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def render_text(report: dict[str, Any]) -> str:
    injections = report["injections"]
    lines = [
        f"{report['cases']} cases from {report['source']} ({report['target']}), {report['failed']} failed",
        f"agreement            {_pct(report['agreement'])}",
        f"agreement on clear   {_pct(report['agreement_on_clear'])}",
        f"forbidden actions    {report['forbidden_actions']}",
        f"flag recall          {_pct(report['flag_recall'])}",
        f"injections flagged   {injections['flagged']} of {injections['cases']} "
        f"({injections['sent_to_senior']} sent to a senior, {injections['capped']} capped)",
        f"cost                 USD {report['cost_usd']}",
        f"tokens in / out      {report['tokens_in']} / {report['tokens_out']}",
        f"latency p50 / p95    {_ms(report['latency_ms']['p50'])} / {_ms(report['latency_ms']['p95'])}",
    ]
    for case_type, table in report["by_case_type"].items():
        lines += ["", f"{case_type}: {table['cases']} cases, agreement {_pct(table['agreement'])}, "
                      f"{table['forbidden_actions']} forbidden",
                  f"  {'acceptable':<40} {'given':<22} cases"]
        lines += [f"  {row['expected']:<40} {row['given']:<22} {row['count']}" for row in table["confusion"]]
    lines += ["", "calibration (confidence → agreement)"]
    lines += [f"  {b['low']:.1f}-{b['high']:.1f}  {b['count']:>4} cases  mean confidence {_pct(b['mean_confidence'])}"
              f"  agreement {_pct(b['agreement'])}" for b in report["calibration"]]
    gate = report["gate"]
    lines += ["", f"gate: {'passed' if not gate['failures'] else 'FAILED'}"]
    lines += [f"  {failure}" for failure in gate["failures"]]
    lines += [f"  known gap: {failure}" for failure in gate["known_gaps_failed"]]
    if report["known_gaps"]:
        lines += ["", "known gaps (reported apart)"]
        lines += [f"  {g['id']}: {g['action']} ({'agreed' if g['agreed'] else 'differs'}): {g['known_gap']}"
                  for g in report["known_gaps"]]
    return "\n".join(lines)


def render_html(report: dict[str, Any]) -> str:
    return current_app.jinja_env.get_template("ai/eval_report.html").render(report=report, pct=_pct, ms=_ms)


@ai.command("compare-shadow")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Only shadow answers from this day on (UTC, YYYY-MM-DD).")
def ai_compare_shadow(since: datetime | None) -> None:
    """How often the primary and each shadow model agree with the reviewers' decisions."""
    start = datetime.combine(since.date(), time.min, tzinfo=UTC) if since else None
    results = shadow.compare(db.session, start)
    db.session.rollback()
    if not results:
        click.echo("no shadow answers" + (f" since {since:%Y-%m-%d}" if since else ""))
        return
    for target, tally in results.items():
        click.echo(f"shadow {target}: {tally.compared} decided case(s) compared, {tally.undecided} undecided, "
                   f"{tally.shadow_failed} shadow failure(s)")
        click.echo(f"  primary agrees with the reviewers  {tally.primary_agreed}/{tally.compared} "
                   f"({_pct(tally.rate(tally.primary_agreed))})")
        click.echo(f"  shadow agrees with the reviewers   {tally.shadow_agreed}/{tally.compared} "
                   f"({_pct(tally.rate(tally.shadow_agreed))})")
        click.echo(f"  both agree                         {tally.both_agreed}/{tally.compared}")
