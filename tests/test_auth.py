"""Signing in and out, rate limits, CSRF, security headers and personal API tokens."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from flask import g
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.audit.models import AuditEvent
from app.auth.services import authenticate_password, create_api_token, user_for_token
from app.auth.views import INVALID_LOGIN, SIGN_IN_UNAVAILABLE, TOO_MANY_ATTEMPTS, safe_next
from app.db import sha256_hex, utcnow
from app.extensions import db
from app.security import CONTENT_SECURITY_POLICY
from app.users import ApiToken, UserSession
from tests.review_helpers import PASSWORD, People

pytest_plugins = ["tests.review_fixtures"]


def csrf_from(page: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "no csrf_token in the page"
    return found.group(1)


def csrf_of(http: FlaskClient, path: str) -> str:
    # Every test-client request reuses the test's app context, so its g; a real request starts
    # with an empty g, where Flask-WTF finds no cached token and reads the session's.
    g.pop("csrf_token", None)
    return csrf_from(http.get(path).get_data(as_text=True))


def login(http: FlaskClient, email: str, password: str = PASSWORD, *, next_url: str | None = None,
          ip: str = "127.0.0.1"):
    token = csrf_of(http, "/login")
    path = "/login" + (f"?next={quote(next_url, safe='')}" if next_url is not None else "")
    return http.post(path, data={"email": email, "password": password, "csrf_token": token},
                     environ_base={"REMOTE_ADDR": ip})


def errors_in(response) -> list[str]:
    return re.findall(r'<p class="flash flash-error" role="alert">([^<]*)</p>', response.get_data(as_text=True))


def signed_in(http: FlaskClient) -> bool:
    with http.session_transaction() as session:
        return "_user_id" in session


# --- signing in and out ----------------------------------------------------------------------------


def test_login_and_logout(client, people: People):
    response = login(client, "Reviewer@Example.com ")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert signed_in(client)
    g.pop("csrf_token", None)
    page = client.get("/settings/tokens").get_data(as_text=True)
    assert "reviewer@example.com · reviewer" in page  # the account menu
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.login")).one()
    assert event.actor == f"user:{people.reviewer.id}"
    assert client.get("/logout").status_code == 405  # signing out is a POST with a CSRF token
    response = client.post("/logout", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(client)
    assert client.get("/settings/tokens").status_code == 302


# --- server-side sessions ----------------------------------------------------------------------------


def session_row(user_id: int) -> UserSession:
    db.session.expire_all()
    return db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)
                              .order_by(UserSession.id.desc())).first()


def test_a_cookie_saved_before_logout_is_worthless_after_it(client, app, people: People):
    login(client, "reviewer@example.com")
    g.pop("csrf_token", None)
    page = client.get("/settings/tokens").get_data(as_text=True)
    saved = client.get_cookie("session").value
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    assert session_row(people.reviewer.id).ended_at is not None
    assert [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))][-1] == "user.logout"

    replayed = app.test_client()
    replayed.set_cookie("session", saved)
    g.pop("_login_user", None)
    assert replayed.get("/queues").status_code == 302  # to the sign-in page
    g.pop("_login_user", None)
    forged = replayed.post("/settings/tokens", data={"csrf_token": csrf_from(page), "label": "stolen"})
    assert forged.status_code == 302 and "/login" in forged.headers["Location"]
    assert db.session.scalars(select(ApiToken)).all() == []


@pytest.mark.parametrize(("idle", "age", "live"), [
    (timedelta(minutes=29), timedelta(hours=1), True),
    (timedelta(minutes=31), timedelta(hours=1), False),  # idle past SESSION_IDLE_MINUTES (30)
    (timedelta(minutes=1), timedelta(hours=11, minutes=59), True),
    (timedelta(minutes=1), timedelta(hours=12, minutes=1), False),  # older than SESSION_MAX_HOURS (12)
])
def test_sessions_end_after_the_idle_and_the_absolute_timeout(client, people: People, idle, age, live):
    login(client, "reviewer@example.com")
    now = utcnow()
    db.session.execute(update(UserSession).values(last_seen_at=now - idle, created_at=now - age))
    db.session.commit()
    g.pop("_login_user", None)
    assert client.get("/settings/tokens").status_code == (200 if live else 302)
    row = session_row(people.reviewer.id)
    assert (row.ended_at is None) == live
    if live:
        assert now - row.last_seen_at < timedelta(minutes=1)  # a read-only request keeps the session alive


def test_sign_out_everywhere_ends_every_session_of_the_user(client, app, people: People):
    login(client, "reviewer@example.com")
    other = app.test_client()
    login(other, "reviewer@example.com")
    g.pop("csrf_token", None)
    g.pop("_login_user", None)
    page = client.get("/settings/tokens").get_data(as_text=True)
    response = client.post("/settings/sessions/end", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    for http in (client, other):
        g.pop("_login_user", None)
        assert http.get("/settings/tokens").status_code == 302
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.sessions_ended")).all()
    assert (event.actor, event.data) == (f"user:{people.reviewer.id}", {"user_id": people.reviewer.id, "sessions": 2})


def test_the_cli_signs_a_user_out_everywhere(client, runner, people: People):
    login(client, "reviewer@example.com")
    result = runner.invoke(args=["users", "sign-out", "--email", "reviewer@example.com"])
    assert result.exit_code == 0 and "reviewer@example.com: 1 session(s) ended" in result.output
    g.pop("_login_user", None)
    assert client.get("/settings/tokens").status_code == 302
    assert runner.invoke(args=["users", "sign-out", "--email", "nobody@example.com"]).exit_code == 2


def test_wrong_password_unknown_email_and_inactive_user_look_the_same(client, people: People):
    people.reviewer2.active = False
    db.session.commit()
    answers = [login(client, "reviewer@example.com", "wrong-password-1"),
               login(client, "nobody@example.com", PASSWORD),
               login(client, "reviewer2@example.com", PASSWORD)]
    assert {r.status_code for r in answers} == {200}
    assert [errors_in(r) for r in answers] == [[INVALID_LOGIN]] * 3
    assert INVALID_LOGIN == "Invalid email or password."
    assert not signed_in(client)


def test_authenticate_password(app, people: People):
    assert authenticate_password(db.session, " REVIEWER@example.com", PASSWORD) is people.reviewer
    assert authenticate_password(db.session, "reviewer@example.com", "nope") is None
    assert authenticate_password(db.session, "ghost@example.com", PASSWORD) is None


def test_protected_pages_send_anonymous_users_to_login(client, people: People):
    response = client.get("/settings/tokens")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fsettings%2Ftokens"


def test_deactivated_user_is_signed_out(client, people: People):
    login(client, "reviewer@example.com")
    people.reviewer.active = False
    db.session.commit()
    assert client.get("/settings/tokens").status_code == 302


def test_session_is_rotated_at_login(client, people: People):
    client.get("/login")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
        before = dict(session)
    login(client, "reviewer@example.com")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("csrf_token") != before.get("csrf_token")
        assert session["_user_id"] == str(people.reviewer.id)


def test_login_form_requires_the_csrf_token(client, people: People):
    response = client.post("/login", data={"email": "reviewer@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert not signed_in(client)
    response = client.post("/login", data={"email": "reviewer@example.com", "password": PASSWORD,
                                           "csrf_token": "forged"})
    assert response.status_code == 400


@pytest.mark.parametrize(("target", "landing"), [
    ("/settings/tokens", "/settings/tokens"),
    ("/queues/finance?status=open", "/queues/finance?status=open"),
    ("https://evil.example/phish", "/"),
    ("//evil.example/phish", "/"),
    ("/\\evil.example", "/"),
    ("/\t/evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("", "/"),
])
def test_next_only_leads_to_local_paths(client, people: People, target, landing):
    response = login(client, "reviewer@example.com", next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == landing


def test_safe_next():
    assert safe_next(None) == "/"
    assert safe_next("/a/b?c=d#e") == "/a/b?c=d#e"
    assert safe_next("http:/evil.example") == "/"


# --- rate limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"LOGIN_RATE_LIMIT_PER_ACCOUNT": "3 per minute",
                                               "LOGIN_RATE_LIMIT_PER_IP": "100 per minute"}])
def test_login_rate_limit_per_account_and_address(client, people: People, config_overrides):
    for _ in range(3):
        assert errors_in(login(client, "reviewer@example.com", "wrong-guess-1", ip="10.0.0.1")) == [INVALID_LOGIN]
    blocked = login(client, "Reviewer@example.com", ip="10.0.0.1")  # even the right password, from there
    assert blocked.status_code == 429
    assert errors_in(blocked) == [TOO_MANY_ATTEMPTS]
    assert not signed_in(client)
    assert login(client, "senior@example.com", ip="10.0.0.1").status_code == 302  # other accounts are fine
    # Whoever guessed cannot lock the owner out: from the owner's own address the password works.
    assert login(client, "reviewer@example.com", ip="10.0.1.1").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"REDIS_URL": "redis://127.0.0.1:1/0"}])
def test_login_fails_closed_when_the_limits_cannot_be_counted(client, people: People, config_overrides):
    assert client.get("/login").status_code == 200
    refused = login(client, "reviewer@example.com")
    assert refused.status_code == 503
    assert errors_in(refused) == [SIGN_IN_UNAVAILABLE]
    assert not signed_in(client)


@pytest.mark.parametrize("config_overrides", [{"LOGIN_RATE_LIMIT_PER_ACCOUNT": "100 per minute",
                                               "LOGIN_RATE_LIMIT_PER_IP": "3 per minute"}])
def test_login_rate_limit_per_ip(client, people: People, config_overrides):
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        assert login(client, email, ip="10.9.9.9").status_code == 200
    blocked = login(client, "reviewer@example.com", ip="10.9.9.9")
    assert blocked.status_code == 429
    assert TOO_MANY_ATTEMPTS in blocked.get_data(as_text=True)
    assert client.get("/login", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 200  # GET is free
    assert login(client, "reviewer@example.com", ip="10.9.9.10").status_code == 302


# --- security headers --------------------------------------------------------------------------------------


def test_security_headers_on_pages_and_api(client, people: People):
    for response in (client.get("/login"), client.get("/api/v1/inbox"), client.get("/no-such-page")):
        headers = response.headers
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["X-Frame-Options"] == "DENY"
        assert "camera=()" in headers["Permissions-Policy"]
        assert headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("config_overrides", [{"ENV": "development"}])
def test_no_hsts_in_development(client, config_overrides):
    headers = client.get("/login").headers
    assert "Strict-Transport-Security" not in headers
    assert headers["X-Frame-Options"] == "DENY"


# --- personal API tokens -------------------------------------------------------------------------------------


def test_create_and_revoke_a_token_in_the_ui(client, people: People):
    login(client, "reviewer@example.com")
    response = client.post("/settings/tokens", data={"label": "chat-ops bot", "csrf_token": csrf_of(
        client, "/settings/tokens")})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    raw = re.search(r"(cst_[A-Za-z0-9_-]{20,})", response.get_data(as_text=True)).group(1)
    token = db.session.scalars(select(ApiToken)).one()
    assert (token.user_id, token.label, token.token_hash) == (people.reviewer.id, "chat-ops bot", sha256_hex(raw))
    assert raw not in client.get("/settings/tokens").get_data(as_text=True)  # shown once only
    assert user_for_token(db.session, raw) is people.reviewer
    revoke = client.post(f"/settings/tokens/{token.id}/revoke",
                         data={"csrf_token": csrf_of(client, "/settings/tokens")})
    assert revoke.status_code == 302
    db.session.refresh(token)
    assert token.revoked_at is not None
    assert user_for_token(db.session, raw) is None
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("api_token.%"))).all()
    assert actions == ["api_token.created", "api_token.revoked"]


def test_token_forms_refuse_bad_input_and_other_peoples_tokens(client, people: People):
    login(client, "senior@example.com")
    blank = client.post("/settings/tokens", data={"label": " ", "csrf_token": csrf_of(client, "/settings/tokens")})
    assert blank.status_code == 200 and "This field is required." in blank.get_data(as_text=True)
    assert db.session.scalars(select(ApiToken)).all() == []
    assert client.post("/settings/tokens", data={"label": "no csrf"}).status_code == 400
    token, _ = create_api_token(db.session, people.reviewer, "theirs")
    db.session.commit()
    answer = client.post(f"/settings/tokens/{token.id}/revoke",
                         data={"csrf_token": csrf_of(client, "/settings/tokens")})
    assert answer.status_code == 404
    db.session.refresh(token)
    assert token.revoked_at is None
    assert db.session.scalars(select(ApiToken)).all() == [token]


def test_cli_creates_a_token_once(runner, people: People):
    result = runner.invoke(args=["users", "token", "--email", "Reviewer@example.com", "--label", "bot"])
    assert result.exit_code == 0, result.output
    raw = result.stdout.strip()
    assert raw.startswith("cst_") and "\n" not in raw
    assert "not shown again" in result.stderr
    assert user_for_token(db.session, raw) is people.reviewer
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.created")).one()
    assert (event.actor, event.data["label"]) == ("system:cli", "bot")


def test_cli_token_for_an_unknown_user_fails(runner, people: People):
    result = runner.invoke(args=["users", "token", "--email", "ghost@example.com"])
    assert result.exit_code == 2
    assert "Error: no user with email ghost@example.com" in result.output
    assert db.session.scalars(select(ApiToken)).all() == []
