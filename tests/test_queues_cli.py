"""flask --app wsgi queues create|update|list: every queue setting, its rules, its audit trail,
and what the settings do to reviewers (blind review) and to the SLA clock (business hours)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.business_hours import BusinessHours
from app.cases.models import Case, Queue
from app.cases.queues import describe, list_queues
from app.escalation.sla import add_business
from app.extensions import db
from tests.conftest import audit_log_intact, case_body, make_upstream, sign_in
from tests.review_helpers import claim, make_case, make_user

pytest_plugins = ["tests.review_fixtures"]

LONDON = {"timezone": "Europe/London", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:30",
          "holidays": ["2026-12-25"]}
# Open half an hour a week: a 60-minute SLA spans two Mondays, whenever the case arrives.
SHORT_WEEK = {"timezone": "UTC", "days": [0], "start": "09:00", "end": "09:30"}


def invoke(runner, *args: str) -> Any:
    return runner.invoke(args=["queues", *args])


def queue(name: str) -> Queue:
    db.session.expire_all()
    return db.session.scalars(select(Queue).where(Queue.name == name)).one()


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def snapshot() -> tuple[list[dict[str, Any]], int]:
    """Every queue's settings and the number of audit events: what a refusal must leave alone."""
    db.session.expire_all()
    return ([describe(q) for q in list_queues(db.session)],
            db.session.scalar(select(func.count()).select_from(AuditEvent)))


@pytest.fixture
def staff(app) -> dict[str, Any]:
    made = {key: make_user(key, role, []) for key, role in (
        ("rita", "reviewer"), ("sam", "senior_reviewer"), ("ada", "admin"), ("aud", "auditor"), ("gone", "reviewer"))}
    made["gone"].active = False
    db.session.commit()
    return made


@pytest.fixture
def finance_pair(runner, staff) -> None:
    """finance-senior, and payments (the finance default) escalating to it, led by rita."""
    assert invoke(runner, "create", "--name", "finance-senior", "--domain", "finance",
                  "--sla-minutes", "120").exit_code == 0
    result = invoke(runner, "create", "--name", "payments", "--domain", "finance", "--sla-minutes", "240",
                    "--default", "--escalates-to", "finance-senior", "--lead", "rita@example.com",
                    "--members", "rita@example.com")
    assert result.exit_code == 0, result.output
    assert invoke(runner, "create", "--name", "legal", "--domain", "legal", "--sla-minutes", "2880",
                  "--default").exit_code == 0


# --- create and list -------------------------------------------------------------------------------------


def test_create_with_every_option_is_stored_and_audited(runner, staff):
    assert invoke(runner, "create", "--name", "finance-senior", "--domain", "finance",
                  "--sla-minutes", "120").exit_code == 0
    result = invoke(runner, "create", "--name", " payments ", "--domain", "finance", "--sla-minutes", "240",
                    "--default", "--escalates-to", "finance-senior", "--lead", "Sam@Example.com",
                    "--blind-review", "--business-hours", json.dumps({**LONDON, "days": [4, 3, 2, 1, 0]}),
                    "--members", "rita@example.com, sam@example.com", "--case-types", "payment_release",
                    "--qa-share", "0.25")
    assert result.exit_code == 0, result.output
    assert "created queue payments (finance)" in result.output
    assert "QA share: 0.25" in result.output
    assert "case types routed here: payment_release" in result.output
    assert "business hours: Mon-Fri 09:00-17:30 Europe/London, 1 holiday" in result.output

    made = queue("payments")
    assert (made.domain, made.sla_minutes, made.is_default, made.blind_review) == ("finance", 240, True, True)
    assert made.escalation_target is queue("finance-senior")
    assert made.lead is staff["sam"]
    assert made.business_hours == LONDON  # normalised: days sorted
    assert sorted(u.email for u in made.members) == ["rita@example.com", "sam@example.com"]
    assert [q.name for q in staff["rita"].queues] == ["payments"]

    event = events("queue.created")[-1]
    assert event.actor == "system:cli"
    assert made.case_types == ["payment_release"]
    assert event.data == {"queue_id": made.id, "name": "payments", "domain": "finance", "sla_minutes": 240,
                          "is_default": True, "case_types": ["payment_release"],
                          "escalation_target": "finance-senior", "lead": "sam@example.com",
                          "blind_review": True, "business_hours": LONDON, "dual_approval_threshold": None,
                          "required_role": "reviewer", "members": ["rita@example.com", "sam@example.com"],
                          "qa_share": 0.25, "archived": False}
    assert audit_log_intact()


