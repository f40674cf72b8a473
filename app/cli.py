"""Command line: ``flask --app wsgi users|clients|queues|seed|audit|control|rules …`` (and Flask-Migrate's ``db``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import units
from app.actors import Actor
from app.auditor.cli import audit
from app.auth import accounts
from app.auth.services import create_api_token, create_user, end_all_sessions
from app.cases import queues as queue_service
from app.cases.models import Queue
from app.cases.permissions import Role
from app.errors import DomainError
from app.extensions import db
from app.intake import services as intake
from app.kill_switch.cli import control
from app.review import reason_codes
from app.review.models import DECISION_KINDS
from app.users import User

users = AppGroup("users", help="Manage reviewer, admin and auditor accounts.")
clients = AppGroup("clients", help="Manage upstream API clients.")
seed = AppGroup("seed", help="Load demo data.")
queues = AppGroup("queues", help="Create, change and list review queues.")
reason_codes_cli = AppGroup("reason-codes", help="The reason codes reviewers give, per decision kind.")
KINDS_HELP = f"Comma-separated decision kinds: {', '.join(DECISION_KINDS)}."


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


CLI_ACTOR = Actor.system("cli")


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _refused(exc: DomainError) -> None:
    db.session.rollback()
    _fail(str(exc))


@contextmanager
def _committing() -> Iterator[None]:
    """The block's changes committed, or its refusal printed (nothing stored) and exit 2."""
    try:
        yield
    except DomainError as exc:
        _refused(exc)
    db.session.commit()


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    if not rows:
        click.echo("none")
        return
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _changes(what: str, diff: dict[str, list], done: str = "updated") -> None:
    if not diff:
        click.echo(f"{what} unchanged")
        return
    click.echo(f"{done} {what}")
    for field, (old, new) in diff.items():
        click.echo(f"  {field}: {_shown(old)} -> {_shown(new)}")


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


@users.command("sign-out")
@click.option("--email", required=True)
def users_sign_out(email: str) -> None:
    """End every browser session of a user at once (a lost laptop, a departure)."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        _fail(f"no user with email {email}")
    ended = end_all_sessions(db.session, user, Actor.system("cli"))
    db.session.commit()
    click.echo(f"{user.email}: {ended} session(s) ended")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON, for scripts.")
def users_list(as_json: bool) -> None:
    """Every user: role, queues, active or not, last sign-in."""
    found = [{**accounts.settings_of(a.user), "must_change_password": a.user.must_change_password,
              "last_sign_in": a.last_sign_in.isoformat() if a.last_sign_in else None}
             for a in accounts.list_accounts(db.session)]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _table(("EMAIL", "NAME", "ROLE", "QUEUES", "ACTIVE", "LAST SIGN-IN"),
           [(u["email"], u["name"], u["role"], ",".join(u["queues"]) or "-", "yes" if u["active"] else "no",
             (u["last_sign_in"] or "never")[:16].replace("T", " ")) for u in found])


@users.command("update")
@click.argument("email")
@click.option("--role", default=None, type=click.Choice([r.value for r in Role]))
@click.option("--queues", default=None, help="Comma-separated queue names: the whole new list; empty: none.")
@click.option("--name", default=None)
@click.option("--qa-all/--no-qa-all", "qa_all", default=None,
              help="Send every approval of theirs to QA (for a reviewer suspected of rubber-stamping), or stop.")
def users_update(email: str, role: str | None, queues: str | None, name: str | None, qa_all: bool | None) -> None:
    """Change the role, queues, name or QA flag of user EMAIL."""
    if role is None and queues is None and name is None and qa_all is None:
        _fail("nothing to change: give --role, --queues, --name or --qa-all/--no-qa-all")
    with _committing():
        user = accounts.user_by_email(db.session, email)
        diff = accounts.update_account(db.session, user, CLI_ACTOR, name=name, role=role,
                                       queues=None if queues is None else _csv(queues), qa_all=qa_all)
    _changes(f"user {user.email}", diff)


@users.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Deactivate user EMAIL: their sessions end and their API tokens are revoked at once."""
    with _committing():
        user = accounts.user_by_email(db.session, email)
        ended = accounts.deactivate(db.session, user, CLI_ACTOR)
    click.echo(f"{user.email} deactivated: {ended['sessions_ended']} session(s) ended, "
               f"{ended['tokens_revoked']} API token(s) revoked")


@users.command("reactivate")
@click.argument("email")
def users_reactivate(email: str) -> None:
    """Let user EMAIL sign in again (revoked API tokens stay revoked)."""
    with _committing():
        user = accounts.user_by_email(db.session, email)
        accounts.reactivate(db.session, user, CLI_ACTOR)
    click.echo(f"{user.email} reactivated")


