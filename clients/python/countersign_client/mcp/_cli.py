"""The command line both MCP commands share: Countersign's credentials from the environment, the
waiting bounds, and the transport (stdio, or streamable HTTP on a host and port, behind a bearer
token of its own: ``COUNTERSIGN_MCP_TOKEN``)."""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import sys
from typing import Protocol

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from countersign_client import AsyncCountersign
from countersign_client.mcp.approvals import (
    DEFAULT_EXPIRES_AFTER_SECONDS,
    DEFAULT_MAX_WAIT_SECONDS,
    DEFAULT_PROGRESS_EVERY_SECONDS,
    Approvals,
)

CREDENTIALS = ("COUNTERSIGN_URL", "COUNTERSIGN_TOKEN", "COUNTERSIGN_SIGNING_SECRET")
# the variable holding what an agent presents to the HTTP transport (not Countersign's token)
HTTP_TOKEN = "COUNTERSIGN_MCP_TOKEN"  # noqa: S105 (a variable's name, not a secret)
STREAMABLE_HTTP_PATH = "/mcp"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                        help="stdio (the agent starts this command) or streamable HTTP (default: stdio)")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP: the address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP: the port to listen on (default: 8765)")
    parser.add_argument("--max-wait", type=float, default=DEFAULT_MAX_WAIT_SECONDS, metavar="SECONDS",
                        help="wait at most this long for a decision within one tool call "
                             f"(default: {DEFAULT_MAX_WAIT_SECONDS:.0f})")
    parser.add_argument("--expires-after", type=float, default=DEFAULT_EXPIRES_AFTER_SECONDS, metavar="SECONDS",
                        help="a call undecided this long after it was asked expires "
                             f"(default: {DEFAULT_EXPIRES_AFTER_SECONDS:.0f})")
    parser.add_argument("--progress-every", type=float, default=DEFAULT_PROGRESS_EVERY_SECONDS, metavar="SECONDS",
                        help="while waiting, report progress this often (clients may reset their time limit on it; "
                             f"default: {DEFAULT_PROGRESS_EVERY_SECONDS:.0f})")
    parser.add_argument("--agent-id", help="the agent's id shown to reviewers (default: the MCP client's name)")
    parser.add_argument("--agent-model", default="unknown", help="the agent's model shown to reviewers")


def client_from_environment() -> AsyncCountersign:
    """The API client's credentials from the environment; exits naming what is missing."""
    missing = [name for name in CREDENTIALS if not os.environ.get(name)]
    if missing:
        sys.exit(f"set {', '.join(missing)} (the Countersign API client's credentials)")
    url, token, secret = (os.environ[name] for name in CREDENTIALS)
    return AsyncCountersign(url, token, secret)


def approvals(client: AsyncCountersign, arguments: argparse.Namespace) -> Approvals:
    return Approvals(client, max_wait=arguments.max_wait, expires_after=arguments.expires_after,
                     progress_every=arguments.progress_every)


def check_transport(arguments: argparse.Namespace) -> None:
    """Whoever reaches the HTTP transport asks with the API client's credentials: beyond this
    machine it needs a token of its own. Exits saying so."""
    if arguments.transport == "http" and not os.environ.get(HTTP_TOKEN) and not _loopback(arguments.host):
        sys.exit(f"listening on {arguments.host} needs {HTTP_TOKEN}: the bearer token agents must present "
                 "(anyone who reaches the port would otherwise ask with Countersign's credentials)")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class StreamableHTTPServer(Protocol):
    """An MCP server of the SDK, high-level or low-level: both make their streamable HTTP app so."""

    def streamable_http_app(self, *, streamable_http_path: str, host: str) -> ASGIApp: ...


async def serve_http(server: StreamableHTTPServer, arguments: argparse.Namespace) -> None:
    """``server`` over streamable HTTP on ``--host``/``--port`` at ``/mcp``; with
    ``COUNTERSIGN_MCP_TOKEN`` set, for its bearers only."""
    app = server.streamable_http_app(streamable_http_path=STREAMABLE_HTTP_PATH, host=arguments.host)
    token = os.environ.get(HTTP_TOKEN, "")
    config = uvicorn.Config(BearerToken(app, token) if token else app, host=arguments.host, port=arguments.port,
                            log_level="warning")
    await uvicorn.Server(config).serve()


class BearerToken:
    """ASGI middleware: an HTTP request without ``Authorization: Bearer <token>`` is answered 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not hmac.compare_digest(self._presented(scope), self.expected):
            refused = JSONResponse({"error": f"send Authorization: Bearer <the token in {HTTP_TOKEN}>"}, 401,
                                   headers={"WWW-Authenticate": 'Bearer realm="countersign-mcp"'})
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _presented(scope: Scope) -> bytes:
        return next((value for name, value in scope["headers"] if name == b"authorization"), b"")
