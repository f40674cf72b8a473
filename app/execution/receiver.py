"""A small webhook receiver standing in for an upstream system, for the demo and the tests.

``python -m app.execution.receiver --port 8765 --secret whsec_… [--fail N] [--hang S] [--status CODE]
[--retry-after S] [--redirect URL]``

It verifies each POST's Standard Webhooks signature (401 otherwise), processes each
``webhook-id`` once (a repeat is answered 200 and not processed again), logs every delivery
on one line and answers 200. To exercise the sender's failure handling, *failing* deliveries
instead wait ``--hang`` seconds, then answer ``--status`` (default 500, with a ``Retry-After``
header of ``--retry-after`` when given) or redirect to ``--redirect``: the first ``--fail`` N
deliveries, or every one when --hang, --status or --redirect is given without --fail.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app import webhooks

log = logging.getLogger("countersign.receiver")


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    document: Any  # the parsed JSON body; None when the signature was refused
    status: int  # what the receiver answered
    path: str
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class Receiver:
    secret: str
    fail: int | None = None
    hang: float = 0.0
    status: int | None = None
    retry_after: str | None = None  # the Retry-After header of failing answers
    redirect: str | None = None
    tolerance: int = 300
    deliveries: list[Delivery] = field(default_factory=list)  # every request, in order
    processed: dict[str, Any] = field(default_factory=dict)  # webhook-id → document, once each
    _signed: int = field(default=0, repr=False)  # deliveries with a valid signature so far
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: _Server | None = field(default=None, repr=False)

    @property
    def failing_all(self) -> bool:
        return self.fail is None and (self.hang > 0 or self.status is not None or self.redirect is not None)

    @property
    def url(self) -> str:
        assert self._server is not None, "bind() or start() the receiver first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def bind(self, host: str = "127.0.0.1", port: int = 0) -> _Server:
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        return self._server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Receiver:
        """Serve in a background thread (port 0: any free port; see ``url``)."""
        server = self.bind(host, port)
        threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def attempts_of(self, webhook_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.webhook_id == webhook_id]

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str]]:
        """Answer one POST: (status, extra headers). Sleeps first when the delivery is failing."""
        webhook_id = headers.get("webhook-id") or ""
        try:
            webhooks.verify([self.secret], webhook_id, headers.get("webhook-timestamp"),
                              headers.get("webhook-signature"), body, tolerance=self.tolerance)
        except webhooks.SignatureError as exc:
            return self._answer(Delivery(webhook_id, None, 401, path), f"refused: {exc}")
        document = json.loads(body)
        with self._lock:
            self._signed += 1
            failing = self.failing_all or self._signed <= (self.fail or 0)
        if failing:
            time.sleep(self.hang)
            code = 302 if self.redirect else self.status or 500
            extra = {"Location": self.redirect} if self.redirect else {}
            if self.retry_after is not None and not self.redirect:
                extra["Retry-After"] = self.retry_after
            return self._answer(Delivery(webhook_id, document, code, path), "failing on purpose", extra)
        with self._lock:
            duplicate = webhook_id in self.processed
            self.processed.setdefault(webhook_id, document)
        return self._answer(Delivery(webhook_id, document, 200, path), "duplicate" if duplicate else "processed")

    def _answer(self, delivery: Delivery, outcome: str, headers: dict[str, str] | None = None,
                ) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.deliveries.append(delivery)
        document = delivery.document if isinstance(delivery.document, dict) else {}
        attempt = (document.get("execution") or document.get("notification") or {}).get("attempt")
        log.info("%s %s %s case=%s attempt=%s: %s", delivery.status, delivery.webhook_id or "-",
                 document.get("type", "-"), (document.get("case") or {}).get("id", "-"), attempt or "-", outcome)
        return delivery.status, headers or {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging delivery never blocks shutdown
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers = self.server.receiver.handle(self.path, self.headers, body)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except ConnectionError:
            pass  # the sender gave up waiting (a hanging delivery)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `Receiver` logs one line per delivery itself."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.execution.receiver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--secret", default=os.environ.get("RECEIVER_SECRET"),
                        help="the API client's signing secret, whsec_… (default: $RECEIVER_SECRET)")
    parser.add_argument("--fail", type=int, default=None, metavar="N", help="fail the first N deliveries")
    parser.add_argument("--hang", type=float, default=0.0, metavar="S", help="failing deliveries wait S seconds first")
    parser.add_argument("--status", type=int, default=None, metavar="CODE", help="failing deliveries answer CODE")
    parser.add_argument("--retry-after", default=None, metavar="S",
                        help="failing deliveries carry Retry-After: S (seconds or an HTTP date)")
    parser.add_argument("--redirect", default=None, metavar="URL", help="failing deliveries redirect to URL")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or RECEIVER_SECRET) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s receiver %(message)s")
    receiver = Receiver(args.secret, fail=args.fail, hang=args.hang, status=args.status,
                        retry_after=args.retry_after, redirect=args.redirect)
    server = receiver.bind(args.host, args.port)
    log.info("listening on %s", receiver.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