@users.command("reset-password")
@click.argument("email")
def users_reset_password(email: str) -> None:
    """Give user EMAIL a one-time password (printed once); their sessions end."""
    with _committing():
        user = accounts.user_by_email(db.session, email)
        password = accounts.reset_password(db.session, user, CLI_ACTOR)
    click.echo(password)
    click.echo(f"one-time password for {user.email}: give it to them now, it is not shown again; "
               "they choose their own at the next sign-in", err=True)


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
    with _committing():
        client = intake.client_named(db.session, name)
        secret = intake.rotate_secret(db.session, client, timedelta(hours=grace_hours), actor=CLI_ACTOR)
    if as_json:
        click.echo(json.dumps({"client_id": client.id, "signing_secret": secret}))
    else:
        click.echo(f"new signing secret for {name}: {secret}\nthe previous secret stays valid for {grace_hours} h")


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON, for scripts (no secrets: they are never shown again).")
def clients_list(as_json: bool) -> None:
    """Every API client: token prefix, domains, callback hosts, active or revoked."""
    found = [{"name": c.name, "token_prefix": c.token_prefix, "domains": c.allowed_domains,
              "callback_hosts": c.callback_hosts, "active": c.active, "signing_secrets": len(c.active_secrets())}
             for c in intake.list_clients(db.session)]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _table(("NAME", "TOKEN", "DOMAINS", "CALLBACK HOSTS", "SECRETS", "ACTIVE"),
           [(c["name"], c["token_prefix"] + "…", ",".join(c["domains"]), ",".join(c["callback_hosts"]) or "-",
             str(c["signing_secrets"]), "yes" if c["active"] else "revoked") for c in found])


@clients.command("update")
@click.argument("name")
@click.option("--domains", default=None, help="Comma-separated: the whole new list.")
@click.option("--callback-hosts", default=None, help="Comma-separated host names: the whole new list; empty: none.")
def clients_update(name: str, domains: str | None, callback_hosts: str | None) -> None:
    """Change the allowed domains or callback hosts of API client NAME."""
    if domains is None and callback_hosts is None:
        _fail("nothing to change: give --domains or --callback-hosts")
    with _committing():
        client = intake.client_named(db.session, name)
        diff = intake.update_client(db.session, client, CLI_ACTOR,
                                    domains=None if domains is None else _csv(domains),
                                    callback_hosts=None if callback_hosts is None else _csv(callback_hosts))
    _changes(f"API client {client.name}", diff)


@clients.command("revoke")
@click.argument("name")
def clients_revoke(name: str) -> None:
    """Revoke API client NAME: its token is refused (401) from now on."""
    with _committing():
        client = intake.client_named(db.session, name)
        intake.revoke_client(db.session, client, CLI_ACTOR)
    click.echo(f"API client {client.name} revoked")


@reason_codes_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON, for scripts.")
def reason_codes_list(as_json: bool) -> None:
    """Every reason code, deactivated ones too."""
    found = [{"code": c.code, "label": c.label, "kinds": c.kinds, "active": c.active}
             for c in reason_codes.all_codes(db.session)]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _table(("CODE", "LABEL", "KINDS", "ACTIVE"),
           [(c["code"], c["label"], ",".join(c["kinds"]), "yes" if c["active"] else "no") for c in found])


@reason_codes_cli.command("add")
@click.argument("code")
@click.option("--label", required=True)
@click.option("--kinds", default=",".join(DECISION_KINDS), show_default=True, help=KINDS_HELP)
def reason_codes_add(code: str, label: str, kinds: str) -> None:
    """Add reason code CODE, offered with decisions of the given kinds."""
    with _committing():
        added = reason_codes.add_code(db.session, code, label, _csv(kinds), CLI_ACTOR)
    click.echo(f"added reason code {added.code} ({added.label}) for {', '.join(added.kinds)}")


@reason_codes_cli.command("update")
@click.argument("code")
@click.option("--label", default=None)
@click.option("--kinds", default=None, help=KINDS_HELP + " The whole new list.")
@click.option("--active/--inactive", "active", default=None, help="Offer it again, or no longer.")
def reason_codes_update(code: str, label: str | None, kinds: str | None, active: bool | None) -> None:
    """Change the label, kinds or active flag of reason code CODE (the code itself is fixed)."""
    if label is None and kinds is None and active is None:
        _fail("nothing to change: give --label, --kinds or --active/--inactive")
    _update_reason_code(code, label=label, kinds=None if kinds is None else _csv(kinds), active=active)


