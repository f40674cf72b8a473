"""The reviewer UI in a real browser: Debian's Chromium driven by Playwright, against the app
served on localhost from a background thread. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from werkzeug.serving import WSGIRequestHandler, make_server

from app.ai.jobs import analyze_case
from app.auth.services import create_user
from app.cases.models import Case, Queue, Status
from app.db import utcnow
from app.escalation import sla
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


def sign_in(browser: sync_api.Browser, base: str, user: User, errors: list[str] | None = None, *,
            height: int = 1000) -> sync_api.Page:
    """A fresh browser context (its own cookies) signed in through the login form; script errors
    and CSP violations go to ``errors``."""
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": height})
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
    approve_confirming(reviewer)
    reviewer.wait_for_selector("[data-first-approval]")
    assert status_of(case_id) == Status.AWAITING_SECOND_APPROVAL
    assert reviewer.locator("text=Give second approval").count() == 0  # never the first approver

    senior = sign_in(browser, live_server, people["senior"])
    senior.goto(f"/cases/{case_id}")
    assert "Rita Reviewer" in senior.locator("[data-first-approval]").inner_text()
    senior.click("button:has-text('Give second approval')")
    senior.click("button:has-text('Confirm second approval')")
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

    page.keyboard.press("a")  # a possible sanctions match: the one key asks to confirm first
    page.wait_for_selector("[data-confirm=approve]")
    assert status_of(case_id) == Status.IN_REVIEW
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash-success")
    assert status_of(case_id) == Status.APPROVED
    assert errors == []


# --- the reviewer's bugs (issue: reviewer workspace, second pass) ----------------------------------------


def approve_confirming(page: sync_api.Page) -> None:
    """Approve as recommended, through the confirmation step the example payment's hard flag asks for."""
    page.click("button:has-text('Approve as recommended')")
    page.click("[data-confirm-button]")


def claimed(page: sync_api.Page, case_id: int) -> None:
    page.goto(f"/cases/{case_id}")
    page.click("button:has-text('Claim case')")
    page.wait_for_selector(".flash-success")


def reasoned(page: sync_api.Page, panel: str, reason: str, **selects: str) -> sync_api.Locator:
    """Open a decision panel and fill in its reason (code: customer_risk) and any other selects;
    its form, not yet sent."""
    page.click(f"details[data-panel={panel}] > summary")
    form = page.locator(f"details[data-panel={panel}] form")
    for name, value in {**selects, "reason_code": "customer_risk"}.items():
        form.locator(f"select[name={panel}-{name}]").select_option(value)
    form.locator(f"textarea[name={panel}-reason]").fill(reason)
    return form


def test_escalating_out_of_reach_lands_on_the_queue_with_the_message(browser, live_server, upstream, people):
    db.session.add(Queue(name="finance-senior", domain="finance", sla_minutes=60))  # Rita does not work it
    db.session.commit()
    case_id = analysed_case(upstream, "payment_release")
    page = sign_in(browser, live_server, people["reviewer"])
    claimed(page, case_id)
    form = reasoned(page, "escalate", "Needs a senior look.", target_queue="finance-senior")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/queues/finance$"))
    assert "Decision recorded (escalate)" in page.locator(".flash-success").inner_text()
    assert page.locator("text=Page not found").count() == 0


def test_a_decided_case_shows_whether_its_sla_was_met(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "payment_release")
    page = sign_in(browser, live_server, people["reviewer"])
    claimed(page, case_id)
    approve_confirming(page)
    page.wait_for_selector(".flash-success")
    case = db.session.get(Case, case_id)
    case.sla_due_at = case.sla_stopped_at + timedelta(milliseconds=300)  # due just after the decision...
    db.session.commit()
    time.sleep(0.5)  # ...and past due by now
    page.goto("/queues/finance?status=decided")
    row = page.locator(f"tr[data-case-id='{case_id}']")
    assert "SLA met" in row.inner_text() and "Overdue" not in row.inner_text()
    page.goto(f"/cases/{case_id}")
    assert "SLA met" in page.locator(".case-head .badges").inner_text()


def test_the_inbox_badge_agrees_with_the_sla_warning_on_the_timeline(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "payment_release")  # the queue's window: 60 minutes
    case = db.session.get(Case, case_id)
    case.sla_due_at = utcnow() + timedelta(minutes=20)  # two thirds of the window gone: the 50 % warning is due
    sla.refresh(case)
    db.session.commit()
    sla.sweep(db.session, utcnow(), db.session.commit)
    page = sign_in(browser, live_server, people["reviewer"])
    page.goto(f"/cases/{case_id}")
    assert page.locator("#timeline .event[data-action='case.sla_warning']").count() == 1
    assert "At risk" in page.locator(".case-head .badges").inner_text()
    page.goto("/queues/finance")
    assert "At risk" in page.locator(f"tr[data-case-id='{case_id}']").inner_text()


