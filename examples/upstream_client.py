"""An upstream system in one file: post a signed case to Countersign, follow it until a reviewer has
decided, and receive and verify the signed callback that tells the outcome.

    python examples/upstream_client.py --credentials instance/demo-client.json      # against `make demo`
    python examples/upstream_client.py --url https://countersign.example.com --token cs_… --secret whsec_… \\
        --callback-url https://hooks.example.com/countersign --listen 0.0.0.0:8443

It needs Python 3.11+ and the `standardwebhooks` package (`pip install standardwebhooks`), nothing
of Countersign. Countersign delivers callbacks only to the hosts allowed for the API client
(`clients create --callback-host`); plain-http callbacks to 127.0.0.1, as here by default, only
where the server lists the host in INSECURE_CALLBACK_HOSTS (the demo does).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks import Webhook, WebhookVerificationError

# An approved case's callback arrives while it is being delivered: its status says how that ended.
DELIVERING = {"approved", "executing"}


def a_payment(callback_url: str) -> dict[str, Any]:
    """A payment_release case (docs/case-types.md), with fresh ids: each run posts a new case."""
    reference = f"PAY-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:8].upper()}"
    return {
        "external_id": reference,
        "domain": "finance",
        "case_type": "payment_release",
        "title": "Release EUR 1,250.00 to ACME GmbH",
        "callback_url": callback_url,
        "data": {
            "payment_id": reference,
            "amount": "1250.00",
            "currency": "EUR",
            "value_date": f"{datetime.now(UTC):%Y-%m-%d}",
            "channel": "sepa",
            "originator": {"name": "Northwind Trading Ltd", "account": "GB29NWBK60161331926819",
                           "country": "GB", "customer_id": "C-1001"},
            "beneficiary": {"name": "ACME GmbH", "account": "DE89370400440532013000", "country": "DE",
                            "is_new": False},
            "purpose": "Invoice 2026-118",
        },
    }


# --- sending: a signed POST ----------------------------------------------------------------------------


def signed_headers(webhook: Webhook, token: str, body: bytes) -> dict[str, str]:
    """Bearer token plus the three Standard Webhooks headers; webhook-id is the idempotency key."""
    message_id, sent_at = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": webhook.sign(message_id, sent_at, body.decode()),
    }


def call(method: str, url: str, headers: dict[str, str], body: bytes | None = None) -> dict[str, Any]:
    """The JSON answer; a refusal (an RFC 9457 problem document) ends the program, printed."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 (likewise)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (http(s) only: settings checks --url)
            return json.load(answer)
    except urllib.error.HTTPError as refused:
        sys.exit(f"{method} {url} answered {refused.code}: {refused.read().decode(errors='replace')}")


# --- receiving: the callback ---------------------------------------------------------------------------


class CallbackReceiver(ThreadingHTTPServer):
    """Verifies each callback's signature (401 otherwise) and hands each webhook-id on once."""

    def __init__(self, address: tuple[str, int], secret: str) -> None:
        super().__init__(address, CallbackHandler)
        self.webhook = Webhook(secret)
        self.seen: set[str] = set()
        self.verified: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()


class CallbackHandler(BaseHTTPRequestHandler):
    server: CallbackReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            # Checks the HMAC against the body as received, and that the timestamp is within 5 minutes.
            document = self.server.webhook.verify(body, dict(self.headers))
        except WebhookVerificationError as refused:
            print(f"callback refused: {refused}", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        webhook_id = self.headers["webhook-id"]  # the same on every retry of one delivery: de-duplicate on it
        if webhook_id not in self.server.seen:
            self.server.seen.add(webhook_id)
            self.server.verified.put((webhook_id, document))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- the run -------------------------------------------------------------------------------------------


def follow(case_url: str, token: str, receiver: CallbackReceiver, timeout: float) -> int:
    """Print each status the case passes through and the verified callback; 0 once a callback has
    come and the case's status no longer says it is being delivered."""
    deadline, status, callback = time.monotonic() + timeout, None, None
    while time.monotonic() < deadline:
        try:
            webhook_id, callback = receiver.verified.get(timeout=1.0)
        except queue.Empty:
            pass
        else:
            print(f"callback verified: {callback['type']} for case {callback['case']['id']} "
                  f"(webhook-id {webhook_id}): {json.dumps(callback, sort_keys=True)}", flush=True)
        case = call("GET", case_url, {"Authorization": f"Bearer {token}"})  # read after the callback came
        if case["status"] != status:
            status = case["status"]
            print(f"case {case['id']} is {status}", flush=True)
        if callback is not None and status not in DELIVERING:
            return 0
    print(f"gave up after {timeout:g} s: case is {status}, {'a' if callback else 'no'} callback received")
    return 1


def settings(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="Countersign's base URL")
    parser.add_argument("--credentials", type=Path, help="a JSON file with token and signing_secret "
                        "(the demo writes instance/demo-client.json)")
    parser.add_argument("--token", help="the API client's bearer token (cs_…)")
    parser.add_argument("--secret", help="the API client's signing secret (whsec_…)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="where the callback receiver listens "
                        "(HOST:PORT; port 0: any free port)")
    parser.add_argument("--callback-url", help="the URL Countersign calls back (default: the receiver's own)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for a decision")
    args = parser.parse_args(argv)
    if args.credentials:
        saved = json.loads(args.credentials.read_text())
        args.token, args.secret = args.token or saved["token"], args.secret or saved["signing_secret"]
    if not args.token or not args.secret:
        parser.error("give --credentials, or --token and --secret")
    if urlsplit(args.url).scheme not in ("http", "https"):
        parser.error(f"--url must be an http(s) URL, not {args.url!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = settings(argv)
    host, _, port = args.listen.rpartition(":")
    receiver = CallbackReceiver((host, int(port)), args.secret)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    callback_url = args.callback_url or f"http://{host}:{receiver.server_address[1]}/countersign"
    print(f"receiving callbacks at {callback_url}", flush=True)
    try:
        body = json.dumps(a_payment(callback_url)).encode()
        accepted = call("POST", f"{args.url.rstrip('/')}/api/v1/cases",
                        signed_headers(Webhook(args.secret), args.token, body), body)
        print(f"posted case {accepted['id']}: {accepted['status']} ({accepted['url']}); "
              "waiting for a reviewer's decision", flush=True)
        return follow(accepted["url"], args.token, receiver, args.timeout)
    finally:
        receiver.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