@reason_codes_cli.command("deactivate")
@click.argument("code")
def reason_codes_deactivate(code: str) -> None:
    """No longer offer reason code CODE; decisions that gave it keep showing its label."""
    _update_reason_code(code, active=False)


def _update_reason_code(code: str, **changes: object) -> None:
    with _committing():
        reason = reason_codes.code_named(db.session, code)
        diff = reason_codes.update_code(db.session, reason, CLI_ACTOR, **changes)
    _changes(f"reason code {reason.code}", diff)


# --- queues ---------------------------------------------------------------------------------------------

HOURS_HELP = 'JSON, e.g. \'{"timezone": "Europe/London", "days": [0,1,2,3,4], "start": "09:00", "end": "17:30"}\''
CASE_TYPES_HELP = ("Comma-separated case types of the domain routed to this queue (the domain's default queue takes "
                   "the others).")
THRESHOLD_HELP = ("Amount at or above which a case of this queue needs two approvals (default: the global "
                  "DUAL_APPROVAL_THRESHOLDS).")
REQUIRED_ROLE = click.Choice([role.value for role in (Role.REVIEWER, Role.SENIOR_REVIEWER)])
REQUIRED_ROLE_HELP = "Who may claim and decide its cases: reviewer (any reviewer) or senior_reviewer."
QA_SHARE_HELP = "Share of approved decisions drawn for QA, from 0 (none) to 1 (every one)."


@queues.command("create")
@click.option("--name", required=True)
@click.option("--domain", required=True, help="finance, legal or compliance.")
@click.option("--sla-minutes", required=True, type=int, help="Business minutes a case may wait for a decision.")
@click.option("--default", "is_default", is_flag=True, help="Intake files the domain's new cases here.")
@click.option("--move-default", is_flag=True, help="With --default: take over from the domain's current default.")
@click.option("--escalates-to", default=None, help="Queue (same domain) that SLA breaches escalate to.")
@click.option("--lead", default=None, help="Email of the lead: an active reviewer or senior reviewer.")
@click.option("--blind-review/--no-blind-review", default=False, show_default=True,
              help="Reviewers assess before the AI recommendation is revealed.")
@click.option("--business-hours", default=None, metavar="JSON", help=HOURS_HELP)
@click.option("--members", default="", help="Comma-separated emails of the users who work the queue.")
@click.option("--case-types", default="", help=CASE_TYPES_HELP)
@click.option("--dual-approval-threshold", default=None, metavar="AMOUNT", help=THRESHOLD_HELP)
@click.option("--required-role", type=REQUIRED_ROLE, default="reviewer", show_default=True, help=REQUIRED_ROLE_HELP)
@click.option("--qa-share", type=float, default=0.0, show_default=True, help=QA_SHARE_HELP)
def queues_create(name: str, domain: str, sla_minutes: int, is_default: bool, move_default: bool,
                  escalates_to: str | None, lead: str | None, blind_review: bool, business_hours: str | None,
                  members: str, case_types: str, dual_approval_threshold: str | None, required_role: str,
                  qa_share: float) -> None:
    """Create a review queue."""
    with _committing():
        queue = queue_service.create_queue(
            db.session, name, domain, sla_minutes, is_default=is_default, move_default=move_default,
            escalation_target=escalates_to, lead=lead, blind_review=blind_review, business_hours=business_hours,
            members=_csv(members), case_types=_csv(case_types), dual_approval_threshold=dual_approval_threshold,
            required_role=required_role, qa_share=qa_share, actor=CLI_ACTOR)
    click.echo(f"created queue {queue.name} ({queue.domain}) id={queue.id}")
    for line in _settings_lines(queue_service.describe(queue)):
        click.echo(f"  {line}")


@queues.command("update")
@click.argument("name")
@click.option("--sla-minutes", type=int, default=None, help="Business minutes a case may wait for a decision.")
@click.option("--default/--no-default", "is_default", default=None,
              help="Make it (or stop it being) the domain's default queue.")
@click.option("--move-default", is_flag=True, help="With --default: take over from the domain's current default.")
@click.option("--escalates-to", default=None, help="Queue (same domain) that SLA breaches escalate to.")
@click.option("--clear-escalation", is_flag=True, help="Escalate nowhere (a breach raises the priority in place).")
@click.option("--lead", default=None, help="Email of the lead: an active reviewer or senior reviewer.")
@click.option("--clear-lead", is_flag=True, help="The queue has no lead.")
@click.option("--blind-review/--no-blind-review", default=None,
              help="Reviewers assess before the AI recommendation is revealed.")
