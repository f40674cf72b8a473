"""A first install from an empty database: ``flask --app wsgi setup`` (interactive, with flags,
run again), and intake refusing the cases no queue would receive."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import Case, Queue
from app.extensions import db
from app.intake.models import WebhookReceipt
from app.users import User
from tests.conftest import assert_problem, audit_log_intact, case_body, make_upstream
from tests.review_helpers import make_user

PASSWORD = "a-long-enough-password"


def setup(runner, *args: str, input: str | None = None) -> Any:
    return runner.invoke(args=["setup", *args], input=input)


def installed() -> tuple[list[tuple[str, str, bool]], list[tuple[str, str]], int]:
    """(queues, users, audit events): what setup may have changed."""
    db.session.expire_all()
    return ([(q.name, q.domain, q.is_default) for q in db.session.scalars(select(Queue).order_by(Queue.id))],
            [(u.email, u.role) for u in db.session.scalars(select(User).order_by(User.id))],
            db.session.scalar(select(func.count()).select_from(AuditEvent)))


EVERY_DOMAIN = [("finance", "finance", True), ("legal", "legal", True), ("compliance", "compliance", True)]


def test_interactive_setup_prompts_confirms_and_creates_the_admin_and_queues(runner):
    result = setup(runner, input=f"Ada@Example.com\n{PASSWORD}\n{PASSWORD}\ny\n")
    assert result.exit_code == 0, result.output
    assert "the queue finance (default of the finance domain, SLA 4 h 00 min)" in result.output
    assert "created admin ada@example.com\n" in result.output
    assert "created queue legal: default of the legal domain, SLA 2880 minutes" in result.output
    queues, users, _ = installed()
    assert queues == EVERY_DOMAIN
    assert users == [("ada@example.com", "admin")]
    admin = db.session.scalars(select(User)).one()
    assert admin.check_password(PASSWORD)
    assert [q.sla_minutes for q in db.session.scalars(select(Queue).order_by(Queue.id))] == [240, 2880, 1440]
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.action, e.actor) for e in events] == [("user.created", "system:setup")] + [
        ("queue.created", "system:setup")] * 3
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0  # no demo data
    assert audit_log_intact()


def test_interactive_setup_declined_creates_nothing(runner):
    before = installed()
    result = setup(runner, input=f"ada@example.com\n{PASSWORD}\n{PASSWORD}\nn\n")
    assert result.exit_code == 2
    assert "nothing was created" in result.output
    assert installed() == before


def test_setup_with_flags_and_the_password_on_stdin(runner):
    result = setup(runner, "--admin-email", "ops@example.com", "--admin-password-stdin", "--non-interactive",
                   input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert installed()[:2] == (EVERY_DOMAIN, [("ops@example.com", "admin")])
    assert db.session.scalars(select(User)).one().check_password(PASSWORD)


def test_setup_run_again_with_the_same_admin_changes_nothing(runner):
    first = setup(runner, "--admin-email", "ops@example.com", "--admin-password", PASSWORD, "--non-interactive")
    assert first.exit_code == 0, first.output
    before = installed()
    again = setup(runner, "--admin-email", "OPS@example.com", "--admin-password", "another-password-entirely",
                  "--non-interactive")
    assert again.exit_code == 0, again.output
    assert again.output == ("already set up: admin ops@example.com, a default queue in every domain; "
                            "nothing changed\n")
    assert installed() == before
    assert db.session.scalars(select(User)).one().check_password(PASSWORD)  # the password stays


def test_setup_creates_only_the_missing_default_queues(runner, app):
    make_user("ops", "admin", [])
    db.session.add_all([Queue(name="payments", domain="finance", is_default=True, sla_minutes=60),
                        Queue(name="contracts", domain="legal", sla_minutes=60)])  # legal: no default yet
    db.session.commit()
    result = setup(runner, "--admin-email", "ops@example.com", "--non-interactive")
    assert result.exit_code == 0, result.output
    assert "created admin" not in result.output
    assert installed()[0] == [("payments", "finance", True), ("contracts", "legal", False),
                              ("legal", "legal", True), ("compliance", "compliance", True)]


@pytest.mark.parametrize(("args", "message"), [
    (["--admin-email", "someone@example.com", "--admin-password", PASSWORD, "--non-interactive"],
     "this installation already has an admin (ops@example.com); setup creates only the first one"),
    (["--admin-email", "rita@example.com", "--admin-password", PASSWORD, "--non-interactive"],
     "this installation already has an admin"),
])
def test_setup_refuses_a_second_first_admin(runner, args, message):
    make_user("ops", "admin", [])
    make_user("rita", "reviewer", [])
    db.session.commit()
    before = installed()
    result = setup(runner, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert installed() == before


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--non-interactive"], None, "--admin-email is needed with --non-interactive"),
    (["--admin-email", "ops@example.com", "--non-interactive"], None, "the first admin needs a password"),
    (["--admin-email", "ops@example.com", "--admin-password", "short", "--non-interactive"], None,
     "the password must be at least 10 characters"),
    (["--admin-email", "not-an-email", "--admin-password", PASSWORD, "--non-interactive"], None,
     "'not-an-email' is not an email address"),
    (["--admin-email", "ops@example.com", "--admin-password", PASSWORD, "--admin-password-stdin"], PASSWORD,
     "give --admin-password or --admin-password-stdin, not both"),
    (["--admin-email", "rita@example.com", "--admin-password", PASSWORD, "--non-interactive"], None,
     "rita@example.com is already a user with role reviewer"),
])
def test_setup_refusals_create_nothing(runner, args, stdin, message):
    make_user("rita", "reviewer", [])
    db.session.commit()
    before = installed()
    result = setup(runner, *args, input=stdin)
    assert result.exit_code == 2
    assert message in result.output
    assert installed() == before


def test_a_queue_name_taken_in_another_domain_refuses_the_whole_setup(runner):
    db.session.add(Queue(name="legal", domain="compliance", is_default=True, sla_minutes=60))
    db.session.commit()
    before = installed()
    result = setup(runner, "--admin-email", "ops@example.com", "--admin-password", PASSWORD, "--non-interactive")
    assert result.exit_code == 2
    assert "a queue named 'legal' already exists" in result.output
    assert installed() == before


# --- intake with no queue that would receive the case ------------------------------------------------------


def stored() -> tuple[int, int, int]:
    db.session.expire_all()
    return tuple(db.session.scalar(select(func.count()).select_from(table))  # type: ignore[return-value]
                 for table in (Case, WebhookReceipt, AuditEvent))


@pytest.mark.parametrize("archived", [False, True])
def test_intake_refuses_a_case_no_queue_receives_and_stores_nothing(client, archived):
    upstream = make_upstream(client)
    db.session.add(Queue(name="legal", domain="legal", is_default=True, sla_minutes=60))
    if archived:  # the domain's only queue is archived: it receives nothing
        db.session.add(Queue(name="credit", domain="finance", sla_minutes=60, case_types=["credit_limit_change"],
                             archived_at=db.func.now()))
    db.session.commit()
    before = stored()
    response = upstream.post_case(case_body("credit_limit_change"))
    problem = assert_problem(response, 503, "no-queue")
    assert problem["title"] == "No queue configured"
    assert problem["detail"] == (
        "no queue receives finance cases of type credit_limit_change; an admin must create one: flask --app wsgi "
        "queues create --name finance --domain finance --sla-minutes 240 --default, or at /admin/queues")
    assert problem["missing"] == {"domain": "finance", "case_type": "credit_limit_change"}
    assert stored() == before
    assert upstream.post_case(case_body("contract_review")).status_code == 202  # legal has its queue


def test_after_setup_every_case_type_is_received(runner, client):
    upstream = make_upstream(client)
    assert setup(runner, "--admin-email", "ops@example.com", "--admin-password", PASSWORD,
                 "--non-interactive").exit_code == 0
    for case_type in ("payment_release", "credit_limit_change", "contract_review", "aml_alert", "kyc_review"):
        assert upstream.post_case(case_body(case_type)).status_code == 202, case_type
