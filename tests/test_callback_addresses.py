"""Callbacks go only where they may: allowed ports, and names that resolve to public addresses,
connected to at the address that was checked (no second lookup). No test here sends traffic
anywhere but this machine: resolution is replaced where an outside address would be reached."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from app import webhooks
from app.cases.models import Queue, Status
from app.execution.jobs import execute_case
from app.extensions import db
from app.intake.models import ApiClient
from tests.conftest import assert_problem, case_body
from tests.execution_helpers import People, approved_case, execution_of, make_user, reload

PUBLIC = "192.0.2.1"  # stands for a public address; the tests never connect to it (see below)


def resolving_to(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every name resolve to ``addresses``; returns the list of names looked up."""
    looked_up: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        looked_up.append(host)
        family = socket.AF_INET6 if any(":" in a for a in addresses) else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.7", "169.254.169.254", "::1", "fd00::1",
                                     "0.0.0.0"])  # noqa: S104 (an address refused, not bound)
def test_an_allow_listed_name_that_resolves_inside_is_refused(monkeypatch, address):
    resolving_to(monkeypatch, address)
    with pytest.raises(webhooks.AddressRefused, match="not a public address"):
        webhooks.public_address("hooks.example.com", 443)


def test_one_inside_address_among_public_ones_is_enough_to_refuse(monkeypatch):
    monkeypatch.setattr(webhooks.ipaddress.IPv4Address, "is_global", property(lambda a: str(a) == PUBLIC))
    resolving_to(monkeypatch, PUBLIC, "10.0.0.1")
    with pytest.raises(webhooks.AddressRefused, match=r"10\.0\.0\.1"):
        webhooks.public_address("hooks.example.com", 443)


def test_the_checked_address_is_the_one_connected_to(monkeypatch):
    monkeypatch.setattr(webhooks.ipaddress.IPv4Address, "is_global", property(lambda a: str(a) == PUBLIC))
    looked_up = resolving_to(monkeypatch, PUBLIC)
    sent: list[tuple[str, dict[str, str], Any]] = []
    monkeypatch.setattr(webhooks, "post", lambda url, body, signed, timeout, extensions=None: sent.append(
        (url, signed, extensions)) or webhooks.DeliveryResult("delivered", 200))
    result = webhooks.post_callback("https://hooks.example.com/countersign?x=1", b"{}", {"webhook-id": "m"}, 5,
                                    frozenset())
    assert result.outcome == "delivered"
    assert looked_up == ["hooks.example.com"]  # once: the connection goes to the address checked
    [(url, signed, extensions)] = sent
    assert url == f"https://{PUBLIC}:443/countersign?x=1"
    assert signed["Host"] == "hooks.example.com" and extensions == {"sni_hostname": "hooks.example.com"}


def test_a_name_that_does_not_resolve_is_retried_later(monkeypatch):
    def fail(*args: Any, **kwargs: Any) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    result = webhooks.post_callback("https://hooks.example.com/x", b"{}", {}, 5, frozenset())
    assert result.outcome == "retry" and "could not resolve hooks.example.com" in result.error


def test_a_delivery_to_a_name_resolving_to_loopback_fails_at_once_without_a_request(upstream, people):
    db.session.get(ApiClient, upstream.id).callback_hosts = ["localhost", "127.0.0.1"]
    db.session.commit()
    case_id = approved_case(upstream, people, "https://localhost/hooks")  # localhost is not test-allow-listed
    assert execute_case(case_id) == "failed"
    assert execution_of(case_id).last_status_code is None  # no request was made
    assert execution_of(case_id).last_error == ("refused before sending: localhost resolves to 127.0.0.1, "
                                                "not a public address")
    assert reload(case_id).status == Status.EXECUTION_FAILED


@pytest.mark.parametrize(("url", "ok"), [("https://hooks.example.com:22/hook", False),
                                         ("https://hooks.example.com:443/hook", True),
                                         ("https://hooks.example.com/hook", True),
                                         ("http://127.0.0.1:8765/hook", True)])  # allow-listed for testing
def test_callback_ports_are_restricted_at_intake(upstream, url, ok):
    response = upstream.post_case(case_body(callback_url=url))
    if ok:
        assert response.status_code == 202, response.get_json()
    else:
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"] == [{"field": "callback_url", "code": "callback_not_allowed",
                                      "message": "port 22 is not open to callbacks (allowed: 443)"}]


@pytest.fixture
def people(queues: dict[str, Queue]) -> People:
    work = list(queues.values())
    made = People(make_user("reviewer", work), make_user("reviewer", work), make_user("senior_reviewer", work),
                  make_user("admin"), make_user("auditor"))
    db.session.commit()
    return made


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 2.0}
