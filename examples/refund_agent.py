"""A support agent whose refund tool needs a human's approval: an OpenAI function-calling loop where
`issue_refund` is guarded by Countersign's `@require_approval` (clients/python).

    python examples/refund_agent.py --credentials instance/demo-client.json --fake-openai   # against `make demo`
    OPENAI_API_KEY=sk-… python examples/refund_agent.py --url https://countersign.example.com \\
        --credentials client.json --model gpt-4.1-mini

The model asks to refund an order; the call waits in Countersign until a reviewer approves it (as
asked, or with an edited amount), refuses it, or answers the agent instead; then the tool runs with
the approved arguments, or the agent tells the customer why not. ``--fake-openai`` plays the model
with the repository's local OpenAI-compatible server (devtools/fake_openai.py), scripted to call
``issue_refund``: no API key needed. Needs `pip install ./clients/python openai`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from countersign_client import (
    Agent,
    ApprovalTimeout,
    Countersign,
    CountersignError,
    NotApproved,
    Rejected,
    agent_context,
    require_approval,
)
from openai import OpenAI
from pydantic import Field

ORDER = {"order_id": "ORD-58213", "item": "espresso machine", "total": 180.0, "currency": "EUR"}
SYSTEM = ("You are the support agent of an online shop. Order ORD-58213: an espresso machine, 180.00 EUR, "
          "delivered 2 days ago; the carrier filed a damage report. Damaged goods may be refunded in full: "
          "use the issue_refund tool, then tell the customer what happened in one sentence.")
CUSTOMER = "My espresso machine (order ORD-58213) arrived with a cracked water tank. I want my money back."
MAX_TURNS = 5


def issue_refund(order_id: Annotated[str, Field(pattern=r"^ORD-[0-9]+$")], amount: Annotated[float, Field(gt=0)],
                 currency: Literal["EUR", "USD"] = "EUR") -> str:
    """Refund part or all of an order to the customer's original payment method."""
    print(f"issue_refund ran with order_id={order_id} amount={amount:.2f} currency={currency}", flush=True)
    return f"Refunded {amount:.2f} {currency} on order {order_id}."


# --- the agent loop ------------------------------------------------------------------------------------


def run_tool(tools: dict[str, Any], name: str, arguments: str) -> str:
    """The tool's result for the model; a refusal or a timeout is a result too (the model tells the customer)."""
    try:
        return str(tools[name](**json.loads(arguments)))
    except Rejected as refused:
        print(f"{name} was refused by a reviewer: {refused.feedback}", flush=True)
        return f"A reviewer refused the refund: {refused.feedback}"
    except (NotApproved, ApprovalTimeout) as stopped:
        print(f"{name} did not run: {stopped}", flush=True)
        return f"The refund could not be made: {stopped}"


def converse(model: OpenAI, model_name: str, tools: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """Let the model call tools until it answers in words; that answer."""
    declared = [{"type": "function", "function": tool.tool_spec} for tool in tools.values()]
    for _ in range(MAX_TURNS):
        reply = model.chat.completions.create(model=model_name, messages=messages, tools=declared).choices[0].message
        messages.append(reply.model_dump(exclude_none=True, exclude={"refusal", "audio", "annotations"}))
        if not reply.tool_calls:
            return reply.content or ""
        for call in reply.tool_calls:
            print(f"the model calls {call.function.name}({call.function.arguments})", flush=True)
            result = run_tool(tools, call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return "(the agent gave up after too many tool calls)"


def fake_model() -> Any:
    """The local OpenAI-compatible server, scripted: call issue_refund as the customer asks, then
    tell the customer the tool's result."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's devtools/
    from devtools.fake_openai import FakeOpenAI, Reply, ToolCalls

    def tell_the_customer(request: dict[str, Any]) -> str:
        results = [m["content"] for m in request["messages"] if m.get("role") == "tool"]
        return f"Dear customer: {results[-1] if results else 'nothing was done.'}"

    server = FakeOpenAI(default=Reply(tell_the_customer)).start()
    server.push(ToolCalls((("issue_refund", {"order_id": ORDER["order_id"], "amount": ORDER["total"],
                                             "currency": ORDER["currency"]}),)))
    return server


def settings(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="Countersign's base URL")
    parser.add_argument("--credentials", type=Path, required=True,
                        help="a JSON file with token and signing_secret (the demo writes instance/demo-client.json)")
    parser.add_argument("--model", default="gpt-4.1-mini", help="the OpenAI model")
    parser.add_argument("--fake-openai", action="store_true",
                        help="play the model with the local fake OpenAI server (no API key needed)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for a reviewer")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = settings(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    logging.getLogger("countersign_client").setLevel(logging.INFO)  # "asked for approval…", "case … approved"
    saved = json.loads(args.credentials.read_text())
    fake = fake_model() if args.fake_openai else None
    model = OpenAI(api_key="fake", base_url=fake.base_url) if fake else OpenAI()
    print(f"the model: {'the local fake OpenAI server' if fake else model.base_url} ({args.model})", flush=True)
    try:
        with Countersign(args.url, saved["token"], saved["signing_secret"]) as countersign:
            tools = {"issue_refund": require_approval(domain="finance", timeout=args.timeout,
                                                      client=countersign)(issue_refund)}
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": CUSTOMER}]
            agent = Agent(id="support-agent-7", name="Support agent", version="1.0.0", model=args.model)
            with agent_context(agent=agent, goal=f"Resolve the customer's complaint about order {ORDER['order_id']}",
                               messages=messages, risk_hints=["refund of the whole order"]):
                answer = converse(model, args.model, tools, messages)
        print(f"the agent answers: {answer}", flush=True)
        return 0
    except CountersignError as failed:
        print(f"Countersign: {failed}", flush=True)
        return 1
    finally:
        if fake is not None:
            fake.stop()


if __name__ == "__main__":
    raise SystemExit(main())