def test_create_with_defaults_only(runner):
    result = invoke(runner, "create", "--name", "legal", "--domain", "legal", "--sla-minutes", "2880")
    assert result.exit_code == 0, result.output
    made = queue("legal")
    assert (made.is_default, made.blind_review, made.business_hours, made.lead, made.escalation_target,
            made.members) == (False, False, None, None, None, [])


def test_list_prints_a_table_and_json(runner, finance_pair):
    assert invoke(runner, "update", "payments", "--business-hours", json.dumps(LONDON), "--blind-review",
                  "--add-members", "sam@example.com").exit_code == 0
    table = invoke(runner, "list")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["NAME", "DOMAIN", "DEFAULT", "CASE", "TYPES", "SLA", "ESCALATES", "TO", "LEAD", "BLIND",
                                "BUSINESS", "HOURS", "MEMBERS", "DUAL", "AT", "DECIDED", "BY", "ARCHIVED"]
    assert [line.split()[0] for line in lines[1:]] == ["finance-senior", "payments", "legal"]
    assert lines[2].split() == ["payments", "finance", "yes", "-", "4", "h", "00", "min", "finance-senior",
                                "rita@example.com", "yes", "Mon-Fri", "09:00-17:30", "Europe/London,", "1", "holiday",
                                "2", "-", "reviewer", "-"]
    assert lines[1].split() == ["finance-senior", "finance", "-", "-", "2", "h", "00", "min", "-", "-", "-", "24/7",
                                "0", "-", "reviewer", "-"]
    assert lines[3].split()[:8] == ["legal", "legal", "yes", "-", "2", "d", "0", "h"]

    as_json = json.loads(invoke(runner, "list", "--json").output)
    assert [q["name"] for q in as_json] == ["finance-senior", "payments", "legal"]
    assert as_json[1] == {
        "name": "payments", "domain": "finance", "sla_minutes": 240, "is_default": True, "case_types": [],
        "escalation_target": "finance-senior", "lead": "rita@example.com", "blind_review": True,
        "business_hours": LONDON, "dual_approval_threshold": None, "required_role": "reviewer",
        "members": ["rita@example.com", "sam@example.com"], "qa_share": 0.0, "archived": False,
        "business_hours_summary": "Mon-Fri 09:00-17:30 Europe/London, 1 holiday", "member_count": 2}
    assert [q["name"] for q in json.loads(invoke(runner, "list", "--json", "--domain", "legal").output)] == ["legal"]


def test_list_without_queues(runner):
    assert invoke(runner, "list").output == "no queues\n"
    assert json.loads(invoke(runner, "list", "--json").output) == []


# --- update -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "field", "old", "new"), [
    (["--sla-minutes", "90"], "sla_minutes", 240, 90),
    (["--no-default"], "is_default", True, False),
    (["--clear-escalation"], "escalation_target", "finance-senior", None),
    (["--lead", "sam@example.com"], "lead", "rita@example.com", "sam@example.com"),
    (["--clear-lead"], "lead", "rita@example.com", None),
    (["--blind-review"], "blind_review", False, True),
    (["--business-hours", json.dumps(LONDON)], "business_hours", None, LONDON),
    (["--members", "sam@example.com,ada@example.com"], "members", ["rita@example.com"],
     ["ada@example.com", "sam@example.com"]),
    (["--add-members", "sam@example.com"], "members", ["rita@example.com"], ["rita@example.com", "sam@example.com"]),
    (["--remove-members", "rita@example.com"], "members", ["rita@example.com"], []),
    (["--dual-approval-threshold", "250000.50"], "dual_approval_threshold", None, "250000.5"),
    (["--required-role", "senior_reviewer"], "required_role", "reviewer", "senior_reviewer"),
])
def test_update_changes_one_setting_and_records_before_and_after(runner, finance_pair, args, field, old, new):
    before = describe(queue("payments"))
    result = invoke(runner, "update", "payments", *args)
    assert result.exit_code == 0, result.output
    assert f"updated queue payments\n  {field}: " in result.output
    after = describe(queue("payments"))
    assert (before[field], after[field]) == (old, new)
    derived = {field, {"members": "member_count", "business_hours": "business_hours_summary"}.get(field)}
    assert {k: v for k, v in after.items() if k not in derived} == {k: v for k, v in before.items() if k not in derived}
    event = events("queue.updated")[-1]
    assert event.actor == "system:cli"
    assert event.data == {"queue_id": queue("payments").id, "name": "payments", "changes": {field: [old, new]}}


