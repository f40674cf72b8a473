"""Every HTML page, for every role, in a real browser at 1440 px and at 390 px (a phone): no
horizontal scrolling, no serious or critical axe-core violation, a full-page screenshot of each.

The pages come from the app's URL map (GET routes, path arguments filled from SAMPLE_ARGUMENTS),
so a new page is covered without touching this file; a route that answers anything but HTML (JSON,
a download, a metrics text) is skipped. Pages a role may not open are visited too: their 403 or 404
page is part of what that role sees. axe-core is vendored in tests/axe/ (see its README).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.cases.models import Queue
from app.escalation import rules, services
from app.extensions import db
from app.oversight.models import QaReview
from app.review import reason_codes
from tests import test_browser
from tests.conftest import ROOT, make_upstream
from tests.review_helpers import PASSWORD, RECOMMENDED, People, claim, decide, make_case

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.review_fixtures"]
sync_api = test_browser.sync_api
browser = test_browser.browser  # one Chromium for the module

AXE = Path(__file__).parent / "axe" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "pages"
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}
ROLES = ("reviewer", "senior", "admin", "auditor")
BLOCKING = ("serious", "critical")
QUERIES = {"dashboards.cases": "?view=queues&measure=decided"}  # the page a dashboard number links to
NOT_PAGES = {"static"}
SIGNED_OUT_PAGES = {"openapi.reference"}  # public and the same for everyone: checked once, signed out (it is long)
WORKER = "reviewer"  # sees the case page of every case type; the other roles, of one pending and one decided case


@pytest.fixture
def samples(client, upstream, people: People) -> dict[str, list[Any]]:
    """Each path argument's sample values: a case of every type (one decided), and one of each object."""
    cases = [make_case(upstream, case_type).id for case_type in RECOMMENDED]
    decided = decided_case(upstream, people)
    document = {"name": "pages", "conditions": {"domain": "finance"},
                "actions": [{"set_priority": {"priority": "high"}}]}
    rule = services.create_rule(db.session, rules.validate(document, services.catalog(db.session)),
                                services.RULES_ACTOR)
    other_client = make_upstream(client, "another-tenant")
    db.session.commit()
    queue = db.session.scalars(select(Queue).where(Queue.name == "finance")).one()
    return {"case_id": [*cases, decided], "rule_id": [rule.id], "queue_id": [queue.id], "name": [queue.name],
            "user_id": [people.reviewer2.id], "client_id": [other_client.id],
            "code_id": [reason_codes.code_named(db.session, "other").id]}


def decided_case(upstream, people: People) -> int:
    """A finance case approved by the reviewer and drawn for QA (so the QA page has a row)."""
    people.reviewer.qa_all = True
    case = claim(people.reviewer, make_case(upstream))
    decide(people.reviewer, case, "approve")
    people.reviewer.qa_all = False
    db.session.commit()
    assert db.session.scalars(select(QaReview).where(QaReview.case_id == case.id)).one()
    return case.id


def page_paths(app: Flask, samples: dict[str, list[Any]]) -> list[str]:
    """Every GET route of the app, each path argument filled with each of its sample values."""
    paths: list[str] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.endpoint in NOT_PAGES | SIGNED_OUT_PAGES:
            continue
        argument = next(iter(rule.arguments), None)
        if argument is None:
            paths.append(rule.rule + QUERIES.get(rule.endpoint, ""))
            continue
        assert len(rule.arguments) == 1 and argument in samples, f"{rule.rule}: add its arguments to the samples"
        urls = app.url_map.bind("localhost")
        paths.extend(urls.build(rule.endpoint, {argument: value}) for value in samples[argument])
    return paths


@pytest.fixture
def axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def signed_in_context(browser, base: str, email: str | None) -> Any:
    # bypass_csp: the page's script-src 'self' would refuse the injected axe-core (test_browser.py checks the CSP)
    width, height = WIDTHS["desktop"]
    context = browser.new_context(base_url=base, viewport={"width": width, "height": height}, bypass_csp=True)
    context.set_default_timeout(test_browser.TIMEOUT_MS)
    if email is not None:
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/queues")
        page.close()
    return context


