"""The client's address behind proxies: X-Forwarded-For is believed from the proxies of
FORWARDED_ALLOW_IPS only, read from the right, so a client cannot choose the address it is
throttled and allow-listed by."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from app.forwarded import TrustedProxies
from tests.conftest import assert_problem
from tests.review_helpers import People
from tests.test_auth import login

pytest_plugins = ["tests.review_fixtures"]

LOCAL_PROXY = TrustedProxies(frozenset({ip_network("127.0.0.1/32"), ip_network("::1/128")}))
BALANCERS = TrustedProxies(frozenset({ip_network("10.0.1.0/24")}))
EVERY_PEER = TrustedProxies(frozenset({ip_network("0.0.0.0/0"), ip_network("::/0")}))  # "*"


@pytest.mark.parametrize(("proxies", "peer", "forwarded_for", "client"), [
    # no header, or a peer that is no trusted proxy: the peer
    (LOCAL_PROXY, "203.0.113.9", None, "203.0.113.9"),
    (LOCAL_PROXY, "203.0.113.9", "198.51.100.1", "203.0.113.9"),
    (BALANCERS, "10.0.2.1", "198.51.100.1", "10.0.2.1"),
    # a trusted proxy: the right-most address that is not one of them
    (LOCAL_PROXY, "127.0.0.1", "198.51.100.1", "198.51.100.1"),
    (LOCAL_PROXY, "::1", "2001:db8::7", "2001:db8::7"),
    (LOCAL_PROXY, "::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"),
    (BALANCERS, "10.0.1.5", "198.51.100.1, 10.0.1.9", "198.51.100.1"),
    # what the client wrote itself stands to the left of what the proxy appended, and is not believed
    (LOCAL_PROXY, "127.0.0.1", "127.0.0.1, 198.51.100.1", "198.51.100.1"),
    (BALANCERS, "10.0.1.5", "10.1.2.3, 198.51.100.1", "198.51.100.1"),
    (LOCAL_PROXY, "127.0.0.1", "not-an-address, 198.51.100.1", "198.51.100.1"),
    # the proxies' own part is not an address: nothing of it is believed
    (BALANCERS, "10.0.1.5", "198.51.100.1, garbage", "10.0.1.5"),
    # every hop a trusted proxy: the first
    (BALANCERS, "10.0.1.5", "10.0.1.7, 10.0.1.6", "10.0.1.7"),
    # an empty header, a Unix socket's peer
    (LOCAL_PROXY, "127.0.0.1", "", "127.0.0.1"),
    (LOCAL_PROXY, "", "198.51.100.1", ""),
    # "*" (every peer a proxy, as gunicorn reads it): the header as sent, its first address
    (EVERY_PEER, "203.0.113.9", "198.51.100.1, 10.0.0.1", "198.51.100.1"),
])
def test_the_client_is_the_right_most_address_no_trusted_proxy_holds(proxies, peer, forwarded_for, client):
    assert proxies.client(peer, forwarded_for) == client


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"METRICS_TOKEN": "", "METRICS_ALLOW_NETWORKS": frozenset({ip_network("10.1.0.0/16")}),
            "LOGIN_RATE_LIMIT_PER_ACCOUNT": "100 per minute", "LOGIN_RATE_LIMIT_PER_IP": "2 per minute"}


def metrics(client, peer: str, forwarded_for: str | None = None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    return client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": peer})


def test_the_metrics_allow_list_sees_the_client_behind_the_local_proxy(client):
    assert metrics(client, "127.0.0.1", "10.1.2.3").status_code == 200
    assert_problem(metrics(client, "127.0.0.1", "203.0.113.9"), 403, "forbidden")
    # the client claims an allowed address; the proxy appends the one it came from
    assert_problem(metrics(client, "127.0.0.1", "10.1.2.3, 203.0.113.9"), 403, "forbidden")
    # straight to the app, not through a trusted proxy: the header is the client's word alone
    assert_problem(metrics(client, "203.0.113.9", "10.1.2.3"), 403, "forbidden")


def forwarded_login(client, email: str, forwarded_for: str, peer: str = "127.0.0.1"):
    original = client.environ_base
    client.environ_base = {**original, "HTTP_X_FORWARDED_FOR": forwarded_for}  # login() sets the peer
    try:
        return login(client, email, ip=peer)
    finally:
        client.environ_base = original


def test_the_sign_in_throttle_counts_each_client_behind_the_proxy_apart(client, people: People):
    for email in ("a@example.com", "b@example.com"):
        assert forwarded_login(client, email, "198.51.100.1").status_code == 200
    assert forwarded_login(client, "c@example.com", "198.51.100.1").status_code == 429
    # another client through the same proxy has its own attempts
    assert forwarded_login(client, "reviewer@example.com", "198.51.100.2").status_code == 302


def test_a_client_reaching_the_app_directly_cannot_choose_its_address(client, people: People):
    for n, email in enumerate(("a@example.com", "b@example.com")):
        assert forwarded_login(client, email, f"198.51.100.{n}", peer="203.0.113.9").status_code == 200
    assert forwarded_login(client, "c@example.com", "198.51.100.9", peer="203.0.113.9").status_code == 429