def test_update_several_settings_at_once_and_clear_business_hours(runner, finance_pair):
    assert invoke(runner, "update", "finance-senior", "--business-hours", json.dumps(SHORT_WEEK)).exit_code == 0
    result = invoke(runner, "update", "finance-senior", "--sla-minutes", "30", "--lead", "sam@example.com",
                    "--clear-business-hours", "--no-blind-review")
    assert result.exit_code == 0, result.output
    made = queue("finance-senior")
    assert (made.sla_minutes, made.lead.email, made.business_hours) == (30, "sam@example.com", None)
    assert events("queue.updated")[-1].data["changes"] == {
        "sla_minutes": [120, 30], "lead": [None, "sam@example.com"],
        "business_hours": [{**SHORT_WEEK, "holidays": []}, None]}


def test_update_to_the_current_values_changes_and_records_nothing(runner, finance_pair):
    count = snapshot()[1]
    result = invoke(runner, "update", "payments", "--sla-minutes", "240", "--default", "--no-blind-review",
                    "--add-members", "rita@example.com")
    assert result.exit_code == 0, result.output
    assert result.output == "queue payments unchanged\n"
    assert snapshot()[1] == count


def test_the_default_moves_only_when_asked(runner, finance_pair):
    assert invoke(runner, "create", "--name", "payments-2", "--domain", "finance", "--sla-minutes", "60").exit_code == 0
    refused = invoke(runner, "update", "payments-2", "--default")
    assert refused.exit_code == 2
    assert "domain 'finance' already has a default queue ('payments'); move it explicitly with --move-default" in (
        refused.output)
    moved = invoke(runner, "update", "payments-2", "--default", "--move-default")
    assert moved.exit_code == 0, moved.output
    assert (queue("payments").is_default, queue("payments-2").is_default) == (False, True)
    first, second = (e.data for e in events("queue.updated")[-2:])
    assert first == {"queue_id": queue("payments").id, "name": "payments", "changes": {"is_default": [True, False]},
                     "default_moved_to": "payments-2"}
    assert second["changes"] == {"is_default": [False, True]}

    created = invoke(runner, "create", "--name", "payments-3", "--domain", "finance", "--sla-minutes", "60",
                     "--default", "--move-default")
    assert created.exit_code == 0, created.output
    assert [q.name for q in db.session.scalars(select(Queue).where(Queue.domain == "finance", Queue.is_default))] == [
        "payments-3"]


def test_a_deactivated_member_may_stay_or_be_removed(runner, finance_pair, staff):
    assert invoke(runner, "update", "payments", "--add-members", "sam@example.com").exit_code == 0
    staff["sam"].active = False
    db.session.commit()
    assert invoke(runner, "update", "payments", "--blind-review").exit_code == 0
    assert invoke(runner, "update", "payments", "--members", "rita@example.com,sam@example.com").output == (
        "queue payments unchanged\n")
    assert invoke(runner, "update", "payments", "--remove-members", "sam@example.com").exit_code == 0
    assert [u.email for u in queue("payments").members] == ["rita@example.com"]


# --- refusals: exit 2, a clear message, nothing written ---------------------------------------------------


SAMPLE_CYCLE = ["update", "finance-senior", "--escalates-to", "payments"]


