"""Webhooks in both directions: Standard Webhooks signatures, the callback allow-list, and the
one outbound HTTP sender.

Signatures use the reference implementation (``standardwebhooks``): a secret is ``whsec_`` +
base64 of random bytes, the signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"`` and
the ``webhook-signature`` header carries one or more space-separated ``v1,<base64 HMAC-SHA256>``.
`verify` first checks the headers and the timestamp itself, to say precisely what is wrong.

`post` sends one signed POST with ``httpx``: pooled connections, a timeout, redirects never
followed, and the answer classified as ``delivered``, ``retry`` (timeouts, connection errors,
5xx, 408, 429) or ``failed`` (any other answer, for good). A retried answer's ``Retry-After``
(seconds or an HTTP date) is kept: the next attempt is not made before it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
USER_AGENT = "Countersign-Webhooks/1"
RETRY_STATUSES = frozenset({408, 429})
ERROR_SNIPPET_BYTES = 200
DEFAULT_CALLBACK_PORTS = frozenset({443})


# --- signatures ------------------------------------------------------------------------------------


class SignatureError(Exception):
    """The delivery's signature or timestamp is not acceptable; the message says which."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers of a signed delivery."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


def verify(secrets_: Iterable[str], msg_id: str | None, timestamp: str | None, signature_header: str | None,
           body: bytes, *, tolerance: int = 300, now: float | None = None) -> None:
    """Raise SignatureError unless one signature matches one of the secrets, in time. The body
    must be UTF-8 text (the signed content is text)."""
    if not msg_id or not timestamp or not signature_header:
        missing = [n for n, v in (("webhook-id", msg_id), ("webhook-timestamp", timestamp),
                                  ("webhook-signature", signature_header)) if not v]
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp must be an integer number of seconds since the epoch") from None
    skew = (time.time() if now is None else now) - ts
    if abs(skew) > tolerance:
        raise SignatureError(f"webhook-timestamp is {int(abs(skew))} s {'old' if skew > 0 else 'in the future'}; "
                             f"the tolerance is {tolerance} s")
    offered = [part for part in signature_header.split() if part.startswith("v1,") and _is_base64(part[3:])]
    if not offered:
        raise SignatureError("webhook-signature has no v1 signature")
    sent = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": " ".join(offered)}
    for secret in secrets_:
        try:
            Webhook(secret).verify(body, sent, json_parse=False)
            return
        except WebhookVerificationError:
            continue
    raise SignatureError("no signature matches the client's signing secret(s)")


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# --- where callbacks may go --------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackPolicy:
    """Where callbacks may go, beyond each client's host allow-list: the ports open to them, and
    the hosts allow-listed for local testing (plain http, any port, no address check)."""

    insecure_hosts: frozenset[str] = frozenset()
    ports: frozenset[int] = DEFAULT_CALLBACK_PORTS

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CallbackPolicy:
        return cls(frozenset(config["INSECURE_CALLBACK_HOSTS"]), frozenset(config["CALLBACK_PORTS"]))

    def problem(self, url: str, allowed_hosts: Iterable[str]) -> str | None:
        """Why ``url`` may not receive callbacks, or None when it may: an absolute http(s) URL
        without credentials, spaces or control characters, to a host on the allow-list, on an
        allowed port, over https unless the host is allow-listed for testing."""
        if any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
            return "callback_url must not contain spaces or control characters"
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host:
            return "callback_url must be an absolute https URL"
        if parts.username or parts.password:
            return "callback_url must not carry credentials"
        allowed = sorted(allowed_hosts)
        if host not in allowed:
            return f"host {host!r} is not on this client's callback allow-list ({', '.join(allowed) or 'none'})"
        insecure = host in self.insecure_hosts
        if parts.scheme == "http" and not insecure:
            return "callback_url must use https (plain http only for hosts an admin allow-listed for testing)"
        try:
            port = parts.port or 443
        except ValueError:
            return "callback_url has an invalid port"
        if not insecure and port not in self.ports:
            return f"port {port} is not open to callbacks (allowed: {', '.join(map(str, sorted(self.ports)))})"
        return None