@click.option("--business-hours", default=None, metavar="JSON", help=HOURS_HELP)
@click.option("--clear-business-hours", is_flag=True, help="The SLA clock runs round the clock.")
@click.option("--members", default=None, help="Comma-separated emails: the whole new member list.")
@click.option("--add-members", default=None, help="Comma-separated emails to add.")
@click.option("--remove-members", default=None, help="Comma-separated emails to remove.")
@click.option("--case-types", default=None, help=CASE_TYPES_HELP + " Replaces the list; empty: none.")
@click.option("--dual-approval-threshold", default=None, metavar="AMOUNT", help=THRESHOLD_HELP)
@click.option("--clear-dual-approval-threshold", is_flag=True, help="The global DUAL_APPROVAL_THRESHOLDS apply.")
@click.option("--required-role", type=REQUIRED_ROLE, default=None, help=REQUIRED_ROLE_HELP)
@click.option("--qa-share", type=float, default=None, help=QA_SHARE_HELP)
def queues_update(name: str, sla_minutes: int | None, is_default: bool | None, move_default: bool,
                  escalates_to: str | None, clear_escalation: bool, lead: str | None, clear_lead: bool,
                  blind_review: bool | None, business_hours: str | None, clear_business_hours: bool,
                  members: str | None, add_members: str | None, remove_members: str | None,
                  case_types: str | None, dual_approval_threshold: str | None, clear_dual_approval_threshold: bool,
                  required_role: str | None, qa_share: float | None) -> None:
    """Change some settings of queue NAME; the others stay as they are."""
    changes: dict[str, object] = {}
    for field, value, clear, options in (
        ("escalation_target", escalates_to, clear_escalation, "--escalates-to or --clear-escalation"),
        ("lead", lead, clear_lead, "--lead or --clear-lead"),
        ("business_hours", business_hours, clear_business_hours, "--business-hours or --clear-business-hours"),
        ("dual_approval_threshold", dual_approval_threshold, clear_dual_approval_threshold,
         "--dual-approval-threshold or --clear-dual-approval-threshold"),
    ):
        if value is not None and clear:
            _fail(f"give {options}, not both")
        if value is not None or clear:
            changes[field] = None if clear else value
    for field, value in (("sla_minutes", sla_minutes), ("is_default", is_default), ("blind_review", blind_review),
                         ("required_role", required_role), ("qa_share", qa_share)):
        if value is not None:
            changes[field] = value
    for field, value in (("members", members), ("add_members", add_members), ("remove_members", remove_members),
                         ("case_types", case_types)):
        if value is not None:
            changes[field] = _csv(value)
    if move_default:
        changes["move_default"] = True
    if not changes:
        _fail("nothing to change: give at least one option (see --help)")
    with _committing():
        queue = queue_service.queue_named(db.session, name)
        diff = queue_service.update_queue(db.session, queue, changes, CLI_ACTOR)
    _changes(f"queue {queue.name}", diff)


@queues.command("archive")
@click.argument("name")
def queues_archive(name: str) -> None:
    """Archive queue NAME: it receives no new cases; its open cases stay workable, its history stays."""
    _archiving(name, queue_service.archive_queue, "archived")


@queues.command("unarchive")
@click.argument("name")
def queues_unarchive(name: str) -> None:
    """Route new cases to queue NAME again."""
    _archiving(name, queue_service.unarchive_queue, "unarchived")


def _archiving(name: str, change: Callable[[Session, Queue, Actor], dict[str, list[Any]]], done: str) -> None:
    with _committing():
        queue = queue_service.queue_named(db.session, name)
        diff = change(db.session, queue, CLI_ACTOR)
    _changes(f"queue {queue.name}", diff, done)


@queues.command("list")
@click.option("--domain", default=None, help="Only the queues of this domain.")
@click.option("--json", "as_json", is_flag=True, help="Every setting, as JSON.")
def queues_list(domain: str | None, as_json: bool) -> None:
    """Every queue with its settings."""
    found = [queue_service.describe(q) for q in queue_service.list_queues(db.session, domain)]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no queues")
        return
    header = ("NAME", "DOMAIN", "DEFAULT", "CASE TYPES", "SLA", "ESCALATES TO", "LEAD", "BLIND", "BUSINESS HOURS",
              "MEMBERS", "DUAL AT", "DECIDED BY", "ARCHIVED")
    _table(header, [(q["name"], q["domain"], "yes" if q["is_default"] else "-", ",".join(q["case_types"]) or "-",
                     units.minutes(q["sla_minutes"]),
                     q["escalation_target"] or "-", q["lead"] or "-", "yes" if q["blind_review"] else "-",
                     q["business_hours_summary"] or "24/7", str(q["member_count"]),
                     q["dual_approval_threshold"] or "-", q["required_role"], "yes" if q["archived"] else "-")
                    for q in found])