@pytest.mark.parametrize(("args", "message"), [
    (["create", "--name", "people", "--domain", "hr", "--sla-minutes", "60"],
     "unknown domain 'hr': choose one of finance, legal, compliance"),
    (["create", "--name", "payments", "--domain", "finance", "--sla-minutes", "60"],
     "a queue named 'payments' already exists"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "0"],
     "sla_minutes must be a positive whole number of minutes (got 0)"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--default"],
     "domain 'finance' already has a default queue ('payments')"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--lead", "nobody@example.com"],
     "no user with email nobody@example.com (for the lead)"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--lead", "aud@example.com"],
     "the lead must be a reviewer or senior reviewer; aud@example.com is auditor"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--lead", "ada@example.com"],
     "the lead must be a reviewer or senior reviewer; ada@example.com is admin"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--lead", "gone@example.com"],
     "user gone@example.com is deactivated and cannot be the lead"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60",
      "--members", "rita@example.com,ghost@example.com"], "no user with email ghost@example.com (for a member)"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--business-hours", "{9-5}"],
     "business_hours is not valid JSON"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--business-hours",
      json.dumps({**LONDON, "timezone": "Mars/Olympus"})],
     "Error: invalid business hours: business_hours.timezone: unknown time zone 'Mars/Olympus'"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--business-hours",
      json.dumps({**LONDON, "start": "18:00"})], "business_hours: end must be after start"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--business-hours", "[0, 1]"],
     "business_hours must be a JSON object"),
    (["create", "--name", "contracts-senior", "--domain", "legal", "--sla-minutes", "60",
      "--escalates-to", "payments"], "escalation target 'payments' is in domain 'finance', not 'legal'"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--escalates-to", "nowhere"],
     "no queue named 'nowhere'"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--move-default"],
     "moving the default needs is_default (--default)"),
    (["update", "nowhere", "--sla-minutes", "5"], "no queue named 'nowhere'"),
    (["update", "payments"], "nothing to change: give at least one option"),
    (["update", "legal", "--escalates-to", "payments"],
     "escalation target 'payments' is in domain 'finance', not 'legal'"),
    (SAMPLE_CYCLE, "escalation cycle: finance-senior → payments → finance-senior"),
    (["update", "payments", "--escalates-to", "payments"], "queue 'payments' cannot escalate to itself"),
    (["update", "payments", "--sla-minutes", "-5"], "sla_minutes must be a positive whole number of minutes"),
    (["update", "payments", "--lead", "aud@example.com"],
     "the lead must be a reviewer or senior reviewer; aud@example.com is auditor"),
    (["update", "payments", "--lead", "nobody@example.com"], "no user with email nobody@example.com"),
    (["update", "payments", "--lead", "sam@example.com", "--clear-lead"], "give --lead or --clear-lead, not both"),
    (["update", "payments", "--escalates-to", "finance-senior", "--clear-escalation"],
     "give --escalates-to or --clear-escalation, not both"),
    (["update", "payments", "--business-hours", "{}", "--clear-business-hours"],
     "give --business-hours or --clear-business-hours, not both"),
    (["update", "payments", "--business-hours", json.dumps({**LONDON, "days": [1, 9]})],
     "business_hours.days[1]: Input should be less than or equal to 6"),
    (["update", "payments", "--business-hours", json.dumps({**LONDON, "lunch": "12:00"})],
     "business_hours.lunch: Extra inputs are not permitted"),
    (["update", "legal", "--default", "--sla-minutes", "5", "--add-members", "ghost@example.com"],
     "no user with email ghost@example.com"),
    (["update", "payments", "--add-members", "gone@example.com"],
     "user gone@example.com is deactivated and cannot be a member"),
    (["update", "payments", "--remove-members", "sam@example.com"],
     "not a member of queue 'payments': sam@example.com"),
    (["update", "payments", "--members", "sam@example.com", "--add-members", "ada@example.com"],
     "give either the whole member list or members to add and remove, not both"),
    (["update", "payments", "--add-members", "sam@example.com",
      "--remove-members", "rita@example.com,sam@example.com"],
     "both added and removed: sam@example.com"),
    (["update", "payments", "--no-default", "--move-default"], "moving the default needs is_default (--default)"),
    (["create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60", "--dual-approval-threshold", "-5"],
     "dual_approval_threshold must be a positive amount with at most 4 decimals (got '-5')"),
    (["update", "payments", "--dual-approval-threshold", "lots"],
     "dual_approval_threshold must be a positive amount with at most 4 decimals (got 'lots')"),
    (["update", "payments", "--dual-approval-threshold", "0.00001"], "at most 4 decimals (got '0.00001')"),
    (["update", "payments", "--dual-approval-threshold", "5", "--clear-dual-approval-threshold"],
     "give --dual-approval-threshold or --clear-dual-approval-threshold, not both"),
    (["archive", "payments"], "queue 'payments' is the default of the finance domain and cannot be archived"),
    (["archive", "nowhere"], "no queue named 'nowhere'"),
])
def test_refusals_exit_2_and_change_nothing(runner, finance_pair, args, message):
    before = snapshot()
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert snapshot() == before


def test_a_longer_escalation_cycle_is_refused(runner, finance_pair):
    result = invoke(runner, "create", "--name", "finance-top", "--domain", "finance", "--sla-minutes", "60")
    assert result.exit_code == 0, result.output
    assert invoke(runner, "update", "finance-senior", "--escalates-to", "finance-top").exit_code == 0
    before = snapshot()
    result = invoke(runner, "update", "finance-top", "--escalates-to", "payments", "--sla-minutes", "10")
    assert result.exit_code == 2
    assert "escalation cycle: finance-top → payments → finance-senior → finance-top" in result.output
    assert snapshot() == before


