"""Administration of people and clients: /admin/users, /admin/clients, /admin/reason-codes.

Every refusal is shown at its field and stores nothing; deactivation and revocation are proven
with a real saved cookie, a real personal token and a real signed intake post."""

from __future__ import annotations

import html
import re
import threading
from datetime import timedelta

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit.models import AuditEvent
from app.auth import accounts
from app.auth.services import create_api_token
from app.cases.models import Decision
from app.errors import Conflict, Invalid
from app.extensions import db
from app.intake.models import ApiClient
from app.review import reason_codes
from app.review.models import ReasonCode
from app.users import User
from tests.conftest import Upstream, case_body, sign_in
from tests.review_helpers import PASSWORD, claim, decide, make_case, make_user
from tests.test_auth import csrf_of, login

pytest_plugins = ["tests.review_fixtures"]


def post(http: FlaskClient, path: str, data: dict | None = None, *, page: str = "/admin") -> object:
    g.pop("_login_user", None)
    token = csrf_of(http, page)
    g.pop("_login_user", None)
    return http.post(path, data={**(data or {}), "csrf_token": token})


def field_errors(response) -> list[str]:
    return [html.unescape(e) for e in re.findall(r'<p class="field-error" role="alert">([^<]*)</p>',
                                                 response.get_data(as_text=True))]


def flashes(http: FlaskClient, page: str) -> str:
    g.pop("_login_user", None)
    return html.unescape(http.get(page).get_data(as_text=True))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def sign_in_with(http: FlaskClient, email: str, password: str):
    g.pop("_login_user", None)
    return login(http, email, password)


def browser(app) -> FlaskClient:
    """A second browser with its own cookie jar."""
    return app.test_client()


def get(http: FlaskClient, path: str, **options):
    g.pop("_login_user", None)
    return http.get(path, **options)


@pytest.fixture
def admin(client: FlaskClient, people) -> FlaskClient:
    sign_in(client, people.admin)
    return client


# --- users ----------------------------------------------------------------------------------------------


def test_a_created_user_gets_a_one_time_password_shown_once_and_must_change_it(app, admin, people):
    response = post(admin, "/admin/users/new", {"email": "Nina@Example.com", "name": "Nina Berg", "role": "reviewer",
                                                 "queues": ["finance", "legal"]}, page="/admin/users/new")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = re.search(r"data-one-time-password>([^<]+)<", response.get_data(as_text=True)).group(1)
    user = db.session.scalar(select(User).where(User.email == "nina@example.com"))
    assert (user.name, user.role, sorted(q.name for q in user.queues)) == ("Nina Berg", "reviewer",
                                                                           ["finance", "legal"])
    assert user.must_change_password and user.check_password(password)
    assert password not in get(admin, "/admin/users").get_data(as_text=True)
    assert password not in str([e.data for e in db.session.scalars(select(AuditEvent))])

    nina = browser(app)
    answer = sign_in_with(nina, "nina@example.com", password)
    assert answer.headers["Location"] == "/settings/password"
    assert get(nina, "/queues").headers["Location"] == "/settings/password"  # nothing else first
    refused = post(nina, "/settings/password", {"current_password": password, "password": "short",
                                                "confirm": "short"}, page="/settings/password")
    assert refused.status_code == 422 and "The password must be at least 10 characters." in field_errors(refused)
    changed = post(nina, "/settings/password", {"current_password": password, "password": "nina-own-password-1",
                                                "confirm": "nina-own-password-1"}, page="/settings/password")
    assert changed.status_code == 302
    db.session.refresh(user)
    assert not user.must_change_password and user.check_password("nina-own-password-1")
    assert get(nina, "/queues").status_code == 200
    assert [e.data for e in events("user.password_changed")] == [{"user_id": user.id}]


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"email": "Reviewer@Example.com", "role": "reviewer"}, "email", "Already in use."),
    ({"email": "new@example.com", "role": "superuser"}, "role",
     "Unknown role 'superuser': choose one of reviewer, senior_reviewer, admin, auditor."),
    ({"email": "new@example.com", "role": "reviewer", "queues": ["finance", "nowhere"]}, "queues",
     "Unknown queue(s): nowhere."),
    ({"email": "not-an-email", "role": "reviewer"}, "email", None),
])
def test_creating_a_user_with_bad_input_changes_nothing(admin, people, form, field, message):
    users, audited = count(User), count(AuditEvent)
    response = post(admin, "/admin/users/new", form, page="/admin/users/new")
    assert response.status_code == 422
    errors = field_errors(response)
    assert len(errors) == 1 and (message is None or errors == [message])
    assert (count(User), count(AuditEvent)) == (users, audited)