def _shown(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _settings_lines(described: dict) -> list[str]:
    return [f"sla: {units.minutes(described['sla_minutes'])}, default: {_shown(described['is_default'])}, "
            f"escalates to: {_shown(described['escalation_target'])}",
            f"case types routed here: {_shown(described['case_types'])}",
            f"lead: {_shown(described['lead'])}, blind review: {_shown(described['blind_review'])}",
            f"business hours: {described['business_hours_summary'] or '24/7'}",
            f"dual approval at: {described['dual_approval_threshold'] or '(global thresholds)'}, "
            f"decided by: {described['required_role']}, QA share: {described['qa_share']:g}",
            f"members: {_shown(described['members'])}"]


# --- first install ----------------------------------------------------------------------------------


@click.command("setup")
@click.option("--admin-email", default=None, help="Email of the first admin (prompted for when not given).")
@click.option("--admin-password", default=None, help="Their password (visible in the process list: prefer stdin).")
@click.option("--admin-password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--non-interactive", is_flag=True, help="Never prompt or ask to confirm: for scripts.")
def setup(admin_email: str | None, admin_password: str | None, admin_password_stdin: bool,
          non_interactive: bool) -> None:
    """First install: the first admin and one default queue per domain; safe to run again (only what
    is missing is created; an existing admin is left as it is). Never loads demo data."""
    from app import install

    if admin_password is not None and admin_password_stdin:
        _fail("give --admin-password or --admin-password-stdin, not both")
    if admin_email is None:
        if non_interactive:
            _fail("--admin-email is needed with --non-interactive")
        admin_email = click.prompt("Email of the first admin")
    try:
        plan = install.plan_install(db.session, admin_email)
    except DomainError as exc:
        _refused(exc)
    if plan.nothing_to_do:
        click.echo(f"already set up: admin {plan.admin_email}, a default queue in every domain; nothing changed")
        return
    if plan.create_admin:
        admin_password = _setup_password(admin_password, admin_password_stdin, non_interactive)
    click.echo("setup will create:")
    if plan.create_admin:
        click.echo(f"  the admin {plan.admin_email}")
    for name, sla_minutes in plan.queues.items():
        click.echo(f"  the queue {name} (default of the {name} domain, SLA {units.minutes(sla_minutes)})")
    if not non_interactive and not click.confirm("Go ahead?", default=True):
        _fail("nothing was created")
    with _committing():
        done = install.install(db.session, plan, admin_password)
    for line in done:
        click.echo(line)
    click.echo("sign in at /login; change queues at /admin/queues or with flask --app wsgi queues")


def _setup_password(given: str | None, from_stdin: bool, non_interactive: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if given is not None:
        return given
    if non_interactive:
        _fail("the first admin needs a password: --admin-password-stdin (or --admin-password) with --non-interactive")
    return click.prompt("Password of the first admin", hide_input=True, confirmation_prompt=True)


@seed.command("demo")
def seed_demo() -> None:
    """Queues, one user per role, one API client and 16 cases, 2 of them decided (idempotent)."""
    from app.demo.seed import seed_demo_data

    seed_demo_data(db.session, echo=click.echo)


def register_cli(app: Flask) -> None:
    for group in (users, clients, queues, reason_codes_cli, audit, control, seed, setup, agent_tools_cli):
        app.cli.add_command(group)


# --- agents' tool policies --------------------------------------------------------------------------------

agent_tools_cli = AppGroup("agent-tools", help="Load and export the policies of agents' tools (YAML).")


@agent_tools_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def agent_tools_load(path: str) -> None:
    """Upsert the tool policies of a YAML file by name; all or nothing."""
    from pathlib import Path

    from app.agents import tools

    try:
        outcomes = tools.load(db.session, tools.parse_yaml(Path(path).read_text(encoding="utf-8")),
                              Actor.system("cli"))
    except DomainError as exc:
        for field, problem in exc.by_field.items():
            click.echo(f"  {field}: {problem}", err=True)
        _fail(f"{path}: {exc.message}; no tool policy was loaded")
    db.session.commit()
    for name, outcome in outcomes.items():
        click.echo(f"  {name}: {outcome}")
    click.echo(f"{len(outcomes)} tool policy(ies) loaded")


@agent_tools_cli.command("export")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
def agent_tools_export(output: str | None) -> None:
    """Print every tool policy as YAML that `agent-tools load` accepts."""
    from pathlib import Path

    from app.agents import tools

    text = tools.export_yaml(db.session)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"exported to {output}", err=True)


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