def test_the_audit_chain_holds_after_every_change(runner, finance_pair):
    for args in (["--sla-minutes", "30"], ["--blind-review"], ["--business-hours", json.dumps(LONDON)],
                 ["--clear-lead"], ["--members", "sam@example.com"]):
        assert invoke(runner, "update", "payments", *args).exit_code == 0
    assert len(events("queue.updated")) == 5
    assert len(events("queue.created")) == 3
    assert audit_log_intact()


# --- what the settings do ---------------------------------------------------------------------------------


def login(http: FlaskClient, user) -> None:
    sign_in(http, user)


def test_a_queue_made_blind_by_the_cli_hides_the_recommendation_from_its_reviewer(
        runner, client, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    login(client, people.reviewer)
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'data-rec-action="hold"' in page

    result = invoke(runner, "update", "finance", "--blind-review")
    assert result.exit_code == 0, result.output
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Blind review" in page
    assert "data-rec-action" not in page and "Approve as recommended" not in page

    assert invoke(runner, "update", "finance", "--no-blind-review").exit_code == 0
    assert 'data-rec-action="hold"' in client.get(f"/cases/{case.id}").get_data(as_text=True)


def test_business_hours_set_by_the_cli_set_a_new_cases_due_time(runner, upstream):
    def post() -> Case:
        answer = upstream.post_case(case_body())
        assert answer.status_code == 202, answer.get_json()
        db.session.expire_all()
        return db.session.get(Case, answer.get_json()["id"])

    round_the_clock = post()
    assert round_the_clock.queue.name == "finance"
    assert round_the_clock.sla_due_at == round_the_clock.created_at + timedelta(minutes=60)

    result = invoke(runner, "create", "--name", "finance-office", "--domain", "finance", "--sla-minutes", "60",
                    "--default", "--move-default", "--business-hours", json.dumps(SHORT_WEEK))
    assert result.exit_code == 0, result.output
    office = post()
    assert office.queue.name == "finance-office"
    hours = BusinessHours.model_validate(SHORT_WEEK)
    assert office.sla_due_at == add_business(office.created_at, 60, hours)
    assert office.sla_due_at - office.created_at > timedelta(days=7)  # two Mondays' half hours

    assert invoke(runner, "update", "finance-office", "--clear-business-hours").exit_code == 0
    later = post()
    assert later.sla_due_at == later.created_at + timedelta(minutes=60)


def test_business_hours_summary_and_storage():
    hours = BusinessHours.model_validate({"timezone": "UTC", "days": [6, 5, 0, 2], "start": "08:00",
                                          "end": "12:00:30", "holidays": ["2026-12-26", "2026-12-25"]})
    assert hours.summary() == "Mon,Wed,Sat-Sun 08:00-12:00:30 UTC, 2 holidays"
    assert hours.stored() == {"timezone": "UTC", "days": [0, 2, 5, 6], "start": "08:00", "end": "12:00:30",
                              "holidays": ["2026-12-25", "2026-12-26"]}


# --- routing by case type -----------------------------------------------------------------------------


def test_a_case_type_routed_to_a_queue_arrives_there_and_the_rest_at_the_default(runner, finance_pair, client):
    upstream = make_upstream(client)
    result = invoke(runner, "create", "--name", "credit", "--domain", "finance", "--sla-minutes", "1440",
                    "--case-types", "credit_limit_change")
    assert result.exit_code == 0, result.output
    credit = upstream.post_case(case_body("credit_limit_change"))
    payment = upstream.post_case(case_body("payment_release"))
    db.session.expire_all()
    assert db.session.get(Case, credit.get_json()["id"]).queue.name == "credit"
    assert db.session.get(Case, payment.get_json()["id"]).queue.name == "payments"  # the domain's default


@pytest.mark.parametrize(("args", "message"), [
    (["--case-types", "kyc_review"], "unknown case type(s) kyc_review for the finance domain: choose from "
                                     "agent_action, credit_limit_change, payment_release"),
    (["--case-types", "payment_release"], "payment_release already routed to queue 'credit'"),
])
def test_case_types_must_be_of_the_domain_and_routed_once(runner, finance_pair, args, message):
    assert invoke(runner, "create", "--name", "credit", "--domain", "finance", "--sla-minutes", "60",
                  "--case-types", "payment_release").exit_code == 0
    result = invoke(runner, "update", "payments", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert queue("payments").case_types == []


def test_update_moves_a_case_type_and_records_it(runner, finance_pair):
    assert invoke(runner, "update", "payments", "--case-types", "credit_limit_change").exit_code == 0
    result = invoke(runner, "update", "payments", "--case-types", "")
    assert result.exit_code == 0, result.output
    assert "case_types: credit_limit_change -> (none)" in result.output
    assert events("queue.updated")[-1].data["changes"] == {"case_types": [["credit_limit_change"], []]}


# --- the dual-approval threshold and the required role ---------------------------------------------------


def test_create_with_a_threshold_and_a_required_role(runner, finance_pair):
    result = invoke(runner, "create", "--name", "big-payments", "--domain", "finance", "--sla-minutes", "60",
                    "--dual-approval-threshold", "250000", "--required-role", "senior_reviewer")
    assert result.exit_code == 0, result.output
    assert "dual approval at: 250000, decided by: senior_reviewer" in result.output
    made = queue("big-payments")
    assert (made.dual_approval_threshold, made.required_role) == (250000, "senior_reviewer")
    assert events("queue.created")[-1].data["dual_approval_threshold"] == "250000"
    cleared = invoke(runner, "update", "big-payments", "--clear-dual-approval-threshold")
    assert cleared.exit_code == 0, cleared.output
    assert "dual_approval_threshold: 250000 -> (none)" in cleared.output
    assert queue("big-payments").dual_approval_threshold is None


def test_an_unknown_required_role_is_refused_by_the_cli(runner, finance_pair):
    before = snapshot()
    result = invoke(runner, "update", "payments", "--required-role", "admin")
    assert result.exit_code == 2
    assert "Invalid value for '--required-role'" in result.output
    assert snapshot() == before


# --- archive ----------------------------------------------------------------------------------------------


def test_archive_and_unarchive_are_audited_and_routing_skips_an_archived_queue(runner, finance_pair, client):
    upstream = make_upstream(client)
    assert invoke(runner, "create", "--name", "credit", "--domain", "finance", "--sla-minutes", "1440",
                  "--case-types", "credit_limit_change").exit_code == 0
    before = upstream.post_case(case_body("credit_limit_change"))

    archived = invoke(runner, "archive", "credit")
    assert archived.exit_code == 0, archived.output
    assert archived.output == "archived queue credit\n  archived: no -> yes\n"
    assert queue("credit").archived_at is not None
    assert events("queue.archived")[-1].data == {"queue_id": queue("credit").id, "name": "credit",
                                                 "changes": {"archived": [False, True]}}
    assert invoke(runner, "archive", "credit").output == "queue credit unchanged\n"
    after = upstream.post_case(case_body("credit_limit_change"))
    assert after.status_code == 202, after.get_json()
    db.session.expire_all()
    assert db.session.get(Case, before.get_json()["id"]).queue.name == "credit"  # its history stays
    assert db.session.get(Case, after.get_json()["id"]).queue.name == "payments"  # the default takes it
    listed = {q["name"]: q for q in json.loads(invoke(runner, "list", "--json").output)}
    assert listed["credit"]["archived"] is True

    unarchived = invoke(runner, "unarchive", "credit")
    assert unarchived.output == "unarchived queue credit\n  archived: yes -> no\n"
    assert events("queue.unarchived")[-1].data["changes"] == {"archived": [True, False]}
    again = upstream.post_case(case_body("credit_limit_change"))
    db.session.expire_all()
    assert db.session.get(Case, again.get_json()["id"]).queue.name == "credit"
    assert audit_log_intact()


@pytest.mark.parametrize(("args", "message"), [
    (["update", "finance-senior", "--default", "--move-default"],
     "queue 'finance-senior' is archived and cannot be the default: unarchive it first"),
    (["update", "payments", "--escalates-to", "finance-senior"], "escalation target 'finance-senior' is archived"),
])
def test_an_archived_queue_is_neither_default_nor_escalation_target(runner, finance_pair, args, message):
    assert invoke(runner, "update", "payments", "--clear-escalation").exit_code == 0
    assert invoke(runner, "archive", "finance-senior").exit_code == 0
    before = snapshot()
    result = invoke(runner, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert snapshot() == before