def test_changing_role_and_queues_is_audited_with_before_and_after(admin, people):
    response = post(admin, f"/admin/users/{people.outsider.id}",
                    {"name": "Outsider", "role": "senior_reviewer", "queues": ["compliance", "legal"]},
                    page=f"/admin/users/{people.outsider.id}")
    assert response.status_code == 302
    db.session.refresh(people.outsider)
    assert (people.outsider.role, sorted(q.name for q in people.outsider.queues)) == (
        "senior_reviewer", ["compliance", "legal"])
    [event] = events("user.updated")
    assert event.actor == f"user:{people.admin.id}"
    assert event.data["before"] == {"email": "outsider@example.com", "name": "Outsider", "role": "reviewer",
                                    "queues": ["legal"], "active": True, "qa_all": False}
    assert (event.data["after"]["role"], event.data["after"]["queues"]) == ("senior_reviewer", ["compliance", "legal"])
    assert "password_hash" not in str(event.data)


def test_an_unknown_queue_on_the_edit_page_changes_nothing(admin, people):
    page = f"/admin/users/{people.outsider.id}"
    response = post(admin, page, {"name": "Outsider", "role": "admin", "queues": ["legal", "nowhere"]}, page=page)
    assert response.status_code == 422 and field_errors(response) == ["Unknown queue(s): nowhere."]
    db.session.expire_all()
    assert (people.outsider.role, [q.name for q in people.outsider.queues]) == ("reviewer", ["legal"])
    assert events("user.updated") == []


def test_deactivation_ends_a_live_session_and_revokes_a_token_at_once(app, admin, people):
    theirs = browser(app)
    sign_in(theirs, people.reviewer)
    assert get(theirs, "/queues").status_code == 200
    _, token = create_api_token(db.session, people.reviewer, "bot")
    db.session.commit()
    bearer = {"Authorization": f"Bearer {token}"}
    assert get(theirs, "/api/v1/inbox?queue=finance", headers=bearer).status_code == 200

    response = post(admin, f"/admin/users/{people.reviewer.id}/deactivate")
    assert response.status_code == 302
    assert "reviewer@example.com deactivated: 1 session(s) ended, 1 API token(s) revoked." in flashes(
        admin, "/admin/users")
    assert get(theirs, "/queues").headers["Location"].startswith("/login")  # the saved cookie no longer works
    assert browser(app).get("/api/v1/inbox?queue=finance", headers=bearer).status_code == 401
    assert sign_in_with(browser(app), "reviewer@example.com", PASSWORD).headers.get("Location") is None  # refused
    db.session.refresh(people.reviewer)
    assert people.reviewer.active is False and count(User) == 7  # history kept
    [event] = events("user.deactivated")
    assert (event.data["before"]["active"], event.data["after"]["active"]) == (True, False)
    assert (event.data["sessions_ended"], event.data["tokens_revoked"]) == (1, 1)

    post(admin, f"/admin/users/{people.reviewer.id}/reactivate")
    assert sign_in_with(browser(app), "reviewer@example.com", PASSWORD).headers["Location"] == "/"
    assert browser(app).get("/api/v1/inbox?queue=finance", headers=bearer).status_code == 401  # stays revoked


def test_the_last_active_admin_can_neither_deactivate_nor_demote_themselves(admin, people):
    post(admin, f"/admin/users/{people.admin.id}/deactivate")
    assert ("Cannot deactivate admin@example.com: they are the last active admin; make another user admin first."
            in flashes(admin, "/admin/users"))
    page = f"/admin/users/{people.admin.id}"
    response = post(admin, page, {"name": "Admin", "role": "auditor"}, page=page)
    assert response.status_code == 422
    assert "The last active admin." in field_errors(response)
    db.session.expire_all()
    assert (people.admin.role, people.admin.active) == ("admin", True)
    assert events("user.deactivated") == events("user.updated") == []

    post(admin, f"/admin/users/{people.senior.id}", {"name": "Senior", "role": "admin"},
         page=f"/admin/users/{people.senior.id}")
    assert post(admin, page, {"name": "Admin", "role": "auditor"}, page=page).status_code == 302  # another admin now
    db.session.refresh(people.admin)
    assert people.admin.role == "auditor"


