"""The reviewer UI in a real browser: Debian's Chromium driven by Playwright, against the app
served on localhost from a background thread. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from app.ai.jobs import analyze_case
from app.auth.services import create_user
from app.cases.models import Case, Status
from app.extensions import db
from app.users import User
from tests.conftest import ROOT, case_body

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct-horse-battery"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a free localhost port, served by threads (each request its own app context)."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def people(queues) -> dict[str, User]:
    made = {
        "reviewer": create_user(db.session, "rita.reviewer@example.com", PASSWORD, "reviewer", name="Rita Reviewer",
                                queues=["finance", "legal", "compliance"]),
        "senior": create_user(db.session, "sam.senior@example.com", PASSWORD, "senior_reviewer", name="Sam Senior",
                              queues=["finance", "legal", "compliance"]),
    }
    db.session.commit()
    return made


def analysed_case(upstream, case_type: str, **data: str) -> int:
    body = case_body(case_type)
    body["data"].update(data)
    response = upstream.post_case(body)
    assert response.status_code == 202
    case_id = response.get_json()["id"]
    analyze_case(case_id)
    return case_id


def status_of(case_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Case, case_id).status


def sign_in(browser: sync_api.Browser, base: str, user: User, errors: list[str] | None = None) -> sync_api.Page:
    """A fresh browser context (its own cookies) signed in through the login form; script errors
    and CSP violations go to ``errors``."""
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto("/queues")
    assert "/login" in page.url  # anonymous: sent to the login page
    page.fill("input[name=email]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/queues$"))
    return page


def test_reviewer_claims_the_next_case_edits_it_and_approves(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "credit_limit_change")
    errors: list[str] = []
    page = sign_in(browser, live_server, people["reviewer"], errors)
    page.click("a:text-is('finance')")
    page.wait_for_url(re.compile(r"/queues/finance"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "queue-page.png"), full_page=True)

    page.click("button:has-text('Next case')")
    page.wait_for_url(re.compile(rf"/cases/{case_id}$"))
    assert status_of(case_id) == Status.IN_REVIEW
    page.screenshot(path=str(ARTIFACTS / "case-page.png"), full_page=True)

    page.click("details[data-panel=edit] > summary")
    edit = page.locator("details[data-panel=edit] form")
    edit.locator("select[name=edit-action]").select_option("counter_offer")
    assert edit.locator("fieldset[data-action=approve]").is_hidden()  # only the chosen action's fields
    edit.locator("input[name='p.counter_offer.limit']").fill("9000.00")
    edit.locator("select[name=edit-reason_code]").select_option("customer_risk")
    edit.locator("textarea[name=edit-reason]").fill("High utilization: counter-offer a smaller increase.")
    edit.locator("button[type=submit]").click()
    page.wait_for_selector(".flash-success")

    assert status_of(case_id) == Status.APPROVED
    first_event = page.locator("#timeline .event").first
    assert first_event.get_attribute("data-action") == "case.approved"
    assert "Counter offer" in first_event.inner_text() and "9000" in first_event.inner_text()
    assert errors == []


def test_dual_approval_needs_a_second_person(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "payment_release", amount="250000.00")  # over the EUR threshold
    reviewer = sign_in(browser, live_server, people["reviewer"])
    reviewer.goto(f"/cases/{case_id}")
    reviewer.click("button:has-text('Claim case')")
    reviewer.click("button:has-text('Approve as recommended')")
    reviewer.wait_for_selector("[data-first-approval]")
    assert status_of(case_id) == Status.AWAITING_SECOND_APPROVAL
    assert reviewer.locator("text=Give second approval").count() == 0  # never the first approver

    senior = sign_in(browser, live_server, people["senior"])
    senior.goto(f"/cases/{case_id}")
    assert "Rita Reviewer" in senior.locator("[data-first-approval]").inner_text()
    senior.click("button:has-text('Give second approval')")
    senior.wait_for_selector(".flash-success")
    assert status_of(case_id) == Status.APPROVED
    assert senior.locator("#timeline .event").first.get_attribute("data-action") == "case.second_approval"


def test_keyboard_shortcuts(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "payment_release")
    errors: list[str] = []
    page = sign_in(browser, live_server, people["reviewer"], errors)
    page.goto("/queues/finance")
    page.fill("input[name=q]", "nan")  # typing "n" in a field must not claim a case
    assert "/queues/finance" in page.url and status_of(case_id) == Status.PENDING_REVIEW
    page.locator("input[name=q]").blur()

    page.keyboard.press("n")
    page.wait_for_url(re.compile(rf"/cases/{case_id}$"))
    assert status_of(case_id) == Status.IN_REVIEW

    page.keyboard.press("e")
    assert page.locator("details[data-panel=edit]").get_attribute("open") is not None
    page.locator("body").click(position={"x": 5, "y": 5})  # leave the focused field

    page.keyboard.press("a")
    page.wait_for_selector(".flash-success")
    assert status_of(case_id) == Status.APPROVED
    assert errors == []