def test_a_refused_decision_is_shown_on_the_case_page_and_a_reload_sends_nothing(browser, live_server, upstream,
                                                                                  people):
    case_id = analysed_case(upstream, "payment_release")
    page = sign_in(browser, live_server, people["reviewer"])
    claimed(page, case_id)
    page.click("details[data-panel=reject] > summary")
    page.locator("details[data-panel=reject] button[type=submit]").click()  # no reason code, no reason
    page.wait_for_url(re.compile(rf"/cases/{case_id}#panel-reject$"))
    assert page.locator("details[data-panel=reject][open] .field-error").count() >= 1
    page.reload()  # a GET: nothing is sent again, the errors were shown once
    assert page.locator("details[data-panel=reject] .field-error").count() == 0
    assert status_of(case_id) == Status.IN_REVIEW


def test_a_stale_decision_keeps_the_typed_reason(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "payment_release")
    page = sign_in(browser, live_server, people["reviewer"])
    claimed(page, case_id)
    form = reasoned(page, "reject", "The beneficiary changed bank details yesterday.")
    upstream.post_signed(f"/api/v1/cases/{case_id}/info", {"data": {"purpose": "Changed meanwhile"}})
    db.session.execute(update(Case).where(Case.id == case_id).values(version=Case.version + 1))  # someone else
    db.session.commit()
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/cases/{case_id}#panel-reject$"))
    assert "changed" in page.locator(".flash-error").inner_text().lower()
    kept = page.locator("details[data-panel=reject] textarea[name=reject-reason]")
    assert kept.input_value() == "The beneficiary changed bank details yesterday."
    page.locator("details[data-panel=reject] button[type=submit]").click()  # bound to the case as it now is
    page.wait_for_selector(".flash-success")
    assert status_of(case_id) == Status.REJECTED


def test_a_second_approval_request_resolves_with_its_case(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "payment_release", amount="250000.00")
    reviewer = sign_in(browser, live_server, people["reviewer"])
    claimed(reviewer, case_id)
    approve_confirming(reviewer)
    reviewer.wait_for_selector("[data-first-approval]")
    senior = sign_in(browser, live_server, people["senior"])
    assert senior.locator("a.bell").get_attribute("data-unread") == "1"
    senior.goto(f"/cases/{case_id}")
    senior.click("button:has-text('Give second approval')")
    senior.click("[data-confirm-button]")
    senior.wait_for_selector(".flash-success")
    assert senior.locator("a.bell").get_attribute("data-unread") == "0"


def test_after_a_decision_the_final_action_is_shown_not_the_ais(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "credit_limit_change")
    proposed = db.session.get(Case, case_id).recommendation.action
    page = sign_in(browser, live_server, people["reviewer"])
    claimed(page, case_id)
    page.click("details[data-panel=edit] > summary")
    edit = page.locator("details[data-panel=edit] form")
    final = "counter_offer" if proposed != "counter_offer" else "approve"  # both take a limit
    edit.locator("select[name=edit-action]").select_option(final)
    edit.locator(f"input[name='p.{final}.limit']").fill("9000.00")
    edit.locator("select[name=edit-reason_code]").select_option("customer_risk")
    edit.locator("textarea[name=edit-reason]").fill("Not this time.")
    edit.locator("button[type=submit]").click()
    page.wait_for_selector(".flash-success")
    label = final.replace("_", " ").capitalize()
    assert label in page.locator("[data-final-action]").inner_text()
    page.goto("/queues/finance?status=decided")
    assert page.locator(f"tr[data-case-id='{case_id}'] [data-final-action]").inner_text() == label


# --- the case page's first screen and safe speed (issue: reviewer workspace, second pass) ----------------

FIRST_SCREEN = {"width": 1440, "height": 900}
CASE_TYPES = ("payment_release", "credit_limit_change", "kyc_review", "aml_alert", "contract_review")