def test_two_admins_demoting_each_other_at_once_cannot_both_succeed(app, database, people):
    second = make_user("admin2", "admin", [])
    db.session.commit()
    first, other = Session(db.engine), Session(db.engine)
    answers: dict[str, str] = {}

    def demote_the_other_admin() -> None:
        with app.app_context():
            try:
                accounts.update_account(other, other.get(User, second.id), Actor.system("test"), role="auditor")
                other.commit()
                answers["other"] = "demoted"
            except Conflict as exc:
                other.rollback()
                answers["other"] = exc.message

    try:
        accounts.update_account(first, first.get(User, people.admin.id), Actor.system("test"), role="auditor")
        racing = threading.Thread(target=demote_the_other_admin)
        racing.start()
        racing.join(1.0)
        assert racing.is_alive()  # waiting for the first demotion's locks
        first.commit()
        racing.join(10)
    finally:
        first.close()
        other.close()
    assert answers == {"other": "cannot demote admin2@example.com: they are the last active admin; "
                                "make another user admin first"}
    db.session.expire_all()
    assert (people.admin.role, second.role) == ("auditor", "admin")


def test_reset_password_replaces_the_old_one_and_ends_every_session(app, admin, people):
    theirs = browser(app)
    sign_in(theirs, people.reviewer)
    response = post(admin, f"/admin/users/{people.reviewer.id}/reset-password")
    assert response.headers["Cache-Control"] == "no-store"
    password = re.search(r"data-one-time-password>([^<]+)<", response.get_data(as_text=True)).group(1)
    assert get(theirs, "/queues").headers["Location"].startswith("/login")
    assert sign_in_with(browser(app), "reviewer@example.com", PASSWORD).headers.get("Location") is None
    assert sign_in_with(browser(app), "reviewer@example.com", password).headers["Location"] == "/settings/password"
    assert [e.data for e in events("user.password_reset")] == [{"user_id": people.reviewer.id,
                                                                 "email": "reviewer@example.com"}]


def test_sign_out_everywhere_by_an_admin(app, admin, people):
    theirs = browser(app)
    sign_in(theirs, people.auditor)
    post(admin, f"/admin/users/{people.auditor.id}/sign-out")
    assert get(theirs, "/admin").headers["Location"].startswith("/login")
    assert events("user.sessions_ended")[0].actor == f"user:{people.admin.id}"


def test_auditors_read_the_lists_without_edit_controls(client, people):
    sign_in(client, people.auditor)
    page = client.get("/admin/users").get_data(as_text=True)
    assert "reviewer@example.com" in page and "Manage" not in page and "New user" not in page


# --- API clients ------------------------------------------------------------------------------------------


def test_a_created_client_shows_its_token_and_secret_once_and_can_post(app, admin, queues):
    response = post(admin, "/admin/clients/new", {"name": "ledger", "domains": ["finance"],
                                                  "callback_hosts": "Hooks.Example.com\n127.0.0.1"},
                    page="/admin/clients/new")
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    token = re.search(r"data-client-token>([^<]+)<", text).group(1)
    secret = re.search(r"data-signing-secret>([^<]+)<", text).group(1)
    client = db.session.scalar(select(ApiClient).where(ApiClient.name == "ledger"))
    assert (client.allowed_domains, client.callback_hosts) == (["finance"], ["127.0.0.1", "hooks.example.com"])
    listing = get(admin, "/admin/clients").get_data(as_text=True)
    assert token not in listing and secret not in listing and token[:10] in listing
    ledger = Upstream(browser(app), client.id, "ledger", token, secret)
    assert ledger.post_case(case_body()).status_code == 202


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"name": "ledger", "callback_hosts": "hooks.example.com"}, "domains",
     "Domains must be a non-empty subset of finance, legal, compliance (got none)."),
    ({"name": "ledger", "domains": ["finance"], "callback_hosts": "https://hooks.example.com/cb"}, "callback_hosts",
     "Not a host name: https://hooks.example.com/cb (give bare names such as hooks.example.com, no scheme or port)."),
    ({"name": "ledger", "domains": ["finance"], "callback_hosts": "hooks.example.com:8443"}, "callback_hosts",
     "Not a host name: hooks.example.com:8443 (give bare names such as hooks.example.com, no scheme or port)."),
    ({"name": "payments-engine", "domains": ["finance"]}, "name", "Already in use."),
])
def test_creating_a_client_with_bad_input_changes_nothing(admin, upstream, form, field, message):
    clients, audited = count(ApiClient), count(AuditEvent)
    response = post(admin, "/admin/clients/new", form, page="/admin/clients/new")
    assert response.status_code == 422 and field_errors(response) == [message]
    assert (count(ApiClient), count(AuditEvent)) == (clients, audited)


