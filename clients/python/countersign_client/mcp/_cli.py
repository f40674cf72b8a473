"""The command line both MCP commands share: Countersign's credentials from the environment, the
waiting bounds, and the transport (stdio, or streamable HTTP on a host and port)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from countersign_client import AsyncCountersign
from countersign_client.mcp.approvals import (
    DEFAULT_EXPIRES_AFTER_SECONDS,
    DEFAULT_MAX_WAIT_SECONDS,
    DEFAULT_PROGRESS_EVERY_SECONDS,
    Approvals,
)

CREDENTIALS = ("COUNTERSIGN_URL", "COUNTERSIGN_TOKEN", "COUNTERSIGN_SIGNING_SECRET")
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


def http_options(arguments: argparse.Namespace) -> dict[str, Any]:
    return {"host": arguments.host, "port": arguments.port, "streamable_http_path": STREAMABLE_HTTP_PATH}
