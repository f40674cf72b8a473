"""The queue admin pages (/admin/queues): list, create, edit, archive and unarchive, every change
audited with the admin as actor, and every refusal shown on the form with nothing changed.
Who may open which page is in tests/test_access_matrix.py."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import Queue
from app.cases.queues import describe, list_queues
from app.db import utcnow
from app.extensions import db
from tests.conftest import audit_log_intact, sign_in
from tests.review_helpers import People

pytest_plugins = ["tests.review_fixtures"]

NONE = "\N{EN DASH}"  # what the list shows for a setting left empty
LONDON = {"timezone": "Europe/London", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:30",
          "holidays": ["2026-12-25"]}


def token_of(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


def page(http: FlaskClient, path: str) -> str:
    g.pop("csrf_token", None)
    response = http.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def post(http: FlaskClient, path: str, fields: dict[str, Any], form_page: str | None = None) -> Any:
    return http.post(path, data={"csrf_token": token_of(page(http, form_page or path)), **fields})


def queue(name: str) -> Queue:
    db.session.expire_all()
    return db.session.scalars(select(Queue).where(Queue.name == name)).one()


def snapshot() -> tuple[list[dict[str, Any]], int]:
    db.session.expire_all()
    return ([describe(q) for q in list_queues(db.session)],
            db.session.scalar(select(func.count()).select_from(AuditEvent)))


def last_event(action: str) -> AuditEvent:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id.desc()).limit(1)).one()


@pytest.fixture
def admin(client: FlaskClient, people: People) -> FlaskClient:
    sign_in(client, people.admin)
    return client


NEW_CREDIT = {
    "name": "credit", "domain": "finance", "sla_minutes": "1440", "case_types": ["credit_limit_change"],
    "escalation_target": "finance-senior", "lead": "senior@example.com", "blind_review": "y",
    "dual_approval_threshold": "25000", "required_role": "senior_reviewer",
    "members": ["senior@example.com", "senior2@example.com"], "timezone": "Europe/London",
    "days": ["0", "1", "2", "3", "4"], "start": "09:00", "end": "17:30", "holidays": "2026-12-25\n",
}


# --- list -----------------------------------------------------------------------------------------------


def test_the_list_shows_every_queue_with_its_settings(admin, people, queues):
    queues["finance"].business_hours = LONDON
    queues["finance"].case_types = ["payment_release"]
    queues["finance"].dual_approval_threshold = 50000
    queues["finance"].qa_share = 0.05
    db.session.commit()
    text = page(admin, "/admin/queues")
    row = re.search(r'<tr data-queue="finance">(.*?)</tr>', text, re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells[:14] == ["finance", "finance", "Default", "payment_release", "1 h 00 min",
                          "Mon-Fri 09:00-17:30 Europe/London, 1 holiday", "finance-senior", NONE, NONE, "50000",
                          "Any reviewer", "5%", "4", "Active"]  # reviewer, reviewer2, senior, senior2
    assert 'data-queue="finance-senior"' in text and 'data-queue="legal"' in text
    assert "/admin/queues/new" in text


def test_an_auditor_reads_the_list_without_edit_buttons(client, people):
    sign_in(client, people.auditor)
    text = page(client, "/admin/queues")
    assert 'data-queue="finance"' in text
    assert "/admin/queues/new" not in text and "/archive" not in text and "/edit" not in text


def test_the_admin_index_links_to_the_queues(admin):
    assert 'href="/admin/queues"' in page(admin, "/admin")


# --- create and edit -----------------------------------------------------------------------------------------


def test_create_stores_every_setting_and_audits_it(admin, people):
    response = post(admin, "/admin/queues/new", NEW_CREDIT)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/admin/queues"
    made = queue("credit")
    assert (made.domain, made.sla_minutes, made.is_default, made.blind_review, made.case_types) == (
        "finance", 1440, False, True, ["credit_limit_change"])
    assert (made.escalation_target.name, made.lead.email, made.required_role) == (
        "finance-senior", "senior@example.com", "senior_reviewer")
    assert made.dual_approval_threshold == 25000
    assert made.business_hours == LONDON
    assert sorted(u.email for u in made.members) == ["senior2@example.com", "senior@example.com"]
    event = last_event("queue.created")
    assert event.actor == f"user:{people.admin.id}"
    assert event.data["dual_approval_threshold"] == "25000" and event.data["name"] == "credit"
    assert "Queue “credit” created." in page(admin, "/admin/queues")
    assert audit_log_intact()


def test_the_edit_page_shows_the_current_settings_and_saves_a_change(admin, people, queues):
    queues["finance"].business_hours = LONDON
    db.session.commit()
    form = page(admin, f"/admin/queues/{queues['finance'].id}/edit")
    assert re.search(r'name="timezone"[^>]*value="Europe/London"', form)
    assert '<input checked id="days-4" name="days" type="checkbox" value="4">' in form
    assert '<input id="days-5" name="days" type="checkbox" value="5">' in form
    assert '<option selected value="finance-senior">' in form
    fields = {"sla_minutes": "90", "is_default": "y", "escalation_target": "finance-senior", "lead": "",
              "required_role": "reviewer", "dual_approval_threshold": "", "timezone": "Europe/London",
              "days": ["0", "1", "2", "3", "4"], "start": "09:00", "end": "17:30", "holidays": "2026-12-25",
              "members": [u.email for u in queues["finance"].members]}
    path = f"/admin/queues/{queues['finance'].id}/edit"
    response = post(admin, path, fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert queue("finance").sla_minutes == 90
    event = last_event("queue.updated")
    assert (event.actor, event.data["changes"]) == (f"user:{people.admin.id}", {"sla_minutes": [60, 90]})

    count = snapshot()[1]
    assert post(admin, path, fields).status_code == 302
    assert snapshot()[1] == count  # the same values again: nothing changed, nothing recorded
    assert "Queue “finance” unchanged." in page(admin, "/admin/queues")


def test_clearing_every_business_hours_field_makes_the_queue_round_the_clock(admin, queues):
    queues["legal"].business_hours = LONDON
    db.session.commit()
    response = post(admin, f"/admin/queues/{queues['legal'].id}/edit",
                    {"sla_minutes": "60", "is_default": "y", "required_role": "reviewer"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert queue("legal").business_hours is None
    assert last_event("queue.updated").data["changes"]["business_hours"] == [LONDON, None]


# --- refusals: the form again (422) with the reason under its field, nothing changed -------------------------


def field_errors(text: str) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="field-error" role="alert">(.*?)</p>', text)]


@pytest.mark.parametrize(("changes", "message"), [
    ({"sla_minutes": "0"}, "sla_minutes must be a positive whole number of minutes (got 0)"),
    ({"sla_minutes": "soon"}, "Not a valid integer value."),
    ({"lead": "nobody@example.com"}, "no user with email nobody@example.com (for the lead)"),
    ({"lead": "auditor@example.com"}, "the lead must be a reviewer or senior reviewer; auditor@example.com is auditor"),
    ({"name": "finance"}, "already taken"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"holidays": "Christmas"}, "Input should be a valid date or datetime, input is too short"),
    ({"days": ["9"]}, "Input should be less than or equal to 6"),
    ({"days": ["x"]}, "Invalid choice(s): one or more data inputs could not be coerced."),
    ({"start": "25:00"}, "Input should be in a valid time format, hour value is outside expected range of 0-23"),
    ({"escalation_target": "legal"}, "escalation target 'legal' is in domain 'legal', not 'finance'"),
    ({"case_types": ["contract_review"]}, "unknown case type(s) contract_review for the finance domain"),
    ({"case_types": ["payment_release"]}, "payment_release already routed to queue 'finance'"),
    ({"is_default": "y"}, "domain 'finance' already has a default queue ('finance')"),
    ({"dual_approval_threshold": "-1"}, "a positive amount, such as 250000"),
    ({"required_role": "admin"}, "one of reviewer, senior_reviewer"),
    ({"qa_share": "1.5"}, "a number from 0 (no QA sample) to 1 (every approval)"),
    ({"qa_share": "some"}, "a number from 0 (no QA sample) to 1 (every approval)"),
    ({"members": ["ghost@example.com"]}, "no user with email ghost@example.com (for a member)"),
])
def test_a_refused_create_shows_why_and_stores_nothing(admin, queues, changes, message):
    queues["finance"].case_types = ["payment_release"]
    db.session.commit()
    before = snapshot()
    response = post(admin, "/admin/queues/new", {**NEW_CREDIT, **changes})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert any(message.lower() in error.lower() for error in field_errors(text)), field_errors(text)
    assert snapshot() == before


def test_business_hours_ending_before_they_start_are_refused_on_edit(admin, queues):
    before = snapshot()
    response = post(admin, f"/admin/queues/{queues['legal'].id}/edit", {
        "sla_minutes": "60", "is_default": "y", "required_role": "reviewer", "timezone": "UTC", "days": ["0"],
        "start": "18:00", "end": "09:00"})
    assert response.status_code == 422
    assert "end must be after start" in response.get_data(as_text=True)
    assert snapshot() == before


# --- archive -------------------------------------------------------------------------------------------------


def test_archive_and_unarchive_from_the_list(admin, people, queues, senior_queue):
    path = f"/admin/queues/{senior_queue.id}"
    before = snapshot()
    assert post(admin, f"{path}/archive", {}, form_page="/admin/queues").status_code == 302
    assert snapshot() == before
    assert ("queue &#39;finance-senior&#39; cannot be archived while finance escalate(s) to it: change their "
            "escalation target first") in page(admin, "/admin/queues")
    queues["finance"].escalation_target = None
    db.session.commit()
    response = post(admin, f"{path}/archive", {}, form_page="/admin/queues")
    assert response.status_code == 302
    assert queue("finance-senior").archived_at is not None
    event = last_event("queue.archived")
    assert (event.actor, event.data["changes"]) == (f"user:{people.admin.id}", {"archived": [False, True]})
    text = page(admin, "/admin/queues")
    assert "Queue “finance-senior” archived: it receives no new cases." in text
    assert re.search(r'<tr data-queue="finance-senior" class="muted">.*?Archived', text, re.S)

    assert post(admin, f"{path}/unarchive", {}, form_page="/admin/queues").status_code == 302
    assert queue("finance-senior").archived_at is None
    assert last_event("queue.unarchived").data["changes"] == {"archived": [True, False]}


def test_the_default_queue_cannot_be_archived(admin, queues):
    before = snapshot()
    response = post(admin, f"/admin/queues/{queues['finance'].id}/archive", {}, form_page="/admin/queues")
    assert response.status_code == 302
    assert snapshot() == before
    assert ("queue &#39;finance&#39; is the default of the finance domain and cannot be archived: make another "
            "finance queue the default first") in page(admin, "/admin/queues")


def test_an_unknown_queue_is_404(admin):
    assert admin.get("/admin/queues/999/edit").status_code == 404


def test_an_archived_queue_keeps_its_archived_escalation_target_when_edited(admin, queues, senior_queue):
    top = Queue(name="finance-top", domain="finance", sla_minutes=30, archived_at=utcnow())
    senior_queue.escalation_target, senior_queue.archived_at = top, utcnow()
    queues["finance"].escalation_target = None
    db.session.commit()
    form = page(admin, f"/admin/queues/{senior_queue.id}/edit")
    assert '<option selected value="finance-top">' in form
    response = post(admin, f"/admin/queues/{senior_queue.id}/edit", {
        "sla_minutes": "45", "escalation_target": "finance-top", "required_role": "reviewer"})
    assert response.status_code == 302, field_errors(response.get_data(as_text=True))
    assert (queue("finance-senior").sla_minutes, queue("finance-senior").escalation_target.name) == (45, "finance-top")
    refused = post(admin, f"/admin/queues/{queues['legal'].id}/edit", {
        "sla_minutes": "60", "is_default": "y", "escalation_target": "finance-top", "required_role": "reviewer"})
    assert "Escalation target &#39;finance-top&#39; is archived." in refused.get_data(as_text=True)