def test_editing_a_client_validates_and_audits(admin, upstream):
    page = f"/admin/clients/{upstream.id}/edit"
    refused = post(admin, page, {"domains": [], "callback_hosts": "hooks.example.com"}, page=page)
    assert refused.status_code == 422
    refused = post(admin, page, {"domains": ["legal"], "callback_hosts": "bad_host!"}, page=page)
    assert refused.status_code == 422 and "Not a host name: bad_host!" in field_errors(refused)[0]
    assert events("client.updated") == []
    assert post(admin, page, {"domains": ["legal", "finance"], "callback_hosts": "cb.example.org"},
                page=page).status_code == 302
    [event] = events("client.updated")
    assert event.data["changes"] == {"allowed_domains": [["compliance", "finance", "legal"], ["finance", "legal"]],
                                     "callback_hosts": [["127.0.0.1", "hooks.example.com"], ["cb.example.org"]]}


def test_a_revoked_client_gets_401_on_a_signed_post(admin, upstream):
    assert upstream.post_case(case_body(external_id="before")).status_code == 202
    post(admin, f"/admin/clients/{upstream.id}/revoke")
    response = upstream.post_case(case_body(external_id="after"))
    assert response.status_code == 401
    assert response.get_json()["detail"] == "the API token is unknown or revoked"
    assert events("client.revoked")[0].data == {"client_id": upstream.id, "name": "payments-engine"}


def test_rotating_the_secret_keeps_the_old_one_for_the_grace_period(admin, upstream):
    refused = post(admin, f"/admin/clients/{upstream.id}/rotate-secret", {"grace_hours": "-1"})
    assert refused.status_code == 302 and events("client.secret_rotated") == []
    assert "The grace period must be 0 to 720 hours." in flashes(admin, "/admin/clients")
    response = post(admin, f"/admin/clients/{upstream.id}/rotate-secret", {"grace_hours": "2"})
    new_secret = re.search(r"data-signing-secret>([^<]+)<", response.get_data(as_text=True)).group(1)
    assert new_secret != upstream.secret and response.headers["Cache-Control"] == "no-store"
    assert upstream.post_case(case_body(external_id="old-secret")).status_code == 202
    assert upstream.post_case(case_body(external_id="new-secret"), secret=new_secret).status_code == 202
    client = db.session.get(ApiClient, upstream.id)
    db.session.refresh(client)
    assert upstream.secret in client.active_secrets()
    assert upstream.secret not in client.active_secrets(client.created_at + timedelta(days=1))
    assert events("client.secret_rotated")[0].actor == "user:" + str(
        db.session.scalar(select(User.id).where(User.role == "admin")))


# --- reason codes -----------------------------------------------------------------------------------------


def test_a_duplicate_or_malformed_code_changes_nothing(admin):
    codes, audited = count(ReasonCode), count(AuditEvent)
    for form, message in (({"code": "other", "label": "Again", "kinds": ["reject"]}, "Already exists."),
                          ({"code": "Bad Code", "label": "Bad", "kinds": ["reject"]},
                           "Lower-case letters, digits and _, starting with a letter, at most 40."),
                          ({"code": "fine", "label": "Fine", "kinds": []},
                           "Decision kinds must be a non-empty subset of approve, edit, reject, escalate, "
                           "request_info, blind, respond.")):
        response = post(admin, "/admin/reason-codes/new", form, page="/admin/reason-codes/new")
        assert response.status_code == 422 and field_errors(response) == [message]
    assert (count(ReasonCode), count(AuditEvent)) == (codes, audited)


def reason_options(page: str, kind: str) -> list[str]:
    select_html = re.search(rf'<select[^>]*name="{kind}-reason_code"[^>]*>(.*?)</select>', page, re.S).group(1)
    return [v for v in re.findall(r'value="([^"]*)"', select_html) if v]