def in_first_screen(locator: sync_api.Locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= FIRST_SCREEN["height"]


@pytest.mark.parametrize("case_type", CASE_TYPES)
def test_the_first_screen_answers_for_every_case_type(browser, live_server, upstream, people, case_type):
    big = {"amount": "250000.00"} if case_type == "payment_release" else {}
    case_id = analysed_case(upstream, case_type, **big)
    rec = db.session.get(Case, case_id).recommendation
    errors: list[str] = []
    page = sign_in(browser, live_server, people["reviewer"], errors, height=FIRST_SCREEN["height"])
    claimed(page, case_id)
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"first-screen-{case_type}.png"))

    action = page.locator("[data-rec-action]")
    assert in_first_screen(action) and action.get_attribute("data-rec-action") == rec.action
    assert in_first_screen(page.locator("[data-confidence]"))
    assert f"{rec.confidence:.0%}" in page.locator("[data-confidence]").inner_text()
    if rec.parameters:
        assert in_first_screen(page.locator("[data-parameters]").first)
    if set(rec.flags) - {"prompt_injection", "unverified_citation", "disagreement", "contradicts_screening"}:
        risks = page.locator("[data-top-risks]")
        assert in_first_screen(risks) and "_" not in risks.inner_text()  # plain words, no codes
    for control in ("button:has-text('Approve as recommended')", "details[data-panel=edit] > summary",
                    "details[data-panel=reject] > summary"):
        assert in_first_screen(page.locator(control)), control
    if big:
        need = page.locator("#recommendation [data-dual-approval]")
        assert in_first_screen(need) and "this amount is over EUR 100,000" in need.inner_text()
    assert "Reject recommendation" in page.locator("details[data-panel=reject] > summary").inner_text()
    legend = page.locator(".shortcut-legend").inner_text()
    assert "Request information" in legend and "Claim" not in legend  # claimed: c no longer applies
    assert errors == []


def test_the_decision_controls_stay_reachable_on_a_long_case(browser, live_server, upstream, people):
    case_id = analysed_case(upstream, "aml_alert")
    page = sign_in(browser, live_server, people["reviewer"], height=FIRST_SCREEN["height"])
    claimed(page, case_id)
    page.mouse.wheel(0, 2500)
    page.wait_for_timeout(200)
    assert in_first_screen(page.locator("details[data-panel=reject] > summary"))


def test_confirmation_and_undo_from_the_keyboard(app, browser, live_server, upstream, people, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_UNDO_SECONDS", 10)
    case_id = analysed_case(upstream, "payment_release")  # a possible sanctions match: a hard flag
    errors: list[str] = []
    page = sign_in(browser, live_server, people["reviewer"], errors)
    page.goto(f"/cases/{case_id}")
    page.keyboard.press("c")
    page.wait_for_selector(".flash-success")
    assert status_of(case_id) == Status.IN_REVIEW

    page.keyboard.press("a")
    confirm = page.locator("[data-confirm=approve]")
    confirm.wait_for()
    assert "possible sanctions list match" in confirm.inner_text().lower()
    assert status_of(case_id) == Status.IN_REVIEW  # asked, not done
    page.keyboard.press("Enter")
    toast = page.locator("[data-undo-toast]")
    toast.wait_for()
    assert status_of(case_id) == Status.APPROVED
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "undo-toast.png"))

    page.keyboard.press("u")
    page.wait_for_selector(".flash-success:has-text('Approval undone')")
    assert status_of(case_id) == Status.IN_REVIEW
    assert db.session.get(Case, case_id).assignee_id == people["reviewer"].id
    assert page.locator("#timeline .event").first.get_attribute("data-action") == "decision.undone"
    assert page.locator("[data-undo-toast]").count() == 0
    assert errors == []


def test_after_a_decision_the_next_case_opens_unless_turned_off(browser, live_server, upstream, people):
    first, second, third = (analysed_case(upstream, "credit_limit_change") for _ in range(3))
    errors: list[str] = []
    page = sign_in(browser, live_server, people["reviewer"], errors)
    page.goto("/queues/finance")
    page.keyboard.press("j")  # the first row of the inbox, then Enter opens it
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/cases/{first}$"))
    page.keyboard.press("c")
    page.wait_for_selector(".flash-success")
    form = reasoned(page, "reject", "Not now.")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/cases/{second}$"))  # claimed for me, with the decision's message
    assert "Decision recorded (reject)" in page.locator(".flash-success").inner_text()
    assert status_of(first) == Status.REJECTED and status_of(second) == Status.IN_REVIEW

    page.click("[data-auto-next=on]")  # stay on the case after a decision from now on
    page.wait_for_selector("[data-auto-next=off]")
    form = reasoned(page, "reject", "Not now either.")
    form.locator("button[type=submit]").click()
    page.wait_for_selector(".flash-success")
    assert page.url.endswith(f"/cases/{second}") and status_of(third) == Status.PENDING_REVIEW
    assert errors == []
