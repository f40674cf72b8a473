"""Standard Webhooks signatures (https://www.standardwebhooks.com), both directions.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is the decoded
bytes. The signed content is ``"{webhook-id}.{webhook-timestamp}.{raw body}"``
and the header carries one or more space-separated ``v1,<base64 HMAC-SHA256>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


class SignatureError(Exception):
    """The delivery's signature or timestamp is not acceptable; the message says which."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers of a signed delivery."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body)}


def verify(
    secrets_: Iterable[str],
    msg_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless one signature matches one of the secrets, in time."""
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
    offered = [part.split(",", 1)[1] for part in signature_header.split() if part.startswith("v1,")]
    if not offered:
        raise SignatureError("webhook-signature has no v1 signature")
    for secret in secrets_:
        expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
        if any(hmac.compare_digest(expected.encode(), sig.encode()) for sig in offered):
            return
    raise SignatureError("no signature matches the client's signing secret(s)")
