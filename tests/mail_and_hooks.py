"""Local receivers for the notification tests: a tiny SMTP server that records messages
(aiosmtpd is not installed here) and an HTTP receiver that records webhook deliveries."""

from __future__ import annotations

import email
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 localhost test SMTP")
        sender, recipients = "", []
        while raw := self.rfile.readline():
            line = raw.decode().rstrip("\r\n")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO", "NOOP"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                sender, recipients = argument.split(":", 1)[1].strip("<> "), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(argument.split(":", 1)[1].strip("<> "))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                self.server.mailbox.messages.append(Received(sender, recipients, self._data()))
                self.reply("250 OK queued")
            elif verb == "RSET":
                sender, recipients = "", []
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")

    def _data(self) -> Message:
        lines = []
        while (raw := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
        return email.message_from_bytes(b"".join(lines))


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.mailbox = Mailbox(*server.server_address[:2])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.mailbox
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hooks:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    status: int = 204


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        hooks: Hooks = self.server.hooks
        body = self.rfile.read(int(self.headers["Content-Length"]))
        hooks.deliveries.append(Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(hooks.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def webhook_receiver() -> Iterator[Hooks]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.hooks = Hooks(f"http://127.0.0.1:{server.server_address[1]}/hooks/countersign")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.hooks
    finally:
        server.shutdown()
        server.server_close()
