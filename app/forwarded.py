"""The client's address behind proxies: ``X-Forwarded-For``, believed only from trusted proxies.

The proxies trusted are ``FORWARDED_ALLOW_IPS``, the setting gunicorn reads for
``X-Forwarded-Proto``, so one list says which peers may speak for a client. Each proxy appends the
address it received the request from, so the header is read from the right: the first address
that is not a trusted proxy is the client as the outermost trusted proxy saw it. Whatever stands
to its left was written by that client and is never believed. The rate limits (sign-in per
address) and the /metrics allow-list then see the client, not the proxy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def parse_address(raw: str | None) -> Address | None:
    """An IP address, with an IPv4 client of a dual-stack socket (::ffff:a.b.c.d) as a.b.c.d;
    None for anything else (a Unix socket's peer, a malformed header entry)."""
    try:
        address: Address = ip_address((raw or "").strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def within(address: Address | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` (None: no address) lies in one of ``networks``."""
    return address is not None and any(address in network for network in networks)


@dataclass(frozen=True)
class TrustedProxies:
    networks: frozenset[Network]  # FORWARDED_ALLOW_IPS; "*" is every network

    def __contains__(self, address: Address | None) -> bool:
        return within(address, self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the peer's, unless the peer is a trusted proxy that forwarded one."""
        if not forwarded_for or parse_address(peer) not in self:
            return peer
        hops = [parse_address(hop) for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if hop is None:
                return peer  # a trusted proxy wrote something that is no address: believe none of it
            if hop not in self:
                return str(hop)
        return str(hops[0])  # every hop a trusted proxy: the request began at the first


class ForwardedFor:
    """WSGI middleware: ``REMOTE_ADDR`` becomes ``TrustedProxies.client``."""

    def __init__(self, app: WSGIApplication, proxies: TrustedProxies) -> None:
        self.app, self.proxies = app, proxies

    def __call__(self, wsgi_environ: dict[str, Any], start_response: Any) -> Any:
        client = self.proxies.client(wsgi_environ.get("REMOTE_ADDR"), wsgi_environ.get("HTTP_X_FORWARDED_FOR"))
        if client is not None:
            wsgi_environ["REMOTE_ADDR"] = client
        return self.app(wsgi_environ, start_response)