def public_address(host: str, port: int) -> str:
    """The address to connect to for ``host``: every address it resolves to must be public (no
    loopback, private, link-local or reserved address), so an allow-listed name cannot be pointed
    at the inside. Raises AddressRefused (for good) or AddressUnknown (try again later)."""
    try:
        found = sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})
    except (OSError, UnicodeError) as exc:
        raise AddressUnknown(f"could not resolve {host}: {exc}") from None
    inside = [address for address in found if not ipaddress.ip_address(address.split("%")[0]).is_global]
    if inside or not found:
        raise AddressRefused(f"{host} resolves to {inside[0] if inside else 'nothing'}, not a public address")
    return found[0]


class AddressRefused(Exception):
    """The callback host resolves to an address callbacks may never go to."""


class AddressUnknown(Exception):
    """The callback host does not resolve now."""


# --- sending ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "retry", "failed"]
    status_code: int | None = None
    error: str | None = None
    note: str | None = None  # delivered without a request, and why
    retry_after: float | None = None  # seconds the receiver asked us to wait before the next attempt


_clients: dict[int, httpx.Client] = {}


def _client() -> httpx.Client:
    """One pooled client per process (a forked worker must not share its parent's sockets)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})
    return _clients[pid]


def post_callback(url: str, body: bytes, signed: dict[str, str], timeout: float,
                  insecure_hosts: Iterable[str]) -> DeliveryResult:
    """POST to a client's callback URL (checked by `CallbackPolicy.problem`), connecting to the public
    address its host was resolved to just now, so a second lookup cannot lead elsewhere. Hosts
    allow-listed for local testing are neither resolved nor pinned."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in set(insecure_hosts):
        return post(url, body, signed, timeout)
    port = parts.port or 443
    try:
        address = public_address(host, port)
    except AddressRefused as exc:
        return DeliveryResult("failed", error=f"refused before sending: {exc}")
    except AddressUnknown as exc:
        return DeliveryResult("retry", error=str(exc))
    literal = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
    return post(pinned, body, {**signed, "Host": parts.netloc.rpartition("@")[2]}, timeout,
                extensions={"sni_hostname": host})


def post(url: str, body: bytes, signed: dict[str, str], timeout: float,
         extensions: dict[str, str] | None = None) -> DeliveryResult:
    """POST ``body`` once with the signature headers ``signed`` and classify the answer."""
    try:
        with _client().stream("POST", url, content=body, timeout=timeout, extensions=extensions,
                              headers={"Content-Type": "application/json", **signed}) as response:
            return _classified(response)
    except httpx.TimeoutException:
        return DeliveryResult("retry", error=f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return DeliveryResult("retry", error=f"connection failed: {str(exc) or type(exc).__name__}")


def _classified(response: httpx.Response) -> DeliveryResult:
    """The outcome of an answer; of an error's body only the first bytes are read."""
    code = response.status_code
    if code < 300:
        return DeliveryResult("delivered", code)
    if code < 400:
        target = response.headers.get("Location") or "nowhere"
        return DeliveryResult("failed", code, f"HTTP {code} redirect to {target}: redirects are not followed")
    first = next(response.iter_bytes(ERROR_SNIPPET_BYTES), b"")
    snippet = first[:ERROR_SNIPPET_BYTES].decode("utf-8", "replace").strip()
    error = f"HTTP {code}: {snippet}" if snippet else f"HTTP {code}"
    if code >= 500 or code in RETRY_STATUSES:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return DeliveryResult("retry", code, error, retry_after=wait)
    return DeliveryResult("failed", code, error)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from now (delta-seconds or an HTTP date; a date in the
    past is 0), or None when absent or unreadable."""
    text = (value or "").strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())
