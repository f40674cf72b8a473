"""The example agent (examples/refund_agent.py) end to end: an OpenAI function-calling loop (the
real `openai` SDK against the local fake OpenAI server) whose `issue_refund` tool is guarded by
`@require_approval`, run as printed against the app over real HTTP. A reviewer edits the amount (through
the services, and in a real browser in the case page's schema-built form) or refuses the refund, and
the agent's tool runs with the edited arguments, or not at all."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from app.auth.services import create_user
from app.cases.models import Case, Decision, Status
from app.extensions import db
from tests.review_helpers import claim, decide
from tests.test_examples import LINE_TIMEOUT_SECONDS, Example, start

pytest_plugins = ["tests.review_fixtures"]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
BROWSER_PASSWORD = "correct-horse-battery"


@pytest.fixture
def agent(live_server, credentials) -> Iterator[Example]:
    running = start([sys.executable, "examples/refund_agent.py", "--url", live_server, "--credentials",
                     str(credentials), "--fake-openai", "--timeout", "60"])
    yield running
    if running.process.poll() is None:
        running.process.kill()
    running.process.wait(timeout=10)


def asked_case(agent: Example, redis_conn) -> Case:
    """The case the agent asked about, analysed."""
    agent.wait_for(r"the model calls issue_refund\(")
    case_id = int(agent.wait_for(r"asked for approval of issue_refund: case (\d+)")[1])
    SimpleWorker(["ai"], connection=redis_conn).work(burst=True)
    db.session.expire_all()
    case = db.session.get(Case, case_id)
    assert case.status == Status.PENDING_REVIEW
    return case


def finished(agent: Example) -> None:
    assert agent.process.wait(timeout=LINE_TIMEOUT_SECONDS) == 0, agent.seen


def test_the_agent_runs_its_tool_with_the_amount_a_reviewer_edited(agent, people, redis_conn):
    case = asked_case(agent, redis_conn)
    assert case.payload["tool"]["arguments"] == {"order_id": "ORD-58213", "amount": 180.0, "currency": "EUR"}
    assert case.payload["agent"]["name"] == "Support agent"
    assert case.payload["context"]["messages"][1]["content"].startswith("My espresso machine")

    decide(people.reviewer, claim(people.reviewer, case), "edit", action="execute",
           parameters={"order_id": "ORD-58213", "amount": 120, "currency": "EUR"})
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True)

    agent.wait_for(rf"case {case.id} approved with edited arguments")
    agent.wait_for(r"issue_refund ran with order_id=ORD-58213 amount=120\.00 currency=EUR")
    agent.wait_for(r"the agent answers: Dear customer: Refunded 120\.00 EUR on order ORD-58213\.")
    finished(agent)
    assert not any("amount=180" in line for line in agent.seen if line.startswith("issue_refund ran"))


def test_a_refused_refund_does_not_run_and_the_agent_says_why(agent, people, redis_conn):
    case = asked_case(agent, redis_conn)

    decide(people.reviewer, claim(people.reviewer, case), "reject", reason="Offer a replacement water tank first.")

    agent.wait_for(r"issue_refund was refused by a reviewer: Offer a replacement water tank first\.")
    agent.wait_for(r"the agent answers: Dear customer: A reviewer refused the refund")
    finished(agent)
    assert not any(line.startswith("issue_refund ran") for line in agent.seen)


@pytest.mark.browser
def test_a_reviewer_edits_the_amount_in_the_browser_and_the_tool_runs_with_it(agent, queues, redis_conn,
                                                                                live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from tests.test_browser import CHROMIUM_ARGS, TIMEOUT_MS

    reviewer = create_user(db.session, "rita.reviewer@example.com", BROWSER_PASSWORD, "reviewer",
                           name="Rita Reviewer", queues=["finance"])
    db.session.commit()
    case = asked_case(agent, redis_conn)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(base_url=live_server).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto("/login")
            page.fill("input[name=email]", reviewer.email)
            page.fill("input[name=password]", BROWSER_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/login" not in url)
            page.goto(f"/cases/{case.id}")
            page.click("button:has-text('Claim case')")
            page.wait_for_selector(".flash-success")
            page.click("details[data-panel=edit] > summary")
            edit = page.locator("details[data-panel=edit] form")
            edit.locator("select[name=edit-action]").select_option("execute")
            edit.locator("input[name='p.execute.amount']").fill("95.50")
            edit.locator("select[name=edit-reason_code]").select_option("incorrect_ai_parameters")
            edit.locator("textarea[name=edit-reason]").fill("Refund the water tank only.")
            edit.locator("button[type=submit]").click()
            page.wait_for_selector(".flash-success")
        finally:
            browser.close()

    db.session.rollback()  # a new transaction, for this test and the worker below: it sees the browser's decision
    decision = db.session.scalars(select(Decision).where(Decision.case_id == case.id)).one()
    assert (decision.kind, decision.parameters["amount"]) == ("edit", 95.5)
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True)
    agent.wait_for(r"issue_refund ran with order_id=ORD-58213 amount=95\.50 currency=EUR")
    finished(agent)