def problems_of(page: Any, axe_source: str, label: str) -> Iterator[str]:
    """What is wrong with the page as shown: horizontal overflow, then serious or critical axe findings."""
    width, scroll_width = page.evaluate("[window.innerWidth, document.documentElement.scrollWidth]")
    if scroll_width > width:
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 3)
            .map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : ''))""")
        yield f"{label}: {scroll_width} px wide in a {width} px window ({', '.join(wide)})"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    results = page.evaluate("options => axe.run(document, options)", {
        "resultTypes": ["violations"],
        # colours do not change with the width: their (slow) contrast check runs on the desktop pass only
        "rules": {"color-contrast": {"enabled": page.viewport_size["width"] == WIDTHS["desktop"][0]}},
    })
    for violation in results["violations"]:
        if violation["impact"] in BLOCKING:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
            yield f"{label}: axe {violation['impact']} {violation['id']} ({violation['help']}) at {json.dumps(targets)}"


def shown(context: Any, paths: list[str]) -> list[str]:
    """The HTML pages among ``paths``; of the refusals, one page per status (they share one template)."""
    kept, refusals = [], set()
    for path in paths:
        answer = context.request.get(path, max_redirects=0)
        if not answer.headers.get("content-type", "").startswith("text/html") or answer.status in refusals:
            continue
        if answer.status in (403, 404):
            refusals.add(answer.status)
        kept.append(path)
    return kept


def check_pages(context: Any, paths: list[str], axe_source: str, who: str) -> list[str]:
    found: list[str] = []
    page = context.new_page()
    for path in shown(context, paths):
        page.goto(path)
        for width_name, (width, height) in WIDTHS.items():  # one load, laid out at each width in turn
            page.set_viewport_size({"width": width, "height": height})
            found.extend(problems_of(page, axe_source, f"{who} {path} at {width} px"))
            shot = ARTIFACTS / who / f"{path.strip('/').replace('/', '_').replace('?', '_') or 'root'}-{width_name}.png"
            page.screenshot(path=str(shot), full_page=True)
    page.close()
    return found


def test_the_checks_catch_an_overflow_and_an_unlabelled_field(browser, axe_source):
    """The harness itself: a page too wide for a phone, with a field no one can name, is reported."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_content('<!doctype html><html lang="en"><title>t</title><main><h1>t</h1>'
                     '<div style="width: 600px">wide</div><input type="text"></main></html>')
    found = list(problems_of(page, axe_source, "sample"))
    context.close()
    assert len(found) == 2
    assert found[0].startswith("sample: 608 px wide in a 390 px window")  # 600 px and the body's 8 px margin
    assert found[1].startswith("sample: axe critical label ")


@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_a_phone_and_passes_axe(browser, live_server, app, people, samples, axe_source, role):
    user = getattr(people, role)
    if role != WORKER:
        samples["case_id"] = samples["case_id"][-2:]  # a pending case and the decided one
    (ARTIFACTS / role).mkdir(parents=True, exist_ok=True)
    context = signed_in_context(browser, live_server, user.email)
    try:
        found = check_pages(context, page_paths(app, samples), axe_source, role)
    finally:
        context.close()
    print(f"screenshots: {ARTIFACTS / role}")
    assert found == [], "\n".join(found)


def test_signed_out_pages_fit_a_phone_and_pass_axe(browser, live_server, app, axe_source):
    (ARTIFACTS / "anonymous").mkdir(parents=True, exist_ok=True)
    public = [app.url_map.bind("localhost").build(endpoint) for endpoint in sorted(SIGNED_OUT_PAGES)]
    context = signed_in_context(browser, live_server, None)
    try:
        found = check_pages(context, ["/login", "/no-such-page", *public], axe_source, "anonymous")
    finally:
        context.close()
    print(f"screenshots: {ARTIFACTS / 'anonymous'}")
    assert found == [], "\n".join(found)


def test_at_phone_width_rows_are_labelled_and_the_decision_comes_before_the_data(browser, live_server, people,
                                                                                   upstream):
    case = make_case(upstream, "aml_alert")  # a long case: its data is many screens on a phone
    context = signed_in_context(browser, live_server, people.reviewer.email)
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/queues/compliance")
    row = page.locator(f"tr[data-case-id='{case.id}']")
    assert row.locator("td[data-label='Status']").count() == 1
    assert row.evaluate("tr => getComputedStyle(tr).display") == "block"  # stacked, not a row of columns
    page.goto(f"/cases/{case.id}")
    decision_top = page.locator("#decision").bounding_box()["y"]
    data_top = page.locator(".case-main").bounding_box()["y"]
    page.set_viewport_size({"width": 1440, "height": 900})
    side_by_side = page.locator(".case-main").bounding_box()["y"] <= page.locator("#decision").bounding_box()["y"]
    context.close()
    assert decision_top < data_top and decision_top < 844 * 2
    assert side_by_side  # on a wide screen the data stays on the left, the decision on the right
