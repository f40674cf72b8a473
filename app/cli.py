"""Command line: ``flask --app wsgi users|clients|seed|audit …`` (and Flask-Migrate's ``db``)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from app.actors import Actor
from app.audit import chain
from app.auth.models import User
from app.auth.services import create_api_token, create_user
from app.cases.permissions import Role
from app.errors import DomainError
from app.extensions import db
from app.intake import services as intake
from app.intake.models import ApiClient

users = AppGroup("users", help="Manage reviewer, admin and auditor accounts.")
clients = AppGroup("clients", help="Manage upstream API clients.")
audit = AppGroup("audit", help="Verify the audit trail.")
seed = AppGroup("seed", help="Load demo data.")


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


@users.command("create")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--name", default=None)
@click.option("--queues", default="", help="Comma-separated queue names this user works.")
def users_create(email: str, password: str, role: str, name: str | None, queues: str) -> None:
    """Create a user."""
    try:
        user = create_user(db.session, email, password, role, name=name, queues=_csv(queues))
    except DomainError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(f"created user {user.email} ({user.role}) id={user.id}")


@users.command("token")
@click.option("--email", required=True)
@click.option("--label", default="cli", show_default=True, help="What the token is for.")
def users_token(email: str, label: str) -> None:
    """Create a personal API token for a user; it is printed once."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        _fail(f"no user with email {email}")
    try:
        token, raw = create_api_token(db.session, user, label, actor=Actor.system("cli"))
    except DomainError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    click.echo(raw)
    click.echo(
        f"token {token.token_prefix}… ({token.label}) for {user.email}: store it now, it is not shown again", err=True
    )


@clients.command("create")
@click.option("--name", required=True)
@click.option("--domains", required=True, help="Comma-separated: finance,legal,compliance")
@click.option(
    "--callback-host", "callback_hosts", multiple=True, help="Host allowed to receive callbacks (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON, for scripts.")
def clients_create(name: str, domains: str, callback_hosts: tuple[str, ...], as_json: bool) -> None:
    """Create an API client; its token and signing secret are printed once."""
    try:
        new = intake.create_client(db.session, name, _csv(domains), list(callback_hosts))
    except DomainError as exc:
        db.session.rollback()
        _fail(str(exc))
    db.session.commit()
    creds = {
        "client_id": new.client.id,
        "name": name,
        "token": new.token,
        "signing_secret": new.signing_secret,
        "domains": new.client.allowed_domains,
        "callback_hosts": new.client.callback_hosts,
    }
    if as_json:
        click.echo(json.dumps(creds))
        return
    for key, value in creds.items():
        click.echo(f"{key:>15}: {', '.join(value) if isinstance(value, list) else value}")
    click.echo("Store the token and signing secret now: they are not shown again.")


@clients.command("rotate-secret")
@click.option("--name", required=True)
@click.option(
    "--grace-hours",
    default=24,
    show_default=True,
    type=click.IntRange(0, 24 * 30),
    help="How long the previous secret stays valid.",
)
@click.option("--json", "as_json", is_flag=True)
def clients_rotate_secret(name: str, grace_hours: int, as_json: bool) -> None:
    """Add a new signing secret; the previous one keeps working for the grace period."""
    client = db.session.scalar(select(ApiClient).where(ApiClient.name == name))
    if client is None:
        _fail(f"no API client named {name!r}")
    secret = intake.rotate_secret(db.session, client, timedelta(hours=grace_hours))
    db.session.commit()
    if as_json:
        click.echo(json.dumps({"client_id": client.id, "signing_secret": secret}))
    else:
        click.echo(f"new signing secret for {name}: {secret}\nthe previous secret stays valid for {grace_hours} h")


@audit.command("verify")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 100_000))
def audit_verify(batch_size: int) -> None:
    """Walk the hash chain; exit 1 naming the first bad sequence number."""
    total = chain.count_events(db.session)
    click.echo(f"verifying {total} audit events…", err=True)

    def progress(done: int) -> None:
        click.echo(f"  {done}/{total} ({done * 100 // max(total, 1)}%)", err=True)

    result = chain.verify(db.session, batch_size=batch_size, progress=progress)
    if result.ok:
        click.echo(f"audit chain intact: {result.checked} events verified")
        return
    click.echo(
        f"audit chain BROKEN at sequence {result.first_bad_seq}: {result.reason} "
        f"({result.checked} events verified before it)",
        err=True,
    )
    sys.exit(1)


@seed.command("demo")
def seed_demo() -> None:
    """Queues, one user per role, one API client and a dozen cases (idempotent)."""
    from app.demo.seed import seed_demo_data

    seed_demo_data(db.session, echo=click.echo)


def register_cli(app: Flask) -> None:
    for group in (users, clients, audit, seed):
        app.cli.add_command(group)


# --- escalation rules (registered by create_app) ------------------------------------------------------

rules = AppGroup("rules", help="Load and export the escalation rules (YAML).")
RULES_FILE_MAX_CHARS = 1_000_000


@rules.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def rules_load(path: str) -> None:
    """Upsert the rules of a YAML (or JSON) file by name, in the file's order; all or nothing."""
    from pathlib import Path

    from app.escalation import services as escalation
    from app.escalation.rules import RuleInvalid

    try:
        specs = escalation.validate_file(db.session, escalation.parse_text(Path(path).read_text(encoding="utf-8"),
                                                                           RULES_FILE_MAX_CHARS))
    except RuleInvalid as exc:
        for error in exc.errors:
            click.echo(f"  {error}", err=True)
        _fail(f"{path}: {len(exc.errors)} problem(s); no rule was loaded")
    click.echo(f"{path}: {len(specs)} valid rule(s)")

    def progress(done: int, total: int, result: escalation.Loaded) -> None:
        click.echo(f"  [{done}/{total}] {result.name}: {result.outcome}")

    escalation.load_rules(db.session, specs, Actor.system("cli"), progress=progress)
    db.session.commit()
    click.echo("rules loaded")


@rules.command("export")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
def rules_export(output: str | None) -> None:
    """Print every rule, in order, as YAML that `rules load` accepts."""
    from pathlib import Path

    from app.escalation import services as escalation

    text = escalation.yaml_of([escalation.document_of(rule) for rule in escalation.ordered_rules(db.session)])
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"exported to {output}", err=True)
