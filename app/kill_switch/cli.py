"""``flask --app wsgi control pause|resume|status``: the kill switch from the command line."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from app.actors import Actor
from app.controls import switch
from app.controls.models import Pause, What
from app.errors import DomainError
from app.extensions import db
from app.kill_switch import services

control = AppGroup("control", help="Pause and resume AI analysis or executions (the kill switch).")
CLI_ACTOR = Actor.system("cli")
WHAT = click.Choice([w.value for w in What])
QUEUE_HELP = "Only this queue's cases (default: every queue)."


def _refused(exc: DomainError) -> None:
    db.session.rollback()
    click.echo(f"Error: {exc.message}", err=True)
    sys.exit(2)


def _line(pause: Pause) -> str:
    return (f"{pause.label} paused for {pause.where} since {pause.paused_at:%Y-%m-%d %H:%M} UTC "
            f"by {pause.paused_by}: {pause.reason}")


@control.command("pause")
@click.option("--what", required=True, type=WHAT, help="ai: analysis of new cases; executions: delivery of "
              "approved actions.")
@click.option("--queue", default=None, help=QUEUE_HELP)
@click.option("--reason", required=True, help="Why: shown on every page while the pause is in force, and audited.")
def pause(what: str, queue: str | None, reason: str) -> None:
    """Stop AI analysis or executions until resumed; the waiting work is kept."""
    try:
        paused = services.pause(db.session, what, queue, reason, CLI_ACTOR)
    except DomainError as exc:
        _refused(exc)
    db.session.commit()
    click.echo(_line(paused))


@control.command("resume")
@click.option("--what", required=True, type=WHAT)
@click.option("--queue", default=None, help="The queue named when pausing (default: the pause of every queue).")
@click.option("--reason", default=None, help="Why (optional): audited.")
def resume(what: str, queue: str | None, reason: str | None) -> None:
    """Lift a pause; the work that waited is enqueued, each piece once."""
    try:
        lifted = services.resume(db.session, what, queue, CLI_ACTOR, reason)
    except DomainError as exc:
        _refused(exc)
    db.session.commit()
    click.echo(f"{lifted.label} resumed for {lifted.where}: the work that waited is enqueued")
    still = [p for p in switch.in_force(db.session) if p.what == lifted.what]
    for other in still:
        click.echo(f"still in force: {_line(other)}")


@control.command("status")
@click.option("--json", "as_json", is_flag=True, help="Every pause in force, as JSON.")
def status(as_json: bool) -> None:
    """What is paused, where, by whom, since when and why."""
    pauses = switch.in_force(db.session)
    if as_json:
        click.echo(json.dumps([switch.describe(p) for p in pauses], indent=2))
        return
    if not pauses:
        click.echo("nothing is paused: AI analysis and executions run for every queue")
    for paused in pauses:
        click.echo(_line(paused))
