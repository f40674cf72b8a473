"""One navigation on every page, per role, and one set of units for durations."""

from __future__ import annotations

import re

import pytest
from flask import g

from app.units import duration, minutes
from tests.conftest import sign_in

pytest_plugins = ["tests.review_fixtures"]

MENUS = {
    "reviewer": ["Queues", "Notifications"],
    "senior": ["Queues", "Notifications", "Dashboards", "Quality"],
    "admin": ["Queues", "Notifications", "Dashboards", "Quality", "Executions", "Audit", "Rules", "Admin"],
    "auditor": ["Queues", "Notifications", "Dashboards", "Quality", "Audit", "Rules", "Admin"],
}


def menu_of(html: str) -> str:
    menu = re.search(r'<nav class="mainnav" aria-label="Main">(.*?)</nav>', html, re.S)
    assert menu is not None, "no main navigation"
    return menu.group(1)


def main_nav(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>.*", "", label).strip() for label in re.findall(r"<a [^>]*>(.*?)</a>", menu_of(html), re.S)]


def current(html: str) -> list[str]:
    return re.findall(r'<a href="[^"]*"[^>]*aria-current="page"[^>]*>\s*([A-Z][a-z]+)', menu_of(html))


@pytest.mark.parametrize("role", list(MENUS))
def test_every_role_has_one_menu_the_same_on_each_page(client, people, role):
    sign_in(client, getattr(people, role))
    pages = ["/queues", "/notifications", "/settings/tokens"]
    for path in pages:
        g.pop("_login_user", None)
        html = client.get(path).get_data(as_text=True)
        assert main_nav(html) == MENUS[role], path
        assert html.count('aria-label="Main"') == 1, path


@pytest.mark.parametrize(("role", "path", "marked"), [
    ("reviewer", "/queues/finance", "Queues"),
    ("reviewer", "/notifications", "Notifications"),
    ("admin", "/admin/users", "Admin"),
    ("admin", "/admin/controls", "Admin"),
    ("admin", "/admin/executions", "Executions"),
    ("auditor", "/audit/verify", "Audit"),
    ("auditor", "/admin/rules", "Rules"),
    ("senior", "/oversight/calibration", "Quality"),
    ("senior", "/dashboards/ai", "Dashboards"),
])
def test_the_current_area_is_marked(client, people, role, path, marked):
    sign_in(client, getattr(people, role))
    assert current(client.get(path).get_data(as_text=True)) == [marked]


def test_a_page_outside_every_area_marks_none_and_signed_out_there_is_no_menu(client, people):
    sign_in(client, people.reviewer)
    tokens_page = client.get("/settings/tokens").get_data(as_text=True)
    assert main_nav(tokens_page) == MENUS["reviewer"] and current(tokens_page) == []
    sign_in(client, None)
    g.pop("_login_user", None)
    assert 'aria-label="Main"' not in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "—"), (0, "0 s"), (59.4, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h 00 min"),
    (3900, "1 h 05 min"), (47 * 3600 + 59 * 60, "47 h 59 min"), (48 * 3600, "2 d 0 h"), (50 * 3600 + 120, "2 d 2 h"),
])
def test_durations_in_hours_and_minutes(seconds, shown):
    assert duration(seconds) == shown


def test_a_queue_sla_reads_the_same_on_every_page(client, people):
    """The finance queue's SLA is 60 minutes (conftest): one hour, in the same words everywhere."""
    assert minutes(240) == "4 h 00 min"
    pages = []
    visits = [(people.admin, "/admin/queues"), (people.reviewer, "/queues"), (people.reviewer, "/queues/finance")]
    for user, path in visits:
        sign_in(client, user)
        g.pop("_login_user", None)
        pages.append(client.get(path).get_data(as_text=True))
    for html in pages:
        assert "1 h 00 min" in html and "60 min" not in html