def test_decision_forms_and_the_api_offer_each_kind_its_own_codes(app, admin, people, upstream):
    post(admin, "/admin/reason-codes/new", {"code": "duplicate_payment", "label": "Duplicate payment",
                                            "kinds": ["reject"]}, page="/admin/reason-codes/new")
    case = claim(people.reviewer, make_case(upstream))
    theirs = browser(app)
    sign_in(theirs, people.reviewer)
    page = get(theirs, f"/cases/{case.id}").get_data(as_text=True)
    assert "duplicate_payment" in reason_options(page, "reject")
    assert "duplicate_payment" not in reason_options(page, "edit")
    assert "policy_breach" in reason_options(page, "edit")

    _, token = create_api_token(db.session, people.reviewer, "bot")
    db.session.commit()
    bearer = {"Authorization": f"Bearer {token}"}
    doc = get(theirs, f"/api/v1/review/cases/{case.id}", headers=bearer).get_json()
    assert {"code": "duplicate_payment", "label": "Duplicate payment", "kinds": ["reject"]} in doc["reason_codes"]
    escalated = theirs.post(f"/api/v1/cases/{case.id}/decisions", headers=bearer, json={
        "kind": "request_info", "case_version": case.version, "reason_code": "duplicate_payment", "reason": "Twice"})
    assert escalated.status_code == 422
    assert any(e["field"] == "reason_code" for e in escalated.get_json()["errors"])
    rejected = theirs.post(f"/api/v1/cases/{case.id}/decisions", headers=bearer, json={
        "kind": "reject", "case_version": case.version, "reason_code": "duplicate_payment", "reason": "Paid twice"})
    assert rejected.status_code == 201, rejected.get_json()


def test_a_deactivated_code_is_no_longer_offered_but_old_decisions_keep_its_label(app, admin, people, upstream):
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "reject", reason_code="sanctions_concern", reason="Listed beneficiary")
    code = db.session.scalar(select(ReasonCode).where(ReasonCode.code == "sanctions_concern"))
    post(admin, f"/admin/reason-codes/{code.id}/active")
    db.session.refresh(code)
    assert code.active is False
    [event] = events("reason_code.updated")
    assert event.data["changes"] == {"active": [True, False]}

    other = claim(people.reviewer, make_case(upstream, external_id="second"))
    theirs = browser(app)
    sign_in(theirs, people.reviewer)
    page = get(theirs, f"/cases/{other.id}").get_data(as_text=True)
    assert "sanctions_concern" not in reason_options(page, "reject")
    assert "Sanctions concern: Listed beneficiary" in get(theirs, f"/cases/{case.id}").get_data(as_text=True)
    with pytest.raises(Invalid) as refused:
        decide(people.reviewer, other, "reject", reason_code="sanctions_concern", reason="Listed")
    assert refused.value.by_field["reason_code"].startswith("choose one of: ")
    assert "sanctions_concern" not in refused.value.by_field["reason_code"]
    db.session.rollback()
    assert count(Decision) == 1


def test_editing_a_label_changes_what_old_decisions_show(app, admin, people, upstream):
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "reject", reason_code="data_quality", reason="Garbled")
    code = db.session.scalar(select(ReasonCode).where(ReasonCode.code == "data_quality"))
    page = f"/admin/reason-codes/{code.id}/edit"
    assert post(admin, page, {"label": "Poor data quality", "kinds": ["reject", "edit"]}, page=page).status_code == 302
    db.session.refresh(code)
    assert (code.label, code.kinds) == ("Poor data quality", ["edit", "reject"])
    assert "Poor data quality: Garbled" in get(admin, f"/cases/{case.id}").get_data(as_text=True)



def test_an_optional_code_must_still_be_offered_for_the_kind(people, upstream):
    reason_codes.add_code(db.session, "reject_only", "Reject only", ["reject"], Actor.system("test"))
    db.session.commit()
    case = claim(people.reviewer, make_case(upstream))
    with pytest.raises(Invalid) as refused:
        decide(people.reviewer, case, "approve", reason_code="reject_only")
    db.session.rollback()
    assert "reject_only" not in refused.value.by_field["reason_code"]
    assert decide(people.reviewer, case, "approve").reason_code is None  # approve needs no code
