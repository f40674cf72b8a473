"""A small MCP server of a web shop, to put behind the Countersign MCP gateway (docs/mcp.md): the
risky ``issue_refund`` and the harmless ``lookup_order``. Each call it runs is appended, as one JSON
line, to the ``--record`` file, so you (and the tests) can see what really ran, with which arguments.

    countersign-mcp-gateway --guard issue_refund --domain finance -- \\
        python examples/mcp_shop_server.py --record /tmp/shop-calls.jsonl

It needs only the MCP SDK (`pip install mcp`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Literal

from mcp.server.mcpserver import MCPServer


def shop(record: Path) -> MCPServer:
    server = MCPServer("shop")

    def ran(tool: str, arguments: dict[str, object]) -> None:
        with record.open("a", encoding="utf-8") as calls:
            calls.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")

    @server.tool()
    def issue_refund(order_id: str, amount: float, currency: Literal["EUR", "USD", "GBP"] = "EUR") -> str:
        """Refund part or all of an order to the customer's original payment method."""
        ran("issue_refund", {"order_id": order_id, "amount": amount, "currency": currency})
        return f"refunded {amount:.2f} {currency} on {order_id}"

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """An order's total and delivery state."""
        ran("lookup_order", {"order_id": order_id})
        return f"{order_id}: total 180.00 EUR, delivered"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", type=Path, required=True, help="append each call run to this JSON-lines file")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=8766, help="HTTP: the port on 127.0.0.1")
    arguments = parser.parse_args()
    server = shop(arguments.record)
    if arguments.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=arguments.port)


if __name__ == "__main__":
    main()
